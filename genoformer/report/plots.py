"""The report's figures: each function reads pipeline outputs in their documented formats and writes one PNG.

Every plot is drawn with matplotlib's Agg backend (no display needed) and written atomically, so a killed
report job never leaves a half-written image. Inputs that cannot be plotted (no rows, missing columns) raise
:class:`~genoformer.errors.InputError` naming the file and what is missing.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve)

from genoformer.atomic import atomic_path  # noqa: E402
from genoformer.errors import InputError, MissingFileError  # noqa: E402
from genoformer.io.bed import class_order  # noqa: E402
from genoformer.report.tables import notable_direction  # noqa: E402

DPI = 120
THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")  # axis ticks as 1,733,000, as the labels write them

log = logging.getLogger(__name__)


def _save(fig, out: str | Path) -> None:
    """Write ``fig`` to ``out`` as PNG atomically and close it."""
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)


def _require(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a JSON-lines file; a malformed line is an error naming its line number."""
    rows = []
    with open(_require(path)) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {number}: not JSON ({err.msg})") from None
    return rows


def read_json(path: str | Path) -> dict:
    """One JSON object from ``path``; a malformed file is an error naming it."""
    try:
        return json.loads(_require(path).read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: not JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not JSON (not UTF-8 text)") from None


def read_table(path: str | Path, columns: list[str], text: tuple[str, ...] = ()) -> pd.DataFrame:
    """A tab-separated table (``#`` lines are comments) that must have ``columns``; those of ``text`` are kept as
    written (class labels: ``01`` and ``1`` are two, not the number 1)."""
    try:
        table = pd.read_csv(_require(path), sep="\t", dtype={name: str for name in text})
    except (ValueError, EOFError, OSError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        reason = " ".join(str(err).split())
        raise InputError(f"{path}: not a tab-separated table with a header line ({reason})") from None
    table.columns = [str(name).lstrip("#") for name in table.columns]
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; it has {', '.join(table.columns)}")
    return table


def read_scored_vcf(path: str | Path, fields: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Columns contig, pos, id, ref, alt and the INFO ``fields`` (missing values as None) of a scored VCF, plus
    those of the ``optional`` INFO fields that its header declares; ``.attrs["contig_lengths"]`` maps each
    header contig to its length (None where the header has none)."""
    from genoformer.io.htslib import close_quietly, read_quietly
    from genoformer.io.vcf import open_vcf

    vcf = open_vcf(_require(path))
    try:
        missing = [name for name in fields if name not in vcf.header.info]
        if missing:
            raise InputError(f"{path}: no INFO field {', '.join(missing)} in the header; it has "
                             f"{', '.join(vcf.header.info) or 'none'}")
        fields = fields + [name for name in optional if name in vcf.header.info and name not in fields]
        lengths = {name: contig.length for name, contig in vcf.header.contigs.items()}
        records = read_quietly(vcf, log, path, lambda reason, number: InputError(
            f"{path}: malformed VCF at record {number}: {reason}"))
        rows = [{"contig": record.contig, "pos": record.pos, "id": record.id, "ref": record.ref,
                 "alt": ",".join(record.alts or ()), **{name: record.info.get(name) for name in fields}}
                for record in records]
    finally:
        close_quietly(vcf, log, path)
    table = pd.DataFrame(rows, columns=["contig", "pos", "id", "ref", "alt", *fields])
    if table.empty:
        raise InputError(f"{path}: no variant records to plot")
    table.attrs["contig_lengths"] = lengths
    return table


def near_uniform_guess(bits) -> bool:
    """Whether validation ``bits`` per base reach to within 0.1 of 2 (a uniform guess over A, C, G, T) or cross
    it: where the learning curve's zoomed axis shows the 2-bit line without losing its detail."""
    return min(bits) - 0.1 < 2.0 < max(bits) + 0.1


def loss_curves(metrics_path: str | Path, out: str | Path) -> None:
    """Training loss per logged step, and validation bits/base on evaluation steps, from ``metrics.jsonl``."""
    rows = read_jsonl(metrics_path)
    for number, row in enumerate(rows, start=1):
        for key in ("step", "loss", "val_bits_per_base"):
            value = row.get(key) if isinstance(row, dict) else None
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InputError(f"{metrics_path}: record {number}: {key} {value!r} is not a number")
    train = [(row["step"], row["loss"]) for row in rows if "loss" in row and "step" in row]
    val = [(row["step"], row["val_bits_per_base"]) for row in rows if row.get("val_bits_per_base") is not None]
    if not train:
        raise InputError(f"{metrics_path}: no line has both 'step' and 'loss'")
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    steps, losses = zip(*train)
    ax_train.plot(steps, losses, lw=0.8, color="tab:blue", alpha=0.4, label="each logged step")
    span = max(1, len(losses) // 10)
    if span > 1:  # one batch's loss is noisy: the running mean shows the trend
        ax_train.plot(steps, pd.Series(losses).rolling(span, min_periods=1).mean(), lw=1.8, color="tab:blue",
                      label=f"running mean of {span} logged steps")
    ax_train.legend(fontsize=8)
    ax_train.set(xlabel="optimizer step", ylabel="loss: nats per masked token (lower is better)",
                 title="Training loss (training split)")
    if val:
        steps, bits = zip(*val)
        ax_val.plot(steps, bits, marker="o", color="tab:orange", label="validation split")
        if near_uniform_guess(bits):  # show how far below (or above) it the model is
            ax_val.axhline(2.0, color="black", ls=":", lw=1, label="uniform guess over A, C, G, T (2 bits)")
        ax_val.legend(fontsize=8, loc="best")
    else:
        ax_val.text(0.5, 0.5, "no validation step logged", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set(title="Validation bits per base", xlabel="optimizer step", ylabel="bits per base (lower is better)")
    for ax in (ax_train, ax_val):
        ax.grid(alpha=0.3)
    _save(fig, out)


def _number_or_none(value) -> float | None:
    """``value`` as a float, None kept (a ValueError / TypeError for anything else)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return None if value is None else float(value)


def eval_figures(evaluation: dict, source: str | Path, split: str = "test") -> dict:
    """The held-out figures of a `genoformer evaluate` JSON: model and Markov bits/base (one-sided, and two-sided
    where the JSON has it, else None: evaluate results from before it), and the Markov order; and over novel
    bases only (no 31-mer shared with the train split): their count out of the scored bases and the model's and
    both Markov chains' bits/base, None where the JSON predates them (``novel_bases`` None) or there is no novel
    base (the bits None). ``ci95`` maps a figure's JSON name (``bits_per_base``, ``model_minus_markov``, ...) to
    its 95% interval ``(low, high)``: empty for a JSON from before intervals, without an interval whose bound the
    JSON has as null (undefined); ``bootstrap`` (what the intervals resampled), ``passes`` (mask passes),
    ``distinct_scored_bases`` and ``windows`` / ``split_windows`` (the windows scored, of the split's) are None
    where the JSON predates them, and so is
    ``markov_two_sided_approximate_bases`` (the hidden bases of clusters too big for the two-sided chain to sum
    out exactly, scored given the true bases of the other hidden ones).

    Reads ``split`` (the test split) only: the figure and the summary label the numbers as test-split numbers,
    and the val split is where the Markov order and smoothing were chosen (its Markov figure is the best of
    those tried on it), so a JSON without the split is an error, not a fallback to another split.
    """
    try:
        splits = evaluation["splits"]
        if isinstance(splits, dict) and splits and split not in splits:
            raise InputError(f"{source}: no {split} split (it has {', '.join(splits)}); the report shows held-out "
                             f"{split}-split figures: run `genoformer evaluate --splits val {split}`")
        scores = splits[split]
        two_sided = scores.get("markov_two_sided_bits_per_base")
        return {"model": float(scores["bits_per_base"]), "markov": float(scores["markov_bits_per_base"]),
                "markov_two_sided": _number_or_none(two_sided),
                "markov_order": evaluation["markov"]["order"],
                "scored_bases": _number_or_none(scores.get("scored_bases")),
                "novel_bases": _number_or_none(scores.get("novel_bases")),
                "novel_model": _number_or_none(scores.get("novel_bits_per_base")),
                "novel_markov": _number_or_none(scores.get("markov_novel_bits_per_base")),
                "novel_markov_two_sided": _number_or_none(scores.get("markov_two_sided_novel_bits_per_base")),
                "ci95": {name: interval for name, interval in
                         ((name, _interval(bounds)) for name, bounds in (scores.get("ci95") or {}).items())
                         if None not in interval},
                "bootstrap": _bootstrap(scores.get("bootstrap")),
                "passes": _number_or_none((evaluation.get("masking") or {}).get("passes")),
                "distinct_scored_bases": _number_or_none(scores.get("distinct_scored_bases")),
                "windows": _number_or_none(scores.get("windows")),
                "split_windows": _number_or_none(scores.get("split_windows")),
                "markov_two_sided_approximate_bases": _number_or_none(
                    scores.get("markov_two_sided_approximate_bases"))}
    except KeyError as err:
        raise InputError(f"{source}: not a `genoformer evaluate` result (no {err} entry)") from None
    except (AttributeError, IndexError, TypeError, ValueError):
        raise InputError(f"{source}: not a `genoformer evaluate` result (its {split} split is not an object of "
                         "numbers with bits_per_base, markov_bits_per_base)") from None


def _interval(bounds) -> tuple[float | None, float | None]:
    """A ``[low, high]`` of an evaluate JSON as a pair of floats (None kept; a ValueError / TypeError else)."""
    low, high = bounds
    return _number_or_none(low), _number_or_none(high)


def _bootstrap(bootstrap) -> dict | None:
    """An evaluate JSON's ``bootstrap`` entry, ``{"unit": str, "units": int}``, checked (None kept)."""
    if bootstrap is None:
        return None
    if not isinstance(bootstrap["unit"], str):
        raise TypeError("bootstrap unit is not a word")
    return {"unit": bootstrap["unit"], "units": int(bootstrap["units"])}


def row_label(label: str, figures: dict) -> str:
    """A bits/base row's label: the dataset, the model minus the one-sided Markov chain with its 95% interval
    (paired, where the JSON has one) and, where the JSON has the two-sided chain, the model minus that one too
    (what the model sees: a model level with it may still beat the one-sided chain), and the hidden bases both
    were scored on (where ``plots.eval_figures`` has their count; with several mask passes, the (pass, base)
    pairs), so that a difference measured on a few hundred bases does not read like one measured on thousands.
    Each difference is spelt out ("model - Markov"), as the summary's columns are: a bare delta says neither what
    was subtracted nor which sign is good (the axis label says: below 0, the model is better)."""
    scored = figures.get("scored_bases")
    differences = [("left side", "markov", "model_minus_markov")]
    if figures.get("markov_two_sided") is not None:
        differences.append(("both sides", "markov_two_sided", "model_minus_markov_two_sided"))
    lines = [label]
    for side, baseline, key in differences:
        interval = figures.get("ci95", {}).get(key)
        ci = "" if interval is None else f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
        lines.append(f"model - Markov{f' ({side})' if len(differences) > 1 else ''}: "
                     f"{figures['model'] - figures[baseline]:+.3f}{ci}")
    if scored is not None:
        lines.append(f"{scored:,.0f} hidden bases scored")
    return "\n".join(lines)


# one sub-row per figure of a dataset, top to bottom: eval_figures key, its novel-base key, the evaluate JSON's
# names of their 95% intervals, marker, colour, legend labels (all bases, novel bases)
FIGURE_ROWS = (
    ("model", "novel_model", "bits_per_base", "novel_bits_per_base", "o", "tab:blue",
     "genoformer model (predicts each hidden base from both sides)",
     "genoformer, novel bases only (no 31-mer shared with the training split)"),
    ("markov", "novel_markov", "markov_bits_per_base", "markov_novel_bits_per_base", "s", "tab:gray",
     "Markov chain, bases on the left side (order chosen on the validation split)",
     "Markov, left side, novel bases only"),
    ("markov_two_sided", "novel_markov_two_sided", "markov_two_sided_bits_per_base",
     "markov_two_sided_novel_bits_per_base", "^", "tab:orange",
     "same Markov chain, bases on both sides (as the model sees them)", "Markov, both sides, novel bases only"),
)
SUB_ROW = 0.3  # between the sub-rows of a dataset (its rows are 1.2 apart)
NOVEL_SHIFT = -0.11  # a novel-base figure, just below its all-bases figure


def bits_per_base(evaluations: dict[str, dict], out: str | Path) -> None:
    """Forest plot: the model's held-out bits/base next to the Markov baseline's, one block of rows per dataset.

    ``evaluations`` maps a dataset label to ``plots.eval_figures``'s dict. Each dataset gets a sub-row per figure
    (the model, the one-sided chain, and the two-sided chain: same order, given the visible bases on both sides,
    every hidden base summed out, where the evaluation has it), each with its value written at the right and its
    95% interval as an error bar where the evaluation has one; just below each, hollow, the same figure over novel
    bases only (no 31-mer shared with the train split), its interval dashed. DNA sits close to 2 bits/base (a
    uniform guess over A, C, G, T, drawn as a line), so the axis is zoomed on the values, and each dataset is
    labelled with the differences, model minus the one-sided chain and minus the two-sided one, and the hidden
    bases scored (``row_label``).
    """
    if not evaluations:
        raise InputError("bits/base plot: no evaluation given")
    labels = list(evaluations)
    centres = 1.2 * np.arange(len(labels))[::-1]
    shown = [bound for label in labels for _, _, ci_name, novel_ci_name, *_ in FIGURE_ROWS
             for name in (ci_name, novel_ci_name) for bound in evaluations[label]["ci95"].get(name, ())]
    shown += [evaluations[label][key] for label in labels for key, novel_key, *_ in FIGURE_ROWS
              for key in (key, novel_key) if evaluations[label].get(key) is not None]
    low, high = min(shown), max(max(shown), 2.0)
    pad = max(0.02, 0.1 * (high - low))
    fig, ax = plt.subplots(figsize=(8, 1.5 * len(labels) + 1.6))
    for index, (key, novel_key, ci_name, novel_ci_name, marker, colour, legend, novel_legend) in enumerate(
            FIGURE_ROWS):
        rows = centres + SUB_ROW * (1 - index)
        for figure, interval, shift, novel in ((key, ci_name, 0.0, False),
                                               (novel_key, novel_ci_name, NOVEL_SHIFT, True)):
            values = np.array([np.nan if evaluations[label].get(figure) is None else evaluations[label][figure]
                               for label in labels])
            if not np.isfinite(values).any():
                continue
            ax.scatter(values, rows + shift, s=60, marker=marker, facecolors="none" if novel else colour,
                       edgecolors=colour, zorder=3, label=novel_legend if novel else legend)
            _error_bars(ax, [(row + shift, evaluations[label].get(figure), evaluations[label]["ci95"].get(interval))
                             for row, label in zip(rows, labels)], colour,
                        {"model": "95% bootstrap intervals", "novel_model": "95% intervals, novel bases only"}.get(
                            figure), "--" if novel else "-")
        for row, label in zip(rows, labels):
            value = evaluations[label].get(key)
            if value is None:
                continue
            right = max([value, *evaluations[label]["ci95"].get(ci_name, ())])
            order = f" (order {evaluations[label].get('markov_order', '?')})" if key == "markov" else ""
            ax.annotate(f"{value:.3f}{order}", (right, row), textcoords="offset points", xytext=(5, 0),
                        va="center", fontsize=8)
    for boundary in centres[:-1] - 0.6:
        ax.axhline(boundary, color="lightgray", lw=0.8)
    ax.axvline(2.0, color="black", ls=":", lw=1, label="uniform guess (2 bits)")
    ax.set_yticks(centres, [row_label(label, evaluations[label]) for label in labels])
    ax.text(-0.02, 1.01, "differences in bits per base [95% interval];\nbelow 0: the model predicts better",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="dimgray")
    ax.set(xlabel="held-out bits per base (test split; lower is better)",
           xlim=(low - pad, high + 3 * pad), ylim=(centres.min() - 0.6, centres.max() + 0.6),
           title="Bits per base: model vs Markov baseline")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    _save(fig, out)


def _error_bars(ax, bars: list[tuple[float, float | None, tuple[float, float] | None]], colour: str,
                label: str | None, linestyle: str) -> None:
    """Horizontal 95% error bars ``(y, value, interval)`` drawn ``linestyle``, with a legend ``label`` where
    given; those without a value or an interval are not drawn. A bar spans its interval whether or not the value
    lies inside (a percentile bootstrap interval need not hold the point estimate)."""
    drawn = [(row, interval) for row, value, interval in bars if value is not None and interval is not None]
    if drawn:
        rows, intervals = zip(*drawn)
        low, high = np.array(intervals).T
        bars = ax.errorbar((low + high) / 2, rows, xerr=(high - low) / 2, fmt="none", ecolor=colour,
                           elinewidth=1.5, capsize=3, zorder=2, label=label)
        bars.lines[2][0].set_linestyle(linestyle)


# the summary's names (tables.METHODS), shortened for a legend
METHOD_NAMES = {"probe": "model: logistic regression on its hidden states", "finetune": "model: fine-tuned",
                "kmer": "k-mer spectrum baseline (no model)"}


def read_region_predictions(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Held-out labels (1 = the positive class), scores per method and the positive class's name, from a
    two-class `classify-regions` predictions.tsv (columns label, split, score_<method> = P(second class))."""
    table = read_table(path, ["label", "split"], text=("label",))
    methods = [name for name in table.columns if name.startswith("score_")]
    classes = class_order(table["label"])  # classify-regions' order: score_<method> is P(classes[1])
    if len(classes) != 2 or not methods:
        raise InputError(f"{path}: ROC/PR curves need a two-class task with score_<method> columns; it has "
                         f"{len(classes)} classes and columns {', '.join(table.columns)}")
    test = table[table["split"] == "test"]
    if test.empty:
        raise InputError(f"{path}: no held-out (split = test) row")
    labels = (test["label"].astype(str) == classes[1]).to_numpy(int)
    scores = {METHOD_NAMES.get(name[6:], name[6:]): test[name].to_numpy(float) for name in methods}
    return labels, scores, classes[1]


def roc_pr_curves(labels: np.ndarray, scores: dict[str, np.ndarray], out: str | Path, title: str) -> None:
    """ROC and precision-recall curves of each scorer (name → scores, higher = positive) on binary labels."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) != 2:
        raise InputError(f"{title}: ROC/PR curves need both classes among the labels")
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, score in scores.items():
        score = np.asarray(score, dtype=float)
        kept = ~np.isnan(score)
        fpr, tpr, _ = roc_curve(labels[kept], score[kept])
        precision, recall, _ = precision_recall_curve(labels[kept], score[kept])
        ax_roc.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
        ax_pr.step(recall, precision, where="post",
                   label=f"{name} (AUPRC {average_precision_score(labels[kept], score[kept]):.3f})")
    ax_roc.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="chance")
    ax_pr.axhline(labels.mean(), color="black", ls=":", lw=1, label=f"chance ({labels.mean():.2f})")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    ax_pr.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}", ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
        ax.grid(alpha=0.3)
    _save(fig, out)


CLASS_COLOURS = {"synonymous": "tab:green", "missense": "tab:orange", "stop_gained": "tab:red",
                 "stop_lost": "tab:purple", "stop_retained": "tab:olive", "start_lost": "tab:brown",
                 "start_retained": "tab:pink"}


def _class_colour(name, rank: int) -> str:
    return CLASS_COLOURS.get(str(name), f"C{rank % 10}")


def score_axis_label(score: str) -> str:
    """An axis label that says what ``score`` is and which way is notable, not only its INFO name."""
    if notable_direction(score) == "lower":
        return f"{score} = ln P(ALT) - ln P(REF)\n(below 0: the model expects REF more)"
    return f"{score}: change in the model's hidden state\n(higher: ALT changes it more)"


def class_auroc(score: str, positive: np.ndarray, negative: np.ndarray) -> tuple[float, str]:
    """AUROC of ``positive`` vs ``negative`` values of ``score``, ranked the way the score points
    (:func:`notable_direction`): a log-likelihood ratio is low for damaging alleles, an embedding distance high.
    Returns it and the direction ("lower" or "higher") that ranks ``positive`` first."""
    direction = notable_direction(score)
    values = np.r_[positive, negative]
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return roc_auc_score(labels, -values if direction == "lower" else values), direction


def score_distributions(table: pd.DataFrame, score: str, by: str, out: str | Path, order: list[str],
                        positive: str = "stop_gained", negative: str = "synonymous") -> None:
    """Box plots (with the points) of ``score`` per class in column ``by``, classes in ``order`` first.

    When both are present, the title gives the AUROC of ``positive`` vs ``negative`` (:func:`class_auroc`).
    """
    table = table.dropna(subset=[score, by])
    if table.empty:
        raise InputError(f"score distributions: no variant has both {score} and {by}")
    classes = [name for name in order if name in set(table[by])]
    classes += sorted(set(table[by]) - set(classes), key=str)
    groups = [table.loc[table[by] == name, score].to_numpy(dtype=float) for name in classes]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(classes) + 2), 4.2))
    ax.boxplot(groups, showfliers=False, medianprops={"color": "black", "lw": 1.5})
    ax.set_xticks(range(1, len(classes) + 1), [f"{name}\n(n={len(group)})" for name, group in zip(classes, groups)])
    jitter = np.random.default_rng(0)
    for i, (name, group) in enumerate(zip(classes, groups), start=1):
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(group)), group, s=5, alpha=0.35,
                   color=_class_colour(name, i))
    ax.axhline(0, color="black", ls=":", lw=1)
    title = f"{score} by variant class"
    if positive in classes and negative in classes:
        auroc, direction = class_auroc(score, groups[classes.index(positive)], groups[classes.index(negative)])
        where = "below" if direction == "lower" else "above"
        title += (f"\n{positive} vs {negative}: AUROC {auroc:.3f} (1: every {positive} scores {where} every "
                  f"{negative}; 0.5: chance)")
    ax.set(ylabel=score_axis_label(score), title=title)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, out)


def read_benchmarks(paths: list[str | Path]) -> pd.DataFrame:
    """Snakemake benchmark TSVs as one table: rule (the folder above the file), job (file stem), s, max_rss.

    The workflow writes each rule's benchmarks to ``.../benchmarks/<rule>/<job>.tsv``. ``max_rss`` is missing where
    Snakemake took no sample of the job at work: NA, or a ``cpu_time`` of 0 (a job shorter than its half-second
    sampling, whose one sample caught the shell starting it, a few MB).
    """
    rows = []
    for path in paths:
        table = read_table(path, ["s", "max_rss"])
        path = Path(path)
        for line, row in zip(range(2, len(table) + 2), table.itertuples(index=False)):
            max_rss = pd.to_numeric(row.max_rss, errors="coerce")
            if pd.to_numeric(getattr(row, "cpu_time", None), errors="coerce") == 0:
                max_rss = math.nan
            seconds = pd.to_numeric(row.s, errors="coerce")
            if not math.isfinite(seconds):
                raise InputError(f"{path}: line {line}: column s is {row.s!r}, not a number of seconds")
            rows.append({"rule": path.parent.name, "job": path.stem, "s": float(seconds),
                         "max_rss": None if math.isnan(max_rss) else float(max_rss)})
    if not rows:
        raise InputError("benchmark plot: no benchmark file given")
    return pd.DataFrame(rows)


def benchmark_label(seconds: float, jobs: int, max_rss: float | None) -> str:
    """A rule's bar label: its summed wall time (with minutes from 100 s), its job count and its largest sampled
    peak memory (MB)."""
    memory = "memory not sampled" if max_rss is None or pd.isna(max_rss) else f"{max_rss:,.0f} MB peak"
    minutes = f" ({seconds / 60:,.0f} min)" if seconds >= 100 else ""
    return f"{seconds:,.1f} s{minutes}, {jobs} job{'s' if jobs > 1 else ''}, {memory}"


def benchmark_times(benchmarks: pd.DataFrame, out: str | Path) -> None:
    """Horizontal bars: wall time per rule (summed over its jobs), labelled with jobs and peak memory."""
    per_rule = benchmarks.groupby("rule").agg(s=("s", "sum"), jobs=("job", "count"), max_rss=("max_rss", "max"))
    per_rule = per_rule.sort_values("s")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(per_rule) + 1.5))
    bars = ax.barh(per_rule.index, per_rule["s"], color="tab:green")
    labels = [benchmark_label(s, jobs, rss)
              for s, jobs, rss in zip(per_rule["s"], per_rule["jobs"], per_rule["max_rss"])]
    ax.bar_label(bars, labels=labels, fontsize=8, padding=3)
    ax.set(xlabel="wall time (s, summed over the rule's jobs)", title="Time per rule (Snakemake benchmarks)",
           xlim=(0, per_rule["s"].max() * 1.6 + 1))
    ax.xaxis.set_major_formatter(THOUSANDS)  # as the labels: 1,269.5 s
    ax.grid(alpha=0.3, axis="x")
    _save(fig, out)
