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
conditional ``P(x_h | every visible base of the sequence)``, every hidden base summed out jointly, which is what a
masked LM sees. The chain is a product of factors ``P(x_i | context_i)``, and two hidden bases share a factor only
when they lie within ``order`` of each other with no N between, so the hidden bases split into independent
clusters (:func:`hidden_clusters`): hidden bases less than ``order + 1`` apart chained together, spanning from the
first to ``order`` positions past the last (the factors they enter; an N or the sequence's end cuts it). Each
cluster is summed out by a forward-backward pass over its positions, the state at a position being the fill of
the hidden bases among the ``order`` positions before it (4**u states for u of them), which gives each hidden
base's posterior marginal exactly, for runs of any length. Its cost (time, and memory: the messages are kept for the
backward pass) is the number of transitions, states x 4 at a hidden position: at most 4**(order + 1) per position,
set by the hidden bases within the order. A cluster over ``MAX_TRANSITIONS`` (the longest run of hidden bases
summed out exactly is 133 bases at order 6, 38 at order 7, 15 at order 8, 10 at order 9, 9 at orders 10 to 12)
is scored by
:func:`approximate_two_sided_bits` instead, and ``two_sided_bits`` says which bases were: each run of hidden
bases ``[s, e)`` summed out on its own given the true bases of every other (a run changes only the factors of
positions ``s .. e + k - 1``, so its fills' conditional is the product of those, normalized over all ``4**L``
fills), runs over ``MAX_EXACT_RUN`` bases scored in pieces of that length. It is exact where no two runs lie within
the order and no run is cut, and otherwise reads hidden bases the masked LM never sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

N_CODE = 4
CHUNK_BASES = 1 << 22
CONCENTRATIONS = (0.5, 2.0, 8.0, 32.0)
MAX_TRANSITIONS = 1 << 21  # forward-backward transitions of a cluster summed out exactly (17 bytes each, kept)
MAX_EXACT_RUN = 6  # hidden bases enumerated jointly by approximate_two_sided_bits: 4**6 = 4096 fills
FILL_ROWS = 1 << 18  # runs x fills enumerated at once by approximate_two_sided_bits (order 10, runs of 6: < 20 MiB)


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


def joined(sequences: Iterable[np.ndarray], size: int = CHUNK_BASES) -> Iterator[np.ndarray]:
    """``sequences`` (base codes), those shorter than ``size`` joined into pieces of about ``size`` bases with an
    N after each: no context crosses an N and no N is counted or scored, so counts and bits are those of the
    sequences one by one, while the costs paid per call (``count``'s ``4**(max_order + 1)`` bins per order, numpy's
    per-call overhead) are paid per piece: a genome split into thousands of position blocks is counted about as
    fast as one contig of the same length."""
    pending, held = [], 0
    for codes in sequences:
        codes = np.asarray(codes, dtype=np.uint8)
        if codes.size >= size:
            yield codes
            continue
        pending += [codes, np.full(1, N_CODE, dtype=np.uint8)]
        held += codes.size + 1
        if held >= size:
            yield np.concatenate(pending)
            pending, held = [], 0
    if pending:
        yield np.concatenate(pending)


def count(sequences: Iterable[np.ndarray], max_order: int) -> list[np.ndarray]:
    """``counts[q][c, x]``: how often base ``x`` follows order-q context ``c`` in ``sequences`` (base codes).

    Short sequences are counted together (:func:`joined`), long ones in pieces of ``CHUNK_BASES`` (each with the
    ``max_order`` bases before it as context), so memory stays bounded and the time follows the bases, not the
    number of sequences."""
    counts = [np.zeros(4 ** (q + 1), dtype=np.int64) for q in range(max_order + 1)]
    for codes in joined(sequences):
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


def hidden_clusters(codes: np.ndarray, hidden: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` arrays of the clusters of :func:`two_sided_bits`: hidden positions less than ``order + 1``
    apart with no N between them chained together, from the first one to ``order`` positions past the last one
    (cut at the next N or the end of ``codes``): every factor of the chain that a cluster's hidden bases enter."""
    positions = np.flatnonzero(hidden)
    gaps = np.diff(positions)
    joined = np.zeros(positions.size, dtype=bool)
    joined[1:] = (gaps <= order) & (valid_run(codes)[positions[1:]] >= gaps)
    index = np.arange(codes.size)
    next_n = np.minimum.accumulate(np.where(codes >= N_CODE, index, codes.size)[::-1])[::-1]
    is_last = np.ones(positions.size, dtype=bool)
    is_last[:-1] = ~joined[1:]
    return positions[~joined], np.minimum(positions[is_last] + order + 1, next_n[positions[is_last]])


def two_sided_bits(codes: np.ndarray, hidden: np.ndarray, tables: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Bits (-log2 p) of each ``hidden`` base of ``codes`` given the visible bases of ``codes`` (both sides; every
    hidden base summed out) under the chain ``tables`` (see the module docstring); NaN where not hidden or N. N
    bases are never hidden (they are visible, and break contexts as in :func:`score`). Also returns where the
    bases of clusters over ``MAX_TRANSITIONS`` were scored by :func:`approximate_two_sided_bits` instead (bool)."""
    codes = np.asarray(codes, dtype=np.uint8)
    hidden = np.asarray(hidden, dtype=bool) & (codes < N_CODE)
    order = len(tables) - 1
    bits = np.full(codes.size, np.nan)
    starts, ends = hidden_clusters(codes, hidden, order)
    lengths = ends - starts
    # every cluster position, and the forward-backward transitions it takes: 4**u states (u hidden bases among
    # the `order` positions before it), times 4 where it is hidden itself
    first = np.cumsum(lengths) - lengths
    at = np.repeat(starts, lengths) + np.arange(lengths.sum()) - np.repeat(first, lengths)
    hidden_before = np.concatenate([[0], np.cumsum(hidden)])
    states = hidden_before[at] - hidden_before[np.maximum(at - order, np.repeat(starts, lengths))]
    cost = np.add.reduceat(4 ** states * np.where(hidden[at], 4, 1), first) if at.size else np.zeros(0, np.int64)
    approximate = np.zeros(codes.size, dtype=bool)
    too_big = np.repeat(cost > MAX_TRANSITIONS, lengths)
    approximate[at[too_big]] = hidden[at[too_big]]
    if approximate.any():
        bits[approximate] = approximate_two_sided_bits(codes, approximate, tables)[approximate]
    exact = cost <= MAX_TRANSITIONS
    starts, lengths, cost = starts[exact], lengths[exact], cost[exact]
    context, run = contexts(codes, order)
    batch = np.cumsum(cost) // MAX_TRANSITIONS  # clusters run together: about MAX_TRANSITIONS at a time
    for number in np.unique(batch):
        _forward_backward(codes, hidden, tables, starts[batch == number], lengths[batch == number], context,
                          np.minimum(run, order), bits)
    return bits, approximate


def _forward_backward(codes: np.ndarray, hidden: np.ndarray, tables: list[np.ndarray], starts: np.ndarray,
                      lengths: np.ndarray, context: np.ndarray, run: np.ndarray, bits: np.ndarray) -> None:
    """:func:`two_sided_bits` of the clusters ``[start, start + length)``, written into ``bits``; ``context`` and
    ``run``: :func:`contexts` of ``codes`` at the chain's order.

    All clusters step through their positions together (step t: position start + t), longest first, so the
    clusters still running are always the first ones. A cluster's state is the fill of the hidden positions among
    the ``order`` positions before the current one (its ``u`` most recent first, ``slots``), held as 4**u
    messages laid end to end over the running clusters. Each state goes to the next one through the base at the
    position (4 fills where it is hidden, else its true base) with that position's factor; messages are rescaled
    per cluster and step (they only matter up to a constant). A hidden base's marginal is the sum, per fill, of
    forward message x factor x backward message over its step's transitions."""
    order = len(tables) - 1
    by_length = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[by_length], lengths[by_length]
    slots = np.zeros((starts.size, max(order, 1)), dtype=np.int64)  # positions of the state's hidden bases
    held = np.zeros(starts.size, dtype=np.int64)  # u per cluster
    forward = np.ones(starts.size)  # before the first position: one state per cluster, nothing hidden yet
    steps = []
    for step in range(int(lengths.max(initial=0))):
        running = int(np.count_nonzero(lengths > step))
        position = starts[:running] + step
        u = held[:running]
        cluster = np.repeat(np.arange(running, dtype=np.int32), 4 ** u)  # per state
        state = np.arange(cluster.size) - (np.cumsum(4 ** u) - 4 ** u)[cluster]
        # the context number of each state: the visible bases' digits, the held hidden bases' digits from the state
        in_state = np.arange(slots.shape[1]) < u[:, None]
        weight = np.where(in_state, 4 ** np.where(in_state, position[:, None] - 1 - slots[:running], 0), 0)
        state_context = (context[position] - (codes[slots[:running]] * weight).sum(axis=1))[cluster]
        for digit in range(int(u.max(initial=0))):
            state_context += (state >> 2 * digit) % 4 * weight[cluster, digit]
        is_hidden = hidden[position]
        fills = np.where(is_hidden, 4, 1)[cluster]
        source = np.repeat(np.arange(cluster.size, dtype=np.int32), fills)  # per transition
        owner = cluster[source]
        base = np.where(is_hidden[owner], np.arange(source.size) - np.repeat(np.cumsum(fills) - fills, fills),
                        codes[position][owner]).astype(np.int8)
        log_factor = np.empty(source.size)
        q = run[position][owner]
        for q_value in np.unique(q):
            rows = q == q_value
            log_factor[rows] = tables[q_value][state_context[source[rows]], base[rows]]
        factor = np.exp2(log_factor)
        # the next state: the oldest hidden base leaves once `order` positions back, this one joins if hidden
        leaves = (u > 0) & (slots[np.arange(running), np.maximum(u - 1, 0)] == position - order)
        kept = (state[source] % 4 ** (u - leaves)[owner]) * np.where(is_hidden, 4, 1)[owner]
        held[:running] = u - leaves + is_hidden
        next_size = 4 ** held[:running]
        target = ((np.cumsum(next_size) - next_size)[owner] + kept + np.where(is_hidden[owner], base, 0)
                  ).astype(np.int32)
        joining = np.flatnonzero(is_hidden)
        slots[joining, 1:] = slots[joining, :-1]
        slots[joining, 0] = position[joining]
        steps.append((position, is_hidden, cluster, source, base, factor, target, next_size.sum(),
                      forward[:cluster.size]))
        forward = _per_cluster_rescaled(np.bincount(target, forward[source] * factor, minlength=next_size.sum()),
                                        np.repeat(np.arange(running), next_size))
    backward = np.ones(0)
    for position, is_hidden, cluster, source, base, factor, target, size, forward in reversed(steps):
        after = np.ones(size)  # past a cluster's last position nothing is left to sum out
        after[:backward.size] = backward
        through = factor * after[target]
        owner = cluster[source]
        scored = is_hidden[owner]
        marginal = np.bincount(owner[scored] * 4 + base[scored], (forward[source] * through)[scored],
                               minlength=4 * position.size).reshape(-1, 4)
        true = codes[position[is_hidden]]
        rows = np.flatnonzero(is_hidden)
        bits[position[is_hidden]] = -np.log2(marginal[rows, true] / marginal[rows].sum(axis=1))
        backward = _per_cluster_rescaled(np.bincount(source, through, minlength=cluster.size), cluster)


def _per_cluster_rescaled(messages: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """``messages`` divided by their sum per ``cluster`` (each message's cluster)."""
    return messages / np.bincount(cluster, messages)[cluster]


def approximate_two_sided_bits(codes: np.ndarray, hidden: np.ndarray, tables: list[np.ndarray],
                               max_run: int = MAX_EXACT_RUN) -> np.ndarray:
    """Bits (-log2 p) of each ``hidden`` base of ``codes`` given every other base of ``codes``, the other hidden
    ones read as their true bases, and its own run (or piece of ``max_run`` bases) summed out (see the module
    docstring): :func:`two_sided_bits` for the clusters too big to sum out jointly; NaN where not hidden or N."""
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
    """:func:`approximate_two_sided_bits` for the hidden runs ``[s, s + length)`` at ``starts``, written into
    ``bits``."""
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

    def two_sided_bits(self, codes: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-log2 p of each ``hidden`` base given the visible bases on both sides, under the chosen order (NaN
        elsewhere), and where that was approximated; see :func:`two_sided_bits`."""
        return two_sided_bits(codes, hidden, self.tables[:self.order + 1])

    @classmethod
    def select(cls, train: Iterable[np.ndarray], validation: list[np.ndarray], max_order: int = 10,
               concentrations: tuple[float, ...] = CONCENTRATIONS) -> "MarkovModel":
        """Fit on ``train``; choose the order and concentration with the fewest validation bits/base."""
        counts = count(train, max_order)
        validation = list(joined(validation))  # scored together: the same bits, fewer calls
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
