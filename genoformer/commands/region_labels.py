"""``genoformer region-labels``: coding vs intergenic regions of an annotation, as a labelled BED."""

from __future__ import annotations

import logging

from genoformer.atomic import check_not_an_input

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``region-labels`` parser."""
    parser = subparsers.add_parser(
        "region-labels",
        help="write coding vs intergenic regions of an annotation as a labelled BED",
        description="Draw regions of LENGTH bp (on a grid) that lie wholly inside CDS ('coding', trans-spliced CDS "
        "included) or wholly between genes ('intergenic': outside every gene-level feature, i.e. gene, pseudogene, "
        "any transcript such as mRNA, tRNA, rRNA or ncRNA, and its exons, introns, UTRs and CDS), PER_CLASS of "
        "each (seeded), and write BED (six columns, then the class in column 7) for `genoformer classify-regions "
        "--bed`. Stretches inside a non-coding gene, an intron or a UTR are neither class and are not drawn; with "
        "an annotation of CDS only, intergenic is outside every CDS. Contigs without a feature line in the GFF3 are "
        "skipped (with a warning): unannotated sequence is not intergenic.",
    )
    parser.add_argument("--reference", required=True, metavar="REF.fa", help="reference FASTA (plain or bgzipped)")
    parser.add_argument("--gff", required=True, metavar="ANNOTATION.gff3",
                        help="GFF3 with CDS (and gene, tRNA, rRNA ...) features (plain, gzip or bgzip)")
    parser.add_argument("--length", type=int, default=200, metavar="BP", help="region length in bp (default 200)")
    parser.add_argument("--per-class", type=int, default=200, metavar="N", help="regions per class (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--out", required=True, metavar="OUT.bed", help="BED file to write")
    parser.set_defaults(func=run)


def run(args) -> None:
    """Write the labelled regions."""
    # numpy, pandas and pyfaidx are imported only when this command runs
    from genoformer.io.fasta import Reference
    from genoformer.region_labels import coding_intergenic_regions, write_bed

    check_not_an_input(args.out, [args.reference, args.gff], "BED file")
    with Reference(args.reference) as reference:
        regions = coding_intergenic_regions(reference, args.gff, length=args.length, per_class=args.per_class,
                                            seed=args.seed)
    write_bed(args.out, regions)
    log.info("%s: %d regions of %d bp per class (coding, intergenic)", args.out, args.per_class, args.length)
