"""Train/test splits that keep nearby sequence together: by contig, or by disjoint interval blocks.

An example (a variant or a region) belongs to the block that holds its position (a region: its midpoint).
Blocks (or contigs) are shuffled with the seed and moved to the test side, each one only if it brings the test
side closer to ``test_fraction`` of the examples (the smallest group when none does), so no block is on both sides
and one big group cannot make the test side most of the data (a warning says when the fraction reached is off
by more than 10 points); a test example with a near-identical copy on the training side (``families``) is left
out of both.
Windows of neighbouring examples on either side of a block border still share flanking sequence, so blocks must
be longer than the window (:func:`check_block`) and by default are at least four windows long
(:func:`default_block`). Repeats (rRNA operons, a chloroplast's inverted repeat) would put near-identical
sequence on both sides of a split by position: :mod:`genoformer.tasks.homology` finds them.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from genoformer.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("blocks", "contig")
BLOCK = 100_000  # bp: the default block on genomes of 1 Mbp and more
BLOCKS_AT_LEAST = 10  # smaller genomes are cut into this many blocks, so both sides get several


def default_block(window: int, genome_bp: int) -> int:
    """The default block length for windows of ``window`` bp on a genome of ``genome_bp``: 100 kbp, or a tenth
    of a genome shorter than 1 Mbp, and at least four windows."""
    return max(4 * window, min(BLOCK, genome_bp // BLOCKS_AT_LEAST))


def check_block(block: int | None, window: int) -> None:
    """:class:`ConfigError` when a ``block`` is given and is not longer than the windows: a test example's window
    would then hold whole training examples (their sequence, and their labels' signal, on both sides)."""
    if block is not None and block <= window:
        raise ConfigError(f"--block {block}: split blocks must be longer than the {window} bp windows, or test "
                          f"windows hold training regions; use at least {2 * window} (default: 100000, a tenth "
                          f"of a smaller genome, at least {4 * window})")


def split_groups(contigs: np.ndarray, positions: np.ndarray, *, method: str, block: int) -> np.ndarray:
    """Group id of each example: its contig (``method="contig"``) or its ``block``-bp interval block."""
    if method not in METHODS:
        raise ConfigError(f"split method {method!r} is not one of {', '.join(METHODS)}")
    if method == "blocks" and block < 1:
        raise ConfigError(f"split block length must be a positive number of bp, got {block}")
    contigs = np.asarray(contigs, dtype=str)
    if method == "contig":
        return contigs
    return np.char.add(np.char.add(contigs, ":"), (np.asarray(positions) // block).astype(str))


MORE_GROUPS = "more contigs, or --split blocks with a smaller --block"  # how to get more split groups


def assign_split(groups: np.ndarray, labels: np.ndarray, *, test_fraction: float, seed: int,
                 families: np.ndarray | None = None,
                 side_names: tuple[str, str] = ("training", "test")) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` boolean masks over the examples: whole groups go to the test side until
    ``test_fraction`` of the examples are there, the rest is training.

    ``families`` (:func:`genoformer.tasks.homology.repeat_families`, for regions :func:`joined` with
    :func:`overlap_clusters`) links repeat copies at other loci: a test example with a family member in training
    is left out (in neither mask), since its copy was trained on; it is not moved to training either, where it
    would sit among the test examples of its block.

    ``side_names`` name the two sides in messages. Raises :class:`ConfigError` when a side ends up without some
    class (too few groups for the labels).
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be between 0 and 1, got {test_fraction}")
    names, group_of = np.unique(groups, return_inverse=True)
    if names.size < 2:
        raise ConfigError(f"all {group_of.size} examples lie in one split group ({names[0] if names.size else ''}):"
                          f" a split needs two at least ({MORE_GROUPS})")
    sizes = np.bincount(group_of)
    is_test_group = np.zeros(names.size, dtype=bool)
    target, taken = test_fraction * group_of.size, 0
    for index in np.random.default_rng(seed).permutation(names.size):
        if abs(taken + sizes[index] - target) < abs(taken - target):  # closer to the target with it than without
            is_test_group[index] = True
            taken += sizes[index]
    if not taken:  # every group is over twice the target: the smallest is as close as a non-empty side gets
        is_test_group[sizes.argmin()] = True
    train = ~is_test_group[group_of]
    test = ~train if families is None else ~train & ~has_copy_in(train, np.asarray(families))
    left_out = int((~train & ~test).sum())
    because = (f", {left_out} {side_names[1]} examples left out for a near-identical copy (or an overlapping "
               f"example) in {side_names[0]}" if left_out else "")
    if abs(test.mean() - test_fraction) > 0.1:
        log.warning("%s side: %.0f%% of the examples instead of %.0f%%: %d groups of unequal size%s (%s for a "
                    "closer split)", side_names[1], 100 * test.mean(), 100 * test_fraction, names.size, because,
                    MORE_GROUPS)
    elif left_out:
        log.info("%d %s examples left out: a near-identical copy (or an overlapping example) of each is in %s",
                 left_out, side_names[1], side_names[0])
    for side, name in zip((train, test), side_names):
        if np.unique(group_of[side]).size == 1:
            log.warning("the %s side is one split group (%s): its examples come from one stretch of the genome, "
                        "and what is measured on it may not hold elsewhere (%s)", name, names[group_of[side][0]],
                        MORE_GROUPS)
    labels = np.asarray(labels)
    for side, name in zip((train, test), side_names):
        missing = sorted(set(np.unique(labels).tolist()) - set(np.unique(labels[side]).tolist()))
        if missing:
            raise ConfigError(f"the {name} split has no example of class {missing[0]!r} ({names.size} groups"
                              f"{because}; {MORE_GROUPS}, or more examples)")
    return train, test


def has_copy_in(side: np.ndarray, families: np.ndarray) -> np.ndarray:
    """Per example, whether an example of its repeat family is on ``side`` (a boolean mask); for those on that
    side themselves, whether another member is."""
    members_on_side = np.bincount(families, weights=side, minlength=int(families.max(initial=-1)) + 1)
    return members_on_side[families] - side > 0


def split_names(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per example ``"train"``, ``"test"``, or ``"left_out"`` (a test example with a copy in training)."""
    return np.select([train, test], ["train", "test"], "left_out")


def split_families(families: np.ndarray, keep_copies: bool) -> np.ndarray:
    """The families the split rules follow: ``families``, or with ``keep_copies`` each example its own (held-out
    examples with a near-identical copy in training stay in the test side)."""
    return np.arange(families.size) if keep_copies else families


def overlap_clusters(contigs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per example, the id of its overlap cluster: examples whose intervals (0-based, end exclusive) overlap,
    directly or through others, share one; touching intervals do not overlap."""
    contigs, starts, ends = np.asarray(contigs, dtype=str), np.asarray(starts), np.asarray(ends)
    order = np.lexsort((starts, contigs))
    opens_cluster = np.ones(order.size, dtype=bool)
    contig, reach = None, 0
    for rank, index in enumerate(order.tolist()):
        if contigs[index] == contig and starts[index] < reach:
            opens_cluster[rank] = False
            reach = max(reach, int(ends[index]))
        else:
            contig, reach = contigs[index], int(ends[index])
    clusters = np.empty(order.size, dtype=np.int64)
    clusters[order] = np.cumsum(opens_cluster) - 1
    return clusters


def joined(*labellings: np.ndarray) -> np.ndarray:
    """Per example, one id shared by the examples linked, directly or through others, by sharing a label in any
    of ``labellings`` (e.g. repeat families and overlap clusters)."""
    n = labellings[0].size
    firsts = []  # per labelling, each example's link: the first example with its label
    for labels in labellings:
        _, first, label_of = np.unique(labels, return_index=True, return_inverse=True)
        firsts.append(first[label_of.ravel()])
    links = coo_matrix((np.ones(n * len(firsts)), (np.tile(np.arange(n), len(firsts)), np.concatenate(firsts))),
                       shape=(n, n))
    return connected_components(links, directed=False)[1]


def split_summary(method: str, block: int, test_fraction: float, seed: int, groups: np.ndarray,
                  train: np.ndarray, test: np.ndarray, families: np.ndarray, keep_copies: bool = False,
                  overlaps: np.ndarray | None = None) -> dict:
    """The split as the metrics report it: how, with what, and how many examples and groups on each side
    (``families`` are the repeat families found, whether or not ``keep_copies`` kept them on both sides). With
    ``overlaps`` (:func:`overlap_clusters`), the held-out examples left out for overlapping a training one are
    counted apart (``n_left_out_overlapping``) from those left out for a repeat copy."""
    left_out = ~train & ~test
    overlapping = left_out & has_copy_in(train, overlaps) if overlaps is not None else np.zeros_like(left_out)
    return {"method": method, "block_bp": block if method == "blocks" else None, "test_fraction": test_fraction,
            "repeat_copies": "kept" if keep_copies else "left out", "seed": seed, "n_train": int(train.sum()),
            "n_test": int(test.sum()),
            "n_left_out_copies": int((left_out & ~overlapping).sum()),
            "n_left_out_overlapping": int(overlapping.sum()),
            "groups_train": int(np.unique(groups[train]).size), "groups_test": int(np.unique(groups[test]).size),
            "with_repeat_copy": int((np.bincount(families)[families] > 1).sum())}
