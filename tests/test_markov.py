"""Markov baseline: vectorized counts and interpolated scoring match plain loops; order selection is sane."""

import itertools
import math
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from genoformer.io.fasta import Reference
from genoformer.train.markov import MarkovModel, count, hidden_runs, interpolate, score, two_sided_bits


def random_codes(rng, n, n_fraction=0.02):
    codes = rng.integers(0, 4, n).astype(np.uint8)
    codes[rng.random(n) < n_fraction] = 4
    return codes


def reference_bits(train, test, order, concentration):
    """Plain-loop interpolated Markov chain: contexts from dict counts, never across N or a sequence start."""
    counts = Counter()
    for codes in train:
        for i, base in enumerate(codes):
            if base == 4:
                continue
            for q in range(order + 1):
                context = tuple(codes[i - q:i]) if q else ()
                if i - q < 0 or any(b == 4 for b in context):
                    break
                counts[(context, int(base))] += 1

    def prob(context, base):
        p = 0.25
        for q in range(len(context) + 1):
            sub = context[len(context) - q:] if q else ()
            n = [counts[(sub, x)] for x in range(4)]
            p = (n[base] + concentration * p) / (sum(n) + concentration)
        return p

    bits = []
    for i, base in enumerate(test):
        if base == 4:
            bits.append(math.nan)
            continue
        q = 0
        while q < order and i - q - 1 >= 0 and test[i - q - 1] != 4:
            q += 1
        bits.append(-math.log2(prob(tuple(int(b) for b in test[i - q:i]), int(base))))
    return np.array(bits)


@pytest.mark.parametrize("order,concentration", [(0, 1.0), (2, 0.5), (3, 8.0)])
def test_vectorized_scores_match_plain_loops(order, concentration):
    rng = np.random.default_rng(order)
    train = [random_codes(rng, 400), random_codes(rng, 300)]
    test = random_codes(rng, 200)
    tables = interpolate(count(train, order), order, concentration)
    fast = score(test, tables)
    slow = reference_bits(train, test, order, concentration)
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert np.allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)], rtol=1e-12)


def test_counts_add_up_and_probabilities_normalize():
    rng = np.random.default_rng(7)
    codes = random_codes(rng, 5000)
    counts = count([codes], 4)
    assert counts[0].sum() == (codes < 4).sum()
    assert counts[0][0].tolist() == [int((codes == x).sum()) for x in range(4)]
    # order-4 counts grouped by their 3 most recent bases fall short of the order-3 counts only where a base
    # has exactly 3 valid bases before it (after an N or at the start)
    grouped = counts[4].reshape(4, 64, 4).sum(axis=0)
    assert (grouped <= counts[3]).all()
    assert 0 < (counts[3] - grouped).sum() < 0.1 * counts[3].sum()
    for table in interpolate(counts, 4, 2.0):
        assert np.allclose((2.0 ** table).sum(axis=1), 1.0)


def test_counting_in_pieces_changes_nothing(monkeypatch):
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 3000)
    whole = count([codes], 3)
    monkeypatch.setattr("genoformer.train.markov.CHUNK_BASES", 257)
    assert all(np.array_equal(a, b) for a, b in zip(whole, count([codes], 3)))


def test_context_uses_most_recent_base_as_lowest_digit():
    # After "AC" always comes "G", after "CA" always "T": an order-2 model must tell them apart.
    codes = np.array([0, 1, 2, 1, 0, 3] * 200, dtype=np.uint8)
    tables = interpolate(count([codes], 2), 2, 0.01)
    bits = score(np.array([0, 1, 2, 1, 0, 3], dtype=np.uint8), tables)
    assert bits[2] < 0.01 and bits[5] < 0.01


@pytest.fixture(scope="module")
def chloroplast_codes(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        codes, _ = reference.codes("NC_000932.1")
    return codes


def test_order_selection_on_real_genome(chloroplast_codes):
    train, validation, test = chloroplast_codes[:120_000], chloroplast_codes[120_000:137_000], \
        chloroplast_codes[137_000:]
    model = MarkovModel.select([train], [validation], max_order=8)
    assert set(model.validation_bits) == set(range(9))
    assert model.validation_bits[model.order] == min(model.validation_bits.values())
    # AT-rich chloroplast: context helps over order 0, and the chosen model beats uniform (2 bits) on test
    assert model.validation_bits[model.order] < model.validation_bits[0] < 2.0
    test_bits = np.nanmean(model.bits(test))
    assert test_bits < np.nanmean(model.bits(test, order=0)) < 2.0
    # very high orders over-fit 120 kbp: the chosen order is not the largest tried
    assert model.order < 8
    # the order-q model is the first q + 1 tables of the fitted ones
    assert np.allclose(model.bits(test, order=3), score(test, model.tables[:4]), equal_nan=True)


def brute_force_two_sided(codes, hidden, tables):
    """Each hidden run's fills enumerated one by one, each scored as a whole sequence with `score`."""
    bits = np.full(codes.size, np.nan)
    for start, end in hidden_runs(hidden & (codes < 4)):
        joint = {}
        for fill in itertools.product(range(4), repeat=end - start):
            filled = codes.copy()
            filled[start:end] = fill
            joint[fill] = 2.0 ** -np.nansum(score(filled, tables))
        total = sum(joint.values())
        for j in range(end - start):
            held = sum(p for fill, p in joint.items() if fill[j] == codes[start + j])
            bits[start + j] = -math.log2(held / total)
    return bits


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_two_sided_bits_match_enumerated_whole_sequences(order, seed):
    rng = np.random.default_rng(seed)
    tables = interpolate(count([random_codes(rng, 3000)], order), order, 2.0)
    codes = random_codes(rng, 200, n_fraction=0.05)
    hidden = rng.random(codes.size) < 0.2
    hidden[50:54] = True  # a run of 4
    hidden[0] = hidden[-1] = True  # runs at both ends
    expected = brute_force_two_sided(codes, hidden, tables)
    got = two_sided_bits(codes, hidden, tables)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert not np.isnan(got[hidden & (codes < 4)]).any()


def test_long_runs_are_scored_in_pieces():
    assert hidden_runs(np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1], dtype=bool), max_run=3) == \
        [(1, 4), (4, 7), (7, 9), (10, 11)]


def test_two_sided_order_0_is_one_sided(chloroplast_codes):
    model = MarkovModel.select([chloroplast_codes[:100_000]], [chloroplast_codes[100_000:120_000]], max_order=0)
    codes = chloroplast_codes[130_000:131_000]
    hidden = np.random.default_rng(0).random(codes.size) < 0.15
    np.testing.assert_allclose(model.two_sided_bits(codes, hidden)[hidden], model.bits(codes)[hidden])


def test_both_sides_tell_more_than_the_left_on_a_real_genome(chloroplast_codes):
    """On held-out chloroplast sequence, the chosen chain given both sides of a single hidden base costs fewer
    bits than given the left side alone."""
    model = MarkovModel.select([chloroplast_codes[:100_000]], [chloroplast_codes[100_000:120_000]], max_order=6)
    codes = chloroplast_codes[120_000:150_000]
    hidden = np.zeros(codes.size, dtype=bool)
    hidden[::10] = True
    two_sided = np.nanmean(model.two_sided_bits(codes, hidden)[hidden])
    one_sided = np.nanmean(model.bits(codes)[hidden])
    assert model.order >= 2 and two_sided < one_sided - 0.02, (two_sided, one_sided)


def test_two_sided_memory_stays_bounded_with_many_runs():
    """Runs are enumerated a bounded number at a time: 2,000 hidden runs of 6 bases (a batch of long windows with
    long spans) take no more memory than a few hundred, and each scores as it does alone."""
    rng = np.random.default_rng(0)
    tables = interpolate(count([random_codes(rng, 20_000)], 3), 3, 2.0)
    codes = random_codes(rng, 2_000 * 13, n_fraction=0.0)
    hidden = (np.arange(codes.size) % 13) < 6
    tracemalloc.start()
    try:
        bits = two_sided_bits(codes, hidden, tables)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB"
    alone = np.zeros(codes.size, dtype=bool)
    alone[13_000:13_006] = True  # the 1,001st run, from the second batch of runs
    np.testing.assert_allclose(bits[13_000:13_006], two_sided_bits(codes, alone, tables)[13_000:13_006], rtol=1e-12)
