"""Order-k Markov chains over bases: the baseline that a DNA language model has to beat.

An order-``k`` model predicts a base from the ``k`` bases before it. Counts of every (context, base) pair are
taken with numpy (``bincount`` over base-4 context numbers) for all orders ``0..max_order`` at once. Smoothing is
interpolated: the estimate of order ``q`` is the counts of that order with a Dirichlet prior of strength
``concentration`` centred on the order ``q - 1`` estimate (order -1 is uniform), so
``P_q(x | c) = (n(c, x) + a * P_{q-1}(x | c')) / (n(c) + a)`` with ``c'`` the ``q - 1`` most recent bases of ``c``.
Unseen long contexts therefore fall back smoothly to shorter ones, and every probability is positive.

A context never reaches across an N or the start of the sequence given: a base with only ``j < k`` valid bases
before it is predicted by the order-``j`` estimate. N bases are never scored. ``MarkovModel.select`` fits on the
training sequences and picks the order (0..max_order) and the concentration with the fewest bits per base on the
validation sequences.

The same fitted chain also scores a hidden base from *both* sides (:func:`two_sided_bits`): the chain's exact
conditional of the base given every other base of its sequence, its own hidden run summed out. Other hidden
bases are read as their true bases, which a masked LM never sees (summing them all out at once would take a
forward-backward pass over the 4**k contexts). A run of hidden bases ``[s, e)`` changes only the factors
``P(x_i | context)`` of positions ``s .. e + k - 1``, so the conditional of each fill of the run is the product
of those factors, normalized over all ``4**L`` fills, and a base's probability is the sum over the fills that
hold it. Runs longer than ``MAX_EXACT_RUN`` bases are scored in pieces of that length, each given the true
bases of the other pieces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

N_CODE = 4
CHUNK_BASES = 1 << 22
CONCENTRATIONS = (0.5, 2.0, 8.0, 32.0)
MAX_EXACT_RUN = 6  # hidden bases enumerated jointly by two_sided_bits: 4**6 = 4096 fills
FILL_ROWS = 1 << 18  # runs x fills enumerated at once by two_sided_bits (order 10, runs of 6: under 20 MiB)


def valid_run(codes: np.ndarray) -> np.ndarray:
    """For each position, how many consecutive non-N bases come right before it in ``codes``."""
    index = np.arange(codes.size)
    last_n = np.maximum.accumulate(np.where(codes >= N_CODE, index, -1))
    run = np.zeros(codes.size, dtype=np.int64)
    run[1:] = index[:-1] - last_n[:-1]
    return run


def contexts(codes: np.ndarray, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the context number of its (up to) ``max_order`` preceding valid bases, most recent base as
    the lowest base-4 digit (so ``context % 4**q`` is the order-q context), and how many bases it holds."""
    run = np.minimum(valid_run(codes), max_order)
    context = np.zeros(codes.size, dtype=np.int64)
    for back in range(1, max_order + 1):
        previous = np.zeros(codes.size, dtype=np.int64)
        previous[back:] = codes[:-back]
        context += np.where(run >= back, previous, 0) * 4 ** (back - 1)
    return context, run


def count(sequences: Iterable[np.ndarray], max_order: int) -> list[np.ndarray]:
    """``counts[q][c, x]``: how often base ``x`` follows order-q context ``c`` in ``sequences`` (base codes).

    Long sequences are counted in pieces of ``CHUNK_BASES`` (each with the ``max_order`` bases before it as
    context), so memory stays bounded."""
    counts = [np.zeros(4 ** (q + 1), dtype=np.int64) for q in range(max_order + 1)]
    for codes in sequences:
        codes = np.asarray(codes, dtype=np.uint8)
        for start in range(0, codes.size, CHUNK_BASES):
            first = max(0, start - max_order)
            piece = codes[first:start + CHUNK_BASES]
            context, run = contexts(piece, max_order)
            counted = np.arange(piece.size) >= start - first
            valid = (piece < N_CODE) & counted
            for q in range(max_order + 1):
                keep = valid & (run >= q)
                counts[q] += np.bincount((context[keep] % 4 ** q) * 4 + piece[keep], minlength=4 ** (q + 1))
    return [c.reshape(4 ** q, 4) for q, c in enumerate(counts)]


def interpolate(counts: list[np.ndarray], order: int, concentration: float) -> list[np.ndarray]:
    """log2 probability tables ``[4**q, 4]`` for orders ``0..order`` (see the module docstring)."""
    tables, lower = [], np.full((1, 4), 0.25)
    for q in range(order + 1):
        prior = lower[np.arange(4 ** q) % max(1, 4 ** (q - 1))]
        n = counts[q]
        probs = (n + concentration * prior) / (n.sum(axis=1, keepdims=True) + concentration)
        tables.append(np.log2(probs))
        lower = probs
    return tables


def score(codes: np.ndarray, tables: list[np.ndarray],
          context_run: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Bits (-log2 p) of every base of ``codes`` under the model ``tables``; NaN at N bases.

    ``context_run``: ``contexts(codes, m)`` for any ``m >= order``, to reuse across orders.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    order = len(tables) - 1
    context, run = context_run if context_run is not None else contexts(codes, order)
    run = np.minimum(run, order)
    bits = np.full(codes.size, np.nan)
    valid = codes < N_CODE
    for q, table in enumerate(tables):
        at = valid & (run == q)
        bits[at] = -table[context[at] % 4 ** q, codes[at]]
    return bits


def hidden_runs(hidden: np.ndarray, max_run: int = MAX_EXACT_RUN) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive True in ``hidden``, runs longer than ``max_run`` cut into
    pieces of ``max_run`` (the last one shorter)."""
    padded = np.concatenate([[False], np.asarray(hidden, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(start, min(start + max_run, end)) for start, end in zip(edges[::2], edges[1::2])
            for start in range(start, end, max_run)]


def two_sided_bits(codes: np.ndarray, hidden: np.ndarray, tables: list[np.ndarray],
                   max_run: int = MAX_EXACT_RUN) -> np.ndarray:
    """Bits (-log2 p) of each ``hidden`` base of ``codes`` given every other base of ``codes`` (both sides)
    under the chain ``tables`` (see the module docstring); NaN where not hidden or N. N bases are never hidden
    (they are visible, and break contexts as in :func:`score`)."""
    codes = np.asarray(codes, dtype=np.uint8)
    hidden = np.asarray(hidden, dtype=bool) & (codes < N_CODE)
    order = len(tables) - 1
    run_length = np.minimum(valid_run(codes), order)  # fills are never N, so context lengths stay put
    bits = np.full(codes.size, np.nan)
    runs_by_length: dict[int, list[int]] = {}
    for start, end in hidden_runs(hidden, max_run):
        runs_by_length.setdefault(end - start, []).append(start)
    for length, all_starts in runs_by_length.items():
        per_step = max(1, FILL_ROWS // 4 ** length)  # memory stays bounded whatever the number of runs
        for first in range(0, len(all_starts), per_step):
            _score_runs(codes, np.asarray(all_starts[first:first + per_step]), length, tables, run_length, bits)
    return bits


def _score_runs(codes: np.ndarray, starts: np.ndarray, length: int, tables: list[np.ndarray],
                run_length: np.ndarray, bits: np.ndarray) -> None:
    """:func:`two_sided_bits` for the hidden runs ``[s, s + length)`` at ``starts``, written into ``bits``."""
    order = len(tables) - 1
    fills = (np.arange(4 ** length)[:, None] // 4 ** np.arange(length)[::-1]) % 4  # [F, L], first base slowest
    span = np.arange(-order, length + order)  # the run, its contexts and the positions it is context of
    at = starts[:, None] + span  # [R, S]
    inside = (at >= 0) & (at < codes.size)
    bases = np.broadcast_to(np.where(inside, codes[np.clip(at, 0, codes.size - 1)], N_CODE)[:, None, :],
                            (len(starts), fills.shape[0], span.size)).copy()  # [R, F, S]
    bases[:, :, order:order + length] = fills
    log_joint = np.zeros((len(starts), fills.shape[0]))
    for offset in range(order, span.size):  # positions s .. e + order - 1: the factors the run changes
        position = np.clip(at[:, offset], 0, codes.size - 1)
        scored = inside[:, offset] & (codes[position] < N_CODE)
        q = np.where(scored, run_length[position], 0)
        context = np.zeros(log_joint.shape, dtype=np.int64)
        for back in range(1, order + 1):
            digit = np.where((q >= back)[:, None], bases[:, :, offset - back], 0)
            context += digit.astype(np.int64) * 4 ** (back - 1)
        for q_value in np.unique(q[scored]):
            rows = scored & (q == q_value)
            log_joint[rows] += tables[q_value][context[rows], bases[rows, :, offset]]
    log_joint -= log_joint.max(axis=1, keepdims=True)
    weights = np.exp2(log_joint)
    weights /= weights.sum(axis=1, keepdims=True)  # [R, F]
    truth = codes[starts[:, None] + np.arange(length)]  # [R, L]
    holds_truth = fills[None, :, :] == truth[:, None, :]  # [R, F, L]
    marginal = np.einsum("rf,rfl->rl", weights, holds_truth)
    bits[starts[:, None] + np.arange(length)] = -np.log2(marginal)


@dataclass
class MarkovModel:
    """A fitted, smoothed Markov chain: ``tables`` for orders ``0..max_order`` (the order-q model is the first
    q + 1 tables), ``order`` the chosen one, ``validation_bits`` each order's best validation bits/base."""

    order: int
    concentration: float
    tables: list[np.ndarray] = field(repr=False)
    validation_bits: dict[int, float] = field(default_factory=dict)

    @property
    def max_order(self) -> int:
        """The highest order counted."""
        return len(self.tables) - 1

    def bits(self, codes: np.ndarray, order: int | None = None,
             context_run: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """-log2 p of each base of ``codes`` given the bases before it in ``codes`` (NaN at N), under the
        chosen order or ``order``; ``context_run`` as in :func:`score`."""
        order = self.order if order is None else order
        return score(codes, self.tables[:order + 1], context_run)

    def two_sided_bits(self, codes: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """-log2 p of each ``hidden`` base given the visible bases on both sides, under the chosen order (NaN
        elsewhere); see :func:`two_sided_bits`."""
        return two_sided_bits(codes, hidden, self.tables[:self.order + 1])

    @classmethod
    def select(cls, train: Iterable[np.ndarray], validation: list[np.ndarray], max_order: int = 10,
               concentrations: tuple[float, ...] = CONCENTRATIONS) -> "MarkovModel":
        """Fit on ``train``; choose the order and concentration with the fewest validation bits/base."""
        counts = count(train, max_order)
        validation = [np.asarray(codes, dtype=np.uint8) for codes in validation]
        validation_contexts = [contexts(codes, max_order) for codes in validation]
        best, validation_bits = None, {}
        for concentration in concentrations:
            tables = interpolate(counts, max_order, concentration)
            for order in range(max_order + 1):
                bits = np.concatenate([score(codes, tables[:order + 1], context_run)
                                       for codes, context_run in zip(validation, validation_contexts)])
                mean = float(np.nanmean(bits))
                validation_bits[order] = min(mean, validation_bits.get(order, np.inf))
                if best is None or mean < best[0]:
                    best = (mean, order, concentration, tables)
        log.info("Markov baseline: order %d, concentration %g, %.4f bits/base on validation",
                 best[1], best[2], best[0])
        return cls(best[1], best[2], best[3], validation_bits)
