"""Supervised variant classification: labelled VCF -> features from the model -> logistic regression.

Labels come from one INFO field (:mod:`genoformer.tasks.variant_labels`). Features of a variant, from
the same passes as ``score-variants``: the change of the local hidden state (ALT minus REF) on each strand, the
LLR on each strand and the embedding distances. Examples are split by interval blocks or by contig
(:mod:`genoformer.tasks.splits`). Next to the model's classifier stand a k-mer context baseline (same
regression on the k-mers around the variant and those the ALT creates or destroys), the zero-shot score
(-LLR, no training) and, next to it, the -LLR of the genome's base composition alone (a zero-shot score that
only prefers common bases gets that far), all evaluated on the same held-out variants with bootstrap CIs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genoformer.errors import InputError
from genoformer.io.fasta import encode_bases
from genoformer.tasks.baselines import composition_llr, variant_context_features
from genoformer.tasks.linear import LinearModel, fit_linear
from genoformer.tasks.metrics import classification_metrics
from genoformer.tasks.homology import VARIANT_FLANK, repeat_families
from genoformer.tasks.splits import assign_split, split_families, split_groups, split_names, split_summary
from genoformer.tasks.variant_labels import VariantLabels
from genoformer.tasks.variants import VariantScores, score_variants

log = logging.getLogger(__name__)


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


def check_classes_left(path, variants, labels: VariantLabels, usable: np.ndarray) -> None:
    """InputError when leaving out the labelled ``variants`` without features (``usable`` False) leaves a class
    with fewer than 2, naming the file, the counts and the first variant of that class left out."""
    kept = np.bincount(labels.labels[usable], minlength=2)
    for label in np.flatnonzero(kept < 2):
        first = variants[int(np.flatnonzero(~usable & (labels.labels == label))[0])]
        raise InputError(
            f"{path}: {int((~usable & (labels.labels == label)).sum())} of the {int((labels.labels == label).sum())} "
            f"variants of class {labels.classes[label]!r} have no LLR (an N allele, an allele longer than the window "
            f"allows, or no whole token over it; first record {first.record}, {first.contig}:{first.pos} "
            f"{first.ref[:20]}>{first.alt[:20]}), leaving {kept[label]}; each class needs at least 2 (a longer "
            "--window holds longer alleles)")


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
    """Fit and evaluate the model's classifier, the k-mer baseline, the zero-shot LLR and the base-composition
    LLR next to it on one split (whose test side leaves out variants with a near-identical copy in training,
    unless ``keep_copies``).

    ``scoring`` holds the ``score_variants`` window options (``window``, ``step``, ``mask_spacing``).
    """
    variants = [variant_set.variants[i] for i in labels.indices]
    scores = score_variants(variants, reference, encoder, keep_deltas=True, **scoring)
    features = model_features(scores)
    usable = np.isfinite(features).all(axis=1)
    if not usable.all():
        log.info("%d labelled variants have no LLR (N allele or no whole token over it) and are left out",
                 int((~usable).sum()))
        check_classes_left(variant_set.path, variants, labels, usable)
    variants = [v for v, keep in zip(variants, usable) if keep]
    features, y, scores_llr = features[usable], labels.labels[usable], scores.llr[usable].mean(axis=1)
    composition = composition_llr(variants, reference)
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
            "composition_neg_llr": classification_metrics(y[is_test], -composition[is_test], groups=groups[is_test],
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
        "GF_LLR": scores_llr, "composition_LLR": composition,
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
