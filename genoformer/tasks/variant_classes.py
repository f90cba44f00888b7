"""Supervised variant classification: labelled VCF -> features from the model -> logistic regression.

Labels come from one INFO field. ``positive``/``negative`` name the values of each class (other values are left
out and counted); without them the field must hold 0/1 (or be a Flag: present = 1). Features of a variant, from
the same passes as ``score-variants``: the change of the local hidden state (ALT minus REF) on each strand, the
LLR on each strand and the embedding distances. Examples are split by interval blocks or by contig
(:mod:`genoformer.tasks.splits`). Next to the model's classifier stand a k-mer context baseline (same
regression on the k-mers around the variant and those the ALT creates or destroys) and the zero-shot score
(-LLR, no training), all evaluated on the same held-out variants with bootstrap CIs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genoformer.errors import ConfigError, InputError
from genoformer.io.fasta import encode_bases
from genoformer.tasks.baselines import variant_context_features
from genoformer.tasks.linear import LinearModel, fit_linear
from genoformer.tasks.metrics import classification_metrics
from genoformer.tasks.homology import VARIANT_FLANK, repeat_families
from genoformer.tasks.splits import assign_split, split_families, split_groups, split_names, split_summary
from genoformer.tasks.variants import VariantScores, score_variants

log = logging.getLogger(__name__)


@dataclass
class VariantLabels:
    """Which variants of a VariantSet are labelled (``indices``), their ``labels`` (0/1) and class names."""

    indices: np.ndarray
    labels: np.ndarray
    classes: list[str]
    unlabelled: int

    def subsample(self, max_per_class: int | None, seed: int) -> "VariantLabels":
        """At most ``max_per_class`` variants of each class (seeded sample, file order kept)."""
        if max_per_class is None:
            return self
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[:max_per_class]
                                       for c in (0, 1)]))
        return VariantLabels(self.indices[keep], self.labels[keep], self.classes, self.unlabelled)


def _value_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _named_class(value: str | None, positive: set[str], negative: set[str]) -> int | None:
    """1 or 0 for a value named as positive or negative; when only one class is named, the other is the rest."""
    if value is None:
        return None
    if value in positive or (value not in negative and not positive):
        return 1
    if value in negative or not negative:
        return 0
    return None


def _has_value(value) -> bool:
    """False for a missing INFO value (None, or a tuple of Nones), as pysam gives '.'."""
    return value is not None and not (isinstance(value, tuple) and all(item is None for item in value))


def _check_one_label_per_variant(variant_set, labels: list[int | None], classes: list[str], field: str) -> None:
    """Raise InputError when one variant (contig, position, REF, ALT) is labelled with both classes, naming both
    records: the two copies would land on both sides of the classifier at once."""
    first: dict[tuple, tuple[int, object]] = {}
    for variant, label in zip(variant_set.variants, labels):
        if label is None:
            continue
        seen = first.setdefault((variant.contig, variant.pos, variant.ref.upper(), variant.alt.upper()),
                                (label, variant))
        if seen[0] != label:
            raise InputError(f"{variant_set.path} records {seen[1].record} and {variant.record}: variant "
                             f"{variant.contig}:{variant.pos} {variant.ref}>{variant.alt} has INFO {field} of both "
                             f"classes ({classes[seen[0]]!r} and {classes[label]!r}); give each variant one label")


def variant_labels(variant_set, field: str, positive: list[str] | None = None,
                   negative: list[str] | None = None) -> VariantLabels:
    """Read the 0/1 label of every variant from INFO ``field`` (see the module docstring)."""
    header = variant_set.header
    if field not in header.info:
        declared = ", ".join(header.info) or "none"
        raise InputError(f"{variant_set.path}: INFO field '{field}' is not declared in the header (declared: {declared})")
    flag = header.info[field].type == "Flag"
    values = [("1" if field in v.info else "0") if flag else
              (_value_text(v.info[field]) if _has_value(v.info.get(field)) else None) for v in variant_set.variants]
    empty = [v for v in variant_set.variants if not flag and field in v.info and not _has_value(v.info[field])]
    if empty:  # htslib reads '.' and a value that is not of the declared Type (LAB=abc for an Integer) as missing
        log.warning("%s record %d (%s:%d): INFO %s has no value ('.', or text that is not a valid %s); %d such "
                    "variant(s) left out as unlabelled", variant_set.path, empty[0].record, empty[0].contig,
                    empty[0].pos, field, header.info[field].type, len(empty))
    if positive or negative:
        positive, negative = set(positive or ()), set(negative or ())
        if positive & negative:
            raise ConfigError(f"label value(s) {', '.join(sorted(positive & negative))} named as both classes")
        labels = [_named_class(value, positive, negative) for value in values]
        classes = ["|".join(sorted(negative)) or "other", "|".join(sorted(positive)) or "other"]
    else:
        found = sorted({value for value in values if value is not None})
        if not set(found) <= {"0", "1"}:
            shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
            raise ConfigError(f"{variant_set.path}: INFO field '{field}' has values {shown}; name the classes with "
                              "--positive and --negative (or use a 0/1 field)")
        labels = [None if value is None else int(value) for value in values]
        classes = ["0", "1"]
    _check_one_label_per_variant(variant_set, labels, classes, field)
    indices = np.array([i for i, label in enumerate(labels) if label is not None], dtype=np.int64)
    result = VariantLabels(indices, np.array([labels[i] for i in indices], dtype=np.int64), classes,
                           len(labels) - indices.size)
    counts = np.bincount(result.labels, minlength=2)
    if counts.min() < 2:
        raise InputError(f"{variant_set.path}: INFO field '{field}' gives {counts[0]} {classes[0]} and {counts[1]} "
                         f"{classes[1]} variants; each class needs at least 2")
    return result


def model_features(scores: VariantScores) -> np.ndarray:
    """``[n, 2 * dim + 6]``: local hidden-state change per strand, LLR, local and pooled distances per strand."""
    n = scores.llr.shape[0]
    return np.concatenate([scores.local_delta.reshape(n, -1), scores.llr, scores.emb_local, scores.emb_pooled],
                          axis=1)


def variant_contexts(variants, reference, flank: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Base codes of ``flank`` bp on either side of each variant with its REF and with its ALT allele."""
    contexts = []
    for variant in variants:
        start = max(0, variant.pos - 1 - flank)
        end = min(reference.contigs[variant.contig], variant.pos - 1 + len(variant.ref) + flank)
        context = reference.codes(variant.contig, start, end)[0]
        offset = variant.pos - 1 - start
        alt = np.concatenate([context[:offset], encode_bases(variant.alt.upper()),
                              context[offset + len(variant.ref):]])
        contexts.append((context, alt))
    return contexts


def context_features(contexts: list[tuple[np.ndarray, np.ndarray]], k: int) -> np.ndarray:
    """k-mer context baseline features of each variant from its :func:`variant_contexts`."""
    return np.stack([variant_context_features(context, alt, k) for context, alt in contexts])


@dataclass
class VariantClassification:
    """Everything ``classify-variants`` reports: metrics, per-variant predictions, the fitted classifiers."""

    metrics: dict
    predictions: pd.DataFrame
    model: LinearModel
    baseline: LinearModel


def classify_variants(variant_set, labels: VariantLabels, reference, encoder, *, scoring: dict, split: str,
                      block: int, test_fraction: float, flank: int, kmer: int, n_bootstrap: int,
                      seed: int, keep_copies: bool = False) -> VariantClassification:
    """Fit and evaluate the model's classifier, the k-mer baseline and the zero-shot LLR on one split (whose test
    side leaves out variants with a near-identical copy in training, unless ``keep_copies``).

    ``scoring`` holds the ``score_variants`` window options (``window``, ``step``, ``mask_spacing``).
    """
    variants = [variant_set.variants[i] for i in labels.indices]
    scores = score_variants(variants, reference, encoder, keep_deltas=True, **scoring)
    features = model_features(scores)
    usable = np.isfinite(features).all(axis=1)
    if not usable.all():
        log.info("%d labelled variants have no LLR (N allele or no whole token over it) and are left out",
                 int((~usable).sum()))
    variants = [v for v, keep in zip(variants, usable) if keep]
    features, y, scores_llr = features[usable], labels.labels[usable], scores.llr[usable].mean(axis=1)
    contexts = variant_contexts(variants, reference, flank)
    baseline_features = context_features(contexts, kmer)
    contigs = np.array([v.contig for v in variants])
    positions = np.array([v.pos for v in variants])
    method = split if split != "auto" else ("contig" if np.unique(contigs).size >= 3 else "blocks")
    groups = split_groups(contigs, positions, method=method, block=block)
    starts = np.maximum(positions - 1 - VARIANT_FLANK, 0)
    ends = np.minimum([v.pos - 1 + len(v.ref) + VARIANT_FLANK for v in variants],
                      [reference.contigs[v.contig] for v in variants])
    found = repeat_families(reference, contigs, starts, ends)
    families = split_families(found, keep_copies)
    train, is_test = assign_split(groups, np.array(labels.classes)[y], test_fraction=test_fraction, seed=seed,
                                  families=families)
    model = fit_linear(features[train], y[train], groups[train], labels.classes, seed, families[train])
    baseline = fit_linear(baseline_features[train], y[train], groups[train], labels.classes, seed, families[train])
    model_prob = model.predict_proba(features)[:, 1]
    baseline_prob = baseline.predict_proba(baseline_features)[:, 1]
    metrics = {
        "classes": {"negative": labels.classes[0], "positive": labels.classes[1]},
        "split": split_summary(method, block, test_fraction, seed, groups, train, is_test, found, keep_copies),
        "left_out": {"unlabelled": labels.unlabelled, "no_llr": int((~usable).sum())},
        "test": {
            "model_probe": classification_metrics(y[is_test], np.stack([1 - model_prob, model_prob], 1)[is_test],
                                                  groups=groups[is_test], n_bootstrap=n_bootstrap, seed=seed),
            "kmer_baseline": classification_metrics(
                y[is_test], np.stack([1 - baseline_prob, baseline_prob], 1)[is_test], groups=groups[is_test],
                n_bootstrap=n_bootstrap, seed=seed),
            "zero_shot_neg_llr": classification_metrics(y[is_test], -scores_llr[is_test], groups=groups[is_test],
                                                        n_bootstrap=n_bootstrap, seed=seed),
        },
        "zero_shot_neg_llr_all": classification_metrics(y, -scores_llr, groups=groups, n_bootstrap=n_bootstrap,
                                                        seed=seed),
        "features": {"model": f"local hidden-state change per strand (2 x {encoder.model.config.dim}), LLR, "
                              "local and pooled embedding distance per strand",
                     "kmer_baseline": f"{kmer}-mer counts of +-{flank} bp of reference context and their change "
                                      "under the ALT allele"},
        "C": {"model_probe": model.C, "kmer_baseline": baseline.C},
    }
    predictions = pd.DataFrame({
        "contig": contigs, "pos": positions, "ref": [v.ref for v in variants], "alt": [v.alt for v in variants],
        "record": [v.record for v in variants], "label": np.array(labels.classes)[y],
        "split": split_names(train, is_test), "prob_model": model_prob, "prob_kmer": baseline_prob,
        "GF_LLR": scores_llr,
    })
    return VariantClassification(metrics, predictions, model, baseline)


def predict_variants(variants, reference, encoder, model: LinearModel, *,
                     scoring: dict) -> tuple[VariantScores, np.ndarray]:
    """Score ``variants``; return the scores and the positive-class probability of the fitted ``model`` (NaN
    where a variant has no features)."""
    scores = score_variants(variants, reference, encoder, keep_deltas=True, **scoring)
    features = model_features(scores)
    usable = np.isfinite(features).all(axis=1)
    probability = np.full(len(variants), np.nan)
    if usable.any():
        probability[usable] = model.predict_proba(features[usable])[:, 1]
    return scores, probability
