"""``genoformer tokenize``: a reference FASTA (or a sample's BAM consensus) -> a sharded k-mer token dataset.

Writes ``--out DIR`` whole or not at all (see ``genoformer.tokenize.dataset`` for the layout, windows and
splits). With ``--bam`` the bases are the sample's consensus on reference coordinates
(``genoformer.io.bam.AlignmentFile.consensus``: majority base at depth >= ``--min-depth``, N elsewhere); the
soft-mask track, if asked, still comes from the reference. With ``--regions`` only the BED regions are tokenized,
overlapping or touching regions merged first, one sequence per merged region (named ``contig:start-end``, 1-based
inclusive); a BAM without a read that counts there (mapped, ``--min-mapq``, none of the skipped flags) is an error
before any work, and so is one that has fewer reads on a contig tokenized whole than its index lists (cut at a BGZF
block boundary after indexing), once that contig is read. ``--contigs`` keeps only the named contigs (and the
regions on them). Sequences are in reference order whatever the order given.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from genoformer.commands import check_range
from genoformer.errors import ConfigError, InputError
from genoformer.tokenize.limits import MAX_WINDOW

if TYPE_CHECKING:
    from genoformer.io.fasta import Reference
    from genoformer.tokenize.dataset import Stretch

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``tokenize`` parser."""
    parser = subparsers.add_parser(
        "tokenize",
        help="turn a genome (FASTA, or a sample's BAM consensus) into a k-mer token dataset",
        description="Tokenize a reference genome, or a sample's consensus from its BAM/CRAM, into k-mer token "
        "shards (memory-mapped .npy) plus manifest.json with windows and train/val/test splits.",
    )
    parser.add_argument("--fasta", required=True, metavar="REF.fa[.gz]",
                        help="reference FASTA, plain or bgzip-compressed (indexed on first use)")
    parser.add_argument("--bam", metavar="SAMPLE.bam",
                        help="tokenize this sample's consensus (indexed BAM/CRAM aligned to --fasta) instead of "
                        "the reference")
    parser.add_argument("--regions", metavar="R.bed",
                        help="tokenize only these BED regions (merged where they overlap or touch)")
    parser.add_argument("--contigs", metavar="A,B",
                        help="comma-separated contig names to tokenize (default: every contig)")
    parser.add_argument("--k", type=int, default=6, help="k-mer length, 1 to 8 (default: %(default)s)")
    parser.add_argument("--stride", type=int, default=1,
                        help="bases between consecutive k-mers: 1 overlapping, k non-overlapping "
                        "(default: %(default)s)")
    parser.add_argument("--window", type=int, default=65536,
                        help=f"window length in tokens, 1 to {MAX_WINDOW} (default: %(default)s)")
    parser.add_argument("--window-stride", type=int,
                        help="tokens between window starts (default: the window length, windows side by side)")
    parser.add_argument("--edge", choices=("pad", "drop"), default="pad",
                        help="last partial window of a sequence: pad with PAD tokens (masked) or drop it "
                        "(default: %(default)s)")
    parser.add_argument("--max-n-fraction", type=float, default=0.1,
                        help="leave out windows with a larger fraction of N (UNK) tokens (default: %(default)s)")
    parser.add_argument("--split-by", choices=("auto", "contig", "blocks"), default="auto",
                        help="train/val/test by whole contig, or by interval blocks with a gap of at least a "
                        "window between them; auto: contig when >= 3 contigs have windows (default: %(default)s)")
    parser.add_argument("--block", type=int, default=8,
                        help="windows per block for --split-by blocks (default: %(default)s)")
    parser.add_argument("--split-fractions", default="0.8,0.1,0.1", metavar="TRAIN,VAL,TEST",
                        help="share of windows (contig) or blocks (blocks) per split (default: %(default)s)")
    parser.add_argument("--softmask", action="store_true",
                        help="also write the soft-mask track: per token, does its k-mer touch a lowercase base")
    parser.add_argument("--min-depth", type=int, default=3,
                        help="with --bam: reads needed to call a consensus base, else N (default: %(default)s)")
    parser.add_argument("--min-mapq", type=int, default=20,
                        help="with --bam: minimum mapping quality of reads used (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output dataset folder (written atomically; replaced if it exists)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Tokenize as the arguments say."""
    check_range("--min-depth", args.min_depth, 0)
    check_range("--min-mapq", args.min_mapq, 0, 255)  # MAPQ is 0..255: a higher minimum keeps no read
    # numpy and pyfaidx are imported only when this command runs
    from genoformer.io.fasta import Reference
    from genoformer.tokenize.dataset import write_token_dataset

    options = tokenize_options(args)
    with Reference(args.fasta) as reference, contextlib.ExitStack() as stack:
        stretches = select_stretches(reference, contig_list(args.contigs), args.regions)
        if args.bam:
            read_bases, source = _consensus_source(args, reference, stretches, stack)
        else:
            read_bases = reference.codes
            source = {"path": str(reference.path.resolve()), "sha256": reference.sha256(), "kind": "fasta"}
        if args.regions:
            source["regions"] = {"path": str(Path(args.regions).resolve()), "sha256": _sha256(args.regions)}
        # a consensus is split as its reference is: a model pretrained on the reference is scored where it did not train
        write_token_dataset(args.out, stretches, read_bases, options, source,
                            split_bases=reference.codes if args.bam else None)


def tokenize_options(args: argparse.Namespace):
    """The :class:`~genoformer.tokenize.dataset.TokenizeOptions` the parsed arguments give (checked)."""
    from genoformer.tokenize.dataset import TokenizeOptions

    return TokenizeOptions(k=args.k, stride=args.stride, window=args.window, window_stride=args.window_stride,
                           edge=args.edge, max_n_fraction=args.max_n_fraction, split_by=args.split_by,
                           block=args.block, fractions=_fractions(args.split_fractions), softmask=args.softmask)


def _consensus_source(args: argparse.Namespace, reference: Reference, stretches: list[Stretch],
                      stack: contextlib.ExitStack):
    """The base reader for a sample consensus and the manifest ``source``; checks the BAM before any work: a
    BAM without a read that counts on ``stretches`` is an error (its consensus would be all N). The BAM stays open
    in ``stack``, so that over a whole contig, read in chunks, its reads are compared with its index's count
    (:meth:`~genoformer.io.bam.AlignmentFile.consensus`)."""
    from genoformer.io.bam import AlignmentFile, ReadFilter
    from genoformer.io.fasta import encode_bases

    read_filter = ReadFilter(min_mapq=args.min_mapq)
    # index, truncation, contigs against the reference
    alignments = stack.enter_context(AlignmentFile(args.bam, reference))
    check_reads_count(alignments, args.min_mapq, stretches)
    whole = {stretch.contig for stretch in stretches
             if stretch.start == 0 and stretch.end == reference.contigs[stretch.contig]}

    def read_bases(contig: str, start: int, end: int):
        length = reference.contigs[contig]
        # the last chunk of a whole contig (no further k-mer starts within a stride of its end) is read to the end,
        # for the read count compared with the index's
        stop = length if contig in whole and end > length - args.stride else end
        sample = alignments.consensus(contig, start, stop, min_depth=args.min_depth, read_filter=read_filter)
        return encode_bases(sample[:end - start]), reference.codes(contig, start, end)[1]

    source = {"path": str(Path(args.bam).resolve()), "sha256": _sha256(args.bam), "kind": "bam-consensus",
              "min_depth": args.min_depth, "min_mapq": args.min_mapq,
              "reference": {"path": str(reference.path.resolve()), "sha256": reference.sha256()}}
    return read_bases, source


def check_reads_count(alignments, min_mapq: int, stretches: list[Stretch]) -> None:
    """InputError when no read of the indexed ``alignments`` (:class:`~genoformer.io.bam.AlignmentFile`) counts on
    ``stretches`` (mapped with MAPQ >= ``min_mapq``, none of the skipped flags): its consensus would be all N.
    Stops at the first read that counts."""
    from genoformer.io.bam import ReadFilter

    regions = [(stretch.contig, stretch.start, stretch.end) for stretch in stretches]
    if alignments.any_read(ReadFilter(min_mapq=min_mapq), regions):
        return
    names = ", ".join(stretch.name for stretch in stretches[:3]) + (", ..." if len(stretches) > 3 else "")
    where = names if len(stretches) == 1 else f"the {len(stretches)} sequences tokenized ({names})"
    raise InputError(f"{alignments.path}: no read on {where} is mapped with MAPQ >= {min_mapq} and not secondary, "
                     "supplementary, duplicate or QC-failed, so the consensus would be all N: is it this sample's "
                     "BAM? else lower --min-mapq, or choose other --contigs or --regions")


def select_stretches(reference: Reference, contigs: list[str] | None, regions: str | None) -> list[Stretch]:
    """The sequences to tokenize, in reference order: whole contigs, or merged BED regions on them."""
    from genoformer.tokenize.dataset import Stretch

    for name in contigs or []:
        reference.check_contig(name, "--contigs")
    names = [name for name in reference.contigs if contigs is None or name in contigs]
    if regions is None:
        return [Stretch(name, name, 0, reference.contigs[name]) for name in names]

    from genoformer.io.bed import read_bed

    table = read_bed(regions, reference, label_column=None)
    order = {name: rank for rank, name in enumerate(reference.contigs)}
    kept = sorted((order[row.chrom], row.start, row.end, row.chrom) for row in table.itertuples()
                  if row.chrom in names)
    if not kept:
        raise ConfigError(f"{regions}: no region is on the contigs chosen with --contigs ({', '.join(names)})")
    merged: list[list] = []
    for rank, start, end, chrom in kept:
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([chrom, start, end])
    if len(merged) < len(kept):
        log.info("%s: %d regions merged into %d (overlapping or touching)", regions, len(kept), len(merged))
    return [Stretch(f"{chrom}:{start + 1}-{end}", chrom, start, end) for chrom, start, end in merged]


def contig_list(text: str | None) -> list[str] | None:
    """The contig names of ``--contigs`` (None: every contig); ConfigError for an empty or repeated name."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"--contigs {text!r}: empty contig name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--contigs {text!r}: {', '.join(repeated)} listed more than once")
    return names


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--split-fractions {text!r}: expected three numbers train,val,test") from None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
