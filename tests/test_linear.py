"""genoformer.tasks.linear: the search for C, against a brute-force search over the same folds."""

import logging
import math

import numpy as np
import pytest

from genoformer.io.fasta import Reference
from genoformer.region_labels import coding_intergenic_regions
from genoformer.tasks.baselines import spectra
from genoformer.tasks.linear import C_GRID, C_LIMITS, _group_folds, _mean_held_out_log_loss, fit_linear
from genoformer.tasks.regions import region_windows, window_sequences
from tiny_pretrained import CDIPH

CDIPH_GFF = CDIPH.parent / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"
DECADES = [10.0**e for e in range(round(math.log10(C_LIMITS[0])), round(math.log10(C_LIMITS[1])) + 1)]


def logistic_task(n, d, weight, seed):
    """``n`` examples of ``d`` standard normal features, labels drawn from a logistic model with every weight
    ``weight``, in 6 groups."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    labels = (rng.random(n) < 1 / (1 + np.exp(-features @ np.full(d, weight)))).astype(np.int64)
    return features, labels, np.arange(n) % 6


def separable_task(n, seed):
    """One feature whose sign is the label, at least 0.5 from zero: the less penalty the better, without end."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    features = ((2 * labels - 1) * (0.5 + np.abs(rng.normal(size=n))))[:, None]
    return features, labels, np.arange(n) % 6


def held_out_losses(features, labels, groups, grid):
    """Mean held-out log-loss of every C in ``grid`` over the folds fit_linear uses (seed 0)."""
    scaled = (features - features.mean(0)) / features.std(0)
    folds = _group_folds(labels, groups, 0, None)
    return {C: _mean_held_out_log_loss(scaled, labels, folds, C) for C in grid}


@pytest.mark.parametrize("task, side", [((400, 3, 30.0, 0), "above"), ((300, 1000, 0.01, 0), "below")])
def test_the_search_leaves_the_grid_for_an_optimum_past_its_edge(task, side):
    """A strong signal in few features wants less penalty than C = 10 gives; in one draw of a weak signal spread
    over many features, more than C = 0.001 gives. The search finds the decade a brute-force search over every
    decade within the limits finds, and the optimum of a half-decade grid is within a decade of it."""
    features, labels, groups = logistic_task(*task)
    # Python's float power, as DECADES and the search use: numpy's (2.4) gives 9.999999999999999e-06 for 1e-5
    fine = held_out_losses(features, labels, groups, [10.0 ** (half / 2) for half in range(-12, 9)])
    optimum = min(fine, key=fine.get)
    assert optimum > C_GRID[-1] if side == "above" else optimum < C_GRID[0]
    model = fit_linear(features, labels, groups, ["a", "b"], seed=0)
    decades = {C: fine[C] for C in DECADES}
    assert model.C == min(decades, key=decades.get)
    assert model.C / 10 < optimum < model.C * 10
    assert decades[model.C] < min(decades[C] for C in C_GRID)  # better than the grid alone could do
    again = fit_linear(features, labels, groups, ["a", "b"], seed=0)
    assert again.C == model.C and np.array_equal(again.coef, model.coef)


@pytest.mark.parametrize("side", ["lower", "upper"])
def test_the_search_stops_at_its_limit_and_says_so(side, caplog):
    """Signal too weak to use (one draw where the loss falls as C falls) or a separable class: the search stops at
    its limit, though past it the loss still falls, and logs that it did."""
    features, labels, groups = logistic_task(200, 400, 0.012, 1) if side == "lower" else separable_task(200, 0)
    limit = C_LIMITS[0] if side == "lower" else C_LIMITS[1]
    with caplog.at_level(logging.INFO, logger="genoformer.tasks.linear"):
        model = fit_linear(features, labels, groups, ["a", "b"], seed=0)
    assert model.C == limit
    assert f"C = {limit:g}, a limit of the search" in caplog.text
    past = limit / 10 if side == "lower" else limit * 10
    losses = held_out_losses(features, labels, groups, [limit, past])
    assert losses[past] < losses[limit]


def test_an_optimum_inside_the_grid_gives_the_grid_choice_on_real_features():
    """The k-mer spectrum baseline of the workflow's coding vs intergenic task on the bundled genome: the choice
    is the grid's argmin, as before the search could leave the grid, and no limit is logged."""
    with Reference(CDIPH) as reference:
        table = coding_intergenic_regions(reference, CDIPH_GFF, length=100, per_class=100, seed=0)
        starts, ends = region_windows(table, reference.contigs, 512, 1)
        features = spectra(window_sequences(reference, table, starts, ends), 4)
    labels = (table["label"] == "intergenic").to_numpy(np.int64)
    groups = table["start"].to_numpy() // 250_000
    model = fit_linear(features, labels, groups, ["coding", "intergenic"], seed=0)
    grid = held_out_losses(features, labels, groups, C_GRID)
    assert model.C == min(grid, key=grid.get)
    assert C_GRID[0] < model.C < C_GRID[-1]
