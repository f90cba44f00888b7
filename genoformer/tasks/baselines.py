"""Baselines without the model: k-mer spectra of a window, k-mer context features of a variant, and zero-shot
Markov-chain log-likelihood ratios of a variant.

The first two feed the same logistic regression as the model's features (:mod:`genoformer.tasks.linear`), on the
same splits, so the model's metrics always stand next to what plain sequence composition achieves. The LLRs stand
next to the model's zero-shot GF_LLR: :func:`composition_llr`, the genome's base composition alone, tells how much
of a zero-shot ranking any score that prefers common bases would reach.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genoformer.io.fasta import N_CODE, encode_bases
from genoformer.train.markov import MarkovModel, interpolate


def kmer_counts(codes: np.ndarray, k: int) -> np.ndarray:
    """Counts (``[4**k]`` float64) of every k-mer over ACGT in base codes; k-mers touching an N are not counted.

    K-mer index = base-4 number of its codes (first base most significant), as in the token vocabulary.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size < k:
        return np.zeros(4**k)
    windows = sliding_window_view(codes, k)
    valid = (windows < N_CODE).all(axis=1)
    index = windows[valid] @ (4 ** np.arange(k - 1, -1, -1))
    return np.bincount(index, minlength=4**k).astype(np.float64)


def kmer_spectrum(codes: np.ndarray, k: int) -> np.ndarray:
    """K-mer frequencies (counts divided by their sum; all zero for a window without a whole ACGT k-mer)."""
    counts = kmer_counts(codes, k)
    total = counts.sum()
    return counts / total if total else counts


def spectra(sequences: list[np.ndarray], k: int) -> np.ndarray:
    """``[n, 4**k]`` k-mer spectra of many windows (the region baseline's features)."""
    return np.stack([kmer_spectrum(codes, k) for codes in sequences]) if sequences else np.zeros((0, 4**k))


def variant_context_features(ref_context: np.ndarray, alt_context: np.ndarray, k: int) -> np.ndarray:
    """Features of one variant from its flanks alone: k-mer counts of the reference context, and the k-mers the
    alternate allele creates minus those it destroys (alt counts minus ref counts): ``[2 * 4**k]``."""
    ref_counts = kmer_counts(ref_context, k)
    return np.concatenate([ref_counts, kmer_counts(alt_context, k) - ref_counts])


def markov_llr(variants, reference, markov, order: int) -> np.ndarray:
    """Zero-shot log-likelihood ratio (nats) of each variant under an order-``order`` Markov chain
    (:class:`genoformer.train.markov.MarkovModel`): log P(ALT) - log P(REF) over the allele and the ``order`` bases
    after it, each base predicted from the ``order`` bases before it. The model-free counterpart of GF_LLR. NaN
    where the ``order`` bases before or after the allele run past the contig, or an N is among the bases scored."""
    scores = np.full(len(variants), np.nan)
    for index, variant in enumerate(variants):
        start = variant.pos - 1 - order
        end = variant.pos - 1 + len(variant.ref) + order
        if start < 0 or end > reference.contigs[variant.contig]:
            continue
        ref = reference.codes(variant.contig, start, end)[0]
        alt = np.concatenate([ref[:order], encode_bases(variant.alt.upper()), ref[order + len(variant.ref):]])
        bits = [np.sum(markov.bits(codes, order)[order:]) for codes in (ref, alt)]
        scores[index] = (bits[0] - bits[1]) * np.log(2)
    return scores


def genome_composition(reference) -> MarkovModel:
    """The order-0 Markov chain of ``reference``'s base composition (every contig, N left out; counted from the
    file's raw bytes, ``Reference.base_counts``), smoothed towards uniform by one pseudo-count
    (``markov.interpolate``)."""
    counts = np.sum([reference.base_counts(contig) for contig in reference.contigs], axis=0)
    return MarkovModel(order=0, concentration=1.0, tables=interpolate([counts.reshape(1, 4)], 0, 1.0))


def composition_llr(variants, reference) -> np.ndarray:
    """Zero-shot log-likelihood ratio (nats) of each variant under the genome's base composition: log P(ALT) -
    log P(REF) of the allele's bases, each drawn from the genome-wide base frequencies. Ranks variants by the
    bases they bring, nothing else: the floor a context-aware zero-shot score must clear."""
    return markov_llr(variants, reference, genome_composition(reference), 0)
