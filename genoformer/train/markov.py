"""Order-k Markov chains over bases: the baseline that a DNA language model has to beat.

An order-``k`` model predicts a base from the ``k`` bases before it. Counts of every (context, base) pair are
taken with numpy (``bincount`` over base-4 context numbers) for all orders ``0..max_order`` at once. Smoothing is
interpolated: the estimate of order ``q`` is the counts of that order with a Dirichlet prior of strength
``concentration`` centred on the order ``q - 1`` estimate (order -1 is uniform), so
``P_q(x | c) = (n(c, x) + a * P_{q-1}(x | c')) / (n(c) + a)`` with ``c'`` the ``q - 1`` most recent bases of ``c``.
Unseen long contexts therefore fall back smoothly to shorter ones, and every probability is positive.

A context never reaches across an N or the start of the sequence given: a base with only ``j < k`` valid bases
before it is predicted by the order-``j`` estimate. N bases are never scored.

Choosing the order and the concentration (``MarkovModel.select``). The chain is fit on the training sequences;
the order and concentration are chosen on held-out bases, never on the test split. Held-out bits are summed per
*unit*, a validation sequence (a position block) or a piece of ``UNIT_BASES`` of a longer one (contexts do not
cross the cut), because neighbouring bases are not independent: the units are what the spread is measured over.
With at least ``MIN_UNITS`` validation units the held-out bases are the validation split's, scored by the chain
fit on train. With fewer (a sample's consensus split into one block per split, a small genome's few blocks) one
block decides, and the chain can pick a high order that only a repeat shared by that block and train rewards (on
a 12 kbp NA12878 consensus of chr22: order 10, worse on test than order 0 and than uniform); the choice is then
cross-validated instead: the train and validation units fall into ``FOLDS`` folds (unit i in fold i mod FOLDS),
and each fold is scored by the chain fit on the other folds (counts are additive: all units counted once, each
fold's counts subtracted), so every train and validation base is held out once. The final chain is still fit on
the train split alone, as the model is trained on it.

The rule, either way: each order's concentration is the one with the fewest held-out bits/base; the order starts
at 0 and goes up one order at a time for as long as the next order's gain in held-out bits/base exceeds its
standard error, the spread over units of the paired per-unit difference (a ratio estimate: summed bits over
summed bases). So an order is added only where the held-out data show it helps beyond the variation between
units, and the lower order is kept where they cannot tell (one unit: order 0). On data with ample validation
(the bundled C. diphtheriae, 54 validation blocks) it chooses what the fewest validation bits choose (order 10).
The concentrations tried (``CONCENTRATIONS``, 0.5 to 8192 by factors of 4) reach past the best one: the bundled
genomes choose 128 or 512 (C. diphtheriae, the A. thaliana chloroplast, SARS-CoV-2, the NA12878 consensus), where a
grid that stopped at 32 chose its top on every one and left the chain weaker on test (C. diphtheriae 1.9603
bits/base at order 6, now 1.9557 at order 10: every base of the test split, one side).

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
CONCENTRATIONS = (0.5, 2.0, 8.0, 32.0, 128.0, 512.0, 2048.0, 8192.0)
MAX_TRANSITIONS = 1 << 21  # forward-backward transitions of a cluster summed out exactly (17 bytes each, kept)
MAX_EXACT_RUN = 6  # hidden bases enumerated jointly by approximate_two_sided_bits: 4**6 = 4096 fills
FILL_ROWS = 1 << 18  # runs x fills enumerated at once by approximate_two_sided_bits (order 10, runs of 6: < 20 MiB)
UNIT_BASES = 1 << 16  # held-out bases are summed per sequence, or per piece of this many bases of a longer one
MIN_UNITS = 5  # validation units needed to choose on validation alone; fewer: cross-validation (see above)
FOLDS = 5  # folds of the cross-validation
SCORED_BASES = 1 << 18  # held-out bases scored at once by held_out_sums (2 x 11 int64 per base at order 10: 46 MiB)


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
    q + 1 tables), ``order`` the chosen one, ``validation_bits`` each order's held-out bits/base at its best
    concentration, ``selection`` how they were held out (``method`` "validation" or "cross-validation", ``units``
    and ``folds``; see the module docstring)."""

    order: int
    concentration: float
    tables: list[np.ndarray] = field(repr=False)
    validation_bits: dict[int, float] = field(default_factory=dict)
    selection: dict = field(default_factory=dict)

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
        """Fit on ``train``; choose the order and concentration on the ``validation`` units, or cross-validated
        over the train and validation units where validation has fewer than ``MIN_UNITS`` (see the module
        docstring). ``train`` is streamed (counted once, never held whole) unless it is cross-validated over."""
        validation = units(validation)
        if len(validation) >= MIN_UNITS:
            counts = count(train, max_order)
            held = validation
            sums = held_out_sums(held, counts, max_order, concentrations)
            selection = {"method": "validation", "units": len(held)}
        else:
            train = list(train)
            held = units(train) + validation
            folds = min(FOLDS, len(held))
            total = count(held, max_order)
            sums = np.zeros((len(concentrations), len(held), max_order + 1))
            for fold in range(folds):
                members = list(range(fold, len(held), folds))
                part = [held[i] for i in members]
                sums[:, members] = held_out_sums(part, total, max_order, concentrations, count(part, max_order))
            counts = count(train, max_order)
            selection = {"method": "cross-validation", "units": len(held), "folds": folds}
        bases = np.array([np.count_nonzero(codes < N_CODE) for codes in held], dtype=np.int64)
        order, which, bits = choose_order(sums, bases)
        concentration = concentrations[which]
        log.info("Markov baseline: order %d, concentration %g, %.4f held-out bits/base (%s over %d units)", order,
                 concentration, bits[order], selection["method"], selection["units"])
        return cls(order, concentration, interpolate(counts, max_order, concentration),
                   {q: float(b) for q, b in enumerate(bits)}, selection)


def units(sequences: Iterable[np.ndarray], size: int = UNIT_BASES) -> list[np.ndarray]:
    """``sequences`` (base codes) cut into pieces of at most ``size`` bases, those holding no base left out: the
    units held-out bits are summed over (see the module docstring)."""
    pieces = []
    for codes in sequences:
        codes = np.asarray(codes, dtype=np.uint8)
        pieces += [codes[start:start + size] for start in range(0, codes.size, size)
                   if np.any(codes[start:start + size] < N_CODE)]
    return pieces


def held_out_sums(pieces: list[np.ndarray], counts: list[np.ndarray], max_order: int,
                  concentrations: tuple[float, ...], without: list[np.ndarray] | None = None) -> np.ndarray:
    """``sums[c, u, q]``: the bits of unit ``pieces[u]`` under the chain of ``counts`` (less ``without``, counts
    of the same orders) at order ``q`` and concentration ``concentrations[c]``: what :func:`score` gives with the
    tables of :func:`interpolate`, the same arithmetic done only at the contexts the pieces hold, not over the
    ``4**(q + 1)`` entries of every table. The pieces are scored together (joined with an N between them)."""
    sums = np.zeros((len(concentrations), len(pieces), max_order + 1))
    for codes, unit in _joined_units(pieces):
        context, run = contexts(codes, max_order)
        valid = codes < N_CODE
        context, run, base, unit = context[valid], run[valid], codes[valid].astype(np.int64), unit[valid]
        seen, seen_context = [], []  # per order: n(c, x) and n(c) at each base's context
        for q in range(max_order + 1):
            rows = counts[q][context % 4 ** q]
            if without is not None:
                rows = rows - without[q][context % 4 ** q]
            seen.append(rows[np.arange(base.size), base])
            seen_context.append(rows.sum(axis=1))
        for c, concentration in enumerate(concentrations):
            probability = np.full(base.size, 0.25)
            shorter = np.zeros(len(pieces))  # bits of the bases with fewer than q bases of context
            for q in range(max_order + 1):
                probability = (seen[q] + concentration * probability) / (seen_context[q] + concentration)
                bits = -np.log2(probability)
                sums[c, :, q] += np.bincount(unit[run >= q], bits[run >= q], minlength=len(pieces)) + shorter
                shorter += np.bincount(unit[run == q], bits[run == q], minlength=len(pieces))
    return sums


def _joined_units(pieces: list[np.ndarray], size: int = SCORED_BASES) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``pieces`` joined about ``size`` bases at a time with an N after each (as :func:`joined` does: no context
    crosses from one to the next), and the index in ``pieces`` of each position's piece."""
    start = 0
    while start < len(pieces):
        end, held = start, 0
        while end < len(pieces) and (end == start or held + pieces[end].size < size):
            held += pieces[end].size + 1
            end += 1
        group = pieces[start:end]
        codes = np.concatenate([part for piece in group for part in (piece, np.full(1, N_CODE, dtype=np.uint8))])
        yield codes, np.repeat(np.arange(start, end), [piece.size + 1 for piece in group])
        start = end


def choose_order(sums: np.ndarray, bases: np.ndarray) -> tuple[int, int, np.ndarray]:
    """The order and concentration (its index) chosen from held-out ``sums[c, u, q]`` (bits per concentration,
    unit and order; ``bases[u]``: each unit's scored bases), and each order's held-out bits/base at its best
    concentration. Each order takes the concentration with the fewest bits/base; from order 0 the order goes up
    while the next order's gain exceeds the standard error of the paired per-unit difference (see the module
    docstring)."""
    total = max(int(bases.sum()), 1)
    mean = sums.sum(axis=1) / total  # [c, q]
    best = mean.argmin(axis=0)
    per_unit = sums[best, :, np.arange(sums.shape[2])]  # [q, u]: each order at its best concentration
    order = 0
    while order + 1 < sums.shape[2]:
        difference = per_unit[order + 1] - per_unit[order]
        gain = -difference.sum() / total
        if gain <= standard_error(difference, bases):
            break
        order += 1
    return order, int(best[order]), mean[best, np.arange(sums.shape[2])]


def standard_error(sums: np.ndarray, bases: np.ndarray) -> float:
    """Standard error of the ratio ``sums.sum() / bases.sum()`` over units (each unit's sum and bases): the
    linearized (delta-method) estimate, infinite with fewer than two units."""
    if sums.size < 2 or bases.sum() == 0:
        return float("inf")
    ratio = sums.sum() / bases.sum()
    residuals = sums - ratio * bases
    return float(np.sqrt(sums.size / (sums.size - 1) * np.sum(residuals ** 2)) / bases.sum())
