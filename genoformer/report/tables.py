"""The report's tables, as HTML pages: the numbers behind the figures, in a form a reader can quote.

``summary_page`` puts the held-out bits/base of every evaluation (model next to its Markov baseline) and the
held-out AUROC / AUPRC of every supervised task (each model-based method next to the baseline without the
model) on one page; ``top_variants_page`` lists the variants a scored VCF ranks as least expected. Tables are
pandas ``DataFrame.to_html`` (escaped) in a small self-contained page, written atomically; ``snakemake
--report`` shows such a page inline.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from genoformer.atomic import write_text
from genoformer.errors import InputError
from genoformer.tasks.metrics import MIN_BOOTSTRAP_GROUPS

# What each method key of a classifier's metrics.json is, in words; ``True`` marks a baseline without the model.
METHODS = {
    "probe": ("model: logistic regression on frozen hidden states", False),
    "finetune": ("model: fine-tuned", False),
    "model_probe": ("model: logistic regression on variant features", False),
    "zero_shot_neg_llr": ("model: zero-shot -LLR (no training)", False),
    "kmer": ("k-mer spectrum, logistic regression", True),
    "kmer_baseline": ("k-mer context, logistic regression", True),
    "composition_neg_llr": ("base composition: zero-shot -LLR (no model, no training)", True),
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
p.note { color: #555; max-width: 60em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left; }
td { white-space: nowrap; }
th { background: #f3f3f3; }
"""


def with_interval(metric: dict | None) -> str:
    """``"0.726 [0.645, 0.813]"`` from ``{"value", "ci95"}``; ``"n/a"`` where a number is missing."""
    def number(value) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    if not metric:
        return "n/a"
    low, high = (metric.get("ci95") or [None, None])[:2]
    return f"{number(metric.get('value'))} [{number(low)}, {number(high)}]"


def split_text(split: dict | None) -> str:
    """How a task's examples were held out, from its metrics.json ``split``: the blocks or contigs on each side,
    and the held-out examples left out for a repeat copy or an overlapping region in training ("—" for metrics
    without it)."""
    if not isinstance(split, dict) or "groups_test" not in split:
        return "—"
    unit = f"{split['block_bp']:,} bp blocks" if split.get("method") == "blocks" else "contigs"
    text = f"{split['groups_test']} of {split['groups_test'] + split['groups_train']} {unit}"
    if split.get("repeat_copies") == "kept":
        with_copy = split.get("with_repeat_copy", 0)
        text += f"; repeat copies kept on both sides ({with_copy} examples have one)" if with_copy else ""
    elif split.get("n_left_out_copies", 0):
        text += f"; {split['n_left_out_copies']} left out (a repeat copy in training)"
    overlapping = split.get("n_left_out_overlapping", 0)
    return text + (f"; {overlapping} left out (overlapping a training region)" if overlapping else "")


def bootstrap_text(bootstrap: dict | None) -> str:
    """A note for intervals that resample examples, not whole held-out groups, with the option that holds out
    more groups ("" otherwise); a metrics.json without ``bootstrap`` is from before groups were resampled."""
    if not isinstance(bootstrap, dict):
        return "; intervals resample examples (metrics written before intervals resampled groups)"
    if bootstrap.get("unit") == "example":
        return (f"; intervals resample examples (fewer than {MIN_BOOTSTRAP_GROUPS} held-out groups), so they are too "
                "narrow: split by blocks, a smaller --block holds out more")
    return ""


def finetune_text(selection: dict | None) -> str:
    """The fine-tuned method's name, with the epoch ``classify-regions`` kept (its metrics.json
    ``finetune_selection``): epoch 0 is the start, the probe-initialized head before any weight changed."""
    if not isinstance(selection, dict) or "epoch_kept" not in selection:
        return METHODS["finetune"][0]
    if selection["epoch_kept"] == 0:
        return ("model: fine-tuning kept its start (no epoch lowered the validation loss): a logistic regression "
                "on the window's mean hidden state")
    return f"{METHODS['finetune'][0]} (epoch {selection['epoch_kept']} kept)"


def task_rows(task: str, metrics: dict, source: str | Path) -> list[dict]:
    """One row per method of a ``classify-regions`` / ``classify-variants`` metrics.json (its held-out test set):
    the model-based methods first, then the baselines."""
    test = metrics.get("test") if isinstance(metrics, dict) else None
    if not isinstance(test, dict) or not test or not all(isinstance(m, dict) and "auroc" in m for m in test.values()):
        raise InputError(f"{source}: not a classifier metrics.json (no 'test' section with AUROC per method)")
    unknown = [name for name in test if name not in METHODS]
    if unknown:
        raise InputError(f"{source}: unknown method '{unknown[0]}' in 'test' (known: {', '.join(METHODS)})")
    classes = metrics.get("classes")
    if isinstance(classes, dict):  # classify-variants: {"negative": ..., "positive": ...}
        classes = [classes.get("negative"), classes.get("positive")]
    held_out = split_text(metrics.get("split"))
    rows = []
    for name in sorted(test, key=lambda name: METHODS[name][1]):
        method = test[name]
        per_class = method.get("n_per_class") or []
        counts = ", ".join(f"{label} {count}" for label, count in zip(classes or [], per_class)) or str(method["n"])
        label = finetune_text(metrics.get("finetune_selection")) if name == "finetune" else METHODS[name][0]
        rows.append({"task": task, "method": label, "uses the model": "no" if METHODS[name][1] else "yes",
                     "held-out examples": counts,
                     "held out": held_out + (bootstrap_text(method.get("bootstrap")) if held_out != "—" else ""),
                     "AUROC [95% CI]": with_interval(method.get("auroc")),
                     "AUPRC [95% CI]": with_interval(method.get("auprc")),
                     "accuracy [95% CI]": with_interval(method.get("accuracy")) if "accuracy" in method else "—"})
    return rows


NOT_COMPUTED = "not computed"
# the novel-base figures: plots.eval_figures key, and the evaluate JSON name of its 95% interval
NOVEL_FIGURES = (("novel_model", "novel_bits_per_base"), ("novel_markov", "markov_novel_bits_per_base"),
                 ("novel_markov_two_sided", "markov_two_sided_novel_bits_per_base"))
# the paired novel-base differences: the chain's eval_figures key, and the evaluate JSON name of the interval
NOVEL_DIFFERENCES = (("novel_markov", "novel_model_minus_markov"),
                     ("novel_markov_two_sided", "novel_model_minus_markov_two_sided"))


def novel_texts(figures: dict) -> tuple[str, ...]:
    """The novel hidden bases (count, share of the scored ones), the model's and the Markov chains' (one- and
    two-sided) bits/base over them and the model minus each chain, each with its 95% interval, as table cells:
    "not computed" for an evaluate JSON from before novel bases were counted (the interval alone for one from
    before their intervals), "—" for the bits where no hidden base is novel."""
    novel, scored = figures.get("novel_bases"), figures.get("scored_bases")
    if novel is None:
        return (NOT_COMPUTED,) * (1 + len(NOVEL_FIGURES) + len(NOVEL_DIFFERENCES))
    share = f"{novel:,.0f} of {scored:,.0f} ({novel / scored:.1%})" if scored else f"{novel:,.0f}"
    model = figures.get("novel_model")
    bits = ["—" if figures.get(name) is None else with_bits_interval(figures[name], figures["ci95"].get(interval))
            for name, interval in NOVEL_FIGURES]
    differences = ["—" if model is None or figures.get(chain) is None else
                   with_bits_interval(model - figures[chain], figures["ci95"].get(interval), signed=True)
                   for chain, interval in NOVEL_DIFFERENCES]
    return share, *bits, *differences


def with_bits_interval(value: float, interval: tuple[float, float] | None, signed: bool = False) -> str:
    """``"1.9674 [1.9598, 1.9747]"`` (``signed``: ``"+0.0069 [-0.0007, +0.0137]"``); the interval "not computed"
    for an evaluate JSON from before intervals."""
    form = "+.4f" if signed else ".4f"
    if interval is None:
        return f"{value:{form}} [{NOT_COMPUTED}]"
    return f"{value:{form}} [{interval[0]:{form}}, {interval[1]:{form}}]"


def scored_text(figures: dict) -> str:
    """The hidden bases an evaluation scored: the (pass, base) pairs, over how many mask passes and distinct
    bases, in how many of the split's windows where not all, and what its intervals resampled (where the evaluate
    JSON has them)."""
    scored, passes = figures.get("scored_bases"), figures.get("passes")
    if scored is None:
        return NOT_COMPUTED
    text = f"{scored:,.0f}"
    if passes is not None and figures.get("distinct_scored_bases") is not None:
        text += (f" ({passes:.0f} mask pass{'es' if passes != 1 else ''} over "
                 f"{figures['distinct_scored_bases']:,.0f} bases)")
    approximate = figures.get("markov_two_sided_approximate_bases")
    if approximate:
        text += (f"; the two-sided chain read the other hidden bases as their true bases for {approximate:,.0f} "
                 "(clusters too big to sum out)")
    windows, split_windows = figures.get("windows"), figures.get("split_windows")
    if windows is not None and split_windows is not None and windows < split_windows:
        text += (f"; in {windows:,.0f} of the split's {split_windows:,.0f} windows, spread evenly over it "
                 "(--max-windows; config evaluate.max_windows)")
    bootstrap = figures.get("bootstrap")
    if bootstrap is None:
        return text
    if bootstrap["unit"] == "interval":
        return f"{text}; intervals resample {bootstrap['units']:,} held-out blocks or contigs"
    return (f"{text}; intervals resample {bootstrap['units']:,} {bootstrap['unit']}s (fewer than "
            f"{MIN_BOOTSTRAP_GROUPS} held-out blocks or contigs), so they are too narrow: tokenize with a smaller "
            "--block for more blocks")


def bits_rows(evaluations: dict[str, dict]) -> list[dict]:
    """One row per evaluation (``plots.eval_figures``'s dict), each figure with its 95% interval; the two-sided
    Markov, interval and novel-base cells say "not computed" for evaluate results written before them."""
    rows = []
    for label, figures in evaluations.items():
        two_sided = figures.get("markov_two_sided")
        novel, novel_model, novel_markov, novel_two_sided, novel_minus_markov, novel_minus_two_sided = \
            novel_texts(figures)
        model, markov = figures["model"], figures["markov"]

        def cell(value: float, name: str, signed: bool = False) -> str:
            return with_bits_interval(value, figures["ci95"].get(name), signed)

        rows.append({"sequence": label, "model bits/base [95% CI]": cell(model, "bits_per_base"),
                     "Markov bits/base [95% CI]": cell(markov, "markov_bits_per_base"),
                     "Markov order": figures["markov_order"],
                     "model - Markov [95% CI]": cell(model - markov, "model_minus_markov", signed=True),
                     "two-sided Markov bits/base [95% CI]":
                         NOT_COMPUTED if two_sided is None else cell(two_sided, "markov_two_sided_bits_per_base"),
                     "model - two-sided Markov [95% CI]":
                         "—" if two_sided is None else cell(model - two_sided, "model_minus_markov_two_sided",
                                                            signed=True),
                     "hidden bases scored": scored_text(figures),
                     "novel hidden bases": novel, "model bits/base, novel [95% CI]": novel_model,
                     "Markov bits/base, novel [95% CI]": novel_markov,
                     "two-sided Markov bits/base, novel [95% CI]": novel_two_sided,
                     "model - Markov, novel [95% CI]": novel_minus_markov,
                     "model - two-sided Markov, novel [95% CI]": novel_minus_two_sided})
    return rows


def summary_page(evaluations: dict[str, dict], tasks: dict[str, tuple[dict, str]], out: str | Path) -> None:
    """The summary page: held-out bits/base per evaluation, and held-out metrics per supervised task
    (``tasks`` maps a task name to its metrics.json contents and path)."""
    if not evaluations and not tasks:
        raise InputError("report summary: give at least one --eval or --task")
    sections = []
    if evaluations:
        sections.append(("Held-out bits per base (test split)", "How well the model predicts bases hidden "
                         "(masked) from it in test-split sequence it never trained on, in bits per hidden base (its "
                         "cross-entropy: 2 = a uniform guess over A, C, G, T; lower is better), next to the "
                         "Markov model fit on the training split (its order chosen on the validation split) and "
                         "scored on the same bases: one-sided, each base from the true bases before it (other "
                         "hidden bases read as their true bases, which the model never sees), and two-sided, from "
                         "the visible bases on both sides, every hidden base summed out, as the model sees them. "
                         "Novel: only the hidden "
                         "bases that no 31-mer (either strand) also found in the training split covers, so repeat "
                         "copies (rRNA operons, IS elements) the model may have memorised are left out. Intervals: "
                         "95% bootstrap intervals that resample whole held-out blocks or contigs (adjacent bases "
                         "and windows are not independent; windows where the 'hidden bases scored' column says "
                         "so); each difference is paired, both figures from the same resamples. With several "
                         "mask passes every window is masked that many times and a base may be scored once per "
                         "pass.",
                         pd.DataFrame(bits_rows(evaluations))))
    if tasks:
        rows = [row for task, (metrics, source) in tasks.items() for row in task_rows(task, metrics, source)]
        sections.append(("Supervised tasks", "Each method is fit on the training split and scored on held-out "
                         "examples: whole blocks or contigs, less any example with a near-identical copy in "
                         "training (unless the 'held out' column says copies were kept); intervals are 95% "
                         "bootstrap intervals that resample whole held-out blocks or contigs (nearby examples are "
                         "not independent), or examples where the 'held out' column says so. AUROC: the chance "
                         "that a method scores a held-out example of the second class named under 'held-out "
                         "examples' (the positive one) above one of the first; 0.5 is chance, 1 perfect. AUPRC: the "
                         "mean precision over the positives found; chance is the positive class's share. "
                         "Zero-shot -LLR: the variant score GF_LLR (ln P(ALT) - ln P(REF), below 0 where the model "
                         "expects REF more), negated and used as it is, without training on the labels; the base "
                         "composition row scores the same way from the genome's base frequencies alone. Rows "
                         "without the model are baselines: the model earns its keep where it beats them.",
                         pd.DataFrame(rows)))
    write_page(out, "genoformer: summary", sections)


# the top-variants page's INFO columns where the VCF has them (coding-variants writes the first four)
ANNOTATION_FIELDS = {"GENE": "GENE", "CONSEQUENCE": "CONSEQUENCE", "AA": "AA (amino acid, REF>ALT; * is a stop)",
                     "CODON": "CODON (REF>ALT, on the gene's strand)"}
EMBEDDING_NOTE = ("GF_EMB_LOCAL: how far ALT moves the model's internal representation of the variant's site from "
                  "REF's (a distance; larger is a bigger change; no fixed scale, so compare it within a file only).")


def annotation_note(columns) -> str:
    """What the top-variants page's annotation columns among ``columns`` hold, naming only those present (a VCF
    may carry GENE alone), and GF_EMB_LOCAL where shown; each sentence after a space."""
    named = [text for field, text in ANNOTATION_FIELDS.items() if field in columns]
    note = ""
    if named:
        listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
        note += f" {listed}: the VCF's own annotation."
    return note + (f" {EMBEDDING_NOTE}" if "GF_EMB_LOCAL" in columns else "")


def notable_direction(score: str) -> str:
    """Which end of ``score`` marks a variant the model finds notable: "lower" for a log-likelihood ratio (a name
    with LLR: an unexpected ALT scores below 0), "higher" for an embedding distance."""
    return "lower" if "LLR" in score.upper() else "higher"


def top_variants_page(table: pd.DataFrame, score: str, n: int, source: str | Path, out: str | Path) -> None:
    """The ``n`` variants of a scored VCF (``plots.read_scored_vcf`` table) with the lowest ``score``: for
    GF_LLR, the alternate alleles the model finds least expected in their context, each with P(ALT) / P(REF)
    (e to the LLR), and a note that says what the score means, which sign is unexpected and where the file's
    scores lie."""
    values = pd.to_numeric(table[score], errors="coerce")
    scored = table[values.notna()].assign(**{score: values[values.notna()]})
    if scored.empty:
        raise InputError(f"{source}: no variant has a {score} value")
    top = scored.nsmallest(n, score, keep="first")
    top = top.assign(id=top["id"].fillna("."), pos=top["pos"].map("{:,}".format))
    position = top.columns.get_loc(score) + 1
    note = (f"The {len(top)} of {len(scored):,} scored variants with the lowest {score}, lowest first."
            if len(top) < len(scored) else f"All {len(scored):,} scored variants, lowest {score} first.")
    if notable_direction(score) == "lower":  # a log-likelihood ratio
        top.insert(position, "P(ALT) / P(REF)", [f"{math.exp(value):.2f}" for value in top[score]])
        above = int((top[score] > 0).sum())
        top[score] = top[score].map("{:+.3f}".format)  # signed, as the note's figures are
        note += (f" {score} = ln P(ALT) - ln P(REF): the natural log of how much more likely the model finds the "
                 "alternate allele than the reference one in its sequence context (averaged over both strands; for "
                 "an indel, per masked token). P(ALT) / P(REF) is e to that power: 0.50 means the model finds ALT "
                 "half as likely as REF, 1.00 no preference. Below 0 the model expects REF more"
                 + (f"; the {above} listed with a score above 0 are not unexpected." if above else ".")
                 + f" Over all {len(scored):,} scored variants of this file the median {score} is "
                 f"{scored[score].median():+.3f} and 5% lie below {scored[score].quantile(0.05):+.3f}. A low score "
                 "flags a variant for a closer look; it is not a call of pathogenicity.")
    note += annotation_note(top.columns)
    top = top.rename(columns={"pos": "position (1-based)"})
    write_page(out, f"genoformer: least expected variants in {Path(source).name}",
               [(f"Lowest {score}", note, top)])


def prose_columns(frame: pd.DataFrame, longest: int = 40) -> list[int]:
    """The 1-based positions of ``frame``'s columns holding a cell of more than ``longest`` characters: sentences
    that wrap, so that a row of numbers (kept on one line each) stays on screen without scrolling sideways."""
    return [column for column, name in enumerate(frame.columns, start=1)
            if frame[name].astype(str).str.len().max() > longest]


def write_page(out: str | Path, title: str, sections: list[tuple[str, str, pd.DataFrame]]) -> None:
    """A self-contained HTML page: a title, then per section a heading, a note and an escaped table."""
    body, style = [f"<h1>{html.escape(title)}</h1>"], [STYLE]
    for number, (heading, note, frame) in enumerate(sections):
        table = frame.to_html(index=False, escape=True, border=0, na_rep="n/a", float_format="{:.3f}".format,
                              table_id=f"table{number}")
        body += [f"<h2>{html.escape(heading)}</h2>", f'<p class="note">{html.escape(note)}</p>', table]
        style += [f"#table{number} td:nth-child({column}) {{ white-space: normal; min-width: 14em; }}"
                  for column in prose_columns(frame)]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{''.join(style)}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
    write_text(out, page)
