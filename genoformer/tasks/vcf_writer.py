"""Write sites-only VCFs that genomics tools read: bgzipped, sorted, indexed (.tbi or .csi), written atomically."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pysam

from genoformer.atomic import atomic_indexed
from genoformer.io.vcf_index import index_path, other_index


@dataclass(frozen=True)
class InfoField:
    """An INFO header line: ``##INFO=<ID=..,Number=..,Type=..,Description="..">``."""

    id: str
    number: str
    type: str
    description: str


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def write_sites_vcf(path: str | os.PathLike, reference, records: Iterable[dict], *,
                    info_fields: Iterable[InfoField], meta: dict[str, str] | None = None,
                    filters: Iterable[tuple[str, str]] = (), index_kind: str = "auto") -> int:
    """Write ``records`` to ``path`` (bgzipped VCF) with an index of ``index_kind`` (``auto``, ``tbi`` or ``csi``:
    :func:`index_path`); return the number of records.

    Each record is a dict with ``contig, pos`` (1-based), ``ref, alt`` and optionally ``id, qual, filter``
    (list of names) and ``info`` (dict; None or NaN values are left out, i.e. written as missing; an empty tuple, a
    key without a value, is written as the bare key ``KEY`` for a String field, as htslib reads and writes it, and
    as ``KEY=.`` for a number). Records are sorted by contig (reference order) and position. ``meta`` adds
    ``##key=value`` header lines; ``filters`` declares FILTER ids. The VCF and its index are renamed into place only when both are complete.
    """
    contigs = reference.contigs
    order = {name: i for i, name in enumerate(contigs)}
    rows = sorted(records, key=lambda r: (order[r["contig"]], r["pos"], r["ref"], r["alt"]))
    header = pysam.VariantHeader()
    header.add_meta("reference", f"file://{Path(reference.path).resolve()}")
    for key, value in (meta or {}).items():
        header.add_meta(key, str(value))
    for name, length in contigs.items():
        header.contigs.add(name, length=length)
    for field in info_fields:
        header.info.add(field.id, field.number, field.type, field.description)
    for name, description in filters:
        header.filters.add(name, None, None, description)
    index = index_path(path, contigs, index_kind)
    with atomic_indexed(path, index, suffix=".vcf.gz", stale=[other_index(index)]) as (tmp, tmp_index):
        with pysam.VariantFile(str(tmp), "wz", header=header) as out:
            for row in rows:
                record = out.new_record(contig=row["contig"], start=row["pos"] - 1, alleles=(row["ref"], row["alt"]),
                                        id=row.get("id") or None, qual=row.get("qual"))
                for name in row.get("filter") or ():
                    record.filter.add(name)
                for key, value in (row.get("info") or {}).items():
                    if isinstance(value, tuple) and not value:
                        record.info[key] = None  # pysam writes None as KEY for a String field, KEY=. for a number
                    elif not _missing(value):
                        record.info[key] = value
                out.write(record)
        pysam.tabix_index(str(tmp), preset="vcf", force=True, index=str(tmp_index), csi=index.suffix == ".csi")
    return len(rows)
