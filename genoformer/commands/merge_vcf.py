"""``genoformer merge-vcf``: merge the shards of a `score-variants --shard i/n` run into one indexed VCF."""

from __future__ import annotations

import logging

from genoformer.atomic import check_not_an_input, check_output_file
from genoformer.errors import ConfigError
from genoformer.io.vcf_index import add_index_argument

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``merge-vcf`` parser."""
    parser = subparsers.add_parser(
        "merge-vcf",
        help="merge score-variants shards into one bgzipped, indexed VCF (gather)",
        description="Merge the VCFs written by `genoformer score-variants --shard i/n` jobs (position-sorted, one "
        "header but for the ##genoformer_shard line) by position into one bgzipped VCF with its index. "
        "Optionally merge their TSV tables too, rows back in input-record order.",
    )
    parser.add_argument("--vcfs", required=True, nargs="+", metavar="SHARD.vcf.gz",
                        help="shard VCFs to merge (any order)")
    parser.add_argument("--out", required=True, metavar="OUT.vcf.gz", help="merged VCF to write (+ index)")
    add_index_argument(parser)
    parser.add_argument("--tables", nargs="+", default=[], metavar="SHARD.tsv",
                        help="shard tables (score-variants --table) to merge into --table-out")
    parser.add_argument("--table-out", metavar="OUT.tsv", help="merged table to write (needs --tables)")
    parser.set_defaults(func=run)


def run(args) -> None:
    """Merge ``args.vcfs`` into ``args.out`` (and ``args.tables`` into ``args.table_out``)."""
    # pysam and pandas only when this command runs
    from genoformer.vcf_shards import merge_vcfs, read_tables, write_merged_table

    if not args.out.endswith(".vcf.gz"):
        raise ConfigError(f"--out {args.out}: the merged VCF is bgzipped, so its name must end in .vcf.gz")
    if bool(args.tables) != bool(args.table_out):
        raise ConfigError("--tables and --table-out go together")
    if args.tables and len(args.tables) != len(args.vcfs):
        raise ConfigError(f"--tables: {len(args.tables)} tables for {len(args.vcfs)} VCFs; give each shard's table")
    if args.table_out:
        check_not_an_input(args.table_out, [args.out, *args.vcfs, *args.tables], "merged table")
    check_output_file(args.out)
    check_output_file(args.table_out)
    # the tables are read and checked before the VCF is written: a bad table leaves no merged VCF behind
    tables = read_tables(args.tables) if args.tables else None
    records = merge_vcfs(args.vcfs, args.out, args.index, table_rows=None if tables is None else len(tables))
    log.info("%s: %d records from %d shards", args.out, records, len(args.vcfs))
    if tables is not None:
        rows = write_merged_table(tables, args.table_out)
        log.info("%s: %d rows from %d tables", args.table_out, rows, len(args.tables))
