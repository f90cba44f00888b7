"""Logistic regression on standardized features (the linear probe and the baselines), stored as plain JSON.

The L2 strength C is chosen by cross-validation on the training examples with folds that keep each group (an
interval block or contig) whole, so the choice never sees sequence near a validation example. The search tries
``C_GRID`` (decades 0.001 .. 10), then, while its smallest or largest C has the lowest loss, the next decade
past it, never past ``C_LIMITS`` (1e-6 .. 1e4: below, the weights are all but zero; above, all but unpenalized);
a choice at a limit is logged. The fitted model is a handful of arrays (no pickle): ``to_json``/``from_json``
and a numpy ``predict_proba``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
C_LIMITS = (1e-6, 1e4)  # the search extends C_GRID a decade at a time up to these
MAX_ITER = 2000


@dataclass
class LinearModel:
    """A fitted logistic regression: ``classes`` (names), standardization ``mean``/``scale``, ``coef``,
    ``intercept`` (one row for two classes, K rows for K > 2), and the chosen ``C``."""

    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    C: float

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, K]`` of feature rows."""
        logits = ((np.asarray(features, dtype=float) - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            positive = 1 / (1 + np.exp(-logits[:, 0]))
            return np.stack([1 - positive, positive], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def to_json(self) -> dict:
        """A JSON-ready dict that ``from_json`` turns back into this model."""
        return {"type": "logistic_regression", "classes": list(self.classes), "C": self.C,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "LinearModel":
        """Rebuild a model written by ``to_json``."""
        return cls(classes=list(data["classes"]), mean=np.asarray(data["mean"]), scale=np.asarray(data["scale"]),
                   coef=np.asarray(data["coef"]), intercept=np.asarray(data["intercept"]), C=float(data["C"]))


def _group_folds(labels: np.ndarray, groups: np.ndarray, seed: int, families: np.ndarray | None) -> list | None:
    """Up to 3 cross-validation folds that keep groups whole and see every class on both sides, else None; an
    example with a repeat-family member (``families``) in a fold's training part is left out of its validation
    part."""
    n_splits = min(3, np.unique(groups).size, int(np.bincount(labels).min()))
    if n_splits < 2:
        return None
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(labels.size), labels, groups))
    if families is not None:
        folds = [(train, test[~np.isin(families[test], families[train])]) for train, test in folds]
    n_classes = np.unique(labels).size
    if all(np.unique(labels[part]).size == n_classes for fold in folds for part in fold):
        return folds
    return None


def fit_linear(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, classes: list[str],
               seed: int = 0, families: np.ndarray | None = None) -> LinearModel:
    """Fit a logistic regression of ``labels`` (0..K-1, names in ``classes``) on ``features``.

    C comes from ``choose_C`` under group-keeping cross-validation (``groups``: block or contig of each example;
    ``families``: repeat copies, kept out of a fold's validation part when trained on); with too few groups or
    examples for that, C = 1.
    """
    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels, dtype=np.int64)
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    folds = _group_folds(labels, np.asarray(groups), seed, None if families is None else np.asarray(families))
    if folds is None:
        log.info("too few groups or examples for cross-validation of C; using C = 1")
        chosen = 1.0
    else:
        chosen = choose_C(scaled, labels, folds)
    model = LogisticRegression(C=chosen, max_iter=MAX_ITER).fit(scaled, labels)
    return LinearModel(classes=list(classes), mean=scaler.mean_, scale=scaler.scale_, coef=model.coef_,
                       intercept=model.intercept_, C=chosen)


def choose_C(features: np.ndarray, labels: np.ndarray, folds: list) -> float:
    """The C of lowest mean held-out log-loss over ``folds`` (ties go to the smaller C): ``C_GRID`` first, then
    a decade past its smallest or largest C while that one is best, up to ``C_LIMITS``."""
    losses = {C: _mean_held_out_log_loss(features, labels, folds, C) for C in C_GRID}
    while True:
        best = min(sorted(losses), key=losses.__getitem__)
        if best == min(losses) and best > C_LIMITS[0]:
            step = -1
        elif best == max(losses) and best < C_LIMITS[1]:
            step = 1
        else:
            break
        C = 10.0 ** (round(math.log10(best)) + step)
        losses[C] = _mean_held_out_log_loss(features, labels, folds, C)
    if best in C_LIMITS:
        log.info("C = %g, a limit of the search, has the lowest cross-validated log-loss (%.4f); C past it is "
                 "not tried", best, losses[best])
    return best


def _mean_held_out_log_loss(features, labels, folds, C: float) -> float:
    """Held-out log-loss of a fit with ``C``, averaged over ``folds`` ((train, test) index pairs)."""
    return float(np.mean([_held_out_log_loss(features, labels, train, test, C) for train, test in folds]))


def _held_out_log_loss(features, labels, train, test, C: float) -> float:
    model = LogisticRegression(C=C, max_iter=MAX_ITER).fit(features[train], labels[train])
    return log_loss(labels[test], model.predict_proba(features[test]), labels=model.classes_)
