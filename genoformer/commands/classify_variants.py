"""``genoformer classify-variants``: a classifier of labelled variants on the model's features, with baselines."""

from __future__ import annotations

import logging
from pathlib import Path

from genoformer import __version__
from genoformer.atomic import atomic_dir, check_replaceable, write_json
from genoformer.commands import add_repeat_copies_option, check_range, check_test_fraction
from genoformer.commands.score_variants import (
    add_model_options,
    add_window_options,
    check_model_options,
    check_window_options,
)
from genoformer.errors import ConfigError
from genoformer.io.vcf_index import add_index_argument, index_path
from genoformer.tasks.defaults import CLASSIFIER_OUTPUT_MARKER, MAX_BASELINE_K

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``classify-variants`` parser."""
    parser = subparsers.add_parser(
        "classify-variants",
        help="train and evaluate a variant classifier on the model's features, next to a k-mer baseline",
        description="Label the variants of a VCF from one INFO field, compute the model's features (local "
        "hidden-state change, LLR and embedding distances on both strands), split by interval blocks or contigs "
        "(a held-out variant whose context has a near-identical copy in training is left out), fit a logistic "
        "regression, and report AUROC/AUPRC/accuracy with bootstrap CIs on the held-out variants "
        "next to a k-mer context baseline and the zero-shot -LLR. Writes DIR/metrics.json, predictions.tsv, "
        "classifier.json, and with --predict a scored VCF with the class probability GF_PROB.",
    )
    parser.add_argument("--reference", required=True, metavar="REF.fa", help="reference FASTA (plain or bgzipped)")
    parser.add_argument("--vcf", required=True, metavar="LABELLED.vcf.gz", help="labelled variants (VCF/BCF)")
    parser.add_argument("--label-field", required=True, metavar="KEY",
                        help="INFO field holding the label (0/1, a Flag, or values named by --positive/--negative); "
                        "each ALT takes its own entry of a field declared Number=A or Number=R")
    parser.add_argument("--positive", nargs="+", metavar="VALUE",
                        help="label values of the positive class (e.g. stop_gained); without --negative every "
                        "other value is negative")
    parser.add_argument("--negative", nargs="+", metavar="VALUE",
                        help="label values of the negative class (e.g. synonymous); variants with values in "
                        "neither list are left out")
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="pretrained run directory or its checkpoints/step-N folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    parser.add_argument("--predict", metavar="NEW.vcf.gz",
                        help="also classify these variants: DIR/predicted.vcf.gz (+ index, see --index) with INFO "
                        "GF_PROB")
    add_index_argument(parser)
    parser.add_argument("--split", choices=("auto", "blocks", "contig"), default="auto",
                        help="hold out whole contigs or whole interval blocks (auto: contig when the variants "
                        "lie on >= 3 contigs, else blocks)")
    parser.add_argument("--block", type=int, metavar="BP",
                        help="interval block length for --split blocks, longer than --window (default: 100000, or a "
                        "tenth of a genome under 1 Mbp, and at least four windows)")
    parser.add_argument("--test-fraction", type=float, default=0.3,
                        help="share of variants held out for evaluation (default 0.3)")
    add_repeat_copies_option(parser)
    parser.add_argument("--context", type=int, default=32, metavar="BP",
                        help="bp on each side of a variant for the k-mer baseline (default 32)")
    parser.add_argument("--context-k", type=int, default=3, metavar="K",
                        help="k-mer length of the baseline (default 3)")
    parser.add_argument("--max-per-class", type=int, metavar="N",
                        help="use at most N variants of each class (seeded sample), to bound the cost")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the confidence intervals (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, subsample and bootstrap (default 0)")
    parser.add_argument("--skip-ref-mismatch", action="store_true",
                        help="skip and count records whose REF differs from the reference (default: error)")
    add_window_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args) -> None:
    """Train, evaluate and (optionally) predict; write the output folder."""
    check_range("--context", args.context, 0)
    check_range("--context-k", args.context_k, 1, MAX_BASELINE_K)
    if args.context_k > 2 * args.context + 1:
        raise ConfigError(f"--context-k {args.context_k}: longer than the {2 * args.context + 1} bp an SNV's context "
                          f"of --context {args.context} bp on each side holds")
    check_range("--bootstrap", args.bootstrap, 1)
    check_test_fraction(args.test_fraction)
    if args.max_per_class is not None:
        check_range("--max-per-class", args.max_per_class, 1)
    check_window_options(args)
    check_model_options(args)
    from genoformer.tasks.splits import check_block  # numpy: only when the command runs

    check_block(args.block, args.window)
    check_replaceable(args.out, CLASSIFIER_OUTPUT_MARKER)
    # torch, scikit-learn, pysam and pandas are imported only when this command runs
    from genoformer.io.fasta import Reference
    from genoformer.io.vcf import read_variants
    from genoformer.tasks.encoder import load_encoder
    from genoformer.tasks.splits import default_block
    from genoformer.tasks.variant_classes import classify_variants
    from genoformer.tasks.variant_labels import variant_labels
    from genoformer.tasks.variant_output import write_table

    if args.max_per_class is not None and args.max_per_class < 2:
        raise ConfigError(f"--max-per-class {args.max_per_class}: each class needs at least 2 variants")
    scoring = {"window": args.window, "step": args.window_step, "mask_spacing": args.mask_spacing}
    on_mismatch = "skip" if args.skip_ref_mismatch else "error"
    with Reference(args.reference) as reference:
        if args.predict:  # a .tbi too small for a contig fails before the work
            index_path(Path(args.out) / "predicted.vcf.gz", reference.contigs, args.index)
        variant_set = read_variants(args.vcf, reference, on_ref_mismatch=on_mismatch,
                                    strict_info=(args.label_field,))
        labels = variant_labels(variant_set, args.label_field, args.positive, args.negative)
        labels = labels.subsample(args.max_per_class, args.seed)
        # read (and check) the variants to classify now, not after training: a bad file fails in seconds
        new = read_variants(args.predict, reference, on_ref_mismatch=on_mismatch) if args.predict else None
        encoder, model_info = load_encoder(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                           stride=args.stride)
        block = args.block or default_block(args.window, sum(reference.contigs.values()))
        result = classify_variants(variant_set, labels, reference, encoder, scoring=scoring, split=args.split,
                                   block=block, test_fraction=args.test_fraction, flank=args.context,
                                   kmer=args.context_k, n_bootstrap=args.bootstrap, seed=args.seed,
                                   keep_copies=args.keep_repeat_copies)
        metrics = {"vcf": str(args.vcf), "label_field": args.label_field, "checkpoint": model_info,
                   "window": args.window, **result.metrics}
        with atomic_dir(args.out, marker=CLASSIFIER_OUTPUT_MARKER) as out:
            write_json(out / "metrics.json", metrics)
            write_table(out / "predictions.tsv", result.predictions)
            write_json(out / "classifier.json", {"model_probe": result.model.to_json(),
                                                 "kmer_baseline": result.baseline.to_json()})
            if new is not None:
                _predict(args, new, reference, encoder, model_info, result.model, scoring, out / "predicted.vcf.gz")
    for name, values in metrics["test"].items():
        log.info("%s: AUROC %.3f [%.3f, %.3f]", name, values["auroc"]["value"], *values["auroc"]["ci95"])


def _predict(args, new, reference, encoder, model_info, model, scoring, path: Path) -> None:
    """Classify the variants ``new`` (read from ``args.predict``) and write them with INFO GF_PROB to ``path``."""
    from genoformer.tasks.variant_classes import predict_variants
    from genoformer.tasks.variant_output import write_scored_vcf
    from genoformer.tasks.vcf_writer import InfoField

    scores, probability = predict_variants(new.variants, reference, encoder, model, scoring=scoring)
    field = InfoField("GF_PROB", "1", "Float", f"genoformer classify-variants: probability of class "
                      f"{model.classes[1]!r} (vs {model.classes[0]!r}) from the model's features")
    meta = {"source": f"genoformer classify-variants {__version__}",
            "genoformer_checkpoint_sha256": model_info["sha256"], "genoformer_window": str(args.window),
            "genoformer_classifier": f"trained on {args.vcf} field {args.label_field}"}
    count = write_scored_vcf(path, new, scores, reference, meta=meta, extra=[(field, probability)],
                             index_kind=args.index)
    log.info("%s: %d variants with GF_PROB", path, count)
