"""The variant track: where along the genome a scored VCF's most notable variants lie, and what is around them.

A whole-genome overview of every scored variant comes first, the loci holding the most notable scores (the lowest
log-likelihood ratios) marked A, B, ...; below it one panel per marked locus, its genes named and its most notable
variant labelled with its alleles and score.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from genoformer.errors import InputError
from genoformer.report.plots import CLASS_COLOURS, THOUSANDS, _class_colour, _save, score_axis_label
from genoformer.report.tables import notable_direction


def loci(table: pd.DataFrame, gap: int) -> list[pd.DataFrame]:
    """Runs of variants (sorted by contig, then position) with no gap longer than ``gap`` bp between them."""
    order = {name: rank for rank, name in enumerate(dict.fromkeys(table["contig"]))}
    table = table.assign(_rank=table["contig"].map(order)).sort_values(["_rank", "pos"], kind="stable")
    new_locus = (table["contig"] != table["contig"].shift()) | (table["pos"].diff() > gap)
    return [group.drop(columns="_rank") for _, group in table.groupby(new_locus.cumsum(), sort=True)]


def notable_loci(found: list[pd.DataFrame], score: str, max_loci: int) -> list[int]:
    """Indices (genome order) of the ``max_loci`` loci of ``found`` holding the most notable ``score``: the
    lowest for a log-likelihood ratio, the highest for a distance (:func:`tables.notable_direction`); a tie goes to
    the locus with more variants."""
    lower = notable_direction(score) == "lower"

    def extreme(rows: pd.DataFrame) -> float:  # smaller is more notable
        values = rows[score].to_numpy(float)
        return values.min() if lower else -values.max()

    ranked = sorted(range(len(found)), key=lambda i: (extreme(found[i]), -len(found[i])))
    return sorted(ranked[:max_loci])


def most_notable(rows: pd.DataFrame, score: str) -> pd.Series:
    """The variant of ``rows`` with the most notable ``score``."""
    values = rows[score].astype(float)
    return rows.loc[values.idxmin() if notable_direction(score) == "lower" else values.idxmax()]


def genome_offsets(table: pd.DataFrame, lengths: dict[str, int | None]) -> dict[str, int]:
    """Where each contig with a variant starts on the overview's axis, contigs in file order, each as long as
    the VCF header says (else up to its last variant)."""
    offsets, start = {}, 0
    for contig in dict.fromkeys(table["contig"]):
        offsets[contig] = start
        start += lengths.get(contig) or int(table.loc[table["contig"] == contig, "pos"].max())
    offsets[None] = start  # the end of the last contig
    return offsets


def _scatter(ax, rows: pd.DataFrame, x, score: str, by: str | None, classes: list, size: float) -> None:
    """Points of ``rows`` at ``x``, coloured by their class in column ``by`` (one colour without)."""
    if by is None:
        ax.scatter(x, rows[score], s=size, color="tab:blue")
        return
    for rank, name in enumerate(classes):
        chosen = (rows[by] == name).to_numpy()
        ax.scatter(x[chosen], rows[score][chosen], s=size, alpha=0.7, color=_class_colour(name, rank),
                   label=str(name))


def _locus_title(letter: str, rows: pd.DataFrame) -> str:
    """A panel's title: its letter, region, variant count and, where the VCF names them, its genes."""
    title = f"{letter}  {rows['contig'].iloc[0]}:{rows['pos'].min():,}-{rows['pos'].max():,} ({len(rows)} variants"
    if "GENE" in rows.columns:
        genes = list(dict.fromkeys(rows["GENE"].dropna().astype(str)))
        if genes:
            title += f"; gene{'s' if len(genes) > 1 else ''} {', '.join(genes[:3])}"
            title += f" and {len(genes) - 3} more" if len(genes) > 3 else ""
    return title + ")"


def _allele(text: str) -> str:
    return text if len(text) <= 8 else f"{text[:6]}…"


def score_track(table: pd.DataFrame, score: str, out: str | Path, by: str | None = None, *, max_loci: int = 4,
                gap: int = 5000) -> None:
    """A genome track of ``score``, coloured by column ``by``: an overview of every variant along the contigs
    that hold one (lengths from ``table.attrs["contig_lengths"]`` where given), then one panel per locus
    (variants within ``gap`` bp of each other) of the ``max_loci`` loci holding the most notable scores
    (:func:`notable_loci`), in genome order, each labelled with its genes (column GENE) and its most notable
    variant's alleles and score."""
    lengths = table.attrs.get("contig_lengths") or {}
    table = table.dropna(subset=[score])
    if table.empty:
        raise InputError(f"genome track: no variant has a {score}")
    found = loci(table, gap)
    shown = notable_loci(found, score, max_loci)
    present = [] if by is None else list(dict.fromkeys(table[by].dropna()))
    classes = [name for name in CLASS_COLOURS if name in present] + [n for n in present if n not in CLASS_COLOURS]
    fig, axes = plt.subplots(len(shown) + 1, 1, figsize=(11, 2.4 * (len(shown) + 1) + 0.6), squeeze=False)
    overview, panels = axes[0, 0], axes[1:, 0]
    offsets = genome_offsets(table, lengths)
    scale, unit = (1e6, "Mb") if offsets[None] > 2e6 else (1e3, "kb") if offsets[None] > 2e4 else (1, "bp")
    position = (table["contig"].map(offsets) + table["pos"]) / scale
    _scatter(overview, table, position.to_numpy(), score, by, classes, 6)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for letter, index in zip(letters, shown):
        rows = found[index]
        left, right = ((offsets[rows["contig"].iloc[0]] + rows["pos"].agg(["min", "max"])) / scale).tolist()
        overview.axvspan(left, right, color="gold", alpha=0.5, lw=2, ec="gold", zorder=0)
        overview.annotate(letter, ((left + right) / 2, 1.0), xycoords=("data", "axes fraction"), ha="center",
                          va="bottom", fontsize=9, fontweight="bold")
    contigs = [name for name in offsets if name is not None]
    for name in contigs[1:]:
        overview.axvline(offsets[name] / scale, color="gray", lw=0.8)
    overview.set_xlim(0, offsets[None] / scale)
    if unit == "bp":
        overview.xaxis.set_major_formatter(THOUSANDS)
    where = contigs[0] if len(contigs) == 1 else f"{len(contigs)} contigs, end to end"
    overview.set(xlabel=f"{where}: position ({unit})", ylabel=score_axis_label(score))
    overview.set_title(f"All {len(table):,} scored variants; shaded: the loci shown below", fontsize=9, loc="left",
                       pad=14)
    for letter, ax, index in zip(letters, panels, shown):
        rows = found[index]
        _scatter(ax, rows, rows["pos"].to_numpy(), score, by, classes, 12)
        top = most_notable(rows, score)
        left_half = top["pos"] - rows["pos"].min() < (rows["pos"].max() - rows["pos"].min()) / 2
        ax.annotate(f"{_allele(top['ref'])}>{_allele(top['alt'])} at {top['pos']:,}: {top[score]:+.2f}",
                    (top["pos"], top[score]), textcoords="offset points", xytext=(7 if left_half else -7, 0),
                    ha="left" if left_half else "right", va="center", fontsize=8)
        ax.set(ylabel=score, xlabel=f"{rows['contig'].iloc[0]} position (bp, 1-based)")
        ax.set_title(_locus_title(letter, rows), fontsize=9, loc="left")
        ax.xaxis.set_major_formatter(THOUSANDS)
    for ax in axes[:, 0]:
        ax.axhline(0, color="black", ls=":", lw=1)
        ax.grid(alpha=0.3)
    if classes:
        overview.legend(fontsize=8, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    most = "lowest" if notable_direction(score) == "lower" else "highest"
    chosen = f": the {len(shown)} of {len(found):,} loci with the {most} scores" if len(found) > len(shown) else ""
    fig.suptitle(f"{score} along the genome{chosen}", y=1.0)
    fig.tight_layout()
    _save(fig, out)
