"""``genoformer coding-variants``: every SNV of a sample of annotated genes, labelled by protein consequence."""

from __future__ import annotations

import logging
from collections import Counter

from genoformer import __version__
from genoformer.errors import ConfigError
from genoformer.io.vcf_index import add_index_argument, index_path

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``coding-variants`` parser."""
    parser = subparsers.add_parser(
        "coding-variants",
        help="enumerate the SNVs of annotated genes with their consequence (synonymous, missense, stop-gained ...)",
        description="Take a seeded sample of the coding sequences of a GFF3 annotation that translate cleanly "
        "(one marked partial without the start or stop codon it lacks: Prodigal's partial=, NCBI's start_range/"
        "end_range, a 5' phase), "
        "enumerate every SNV in them, class each by translating the codon (Biopython), and write a bgzipped, "
        "indexed VCF with INFO CONSEQUENCE, GENE, CODON, AA, CDS_POS, STRAND. Positions inside two "
        "overlapping genes are left out.",
    )
    parser.add_argument("--reference", required=True, metavar="REF.fa", help="reference FASTA (plain or bgzipped)")
    parser.add_argument("--gff", required=True, metavar="ANNOTATION.gff3",
                        help="GFF3 with CDS features (plain, gzip or bgzip)")
    parser.add_argument("--genes", type=int, metavar="N", help="number of genes to sample (default: all)")
    parser.add_argument("--per-class", type=int, metavar="N",
                        help="keep at most N SNVs of each consequence, a seeded sample (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the gene and SNV samples (default 0)")
    parser.add_argument("--table", type=int, default=11,
                        help="NCBI genetic code (default 11: bacteria, archaea, plastids; 1: standard)")
    parser.add_argument("--out", required=True, metavar="OUT.vcf.gz", help="VCF to write (bgzipped, + index)")
    add_index_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> None:
    """Enumerate and write the coding SNVs."""
    # Biopython, numpy and pysam are imported only when this command runs
    from Bio.Data.CodonTable import unambiguous_dna_by_id
    from genoformer.io.fasta import Reference
    from genoformer.tasks.coding import at_most_per_consequence, coding_snvs, write_coding_vcf

    if not args.out.endswith(".vcf.gz"):
        raise ConfigError(f"--out {args.out}: the VCF is bgzipped, so its name must end in .vcf.gz")
    if args.genes is not None and args.genes < 1:
        raise ConfigError(f"--genes {args.genes}: at least one gene")
    if args.per_class is not None and args.per_class < 1:
        raise ConfigError(f"--per-class {args.per_class}: at least one SNV per consequence")
    if args.table not in unambiguous_dna_by_id:
        raise ConfigError(f"--table {args.table}: not an NCBI genetic code; known codes: "
                          f"{', '.join(map(str, sorted(unambiguous_dna_by_id)))}")
    with Reference(args.reference) as reference:
        index_path(args.out, reference.contigs, args.index)  # a .tbi too small for a contig fails first
        snvs = coding_snvs(reference, args.gff, n_genes=args.genes, table=args.table, seed=args.seed)
        if args.per_class is not None:
            snvs = at_most_per_consequence(snvs, args.per_class, args.seed)
        write_coding_vcf(args.out, snvs, reference, source=f"genoformer coding-variants {__version__} "
                         f"(genes={args.genes or 'all'}, per_class={args.per_class or 'all'}, seed={args.seed}, "
                         f"table={args.table}, gff={args.gff})", index_kind=args.index)
    counts = Counter(snv.consequence for snv in snvs)
    log.info("%s: %d SNVs in %d genes: %s", args.out, len(snvs), len({(s.gene, s.strand) for s in snvs}),
             ", ".join(f"{name} {count}" for name, count in counts.most_common()))
