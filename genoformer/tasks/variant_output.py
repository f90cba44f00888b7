"""Outputs of ``score-variants``: a bgzipped, indexed sites VCF with GF_* INFO scores, and a TSV table.

The VCF keeps each input variant's ID, QUAL, FILTER and INFO (multi-allelic records split, one ALT per line;
genotype columns are not carried over) and adds the scores; the input's own ``GF_*`` INFO fields give way to them,
with a warning naming those fields. Its header records the checkpoint's SHA-256, the
window, the tokenization and the input VCF (its path and number of records), so a score can always be traced to
the model and the file that made it, and merge-vcf merges only shards of one run.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from genoformer.atomic import atomic_path
from genoformer.tasks.variants import STRANDS, VariantScores
from genoformer.tasks.vcf_writer import InfoField, write_sites_vcf

SCORE_FIELDS = {
    "LLR": "zero-shot masked log-likelihood ratio log P(ALT) - log P(REF) (k-mer aware; indels: per masked token)",
    "EMB_LOCAL": "Euclidean distance of the mean hidden state over the tokens at the variant, REF vs ALT window",
    "EMB_POOLED": "Euclidean distance of the mean hidden state over the whole window, REF vs ALT window",
}
STRAND_WORDS = {"fwd": "forward strand", "rev": "reverse-complement strand"}

log = logging.getLogger(__name__)


def score_columns(scores: VariantScores) -> dict[str, np.ndarray]:
    """Every score as a column: ``GF_<NAME>`` (mean of both strands) and ``GF_<NAME>_FWD``/``_REV``."""
    columns = {}
    for name, values in (("LLR", scores.llr), ("EMB_LOCAL", scores.emb_local), ("EMB_POOLED", scores.emb_pooled)):
        columns[f"GF_{name}"] = values.mean(axis=1)
        for strand, label in enumerate(STRANDS):
            columns[f"GF_{name}_{label.upper()}"] = values[:, strand]
    return columns


def score_info_fields(per_strand: bool) -> list[InfoField]:
    """The INFO header lines of the scores (both-strand means, and per strand when asked for)."""
    fields = []
    for name, description in SCORE_FIELDS.items():
        fields.append(InfoField(f"GF_{name}", "1", "Float", f"genoformer: {description}, mean of both strands"))
        if per_strand:
            fields.extend(InfoField(f"GF_{name}_{label.upper()}", "1", "Float",
                                    f"genoformer: {description}, {STRAND_WORDS[label]}") for label in STRANDS)
    return fields


HTSLIB_UNDECLARED = "Dummy"  # the Description htslib gives an INFO field it meets undeclared (Number=1, String)


def _fits(value, number: str) -> bool:
    """Whether an INFO value of one split variant (one ALT) has the count its declared ``Number`` asks for."""
    count = len(value) if isinstance(value, tuple) else 1
    if number in ("A", "R"):
        return count == (1 if number == "A" else 2)
    return not number.isdigit() or int(number) == 0 or count == int(number)


def _input_info_fields(header, variants) -> list[InfoField]:
    """The input's INFO header lines of the fields the variants carry; undeclared ones become ``Number=.``.

    htslib declares an INFO field missing from the header as ``Number=1,Type=String`` although its values
    may be lists (``PL=67,0,116``): such a field is declared ``Number=.`` so that every value is kept. So is a
    field with a value of another count than its ``Number`` asks for (``AF=0.1,0.2,0.3`` for two ALTs, kept
    whole by :func:`genoformer.io.vcf.read_variants`; ``DP=3,4`` declared ``Number=1``), which pysam refuses to
    write under the input's declaration. An undeclared field that is a bare key wherever it appears (``SOMATIC``;
    pysam reads it as None, where ``KEY=.`` reads as ".") is declared a ``Flag``, so that it is kept; one that is a
    bare key on some records and has values on others is declared ``Number=.`` ``String`` and written as it was, the
    bare key where it was bare (htslib, and so bcftools, reads and writes a bare key of a String field).
    """
    used = {key for variant in variants for key in variant.info if not key.startswith("GF_")}
    fields = []
    for key in header.info:
        if key not in used:
            continue
        info = header.info[key]
        if info.description == HTSLIB_UNDECLARED and str(info.number) == "1" and info.type == "String":
            flag = all(variant.info[key] is None for variant in variants if key in variant.info)
            fields.append(InfoField(key, "0", "Flag", "not declared in the input VCF header (a flag there)") if flag
                          else InfoField(key, ".", "String", "not declared in the input VCF header"))
        elif not all(_fits(variant.info[key], str(info.number)) for variant in variants if key in variant.info):
            fields.append(InfoField(key, ".", info.type, f"{info.description} (declared Number={info.number} in "
                                                         "the input VCF, where some values have another count)"))
        else:
            fields.append(InfoField(key, str(info.number), info.type, info.description))
    return fields


def write_scored_vcf(path: str | os.PathLike, variant_set, scores: VariantScores, reference, *, meta: dict,
                     per_strand: bool = False, variants: list | None = None,
                     extra: list[tuple[InfoField, np.ndarray]] = (), index_kind: str = "auto") -> int:
    """Write the scored variants (those with ``scores.scored``) to ``path`` (+ index); returns the count.

    ``variants`` are the scored variants when they are not all of ``variant_set.variants``; ``extra`` adds
    more per-variant INFO fields (e.g. a classifier's probability); ``index_kind`` is the index's
    (:func:`genoformer.io.vcf_index.index_path`).
    """
    variants = variant_set.variants if variants is None else variants
    columns = score_columns(scores)
    for field, values in extra:
        columns[field.id] = values
    keys = [field.id for field in score_info_fields(per_strand)] + [field.id for field, _ in extra]
    header = variant_set.header
    filters = [(name, header.filters[name].description) for name in header.filters if name != "PASS"]
    replaced = sorted({key for variant in variants for key in variant.info if key.startswith("GF_")})
    if replaced:
        log.warning("%s: its INFO fields %s are left out of %s, which holds genoformer's GF_* scores instead",
                    variant_set.path, ", ".join(replaced), path)

    info_fields = (_input_info_fields(header, variants) + score_info_fields(per_strand)
                   + [field for field, _ in extra])
    flags = {field.id for field in info_fields if field.type == "Flag"}
    strings = {field.id for field in info_fields if field.type == "String"}

    def kept(key: str, value):
        """An input INFO value as written: a String field's None (a bare key: ``KEY=.`` reads as ".") stays bare."""
        if key in flags:
            return True
        return () if value is None and key in strings else value

    def records():
        for index in np.flatnonzero(scores.scored):
            variant = variants[index]
            info = {key: kept(key, value) for key, value in variant.info.items() if not key.startswith("GF_")}
            info.update({key: float(columns[key][index]) for key in keys})
            yield dict(contig=variant.contig, pos=variant.pos, ref=variant.ref, alt=variant.alt, id=variant.id,
                       qual=variant.qual, filter=list(variant.filter), info=info)

    return write_sites_vcf(path, reference, records(), info_fields=info_fields, meta=meta, filters=filters,
                           index_kind=index_kind)


def scores_table(variant_set, scores: VariantScores) -> pd.DataFrame:
    """One row per scored variant: position, alleles, input record number and ALT index in it, window and every
    score column (as float32, the values the VCF holds, so both print the same digits)."""
    rows = np.flatnonzero(scores.scored)
    variants = [variant_set.variants[i] for i in rows]
    table = pd.DataFrame({
        "contig": [v.contig for v in variants], "pos": [v.pos for v in variants],
        "id": [v.id or "." for v in variants], "ref": [v.ref for v in variants], "alt": [v.alt for v in variants],
        "record": [v.record for v in variants], "allele": [v.allele for v in variants],
        "window_start": scores.window_start[rows], "window_end": scores.window_end[rows],
    })
    for name, values in score_columns(scores).items():
        table[name] = values[rows].astype(np.float32)
    return table


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a table as TSV (NaN as ``NA``), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="NA", float_format="%.6g")
