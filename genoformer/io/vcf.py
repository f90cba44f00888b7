"""Variants from VCF/BCF (plain, bgzipped or BCF) through pysam, checked against the reference.

Every record's contig must be in the reference (all missing contigs are listed in one ``MismatchError``) and
its REF must equal the reference bases (case-insensitive), else an error naming the file, the record's
1-based ordinal, ``contig:pos``, the VCF REF and the reference bases, or, with ``on_ref_mismatch="skip"``,
the record is skipped and counted. Multi-allelic records are split into one ``Variant`` per ALT (INFO fields
declared ``Number=A`` keep that ALT's value, ``Number=R`` the REF's and that ALT's, a value whose count does not fit
the ALTs is kept whole, or is an ``InputError`` naming the record in a field the caller reads; those declared
``Number=G``, which pysam cannot read in INFO, are left out with one warning). Alleles are kept as written: no
trimming or left-alignment. Symbolic (``<DEL>``, ``<*>``), spanning-deletion (``*``) and
breakend alleles are skipped and counted; records without an ALT (``.``) and ALTs equal to their REF (no change,
case aside) are skipped and counted apart.
A record htslib cannot parse is an ``InputError`` with htslib's reason; what htslib prints goes to this module's
logger (see ``genoformer.io.htslib``). In a text VCF, a QUAL that htslib would misread without a word
(``abc`` as 0) and a line of fewer than 8 columns are an ``InputError`` naming the record, its line and the
problem; a numeric INFO value that it would misread (``DP=abc`` dropped for a ``Type=Integer`` field) is a warning
once per field, or an error for a field the caller reads (see ``genoformer.io.vcf_text``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pysam
from tqdm import tqdm

from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference, is_plain_gzip
from genoformer.io.htslib import close_quietly, htslib_messages, read_quietly
from genoformer.io.vcf_text import TextRecords

log = logging.getLogger(__name__)

ON_REF_MISMATCH = ("error", "skip")
_PLAIN_ALLELE = re.compile(r"[ACGTNacgtn]+")


@dataclass
class Variant:
    """One REF>ALT change; ``pos`` is 1-based, ``record`` the 1-based ordinal of its record in the file,
    ``allele`` the 1-based index of its ALT in that record (as genotypes number the ALTs)."""

    contig: str
    pos: int
    ref: str
    alt: str
    id: str | None
    qual: float | None
    filter: tuple[str, ...]
    info: dict
    record: int
    allele: int = 1


@dataclass
class VariantSet:
    """The variants of a VCF plus what was skipped, the pysam header and the number of records read."""

    variants: list[Variant]
    header: pysam.VariantHeader
    records: int = 0
    skipped_symbolic: int = 0
    skipped_ref_mismatch: int = 0
    skipped_no_alt: int = 0
    path: Path | None = field(default=None)


def is_symbolic(allele: str) -> bool:
    """True for symbolic (``<DEL>``), spanning-deletion (``*``) and breakend (``G]q:10]``, ``.G``) alleles."""
    return allele.startswith("<") or allele == "*" or "[" in allele or "]" in allele \
        or (len(allele) > 1 and (allele.startswith(".") or allele.endswith(".")))


def check_not_plain_gzip(path: str | os.PathLike) -> None:
    """Raise InputError for a VCF compressed with plain gzip: htslib opens it, then pysam cannot seek in it
    (:func:`open_vcf` checks it; this is for callers that open the file their own way)."""
    path = Path(path)
    if path.is_file() and is_plain_gzip(path):
        raise InputError(f"{path}: plain gzip, not bgzip; recompress it with bgzip: "
                         f"`zcat {path} | bgzip > {path.with_suffix('.bgz')}` (or decompress it: "
                         f"`zcat {path} > {path.with_suffix('')}`)")


def open_vcf(path: str | os.PathLike) -> pysam.VariantFile:
    """Open a VCF/BCF with pysam, htslib's messages logged; a missing, empty, plain-gzip or unreadable file is a
    one-line error naming it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a folder, not a VCF file")
    if not path.is_file():
        raise MissingFileError(f"{path}: VCF file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: VCF file is empty")
    check_not_plain_gzip(path)
    with htslib_messages(log, path) as messages:
        try:
            return pysam.VariantFile(str(path))
        except (ValueError, OSError) as err:
            raise InputError(f"{path}: not a readable VCF/BCF ({messages.reason(err)})") from None


def _records(vcf: pysam.VariantFile, path: Path, strict_info: tuple[str, ...] = ()):
    """The (1-based ordinal, record) pairs. A record pysam cannot read is an ``InputError`` with htslib's reason;
    a text VCF's line that htslib reads wrong without a word, or that it cannot read for lack of columns, is one
    saying what is wrong, or for INFO values outside ``strict_info`` a warning (:mod:`genoformer.io.vcf_text`)."""
    text = TextRecords(vcf, path, strict_info) if vcf.format == "VCF" else None

    def unreadable(reason: str, number: int) -> InputError:
        if text is not None:
            text.check_through(number)  # a line's own problem rather than htslib's guess at it
        return InputError(f"{path}: malformed VCF at record {number}: {reason}")

    try:
        records = read_quietly(vcf, log, path, unreadable)
        for number, record in enumerate(tqdm(records, desc=f"reading {path.name}", unit=" records", disable=None),
                                        start=1):
            if text is not None:
                text.check_through(number)
            yield number, record
    finally:
        if text is not None:
            text.close()


def _info_numbers(header: pysam.VariantHeader) -> dict[str, object]:
    """The declared ``Number`` of each INFO field of ``header``, looked up once per file, not per record."""
    return {key: header.info[key].number for key in header.info}


def _split_info(record: pysam.VariantRecord, numbers: dict[str, object], alt_index: int,
                keys: tuple[str, ...] | None = None) -> dict:
    """INFO of ``record`` for its ``alt_index``-th ALT (0-based): per-allele fields cut to that allele
    (``numbers``: :func:`_info_numbers`); only ``keys`` when given, else every field but those declared
    ``Number=G`` (:func:`_per_genotype_fields`)."""
    info = {}
    for key in (record.info if keys is None else keys):
        number = numbers.get(key, ".")
        if number == "G" or key not in record.info:  # pysam raises ValueError reading a Number=G value in INFO
            continue
        value = record.info[key]
        if number == "A" and isinstance(value, tuple) and len(value) == len(record.alts):
            value = value[alt_index]
        elif number == "R" and isinstance(value, tuple) and len(value) == len(record.alts) + 1:
            value = (value[0], value[alt_index + 1])
        info[key] = value
    return info


def _check_allele_counts(record: pysam.VariantRecord, numbers: dict[str, object], keys: tuple[str, ...], path: Path,
                         number: int) -> None:
    """InputError for a field of ``keys`` declared ``Number=A`` or ``Number=R`` whose value in ``record`` has not one
    value per ALT (A), or one for REF and one per ALT (R): no value could be told to be an ALT's own. A missing
    value ('.') is no count."""
    for key in keys:
        declared = numbers.get(key)
        if declared not in ("A", "R") or not record.alts or key not in record.info:
            continue
        value = record.info[key]
        wanted = len(record.alts) + (declared == "R")
        if isinstance(value, tuple) and len(value) != wanted and any(item not in (None, ".") for item in value):
            per = "one value for REF and one per ALT" if declared == "R" else "one value per ALT"
            raise InputError(f"{path} record {number} ({record.contig}:{record.pos}): INFO {key} has {len(value)} "
                             f"value(s) for {len(record.alts)} ALT(s); it is declared Number={declared} ({per}), "
                             f"so {wanted}")


def _per_genotype_fields(header: pysam.VariantHeader, path: Path) -> None:
    """Warn about the INFO fields declared ``Number=G``: pysam reads such values in FORMAT only (it raises
    ``ValueError`` for them in INFO), so the variants do not carry them."""
    fields = [key for key, number in _info_numbers(header).items() if number == "G"]
    if fields:
        log.warning("%s: INFO %s declared Number=G (a value per genotype), which pysam reads in FORMAT only: not "
                    "carried over to the outputs", path, ", ".join(fields))


def read_variants(path: str | os.PathLike, reference: Reference, on_ref_mismatch: str = "error",
                  strict_info: tuple[str, ...] = ()) -> VariantSet:
    """Read every variant of a VCF/BCF, validated against ``reference`` (see the module docstring).

    ``on_ref_mismatch``: ``"error"`` raises ``MismatchError`` at the first REF that disagrees with the
    reference; ``"skip"`` drops such records and counts them in ``skipped_ref_mismatch``. ``strict_info``: INFO
    fields the caller reads (a label field), whose values htslib would misread are an error, not a warning, and so
    is a value declared ``Number=A`` or ``Number=R`` whose count does not fit the record's ALTs
    (:func:`_check_allele_counts`; elsewhere such a value is kept whole).
    """
    if on_ref_mismatch not in ON_REF_MISMATCH:
        raise ValueError(f"on_ref_mismatch must be one of {ON_REF_MISMATCH}, got {on_ref_mismatch!r}")
    path = Path(path)
    vcf = open_vcf(path)
    result = VariantSet(variants=[], header=vcf.header, path=path)
    _per_genotype_fields(vcf.header, path)
    missing_contigs: dict[str, int] = {}
    number = 0
    try:
        numbers = _info_numbers(vcf.header)
        for number, record in _records(vcf, path, strict_info):
            if record.contig not in reference.contigs:
                missing_contigs.setdefault(record.contig, number)
                continue
            if not _ref_matches(record, reference, path, number, on_ref_mismatch):
                result.skipped_ref_mismatch += 1
                continue
            _check_allele_counts(record, numbers, strict_info, path, number)
            _add_variants(record, number, result, path, numbers)
    finally:
        close_quietly(vcf, log, path)
    result.records = number
    if missing_contigs:
        raise MismatchError(f"VCF contigs not in reference {reference.path}: {', '.join(missing_contigs)} "
                            f"(in {path}, first at record {next(iter(missing_contigs.values()))})")
    log.info("%s: %d variants from %d records; skipped %d symbolic/breakend alleles, %d REF mismatches, "
             "%d without a change (no ALT, or ALT equal to REF)", path, len(result.variants), number,
             result.skipped_symbolic, result.skipped_ref_mismatch, result.skipped_no_alt)
    return result


def alt_info(path: str | os.PathLike, keys: tuple[str, ...]) -> tuple[pysam.VariantHeader, list[dict]]:
    """The header of a VCF/BCF and the INFO ``keys`` of each of its plain ALTs, as :func:`read_variants` gives
    them (per-allele values cut to the ALT) but without the reference: for a quick look at a few fields (a value
    of them that htslib would misread is an error, and so are one declared ``Number=G`` and a per-allele value of the
    wrong count: :func:`_check_allele_counts`)."""
    path = Path(path)
    vcf = open_vcf(path)
    try:
        numbers = _info_numbers(vcf.header)
        per_genotype = [key for key in keys if numbers.get(key) == "G"]
        if per_genotype:  # pysam raises ValueError reading such a field in INFO
            raise InputError(f"{path}: INFO field '{per_genotype[0]}' is declared Number=G (a value per genotype), "
                             "which pysam reads in FORMAT only")
        infos = []
        for number, record in _records(vcf, path, keys):
            _check_allele_counts(record, numbers, keys, path, number)
            infos += [_split_info(record, numbers, alt_index, keys) for alt_index, alt in enumerate(record.alts or ())
                      if not is_symbolic(alt)]
        return vcf.header, infos
    finally:
        close_quietly(vcf, log, path)


def _ref_matches(record: pysam.VariantRecord, reference: Reference, path: Path, number: int,
                 on_ref_mismatch: str) -> bool:
    """Whether REF equals the reference at the record's position; raise instead when asked to."""
    ref = record.ref or ""
    where = f"{path} record {number} ({record.contig}:{record.pos})"
    if not _PLAIN_ALLELE.fullmatch(ref):
        raise InputError(f"{where}: REF {ref!r} is not a sequence of A, C, G, T, N")
    if record.pos < 1:
        raise InputError(f"{where}: POS {record.pos} is not a position on contig {record.contig} (VCF positions "
                         "start at 1)")
    length = reference.contigs[record.contig]
    if record.pos - 1 + len(ref) > length:
        raise InputError(f"{where}: REF {ref} runs past the end of contig {record.contig} "
                         f"(length {length} in {reference.path})")
    expected = reference.fetch(record.contig, record.pos - 1, record.pos - 1 + len(ref))
    if expected.upper() == ref.upper():
        return True
    if on_ref_mismatch == "error":
        raise MismatchError(f"{where}: VCF REF {ref} does not match reference {reference.path} "
                            f"bases {expected} (wrong reference build?)")
    return False


def _add_variants(record: pysam.VariantRecord, number: int, result: VariantSet, path: Path,
                  numbers: dict[str, object]) -> None:
    """Append one Variant per plain ALT of ``record`` (``numbers``: :func:`_info_numbers`); count symbolic and
    missing ALTs, and ALTs equal to REF."""
    if not record.alts:
        result.skipped_no_alt += 1
        return
    filters = tuple(record.filter.keys())
    for alt_index, alt in enumerate(record.alts):
        if is_symbolic(alt):
            result.skipped_symbolic += 1
            continue
        if not _PLAIN_ALLELE.fullmatch(alt):
            raise InputError(f"{path} record {number} ({record.contig}:{record.pos}): ALT {alt!r} is not a "
                             "sequence of A, C, G, T, N or a symbolic allele")
        if alt.upper() == record.ref.upper():  # no change: nothing to score
            result.skipped_no_alt += 1
            continue
        result.variants.append(Variant(
            contig=record.contig, pos=record.pos, ref=record.ref, alt=alt, id=record.id, qual=record.qual,
            filter=filters, info=_split_info(record, numbers, alt_index), record=number,
            allele=alt_index + 1))
