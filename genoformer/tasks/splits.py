"""Train/test splits that keep nearby sequence together: by contig, or by disjoint interval blocks.

An example (a variant or a region) belongs to the block that holds its position (a region: its midpoint).
Blocks (or contigs) are shuffled with the seed and moved to the test side until it holds ``test_fraction`` of
the examples, so no block is on both sides. Windows of neighbouring examples on either side of a block border
still share flanking sequence; use blocks much longer than the window to keep that small.
"""

from __future__ import annotations

import numpy as np

from genoformer.errors import ConfigError

METHODS = ("blocks", "contig")


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


def assign_test(groups: np.ndarray, labels: np.ndarray, *, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean ``is_test`` per example: whole groups go to test until ``test_fraction`` of examples are there.

    Raises :class:`ConfigError` when a side ends up without some class (too few groups for the labels).
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be between 0 and 1, got {test_fraction}")
    names, group_of = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_of)
    is_test_group = np.zeros(names.size, dtype=bool)
    taken = 0
    for index in np.random.default_rng(seed).permutation(names.size):
        if taken >= test_fraction * group_of.size:
            break
        is_test_group[index] = True
        taken += sizes[index]
    is_test = is_test_group[group_of]
    labels = np.asarray(labels)
    for side, name in ((~is_test, "training"), (is_test, "test")):
        missing = sorted(set(np.unique(labels).tolist()) - set(np.unique(labels[side]).tolist()))
        if missing:
            raise ConfigError(f"the {name} split has no example of class {missing[0]!r} ({names.size} groups; "
                              "use smaller blocks, more contigs or more examples)")
    return is_test
