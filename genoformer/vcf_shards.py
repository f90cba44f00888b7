"""Gather for sharded variant scoring: merge the VCFs (and tables) that `score-variants --shard i/n` jobs wrote.

The workflow scores one VCF as n jobs, ``genoformer score-variants --shard i/n`` each scoring every n-th window
(variants sharing a window stay in one job). Each shard's VCF is sorted but they interleave along the genome,
so ``merge_vcfs`` merges them by position into one bgzipped, tabix-indexed VCF, and ``merge_tables`` puts the
shards' table rows back in input-record order.
"""

from __future__ import annotations

import contextlib
import heapq
import os
from pathlib import Path

import pandas as pd
import pysam

from genoformer.atomic import atomic_path
from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.tasks.vcf_writer import index_path

SHARD_HEADER_KEY = "genoformer_shard"  # the one header line in which shards of one scoring run differ


def _open(path: str | os.PathLike) -> pysam.VariantFile:
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: VCF does not exist")
    try:
        return pysam.VariantFile(str(path))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable VCF/BCF ({err})") from None


def _merged_header(first: pysam.VariantHeader) -> pysam.VariantHeader:
    """``first`` without its shard line."""
    header = pysam.VariantHeader()
    for record in first.records:
        if record.key != SHARD_HEADER_KEY:
            header.add_record(record)
    for sample in first.samples:
        header.add_sample(sample)
    return header


def merge_vcfs(inputs: list[str | os.PathLike], out: str | os.PathLike) -> int:
    """Merge position-sorted shard VCFs of one scoring run into ``out`` (bgzipped + index); returns the records.

    The shards must have the same INFO fields and contigs (``MismatchError`` otherwise); the merged header is
    the first shard's without its ``##genoformer_shard`` line. A shard out of position order raises
    ``InputError`` naming it and the record.
    """
    if not inputs:
        raise InputError(f"{out}: no VCF to merge")
    with contextlib.ExitStack() as stack:
        vcfs = [stack.enter_context(_open(path)) for path in inputs]
        signature = (list(vcfs[0].header.info), list(vcfs[0].header.contigs))
        for path, vcf in zip(inputs, vcfs):
            if (list(vcf.header.info), list(vcf.header.contigs)) != signature:
                raise MismatchError(f"{path}: INFO fields or contigs differ from those of {inputs[0]}; "
                                    "only shards of one scoring run can be merged")
        header = _merged_header(vcfs[0].header)
        contig_order = {name: rank for rank, name in enumerate(header.contigs)}

        def sorted_records(path, vcf):
            last = (-1, 0)
            for number, record in enumerate(vcf, start=1):
                key = (contig_order[record.contig], record.pos)
                if key < last:
                    raise InputError(f"{path}: record {number} ({record.contig}:{record.pos}) is out of position "
                                     "order")
                last = key
                yield key, number, record

        merged = heapq.merge(*(sorted_records(path, vcf) for path, vcf in zip(inputs, vcfs)),
                             key=lambda item: item[0])
        index = index_path(out, [contig.length or 0 for contig in header.contigs.values()])
        count = 0
        with atomic_path(index) as tmp_index, atomic_path(out, suffix=".vcf.gz") as tmp:
            with pysam.VariantFile(str(tmp), "wz", header=header) as sink:
                for _, _, record in merged:
                    record.translate(header)
                    sink.write(record)
                    count += 1
            pysam.tabix_index(str(tmp), preset="vcf", force=True, index=str(tmp_index),
                              csi=index.suffix == ".csi")
    return count


def merge_tables(inputs: list[str | os.PathLike], out: str | os.PathLike, order_by: str = "record") -> int:
    """Concatenate tab-separated tables with one header into ``out``, rows sorted by the integer column
    ``order_by`` (stable, so rows of one input record keep their order); cells are copied as text.
    Returns the number of rows."""
    tables = []
    for path in inputs:
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: table does not exist")
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if tables and list(table.columns) != list(tables[0].columns):
            raise MismatchError(f"{path}: line 1: columns differ from those of {inputs[0]}")
        if order_by not in table.columns:
            raise InputError(f"{path}: line 1: no column {order_by!r} to order the rows by")
        tables.append(table)
    merged = pd.concat(tables, ignore_index=True)
    merged = merged.iloc[pd.to_numeric(merged[order_by]).argsort(kind="stable")]
    with atomic_path(out) as tmp:
        merged.to_csv(tmp, sep="\t", index=False)
    return len(merged)
