"""GFF3 feature lines, plain or gzip/bgzip-compressed, read up to a ``##FASTA`` section.

Every feature line must have nine tab-separated columns and plain-digit coordinates with 1 <= start <= end; each
error names the file and the 1-based line. Coordinates come back 0-based half-open. Whether a feature ends past
its contig is checked by the reader that uses it (:func:`check_within`): a feature nothing uses may cross the
origin of a circular contig, as GFF3 allows.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genoformer.errors import InputError, MissingFileError
from genoformer.io.text import text_lines


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


def check_within(feature: Feature, contigs: dict[str, int] | None, path: str | os.PathLike) -> None:
    """Raise :class:`InputError` naming the line when ``feature`` ends past its contig (of ``contigs``, name ->
    length; a contig not among them is the caller's to report)."""
    if contigs is not None and feature.contig in contigs and feature.end > contigs[feature.contig]:
        raise InputError(f"{path}: line {feature.line}: {feature.type} end {feature.end} is past the end of contig "
                         f"{feature.contig} (length {contigs[feature.contig]})")
