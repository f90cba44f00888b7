"""Classification metrics with percentile-bootstrap confidence intervals: AUROC, AUPRC, accuracy; and intervals
of ratio estimates (bits per base) by the same bootstrap.

AUROC is the Mann-Whitney statistic with tied scores counted half; AUPRC is average precision (the step-wise
area scikit-learn's ``average_precision_score`` computes). Both are plain numpy so that a thousand bootstrap
resamples take well under a second. With more than two classes, AUROC and AUPRC are one-vs-rest macro averages.

Held-out examples that lie close together (the SNVs of one gene, the regions of one block) are not independent:
given their split ``groups`` (the blocks or contigs held out whole), the bootstrap resamples whole groups (a
cluster bootstrap), so the intervals carry that dependence; with fewer than ``MIN_BOOTSTRAP_GROUPS`` groups,
too few for a resample of groups to mean much, it resamples examples, and the result says which it did.
``ratio_intervals`` does the same for figures that are a sum over examples divided by another (the bits and the
scored bases of each held-out window).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
MIN_BOOTSTRAP_GROUPS = 5


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary ``labels`` (1 = positive) ranked by ``scores``; NaN if one class."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of binary ``labels`` ranked by ``scores`` (ties form one threshold); NaN if no positive."""
    labels = np.asarray(labels, dtype=bool)
    if not labels.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    sorted_scores, sorted_labels = np.asarray(scores, dtype=float)[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), labels.size - 1]
    true_pos = np.cumsum(sorted_labels)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, true_pos]) / true_pos[-1]
    return float(np.sum(recall_gain * precision))


def _one_vs_rest(metric, labels: np.ndarray, probabilities: np.ndarray) -> float:
    if probabilities.shape[1] == 2:
        return metric(labels == 1, probabilities[:, 1])
    return float(np.nanmean([metric(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])]))


def _metric_values(labels: np.ndarray, probabilities: np.ndarray, with_accuracy: bool) -> dict[str, float]:
    values = {"auroc": _one_vs_rest(auroc, labels, probabilities),
              "auprc": _one_vs_rest(auprc, labels, probabilities)}
    if with_accuracy:
        values["accuracy"] = float(np.mean(probabilities.argmax(axis=1) == labels))
    return values


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, *, groups: np.ndarray | None = None,
                           n_bootstrap: int = N_BOOTSTRAP, seed: int = 0, with_accuracy: bool = True) -> dict:
    """AUROC, AUPRC (and accuracy) with 95% bootstrap CIs for class ``labels`` (0..K-1) and ``probabilities``.

    ``probabilities`` is ``[n, K]`` (a 1-D array is read as the positive-class score of a binary task; its
    accuracy is left out because a raw score has no threshold). ``groups`` (one id per example, e.g. its split
    block) makes the bootstrap resample whole groups when there are at least ``MIN_BOOTSTRAP_GROUPS``. Returns
    ``{"n", "n_per_class", "bootstrap": {"unit": "group" | "example", "units"}, "<metric>": {"value", "ci95":
    [low, high]}}``; bootstrap resamples that miss a class are not counted.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim == 1:
        probabilities = np.stack([-probabilities, probabilities], axis=1)
        with_accuracy = False
    n_classes = probabilities.shape[1]
    point = _metric_values(labels, probabilities, with_accuracy)
    rng = np.random.default_rng(seed)
    members = _group_members(groups, labels.size)
    if len(members) >= MIN_BOOTSTRAP_GROUPS:
        unit = {"unit": "group", "units": len(members)}

        def resample() -> np.ndarray:
            return np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
    else:
        unit = {"unit": "example", "units": int(labels.size)}

        def resample() -> np.ndarray:
            return rng.integers(0, labels.size, labels.size)
    draws = {name: [] for name in point}
    for _ in range(n_bootstrap):
        sample = resample()
        if np.unique(labels[sample]).size < n_classes:
            continue
        for name, value in _metric_values(labels[sample], probabilities[sample], with_accuracy).items():
            draws[name].append(value)
    tail = 100 * (1 - CI_LEVEL) / 2
    report = {"n": int(labels.size), "n_per_class": np.bincount(labels, minlength=n_classes).tolist(),
              "bootstrap": unit}
    for name, value in point.items():
        ci = np.percentile(draws[name], [tail, 100 - tail]).tolist() if draws[name] else [float("nan")] * 2
        report[name] = {"value": value, "ci95": ci}
    return report


def ratio_intervals(numerators: dict[str, np.ndarray], denominators: np.ndarray, *,
                    groups: np.ndarray | None = None, units: tuple[str, str] = ("group", "example"),
                    n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> tuple[dict[str, list[float]], dict]:
    """95% percentile-bootstrap intervals of ratio estimates ``sum(numerator) / sum(denominators)`` over examples.

    Each resample draws whole ``groups`` (one id per example) with replacement when there are at least
    ``MIN_BOOTSTRAP_GROUPS``, else examples, and divides the numerators' sums by the denominators' sum in it. Every
    numerator is divided by the same resampled sum, so a paired difference of two ratios is the ratio of the
    difference of their numerators: pass it as a numerator of its own. Returns ``({name: [low, high]}, {"unit":
    units[0] (groups) or units[1] (examples), "units": their count})``; resamples whose denominators sum to 0 are
    not counted (every bound NaN when none is left).
    """
    denominators = np.asarray(denominators, dtype=float)
    names = list(numerators)
    sums = np.column_stack([denominators] + [np.asarray(numerators[name], dtype=float) for name in names])
    members = _group_members(groups, denominators.size)
    if len(members) >= MIN_BOOTSTRAP_GROUPS:
        sums = np.stack([sums[member].sum(axis=0) for member in members])
        unit = {"unit": units[0], "units": len(members)}
    else:
        unit = {"unit": units[1], "units": int(denominators.size)}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        total = np.bincount(rng.integers(0, len(sums), len(sums)), minlength=len(sums)) @ sums
        if total[0] > 0:
            draws.append(total[1:] / total[0])
    tail = 100 * (1 - CI_LEVEL) / 2
    bounds = np.percentile(draws, [tail, 100 - tail], axis=0) if draws else np.full((2, len(names)), np.nan)
    return {name: bounds[:, column].tolist() for column, name in enumerate(names)}, unit


def _group_members(groups: np.ndarray | None, n: int) -> list[np.ndarray]:
    """The example indices of each group (none without ``groups``)."""
    if groups is None:
        return []
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
