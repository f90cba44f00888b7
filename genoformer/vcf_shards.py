"""Gather for sharded variant scoring: merge the VCFs (and tables) that `score-variants --shard i/n` jobs wrote.

The workflow scores one VCF as n jobs, ``genoformer score-variants --shard i/n`` each scoring every n-th window
(variants sharing a window stay in one job). Each shard's VCF is sorted but they interleave along the genome,
so ``merge_vcfs`` merges them by position, REF and ALT (the order of each shard's records; variants at one
position can lie in different shards) into one bgzipped, indexed VCF, and ``read_tables`` puts the shards'
table rows back in input order (record, then allele: the ALTs of one record can lie in different shards). Each
(record, allele) must come once, and the tables must have as many rows as the VCFs have records: tables of other
shards are an error, not a merged table that disagrees with the merged VCF.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from genoformer.atomic import atomic_indexed, atomic_path, check_not_an_input
from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.htslib import close_quietly, htslib_messages, read_quietly
from genoformer.io.vcf import open_vcf
from genoformer.io.vcf_index import index_path, other_index

log = logging.getLogger(__name__)

SHARD_HEADER_KEY = "genoformer_shard"  # the one header line in which shards of one scoring run differ


def _merged_header(first: pysam.VariantHeader) -> pysam.VariantHeader:
    """``first`` without its shard line."""
    header = pysam.VariantHeader()
    for record in first.records:
        if record.key != SHARD_HEADER_KEY:
            header.add_record(record)
    for sample in first.samples:
        header.add_sample(sample)
    return header


def _shard(path, header: pysam.VariantHeader) -> tuple[int, int]:
    """The ``(i, n)`` of a shard's ``##genoformer_shard=i/n`` line; ``(0, 1)`` (the whole run) without one."""
    values = [record.value for record in header.records if record.key == SHARD_HEADER_KEY]
    if not values:
        return 0, 1
    match = re.fullmatch(r"(\d+)/(\d+)", values[0])
    if len(values) > 1 or not match or not int(match.group(1)) < int(match.group(2)):
        raise InputError(f"{path}: header line ##{SHARD_HEADER_KEY}={values[-1]}: expected one line I/N with "
                         "0 <= I < N")
    return int(match.group(1)), int(match.group(2))


def _run_lines(header: pysam.VariantHeader) -> dict[str, str]:
    """The ``##genoformer_*`` header lines but the shard line: checkpoint, window, tokens... of the run."""
    return {record.key: record.value for record in header.records
            if record.key.startswith("genoformer_") and record.key != SHARD_HEADER_KEY}


def _show(key: str, value: str | None) -> str:
    return f"##{key}={value}" if value is not None else f"no ##{key} line"


def check_shards(inputs: list, headers: list[pysam.VariantHeader]) -> None:
    """Check that ``inputs`` are the shards of one scoring run: the same ``##genoformer_*`` lines (but the
    shard line; ``MismatchError`` naming the two files and the line) and each of shards 0..N-1 exactly once
    (``InputError`` naming what is duplicated or missing)."""
    first = _run_lines(headers[0])
    for path, header in zip(inputs[1:], headers[1:]):
        lines = _run_lines(header)
        for key in sorted(first.keys() | lines.keys()):
            if lines.get(key) != first.get(key):
                raise MismatchError(f"{path}: {_show(key, lines.get(key))} but {inputs[0]} has "
                                    f"{_show(key, first.get(key))}; only shards of one scoring run can be merged")
    seen: dict[int, str] = {}
    count = _shard(inputs[0], headers[0])[1]
    for path, header in zip(inputs, headers):
        index, n = _shard(path, header)
        if n != count:
            raise MismatchError(f"{path}: shard {index}/{n} but {inputs[0]} is a shard of {count}; only shards of "
                                "one scoring run can be merged")
        if index in seen:
            raise InputError(f"{path}: shard {index}/{n} given twice (also {seen[index]})")
        seen[index] = str(path)
    missing = [f"{index}/{count}" for index in range(count) if index not in seen]
    if missing:
        raise InputError(f"{inputs[0]}: shard(s) {', '.join(missing)} of its run missing from the "
                         f"{len(inputs)} VCFs to merge")


def merge_vcfs(inputs: list[str | os.PathLike], out: str | os.PathLike, index_kind: str = "auto",
               table_rows: int | None = None) -> int:
    """Merge position-sorted shard VCFs of one scoring run into ``out`` (bgzipped, with an index of
    ``index_kind``: :func:`genoformer.io.vcf_index.index_path`), by position, REF and ALT as one unsharded run
    writes them; returns the records. ``table_rows``: the rows of the shards' merged tables (one per record);
    another count is an ``InputError`` and nothing is written.

    The shards must have the same INFO fields, contigs and ``##genoformer_*`` lines and be shards 0..N-1 of
    their ``##genoformer_shard=I/N`` lines, each once (a VCF without that line is shard 0/1, a whole run); see
    ``check_shards``. The merged header is the first shard's without its shard line. A shard out of position
    order, or one that cannot be read, raises ``InputError`` naming it and the record.
    """
    if not inputs:
        raise InputError(f"{out}: no VCF to merge")
    check_not_an_input(out, inputs, "merged VCF")
    with contextlib.ExitStack() as stack:
        vcfs = []
        for path in inputs:
            vcfs.append(open_vcf(path))
            stack.callback(close_quietly, vcfs[-1], log, path)
        signature = (list(vcfs[0].header.info), list(vcfs[0].header.contigs))
        for path, vcf in zip(inputs, vcfs):
            if (list(vcf.header.info), list(vcf.header.contigs)) != signature:
                raise MismatchError(f"{path}: INFO fields or contigs differ from those of {inputs[0]}; "
                                    "only shards of one scoring run can be merged")
        check_shards(inputs, [vcf.header for vcf in vcfs])
        header = _merged_header(vcfs[0].header)
        contig_order = {name: rank for rank, name in enumerate(header.contigs)}

        def sorted_records(path, vcf):
            last = (-1, 0)
            records = read_quietly(vcf, log, path, lambda reason, number: InputError(
                f"{path}: cannot read record {number}: {reason}"))
            for number, record in enumerate(records, start=1):
                if record.contig not in contig_order:  # htslib reads a record on an undeclared contig
                    raise InputError(f"{path}: record {number} ({record.contig}:{record.pos}): contig "
                                     f"'{record.contig}' has no ##contig line in the header of {inputs[0]}")
                key = (contig_order[record.contig], record.pos)
                if key < last:
                    raise InputError(f"{path}: record {number} ({record.contig}:{record.pos}) is out of position "
                                     "order")
                last = key
                yield (*key, record.ref, record.alts or ()), number, record

        merged = heapq.merge(*(sorted_records(path, vcf) for path, vcf in zip(inputs, vcfs)),
                             key=lambda item: item[0])
        index = index_path(out, {name: contig.length or 0 for name, contig in header.contigs.items()}, index_kind)
        count = 0
        with atomic_indexed(out, index, suffix=".vcf.gz", stale=[other_index(index)]) as (tmp, tmp_index), \
                htslib_messages(log, out):
            with pysam.VariantFile(str(tmp), "wz", header=header) as sink:
                for _, _, record in merged:
                    record.translate(header)
                    sink.write(record)
                    count += 1
            if table_rows is not None and table_rows != count:
                raise InputError(f"{out}: the {len(inputs)} shard VCFs hold {count} records but their tables "
                                 f"{table_rows} rows (one per record); give the tables of these shards")
            pysam.tabix_index(str(tmp), preset="vcf", force=True, index=str(tmp_index),
                              csi=index.suffix == ".csi")
    return count


def write_merged_table(merged: pd.DataFrame, out: str | os.PathLike) -> int:
    """Write a table from :func:`read_tables` atomically; returns the number of rows."""
    with atomic_path(out) as tmp:
        merged.to_csv(tmp, sep="\t", index=False)
    return len(merged)


def _check_rows_once(merged: pd.DataFrame, inputs: list, sizes: list[int], columns: tuple[str, ...]) -> None:
    """InputError naming both files and lines when two rows of the concatenated tables have the same ``columns``
    (input record and allele): a shard's table given twice, or a whole run's table next to its shards'."""
    columns = list(columns)
    again = np.flatnonzero(merged.duplicated(subset=columns).to_numpy())
    if again.size:
        key = merged.iloc[again[0]][columns]
        first = np.flatnonzero((merged[columns] == key).all(axis=1).to_numpy())[0]
        ends = np.cumsum(sizes)

        def where(row: int) -> str:
            table = int(np.searchsorted(ends, row, side="right"))
            return f"{inputs[table]}: line {row - (ends[table] - sizes[table]) + 2}"
        shown = ", ".join(f"{column} {key[column]}" for column in columns)
        raise InputError(f"{where(again[0])}: {shown} is also in {where(first)}; give each shard's table once")


def read_tables(inputs: list[str | os.PathLike], order_by: tuple[str, ...] = ("record", "allele")) -> pd.DataFrame:
    """Tab-separated tables with one header, checked and concatenated, rows sorted by the integer columns
    ``order_by`` (stable; two rows with the same values are an ``InputError``), cells kept as text; written by
    :func:`write_merged_table`."""
    tables = []
    for path in inputs:
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: table does not exist")
        try:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (ValueError, OSError) as err:  # pandas' ParserError, EmptyDataError and UnicodeDecodeError too
            raise InputError(f"{path}: not a tab-separated table: {' '.join(str(err).split())}") from None
        if tables and list(table.columns) != list(tables[0].columns):
            raise MismatchError(f"{path}: line 1: columns differ from those of {inputs[0]}")
        for column in order_by:
            if column not in table.columns:
                raise InputError(f"{path}: line 1: no column {column!r} to order the rows by")
            bad = pd.to_numeric(table[column], errors="coerce").isna().to_numpy().nonzero()[0]
            if bad.size:
                raise InputError(f"{path}: line {bad[0] + 2}: column {column!r} is {table[column].iloc[bad[0]]!r}, "
                                 "not a number")
        tables.append(table)
    merged = pd.concat(tables, ignore_index=True)
    _check_rows_once(merged, inputs, [len(table) for table in tables], order_by)
    return merged.iloc[np.lexsort([pd.to_numeric(merged[column]) for column in reversed(order_by)])]
