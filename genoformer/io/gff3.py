"""GFF3 feature lines, plain or gzip/bgzip-compressed, read up to a ``##FASTA`` section.

Every feature line must have nine tab-separated columns and plain-digit coordinates with 1 <= start <= end; each
error names the file and the 1-based line. Coordinates come back 0-based half-open. Whether a feature ends past
its contig is checked by the reader that uses it (:func:`check_within`, or :class:`EndCheck` in the reader's one
pass over the file). GFF3 lets a feature cross the origin of a contig declared circular (``Is_circular=true``, on
its ``region`` line): its end is then past the contig's length, up to twice it, and :func:`pieces` gives the two
stretches it covers. On any other contig an end past its length is an error (the annotation is of another assembly,
or the contig was cut).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genoformer.errors import InputError, MissingFileError
from genoformer.io.text import text_lines

GENE_LEVEL_SUFFIXES = ("gene", "gene_segment", "RNA", "transcript", "exon", "intron", "UTR", "_codon")


@dataclass(frozen=True)
class Feature:
    """One GFF3 feature line; ``start``/``end`` 0-based half-open, ``attributes`` percent-decoded."""

    line: int  # 1-based line number
    contig: str
    type: str
    start: int
    end: int
    strand: str
    phase: str
    attributes: dict[str, str]


def parse_attributes(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a GFF3 column 9, values percent-decoded (multi-valued ones stay comma-joined)."""
    pairs = (item.split("=", 1) for item in text.strip().split(";") if "=" in item)
    return {key.strip(): urllib.parse.unquote(value.strip()) for key, value in pairs}


def read_features(path: str | os.PathLike) -> Iterator[Feature]:
    """Yield the feature lines of the GFF3 file ``path`` in file order (comments and blank lines skipped).

    Raises :class:`MissingFileError` for a missing file and :class:`InputError` naming the line for a malformed one.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: annotation file does not exist")
    for number, line in text_lines(path, "GFF3"):
        if line.startswith("##FASTA"):
            return
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 9:
            raise InputError(f"{path}: line {number}: expected 9 tab-separated GFF3 columns, found {len(fields)}")
        contig, _, feature, start, end, _, strand, phase, attributes = fields
        if not (start.isascii() and start.isdigit() and end.isascii() and end.isdigit()):
            raise InputError(f"{path}: line {number}: start/end {start!r}/{end!r} are not integers "
                             "(GFF3 coordinates are plain digits 0-9)")
        start, end = int(start), int(end)
        if not 1 <= start <= end:
            raise InputError(f"{path}: line {number}: {feature} start {start} and end {end} are not "
                             "1 <= start <= end")
        yield Feature(number, contig, feature, start - 1, end, strand, phase, parse_attributes(attributes))


def is_gene_level(feature_type: str) -> bool:
    """Whether a GFF3 feature type is a gene or pseudogene, a transcript (mRNA, tRNA, rRNA ...) or a part of one
    (CDS, exon, intron, UTR, start/stop codon); see :mod:`genoformer.region_labels`, which reads them."""
    return feature_type == "CDS" or feature_type.startswith("pseudogen") or feature_type.endswith(GENE_LEVEL_SUFFIXES)


def declares_circular(feature: Feature) -> bool:
    """Whether ``feature`` declares its contig circular (``Is_circular=true``, as on a ``region`` line)."""
    return feature.attributes.get("Is_circular", "").lower() == "true"


class EndCheck:
    """:func:`check_within` for the features of one pass over a GFF3 file (:func:`read_features`): a contig may be
    declared circular on any line, after features that cross its origin, so :meth:`check` holds the first feature
    per contig that ends past it (within one more turn: one past that is an error at once) and :meth:`finish`
    checks the held ones once every line is read (:meth:`note`)."""

    def __init__(self, contigs: dict[str, int] | None, path: str | os.PathLike):
        self.contigs, self.path = contigs, path
        self.circular: set[str] = set()
        self.held: dict[str, Feature] = {}  # contig -> its first feature ending past it

    def note(self, feature: Feature) -> None:
        """Read one feature line of the pass (every one: any may declare its contig circular)."""
        if declares_circular(feature):
            self.circular.add(feature.contig)

    def check(self, feature: Feature) -> None:
        """Check ``feature`` as :func:`check_within` does, when the pass is finished if it ends past its contig."""
        contigs = self.contigs
        if contigs is not None and feature.contig in contigs and feature.end > contigs[feature.contig]:
            check_within(feature, contigs, self.path, {feature.contig})  # past the end even of a circular contig
            self.held.setdefault(feature.contig, feature)

    def finish(self) -> None:
        """Raise :class:`InputError` for the first held feature (in file order) that is not allowed past its contig's
        end by :func:`check_within`."""
        for feature in sorted(self.held.values(), key=lambda held: held.line):
            check_within(feature, self.contigs, self.path, self.circular)


def check_within(feature: Feature, contigs: dict[str, int] | None, path: str | os.PathLike,
                 circular: set[str] = frozenset()) -> None:
    """Raise :class:`InputError` naming the line when ``feature`` ends past its contig (of ``contigs``, name ->
    length; a contig not among them is the caller's to report), unless it crosses the origin of a contig in
    ``circular`` (it starts inside the contig and ends within one more turn)."""
    if contigs is None or feature.contig not in contigs or feature.end <= contigs[feature.contig]:
        return
    length = contigs[feature.contig]
    if feature.contig in circular and feature.start < length and feature.end - length <= length:
        return
    hint = "" if feature.contig in circular else \
        " (a feature crossing the origin needs its contig declared Is_circular=true on a region line)"
    raise InputError(f"{path}: line {feature.line}: {feature.type} end {feature.end} is past the end of contig "
                     f"{feature.contig} (length {length}){hint}")


def pieces(start: int, end: int, length: int) -> list[tuple[int, int]]:
    """The stretches (0-based half-open) of a contig of ``length`` bp that a feature ``start``..``end`` covers: itself,
    or, crossing the origin of a circular contig (``end`` past ``length``), its part up to the end and its part from
    the origin."""
    return [(start, end)] if end <= length else [(start, length), (0, end - length)]
