"""Markov baseline: vectorized counts and interpolated scoring match plain loops; order selection is sane, and
robust where validation is one block; the two-sided scores equal enumeration of every hidden base's fills."""

import itertools
import math
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from genoformer.io.fasta import Reference
from genoformer.train.markov import (CONCENTRATIONS, MAX_EXACT_RUN, MIN_UNITS, MarkovModel,
                                     approximate_two_sided_bits, choose_order, count, held_out_sums, hidden_runs,
                                     interpolate, score, two_sided_bits, units)


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
    # one 17 kbp validation sequence is one unit: the order is cross-validated, each step up a held-out gain
    assert model.selection["method"] == "cross-validation"
    assert all(model.validation_bits[model.order] < model.validation_bits[q] for q in range(model.order))
    # AT-rich chloroplast: context helps over order 0, and the chosen model beats uniform (2 bits) on test
    assert model.validation_bits[model.order] < model.validation_bits[0] < 2.0
    test_bits = np.nanmean(model.bits(test))
    assert test_bits < np.nanmean(model.bits(test, order=0)) < 2.0
    # very high orders over-fit 120 kbp: the chosen order is not the largest tried
    assert model.order < 8
    # the order-q model is the first q + 1 tables of the fitted ones
    assert np.allclose(model.bits(test, order=3), score(test, model.tables[:4]), equal_nan=True)



def test_many_short_sequences_count_and_score_as_one_by_one(chloroplast_codes):
    # a split of position blocks (tokenize --split-by blocks: thousands of them on a 17 Mbp chromosome) is counted
    # and scored in joined pieces; every count and validation figure stays that of the blocks taken one by one
    blocks = [chloroplast_codes[start:start + 4096] for start in range(0, 120_000, 4608)]
    validation = [chloroplast_codes[start:start + 4096] for start in range(120_000, chloroplast_codes.size, 4608)]
    one_by_one = [sum(parts) for parts in zip(*(count([block], 6) for block in blocks))]
    assert all(np.array_equal(a, b) for a, b in zip(count(blocks, 6), one_by_one))
    model = MarkovModel.select(blocks, validation, max_order=6)
    for order, bits in model.validation_bits.items():
        per_block = [np.nanmean(np.concatenate([score(codes, interpolate(one_by_one, order, concentration))
                                                for codes in validation])) for concentration in CONCENTRATIONS]
        assert bits == pytest.approx(min(per_block), rel=1e-12)


def test_held_out_sums_match_score_and_cross_validation_holds_every_unit_out_once(chloroplast_codes):
    """Every order's held-out sums per unit are those of `score`; cross-validated, each unit scored by the chain
    counted on the other folds' units."""
    train = [chloroplast_codes[start:start + 4096] for start in range(0, 13_824, 4608)]
    validation = [chloroplast_codes[20_000:24_096]]
    model = MarkovModel.select(train, validation, max_order=4)
    assert model.selection == {"method": "cross-validation", "units": 4, "folds": 4}
    held = units(train) + units(validation)
    expected = {}
    for concentration in CONCENTRATIONS:
        for order in range(5):
            bits = [np.nansum(score(unit, interpolate(count(held[:i] + held[i + 1:], order), order, concentration)))
                    for i, unit in enumerate(held)]
            expected[order] = min(expected.get(order, np.inf), sum(bits) / sum((u < 4).sum() for u in held))
    assert model.validation_bits == pytest.approx(expected, rel=1e-12)
    sums = held_out_sums(held[:2], count(train, 4), 4, (2.0,))
    tables = interpolate(count(train, 4), 4, 2.0)
    np.testing.assert_allclose(sums[0], [[np.nansum(score(unit, tables[:q + 1])) for q in range(5)]
                                         for unit in held[:2]], rtol=1e-12)
    # the final chain is counted on train alone, whatever the units it was chosen on
    assert np.allclose(model.bits(validation[0], 4), score(validation[0], interpolate(count(train, 4), 4,
                                                                                      model.concentration)),
                       equal_nan=True)


def test_an_order_is_added_only_for_a_gain_beyond_the_spread_over_units():
    bases = np.array([1000, 1000, 1000])
    steady = np.array([[[2000.0, 1900.0, 1890.0], [2000.0, 1910.0, 1880.0], [2000.0, 1905.0, 1885.0]]])
    assert choose_order(steady, bases)[0] == 2
    # order 2 gains more on average, but in one unit only, losing in the others: within its standard error
    uneven = steady.copy()
    uneven[0, :, 2] = [1910.0, 1920.0, 1705.0]
    assert uneven[0, :, 2].sum() < uneven[0, :, 1].sum()
    assert choose_order(uneven, bases)[0] == 1
    # a single unit gives no spread: order 0
    assert choose_order(steady[:, :1], bases[:1])[0] == 0


def test_one_repetitive_validation_block_does_not_pick_a_chain_worse_than_uniform(human_q):
    """Human chr22 fragment laid out as the workflow splits the NA12878 consensus over it (one 4,096-base block per
    split, 512-base gaps): the validation block shares Alu copies with the train block, so the fewest validation
    bits come at a high order that is worse than order 0, and than uniform, on the test block. The cross-validated
    choice (another order or concentration) is not."""
    with Reference(human_q / "q.fa") as reference:
        codes, _ = reference.codes("q")
    train, validation, test = codes[:4096], codes[4608:8704], codes[9216:]
    model = MarkovModel.select([train], [validation])
    assert model.selection["method"] == "cross-validation"
    sums = held_out_sums(units([validation]), count([train], model.max_order), model.max_order, CONCENTRATIONS)
    which, plain_order = np.unravel_index(sums.sum(axis=1).argmin(), sums.shape[::2])
    plain = score(test, interpolate(count([train], plain_order), plain_order, CONCENTRATIONS[which]))
    order_0 = np.nanmean(model.bits(test, order=0))
    assert (plain_order, CONCENTRATIONS[which]) != (model.order, model.concentration)
    assert np.nanmean(plain) > 2.0 > order_0
    assert np.nanmean(model.bits(test)) < order_0


def test_ample_validation_keeps_the_validation_choice(cdiph_fasta):
    """C. diphtheriae in 4,096-base blocks, one in ten held out for validation and one in ten for test (as the
    workflow splits it): with that many validation blocks the chain is chosen on them, and each order up to the
    one of fewest validation bits gains beyond its standard error, so the choice is that order."""
    with Reference(cdiph_fasta) as reference:
        codes, _ = reference.codes("NZ_LN831026.1")
    blocks = [codes[start:start + 4096] for start in range(0, codes.size - 4096, 4608)]
    train = [block for i, block in enumerate(blocks) if i % 10 < 8]
    validation, test = blocks[8::10], blocks[9::10]
    model = MarkovModel.select(train, validation, max_order=8)
    assert model.selection == {"method": "validation", "units": len(validation)} and len(validation) >= MIN_UNITS
    assert model.validation_bits[model.order] == min(model.validation_bits.values())
    test_bits = np.nanmean(np.concatenate([model.bits(block) for block in test]))
    assert test_bits < np.nanmean(np.concatenate([model.bits(block, order=0) for block in test])) < 2.0


def test_the_chosen_concentration_lies_inside_the_grid_on_real_genomes(chloroplast_codes, cdiph_fasta):
    """Chosen on validation blocks (C. diphtheriae, as the workflow splits it) or cross-validated (chloroplast), the
    concentration is neither end of the grid, and at the chosen order it beats 32 (the grid's top once, where every
    genome stopped) on test: the grid reaches past the best smoothing."""
    with Reference(cdiph_fasta) as reference:
        codes, _ = reference.codes("NZ_LN831026.1")
    blocks = [codes[start:start + 4096] for start in range(0, codes.size - 4096, 4608)]
    cdiph = [block for i, block in enumerate(blocks) if i % 10 < 8], blocks[8::10], blocks[9::10]
    chloroplast = [chloroplast_codes[:120_000]], [chloroplast_codes[120_000:137_000]], [chloroplast_codes[137_000:]]
    for (train, validation, test), method in ((cdiph, "validation"), (chloroplast, "cross-validation")):
        model = MarkovModel.select(train, validation, max_order=8)
        assert model.selection["method"] == method
        assert CONCENTRATIONS[0] < model.concentration < CONCENTRATIONS[-1]
        at_32 = interpolate(count(train, model.order), model.order, 32.0)
        test_bits = np.nanmean(np.concatenate([model.bits(codes) for codes in test]))
        assert test_bits < np.nanmean(np.concatenate([score(codes, at_32) for codes in test]))


def brute_force_runs(codes, hidden, tables):
    """Each hidden run's fills enumerated one by one, each scored as a whole sequence with `score`, the other
    hidden bases at their true bases."""
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


def brute_force_joint(codes, hidden, tables):
    """All hidden bases filled jointly (4**h fills of the whole sequence, each scored with `score`), each hidden
    base's marginal summed over the fills that hold its true base."""
    at = np.flatnonzero(hidden & (codes < 4))
    joint = {}
    for fill in itertools.product(range(4), repeat=at.size):
        filled = codes.copy()
        filled[at] = fill
        joint[fill] = 2.0 ** -np.nansum(score(filled, tables))
    total = sum(joint.values())
    bits = np.full(codes.size, np.nan)
    for j, position in enumerate(at):
        bits[position] = -math.log2(sum(p for fill, p in joint.items() if fill[j] == codes[position]) / total)
    return bits


def random_chain(rng, order):
    return interpolate(count([random_codes(rng, 3000)], order), order, 2.0)


HIDDEN_CASES = {  # hidden positions, N positions (24 bases; at most 7 hidden: 4**7 fills to enumerate), and the
    # lowest order at which two runs share a factor, so that reading one as its true bases changes the other
    "sequence start and Ns": ([0, 1, 7, 9, 14, 16, 8], [8, 15], None),  # an N is never hidden
    "run longer than the order": ([3, 4, 5, 6, 7, 8, 11], [20], 3),
    "runs side by side": ([4, 5, 6, 8, 9, 23], [], 2),  # 4-6 and 8-9 share the factors of 8 on
}


@pytest.mark.parametrize("case", HIDDEN_CASES)
@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_two_sided_bits_sum_every_hidden_base_out_jointly(case, order):
    """Against all 4**h fills of the whole sequence (each scored with `score`) on random chains and sequences."""
    rng = np.random.default_rng(order)
    tables = random_chain(rng, order)
    at, n_at, coupled_from = HIDDEN_CASES[case]
    codes = random_codes(rng, 24, n_fraction=0.0)
    codes[n_at] = 4
    hidden = np.isin(np.arange(24), at)
    if np.count_nonzero(hidden & (codes < 4)) < 7:
        hidden[rng.integers(0, 24)] = True  # one more at random
    expected = brute_force_joint(codes, hidden, tables)
    got, approximate = two_sided_bits(codes, hidden, tables)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert not approximate.any()
    runs = approximate_two_sided_bits(codes, hidden, tables)
    if coupled_from is not None and order >= coupled_from:  # reading the other run as true bases is not the same
        assert not np.allclose(got, runs, equal_nan=True)


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_two_sided_bits_equal_the_run_approximation_where_it_is_exact(order, seed):
    """Hidden runs of at most MAX_EXACT_RUN bases more than ``order`` apart share no factor: summing each out on
    its own (approximate_two_sided_bits, checked against enumerated runs) is then exact."""
    rng = np.random.default_rng(seed)
    tables = random_chain(rng, order)
    codes = random_codes(rng, 300, n_fraction=0.03)
    hidden = np.zeros(codes.size, dtype=bool)
    position = 0
    while position < codes.size:
        length = int(rng.integers(1, MAX_EXACT_RUN + 1))
        hidden[position:position + length] = True
        position += length + order + 1 + int(rng.integers(0, 4))
    runs = approximate_two_sided_bits(codes, hidden, tables)
    np.testing.assert_allclose(runs, brute_force_runs(codes, hidden, tables), rtol=1e-9, atol=1e-12)
    got, approximate = two_sided_bits(codes, hidden, tables)
    np.testing.assert_allclose(got, runs, rtol=1e-9, atol=1e-12)
    assert not approximate.any() and not np.isnan(got[hidden & (codes < 4)]).any()


def test_clusters_over_the_cap_fall_back_and_are_counted(monkeypatch):
    """A cluster whose forward-backward would take over MAX_TRANSITIONS transitions is scored by the run
    approximation, and only its bases are marked; the other clusters stay exact."""
    rng = np.random.default_rng(4)
    tables = random_chain(rng, 3)
    codes = random_codes(rng, 60, n_fraction=0.0)
    hidden = np.zeros(codes.size, dtype=bool)
    hidden[[3, 5]] = True  # a small cluster: 4 + 16 + 16 + 16 + 4 transitions
    hidden[20:28] = True  # a run of 8: far more
    monkeypatch.setattr("genoformer.train.markov.MAX_TRANSITIONS", 100)
    got, approximate = two_sided_bits(codes, hidden, tables)
    assert np.flatnonzero(approximate).tolist() == list(range(20, 28))
    np.testing.assert_allclose(got[20:28], approximate_two_sided_bits(codes, hidden, tables)[20:28], rtol=1e-12)
    np.testing.assert_allclose(got[[3, 5]], brute_force_joint(codes, np.isin(np.arange(60), [3, 5]), tables)[[3, 5]],
                               rtol=1e-9)
    monkeypatch.setattr("genoformer.train.markov.MAX_TRANSITIONS", 1 << 21)
    exact, approximate = two_sided_bits(codes, hidden, tables)
    assert not approximate.any() and not np.allclose(exact[20:28], got[20:28])
    nothing, approximate = two_sided_bits(codes, np.zeros(60, dtype=bool), tables)
    assert np.isnan(nothing).all() and not approximate.any()


def test_long_runs_are_scored_in_pieces():
    assert hidden_runs(np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1], dtype=bool), max_run=3) == \
        [(1, 4), (4, 7), (7, 9), (10, 11)]


def test_two_sided_order_0_is_one_sided(chloroplast_codes):
    model = MarkovModel.select([chloroplast_codes[:100_000]], [chloroplast_codes[100_000:120_000]], max_order=0)
    codes = chloroplast_codes[130_000:131_000]
    hidden = np.random.default_rng(0).random(codes.size) < 0.15
    np.testing.assert_allclose(model.two_sided_bits(codes, hidden)[0][hidden], model.bits(codes)[hidden])


def test_both_sides_tell_more_than_the_left_on_a_real_genome(chloroplast_codes):
    """On held-out chloroplast sequence, the chosen chain given both sides of a hidden base costs fewer bits than
    given the left side alone; with 15% of the bases hidden, given the true bases of the other hidden ones (the
    run approximation) they change (by 0.09 bits a base on average here): it reads what a masked LM is not
    shown."""
    model = MarkovModel.select([chloroplast_codes[:100_000]], [chloroplast_codes[100_000:120_000]], max_order=6)
    codes = chloroplast_codes[120_000:150_000]
    assert model.order >= 2
    every_tenth = np.arange(codes.size) % 10 == 0
    random = np.random.default_rng(1).random(codes.size) < 0.15
    for hidden, gain in ((every_tenth, 0.02), (random, 0.01)):
        two_sided, approximate = model.two_sided_bits(codes, hidden)
        two_sided = np.nanmean(two_sided[hidden])
        one_sided = np.nanmean(model.bits(codes)[hidden])
        assert two_sided < one_sided - gain and not approximate.any(), (two_sided, one_sided)
    exact = model.two_sided_bits(codes, random)[0][random]
    reading_truth = approximate_two_sided_bits(codes, random, model.tables[:model.order + 1])[random]
    assert np.nanmean(np.abs(reading_truth - exact)) > 0.04


def with_peak_memory(function, *args):
    """``function(*args)`` and the peak memory Python allocated while it ran (tracemalloc, bytes)."""
    tracemalloc.start()
    try:
        return function(*args), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_two_sided_memory_stays_bounded_with_many_clusters():
    """Clusters are summed out about MAX_TRANSITIONS transitions at a time: 20,000 hidden runs of 6 bases (a
    batch of long windows with long spans; 19M transitions) take no more memory than a few batches of them, and
    each scores as it does alone."""
    rng = np.random.default_rng(0)
    tables = random_chain(rng, 3)
    codes = random_codes(rng, 20_000 * 13, n_fraction=0.0)
    hidden = (np.arange(codes.size) % 13) < 6
    (bits, approximate), peak = with_peak_memory(two_sided_bits, codes, hidden, tables)
    assert peak < 256 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB"
    assert not approximate.any()
    alone = np.zeros(codes.size, dtype=bool)
    alone[130_000:130_006] = True  # the 10,001st run, from a later batch of clusters
    np.testing.assert_allclose(bits[130_000:130_006], two_sided_bits(codes, alone, tables)[0][130_000:130_006],
                               rtol=1e-12)


def test_approximate_memory_stays_bounded_with_many_runs():
    """Runs are enumerated a bounded number at a time: 2,000 hidden runs of 6 bases take no more memory than a
    few hundred, and each scores as it does alone."""
    rng = np.random.default_rng(0)
    tables = random_chain(rng, 3)
    codes = random_codes(rng, 2_000 * 13, n_fraction=0.0)
    hidden = (np.arange(codes.size) % 13) < 6
    bits, peak = with_peak_memory(approximate_two_sided_bits, codes, hidden, tables)
    assert peak < 64 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB"
    alone = np.zeros(codes.size, dtype=bool)
    alone[13_000:13_006] = True  # the 1,001st run, from the second batch of runs
    np.testing.assert_allclose(bits[13_000:13_006], approximate_two_sided_bits(codes, alone, tables)[13_000:13_006],
                               rtol=1e-12)
