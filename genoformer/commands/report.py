"""``genoformer report <kind>``: draw one figure of the report from pipeline outputs (PNG).

Kinds: ``loss`` (metrics.jsonl), ``bits-per-base`` (evaluate JSONs), ``roc-pr`` (classify-regions
predictions), ``variant-classes`` and ``variant-track`` (scored VCFs), ``benchmarks`` (Snakemake
benchmark TSVs). The workflow calls one kind per figure and ``snakemake --report`` gathers them.
"""

from __future__ import annotations

import logging

from genoformer.errors import ConfigError

log = logging.getLogger(__name__)

VARIANT_CLASS_ORDER = ["synonymous", "missense", "stop_gained", "stop_lost", "stop_retained", "start_lost",
                       "start_retained"]


def register(subparsers) -> None:
    """Add the ``report`` parser and one sub-parser per figure kind."""
    parser = subparsers.add_parser(
        "report",
        help="draw a report figure (PNG) from pipeline outputs",
        description="Draw one figure of the workflow report from pipeline outputs, as a PNG.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    loss = kinds.add_parser("loss", help="training loss and validation bits/base per step",
                            description="Training loss and validation bits/base per step, from metrics.jsonl.")
    loss.add_argument("--metrics", required=True, help="metrics.jsonl of a pretraining run")

    bits = kinds.add_parser("bits-per-base", help="held-out bits/base of the model next to the Markov baseline",
                            description="Held-out bits/base of the model next to the Markov baseline, one group "
                            "per `genoformer evaluate` JSON.")
    bits.add_argument("--eval", required=True, nargs="+", metavar="LABEL=EVAL.json",
                      help="evaluation JSONs, each with the label to show under its bars")

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
                             description="A genome track of a variant score by position, one panel per contig, "
                             "from a scored VCF.")
    track.add_argument("--vcf", required=True, help="scored VCF written by score-variants (or merge-vcf)")
    track.add_argument("--score", default="GF_LLR", help="INFO score to plot (default: %(default)s)")
    track.add_argument("--color-by", metavar="FIELD",
                       help="INFO field whose values colour the points (default: CONSEQUENCE when the VCF has it)")

    bench = kinds.add_parser("benchmarks", help="wall time and peak memory per rule",
                             description="Wall time per rule from Snakemake benchmark TSVs laid out as "
                             "<dir>/<rule>/<job>.tsv.")
    bench.add_argument("--benchmarks", required=True, nargs="+", metavar="TSV", help="benchmark files")

    for sub in (loss, bits, roc, classes, track, bench):
        sub.add_argument("--out", required=True, metavar="FIGURE.png", help="PNG file to write")
    parser.set_defaults(func=run)


def _evaluations(pairs: list[str]) -> dict[str, dict]:
    """``LABEL=EVAL.json`` pairs -> the figures of each evaluation, by label."""
    from genoformer.report import plots

    evaluations = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"report bits-per-base: --eval {pair!r} is not LABEL=PATH")
        evaluations[label] = plots.eval_figures(plots.read_json(path), path)
    return evaluations


def run(args) -> None:
    """Draw the figure of ``args.kind``."""
    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out {args.out}: the figure is written as PNG, so its name must end in .png")
    from genoformer.report import plots  # matplotlib, pandas, scikit-learn only when this command runs

    if args.kind == "loss":
        plots.loss_curves(args.metrics, args.out)
    elif args.kind == "bits-per-base":
        plots.bits_per_base(_evaluations(args.eval), args.out)
    elif args.kind == "roc-pr":
        labels, scores, positive = plots.read_region_predictions(args.predictions)
        plots.roc_pr_curves(labels, scores, args.out, f"{args.title} (positive: {positive})")
    elif args.kind == "variant-classes":
        table = plots.read_scored_vcf(args.vcf, [args.score, args.class_field])
        plots.score_distributions(table, args.score, args.class_field, args.out, VARIANT_CLASS_ORDER)
    elif args.kind == "variant-track":
        fields = [args.score] + ([args.color_by] if args.color_by else [])
        table = plots.read_scored_vcf(args.vcf, fields, optional=("CONSEQUENCE",))
        color_by = args.color_by or ("CONSEQUENCE" if "CONSEQUENCE" in table.columns else None)
        plots.score_track(table, args.score, args.out, by=color_by)
    elif args.kind == "benchmarks":
        plots.benchmark_times(plots.read_benchmarks(args.benchmarks), args.out)
    log.info("wrote %s", args.out)
