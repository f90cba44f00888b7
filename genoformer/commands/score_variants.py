"""``genoformer score-variants``: zero-shot variant-effect scores from a pretrained checkpoint, as VCF + TSV."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from genoformer import __version__
from genoformer.atomic import check_not_an_input, check_output_file
from genoformer.commands import check_range
from genoformer.errors import ConfigError
from genoformer.io.vcf_index import add_index_argument, index_path
from genoformer.tasks.defaults import DEFAULT_MASK_SPACING, DEFAULT_WINDOW

log = logging.getLogger(__name__)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def table_path(out: str) -> str:
    """The default table path: OUT.vcf.gz -> OUT.tsv."""
    return re.sub(r"\.vcf\.gz$", "", out) + ".tsv"


def add_window_options(parser) -> None:
    """Options for the windows around variants (shared with classify-variants)."""
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, metavar="BP",
                        help=f"window length in bp around each variant (default {DEFAULT_WINDOW})")
    parser.add_argument("--window-step", type=int, metavar="BP",
                        help="grid of window starts in bp: a variant is at most half of it from its window's "
                        "centre, and variants on one grid window share forward passes (default: window/8; "
                        "1 centres each variant exactly)")
    parser.add_argument("--mask-spacing", type=int, default=DEFAULT_MASK_SPACING, metavar="BP",
                        help="variants at least this far apart are masked together in one LLR pass "
                        f"(default {DEFAULT_MASK_SPACING}; a value above the window masks each site alone)")


def check_window_options(args) -> None:
    """Range checks of :func:`add_window_options`' flags, before any file is read."""
    check_range("--window", args.window, 1)
    if args.window_step is not None:
        check_range("--window-step", args.window_step, 1, max(1, args.window // 2))
    check_range("--mask-spacing", args.mask_spacing, 0)


def check_model_options(args) -> None:
    """Range checks of :func:`add_model_options`' flags, before any file is read."""
    check_range("--batch-size", args.batch_size, 1)
    if args.stride is not None:
        check_range("--stride", args.stride, 1)


def add_model_options(parser) -> None:
    """Options for running the checkpoint (shared with the classify commands)."""
    parser.add_argument("--batch-size", type=int, default=4, metavar="N",
                        help="sequences per forward batch (default 4)")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda, cuda:1")
    parser.add_argument("--stride", type=int,
                        help="tokenization stride (default: the checkpoint's, from trainer_state.json)")


def register(subparsers) -> None:
    """Add the ``score-variants`` parser."""
    parser = subparsers.add_parser(
        "score-variants",
        help="score variants zero-shot (masked LLR, embedding distances) over long windows",
        description="Score every ALT allele of a VCF/BCF with a pretrained checkpoint: the masked log-likelihood "
        "ratio log P(ALT) - log P(REF) and the embedding distance of the REF and ALT windows (at the variant "
        "and pooled over the window), each the mean of the forward and reverse-complement strands. Variants in "
        "one window share its forward passes. Writes a bgzipped, indexed VCF with GF_* INFO fields and "
        "a TSV table.",
    )
    parser.add_argument("--reference", required=True, metavar="REF.fa", help="reference FASTA (plain or bgzipped)")
    parser.add_argument("--vcf", required=True, metavar="IN.vcf.gz",
                        help="variants to score (VCF/BCF, any compression)")
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="pretrained run directory or its checkpoints/step-N folder")
    parser.add_argument("--out", required=True, metavar="OUT.vcf.gz", help="scored VCF to write (bgzipped, + index)")
    add_index_argument(parser)
    parser.add_argument("--table", metavar="OUT.tsv", help="score table to write (default: OUT with .tsv for .vcf.gz)")
    parser.add_argument("--no-embeddings", action="store_true",
                        help="skip the embedding distances (they need one forward pass per ALT allele and "
                        "strand); compute the LLR only")
    parser.add_argument("--per-strand", action="store_true",
                        help="also write each score per strand in the VCF (GF_*_FWD, GF_*_REV; the table always "
                        "has them)")
    parser.add_argument("--skip-ref-mismatch", action="store_true",
                        help="skip and count records whose REF differs from the reference (default: error)")
    parser.add_argument("--shard", default="0/1", metavar="I/N",
                        help="score only windows I, I+N, I+2N, ... (0-based), e.g. one of N parallel jobs")
    add_window_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args) -> None:
    """Score the VCF and write the VCF and the table."""
    # torch, pysam and pandas are imported only when this command runs
    from genoformer.io.fasta import Reference
    from genoformer.io.vcf import read_variants
    from genoformer.tasks.encoder import load_encoder
    from genoformer.tasks.variant_output import scores_table, write_scored_vcf, write_table
    from genoformer.tasks.variants import score_variants

    if not args.out.endswith(".vcf.gz"):
        raise ConfigError(f"--out {args.out}: the scored VCF is bgzipped, so its name must end in .vcf.gz")
    shard = parse_shard(args.shard)
    table = args.table or table_path(args.out)
    check_not_an_input(args.out, [args.vcf, args.reference], "scored VCF")
    check_not_an_input(table, [args.vcf, args.reference, args.out], "score table")
    check_output_file(args.out)
    check_output_file(table)  # else the scored VCF would be written and the command fail at the table
    check_window_options(args)
    check_model_options(args)
    with Reference(args.reference) as reference:
        index_path(args.out, reference.contigs, args.index)  # a .tbi too small for a contig fails before scoring
        variant_set = read_variants(args.vcf, reference,
                                    on_ref_mismatch="skip" if args.skip_ref_mismatch else "error")
        encoder, model_info = load_encoder(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                           stride=args.stride)
        scores = score_variants(variant_set.variants, reference, encoder, window=args.window, step=args.window_step,
                                mask_spacing=args.mask_spacing, embeddings=not args.no_embeddings, shard=shard)
        meta = {
            "source": f"genoformer score-variants {__version__}",
            "genoformer_checkpoint": model_info["checkpoint"],
            "genoformer_checkpoint_sha256": model_info["sha256"],
            "genoformer_window": str(args.window),
            "genoformer_window_step": str(max(1, args.window // 8) if args.window_step is None else args.window_step),
            "genoformer_tokens": f"k={model_info['k']},stride={model_info['stride']}",
            "genoformer_skipped": f"symbolic={variant_set.skipped_symbolic},ref_mismatch="
                                  f"{variant_set.skipped_ref_mismatch},no_alt={variant_set.skipped_no_alt}",
            # merge-vcf merges only shards whose genoformer_* lines agree: of one input VCF too
            "genoformer_vcf": f"{Path(args.vcf).resolve()},records={variant_set.records}",
            "genoformer_shard": f"{shard[0]}/{shard[1]}",  # merge-vcf checks that it gets each shard once
        }
        written = write_scored_vcf(args.out, variant_set, scores, reference, meta=meta, per_strand=args.per_strand,
                                   index_kind=args.index)
    write_table(table, scores_table(variant_set, scores))
    log.info("%s: %d scored variants (skipped: %d symbolic, %d REF mismatches, %d without a change)", args.out,
             written, variant_set.skipped_symbolic, variant_set.skipped_ref_mismatch, variant_set.skipped_no_alt)
