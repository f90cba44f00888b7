"""``genoformer classify-regions``: classify BED regions with the pretrained model (probe and fine-tuning)."""

from __future__ import annotations

import logging

from genoformer.atomic import atomic_dir, check_replaceable, write_json, write_text
from genoformer.commands import add_repeat_copies_option, check_range, check_test_fraction
from genoformer.commands.score_variants import add_model_options, check_model_options
from genoformer.errors import ConfigError
from genoformer.tasks.defaults import CLASSIFIER_OUTPUT_MARKER, DEFAULT_WINDOW, MAX_BASELINE_K

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``classify-regions`` parser."""
    parser = subparsers.add_parser(
        "classify-regions",
        help="train and evaluate region classifiers (linear probe, fine-tuning) next to a k-mer baseline",
        description="Read labelled regions (a BED label column, or one BED per class), take a window around each, "
        "split by contig or interval blocks (a held-out region with a near-identical copy in training is left "
        "out), and train a linear probe on frozen embeddings, a fully fine-tuned "
        "classifier and a k-mer spectrum logistic regression on the same split. Writes DIR/metrics.json (AUROC, "
        "AUPRC, accuracy with bootstrap CIs on the held-out regions), predictions.tsv, probe.json and, when it "
        "fine-tunes, model/; "
        "with --predict, DIR/predict.bed and predict.tsv for new regions.",
    )
    parser.add_argument("--reference", required=True, metavar="REF.fa", help="reference FASTA (plain or bgzipped)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--bed", metavar="LABELS.bed",
                        help="labelled regions, the class in the label column; two classes or more (more: AUROC and "
                        "AUPRC are one-vs-rest means). A region is chromStart..chromEnd: the strand and BED12 "
                        "blocks are not read")
    labels.add_argument("--class-bed", action="append", metavar="CLASS=PATH",
                        help="one BED per class (repeat for each class), e.g. --class-bed coding=genes.bed")
    parser.add_argument("--label-column", default="7",
                        help="1-based BED column holding the class, or 'name' for column 4 (default 7)")
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="pretrained run directory or its checkpoints/step-N folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    parser.add_argument("--predict", metavar="NEW.bed",
                        help="also score these regions with every trained classifier: DIR/predict.bed and "
                        "DIR/predict.tsv")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, metavar="BP",
                        help=f"window length in bp centred on each region (default {DEFAULT_WINDOW})")
    parser.add_argument("--split", choices=("auto", "blocks", "contig"), default="auto",
                        help="hold out whole contigs or whole interval blocks (auto: contig when the regions lie "
                        "on >= 3 contigs, else blocks)")
    parser.add_argument("--block", type=int, metavar="BP",
                        help="interval block length for --split blocks, longer than --window (default: 100000, or a "
                        "tenth of a genome under 1 Mbp, and at least four windows)")
    parser.add_argument("--test-fraction", type=float, default=0.3,
                        help="share of regions held out for evaluation (default 0.3)")
    add_repeat_copies_option(parser)
    parser.add_argument("--kmer", type=int, default=4, metavar="K", help="k of the k-mer spectrum baseline (default 4)")
    parser.add_argument("--finetune-epochs", type=int, default=3, metavar="N",
                        help="epochs of full fine-tuning (default 3; 0 skips fine-tuning)")
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (AdamW, default 1e-4)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the confidence intervals (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, fine-tuning and bootstrap (default 0)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _check_flags(args) -> None:
    """Range checks of the numeric flags and a replaceable ``--out``, before any file is read."""
    check_range("--kmer", args.kmer, 1, MAX_BASELINE_K)
    check_range("--finetune-epochs", args.finetune_epochs, 0)
    check_range("--bootstrap", args.bootstrap, 1)
    check_test_fraction(args.test_fraction)
    check_range("--window", args.window, 1)
    from genoformer.tasks.splits import check_block  # numpy: only when the command runs

    check_block(args.block, args.window)
    check_model_options(args)
    if not args.lr > 0:
        raise ConfigError(f"--lr {args.lr}: the learning rate must be greater than 0")
    check_replaceable(args.out, CLASSIFIER_OUTPUT_MARKER)


def _class_beds(pairs: list[str]) -> dict[str, str]:
    beds = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--class-bed {pair!r}: expected CLASS=PATH")
        if name in beds:
            raise ConfigError(f"--class-bed: class {name!r} given twice")
        beds[name] = path
    return beds


def _bed_lines(table, classes: list[str]) -> str:
    """BED6 + the predicted class in column 7; score = 1000 x the probability of that class."""
    import numpy as np

    method = table["predicted_by"].iloc[0]
    if len(classes) == 2:
        positive = table[f"score_{method}"].to_numpy()
        confidence = np.where(table["predicted"] == classes[1], positive, 1 - positive)
    else:
        confidence = table[[f"score_{method}_{name}" for name in classes]].max(axis=1).to_numpy()
    names = table["name"] if "name" in table else [f"{c}:{s + 1}-{e}"
                                                   for c, s, e in zip(table.chrom, table.start, table.end)]
    strands = table["strand"] if "strand" in table else ["."] * len(table)
    return "".join(f"{c}\t{s}\t{e}\t{n}\t{int(round(1000 * p))}\t{st}\t{label}\n" for c, s, e, n, p, st, label in
                   zip(table.chrom, table.start, table.end, names, confidence, strands, table["predicted"]))


def run(args) -> None:
    """Train, evaluate, (optionally) predict; write the output folder."""
    _check_flags(args)
    # torch, scikit-learn, pysam and pandas are imported only when this command runs
    from genoformer.io.bed import read_bed
    from genoformer.io.fasta import Reference
    from genoformer.model import save_pretrained
    from genoformer.tasks.encoder import load_encoder
    from genoformer.tasks.regions import classify_regions, predict_regions, read_region_labels
    from genoformer.tasks.splits import default_block
    from genoformer.tasks.variant_output import write_table

    with Reference(args.reference) as reference:
        column = label_column(args.label_column)
        regions = read_region_labels(reference, bed=args.bed, label_column=column,
                                     class_beds=_class_beds(args.class_bed) if args.class_bed else None)
        # the regions to classify are read (and checked) now, not after training: a bad file fails in seconds
        new = read_bed(args.predict, reference, column, optional_label=True) if args.predict else None
        encoder, model_info = load_encoder(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                           stride=args.stride)
        encoder.check_window(args.window)
        block = args.block or default_block(args.window, sum(reference.contigs.values()))
        result = classify_regions(regions, reference, encoder, args.checkpoint, window=args.window, split=args.split,
                                  block=block, test_fraction=args.test_fraction, kmer=args.kmer,
                                  epochs=args.finetune_epochs, lr=args.lr, n_bootstrap=args.bootstrap,
                                  seed=args.seed, keep_copies=args.keep_repeat_copies)
        predicted = None
        if new is not None:
            predicted = predict_regions(new, reference, encoder, result, window=args.window, kmer=args.kmer,
                                        classes=regions.classes)
    metrics = {"labels": args.bed or dict(pair.partition("=")[::2] for pair in args.class_bed),
               "checkpoint": model_info, **result.metrics}
    with atomic_dir(args.out, marker=CLASSIFIER_OUTPUT_MARKER) as out:
        write_json(out / "metrics.json", metrics)
        write_table(out / "predictions.tsv", result.predictions)
        write_json(out / "probe.json", {"probe": result.probe.to_json(), "kmer": result.baseline.to_json(),
                                        "window_bp": args.window, "kmer_k": args.kmer})
        if result.finetuned is not None:
            save_pretrained(result.finetuned, out / "model")
            write_json(out / "model" / "vocab.json", encoder.vocab.to_json())
            write_json(out / "model" / "labels.json", {
                "classes": regions.classes, "window_bp": args.window, "stride": encoder.stride,
                "input": "the window centred on the region, read on both strands; the head reads the mean of the "
                         "two strands' pooled states (genoformer.tasks.regions.both_strand_logits)"})
        if predicted is not None:
            write_table(out / "predict.tsv", predicted)
            write_text(out / "predict.bed", _bed_lines(predicted, regions.classes))
    for name, values in metrics["test"].items():
        log.info("%s: AUROC %.3f [%.3f, %.3f], accuracy %.3f", name, values["auroc"]["value"],
                 *values["auroc"]["ci95"], values["accuracy"]["value"])


def label_column(text: str) -> int | str:
    """The ``--label-column`` value as :func:`~genoformer.tasks.regions.read_region_labels` takes it: a column
    number, or ``"name"``."""
    if text == "name":
        return text
    try:
        column = int(text)
    except ValueError:
        column = None
    if column is None or column < 4:  # columns 1-3 are the interval
        raise ConfigError(f"--label-column {text}: expected a column number (>= 4) or 'name'")
    return column
