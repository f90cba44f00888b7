"""``genoformer report <kind>``: draw one figure (PNG) or table page (HTML) of the report from pipeline outputs.

Figures: ``loss`` (metrics.jsonl), ``bits-per-base`` (evaluate JSONs), ``roc-pr`` (classify-regions
predictions), ``variant-classes`` and ``variant-track`` (scored VCFs), ``benchmarks`` (Snakemake benchmark
TSVs). Tables: ``summary`` (evaluate JSONs and classifier metrics.json files), ``top-variants`` (a scored VCF).
The workflow calls one kind per output and ``snakemake --report`` gathers them.
"""

from __future__ import annotations

import logging

from genoformer.commands import check_range
from genoformer.errors import ConfigError

log = logging.getLogger(__name__)

TABLE_KINDS = ("summary", "top-variants")  # written as HTML; every other kind is a PNG figure
# INFO fields shown next to the score in top-variants when the VCF has them (coding-variants' annotation)
TOP_VARIANT_FIELDS = ("GENE", "CONSEQUENCE", "AA", "CODON", "GF_EMB_LOCAL")
VARIANT_CLASS_ORDER = ["synonymous", "missense", "stop_gained", "stop_lost", "stop_retained", "start_lost",
                       "start_retained"]


def register(subparsers) -> None:
    """Add the ``report`` parser and one sub-parser per figure kind."""
    parser = subparsers.add_parser(
        "report",
        help="draw a report figure (PNG) or table page (HTML) from pipeline outputs",
        description="Draw one figure (PNG) or table page (HTML) of the workflow report from pipeline outputs.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    loss = kinds.add_parser("loss", help="training loss and validation bits/base per step",
                            description="Training loss and validation bits/base per step, from metrics.jsonl.")
    loss.add_argument("--metrics", required=True, help="metrics.jsonl of a pretraining run")

    bits = kinds.add_parser("bits-per-base", help="held-out bits/base of the model next to the Markov baseline",
                            description="Test-split bits/base of the model next to the Markov baseline, one row "
                            "per `genoformer evaluate` JSON.")
    bits.add_argument("--eval", required=True, nargs="+", metavar="LABEL=EVAL.json",
                      help="evaluation JSONs, each with the label of its row")

    roc = kinds.add_parser("roc-pr", help="ROC and precision-recall curves, model vs k-mer baseline",
                           description="ROC and precision-recall curves of the model and of the k-mer baseline "
                           "on the held-out rows of a `genoformer classify-regions` predictions table.")
    roc.add_argument("--predictions", required=True, help="predictions.tsv written by classify-regions")
    roc.add_argument("--title", default="region classification", help="task name shown in the titles")

    classes = kinds.add_parser("variant-classes", help="score distributions by variant class",
                               description="Distributions of a variant score per class (e.g. synonymous, "
                               "missense, stop_gained), from a scored VCF whose INFO holds each variant's class.")
    classes.add_argument("--vcf", required=True, help="scored VCF written by score-variants (or merge-vcf)")
    classes.add_argument("--score", default="GF_LLR", help="INFO score to plot (default: %(default)s)")
    classes.add_argument("--class-field", default="CONSEQUENCE",
                         help="INFO field holding each variant's class (default: %(default)s)")

    track = kinds.add_parser("variant-track", help="variant scores along the genome",
                             description="A genome track of a variant score by position from a scored VCF: "
                             "every variant along the genome, then one panel per locus (variants within 5 kbp of "
                             "each other) of the four loci with the most notable scores (for GF_LLR the lowest), "
                             "their genes named where the VCF has INFO GENE.")
    track.add_argument("--vcf", required=True, help="scored VCF written by score-variants (or merge-vcf)")
    track.add_argument("--score", default="GF_LLR", help="INFO score to plot (default: %(default)s)")
    track.add_argument("--color-by", metavar="FIELD",
                       help="INFO field whose values colour the points (default: CONSEQUENCE when the VCF has it)")

    bench = kinds.add_parser("benchmarks", help="wall time and peak memory per rule",
                             description="Wall time per rule from Snakemake benchmark TSVs laid out as "
                             "<dir>/<rule>/<job>.tsv.")
    bench.add_argument("--benchmarks", required=True, nargs="+", metavar="TSV", help="benchmark files")

    summary = kinds.add_parser("summary", help="table page: held-out bits/base and supervised-task metrics",
                               description="One HTML page of tables: held-out bits/base of each evaluation next "
                               "to its Markov baseline, and held-out AUROC/AUPRC (95%% CIs) of each supervised "
                               "task's methods next to the baselines without the model.")
    summary.add_argument("--eval", nargs="+", default=[], metavar="LABEL=EVAL.json",
                         help="evaluation JSONs (`genoformer evaluate`), each with its row label")
    summary.add_argument("--task", nargs="+", default=[], metavar="NAME=METRICS.json",
                         help="metrics.json of classify-regions or classify-variants, each with its task name")

    top = kinds.add_parser("top-variants", help="table page: the variants with the lowest score",
                           description="One HTML page listing the variants of a scored VCF with the lowest "
                           "score (for GF_LLR: the alternate alleles the model finds least expected).")
    top.add_argument("--vcf", required=True, help="scored VCF written by score-variants (or merge-vcf)")
    top.add_argument("--score", default="GF_LLR", help="INFO score to rank by, lowest first (default: %(default)s)")
    top.add_argument("--n", type=int, default=25, help="how many variants to list (default: %(default)s)")

    for sub in (loss, bits, roc, classes, track, bench):
        sub.add_argument("--out", required=True, metavar="FIGURE.png", help="PNG file to write")
    for sub in (summary, top):
        sub.add_argument("--out", required=True, metavar="TABLE.html", help="HTML file to write")
    parser.set_defaults(func=run)


def _labelled(pairs: list[str], option: str, kind: str) -> dict[str, str]:
    """``LABEL=PATH`` pairs -> paths by label (each label once)."""
    labelled = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"report {kind}: {option} {pair!r} is not LABEL=PATH")
        if label in labelled:
            raise ConfigError(f"report {kind}: {option} label {label!r} is given twice")
        labelled[label] = path
    return labelled


def _evaluations(pairs: list[str], kind: str) -> dict[str, dict]:
    """``LABEL=EVAL.json`` pairs -> the figures of each evaluation, by label."""
    from genoformer.report import plots

    return {label: plots.eval_figures(plots.read_json(path), path)
            for label, path in _labelled(pairs, "--eval", kind).items()}


def run(args) -> None:
    """Draw the figure, or write the table page, of ``args.kind``."""
    if args.kind in TABLE_KINDS:
        if not args.out.lower().endswith(".html"):
            raise ConfigError(f"--out {args.out}: the table page is written as HTML, so its name must end in .html")
    elif not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out {args.out}: the figure is written as PNG, so its name must end in .png")
    if args.kind == "top-variants":
        check_range("--n", args.n, 1)
    from genoformer.report import plots, tables, track  # matplotlib, pandas, scikit-learn only when this command runs

    if args.kind == "loss":
        plots.loss_curves(args.metrics, args.out)
    elif args.kind == "bits-per-base":
        plots.bits_per_base(_evaluations(args.eval, args.kind), args.out)
    elif args.kind == "summary":
        tasks = {name: (plots.read_json(path), path)
                 for name, path in _labelled(args.task, "--task", args.kind).items()}
        tables.summary_page(_evaluations(args.eval, args.kind), tasks, args.out)
    elif args.kind == "top-variants":
        table = plots.read_scored_vcf(args.vcf, [args.score], optional=TOP_VARIANT_FIELDS)
        tables.top_variants_page(table, args.score, args.n, args.vcf, args.out)
    elif args.kind == "roc-pr":
        labels, scores, positive = plots.read_region_predictions(args.predictions)
        plots.roc_pr_curves(labels, scores, args.out, f"{args.title} (positive: {positive})")
    elif args.kind == "variant-classes":
        table = plots.read_scored_vcf(args.vcf, [args.score, args.class_field])
        plots.score_distributions(table, args.score, args.class_field, args.out, VARIANT_CLASS_ORDER)
    elif args.kind == "variant-track":
        fields = [args.score] + ([args.color_by] if args.color_by else [])
        table = plots.read_scored_vcf(args.vcf, fields, optional=("CONSEQUENCE", "GENE"))
        color_by = args.color_by or ("CONSEQUENCE" if "CONSEQUENCE" in table.columns else None)
        track.score_track(table, args.score, args.out, by=color_by)
    elif args.kind == "benchmarks":
        plots.benchmark_times(plots.read_benchmarks(args.benchmarks), args.out)
    log.info("wrote %s", args.out)
