"""Repeat families: examples at different loci with near-identical sequence, kept on one side of a split.

Splitting by position (whole contigs or interval blocks) puts the copies of a repeat (rRNA operons, insertion
sequences, a chloroplast's inverted repeat) on both sides of a split whenever they lie apart, and a classifier that
memorises one copy is then tested on the other. :func:`repeat_families` links such copies, and
:func:`genoformer.tasks.splits.assign_test` keeps each family off the test side once a member is in training.

Two examples are *homologous* when their intervals belong to different loci (overlapping intervals chain into one
locus: neighbours are the block split's business) and they share at least ``MIN_SHARED`` of the shorter one's
distinct canonical ``K``-mers (a k-mer and its reverse complement count as one, so copies on either strand match):
about 93% identity spread evenly, or a 30 bp exact stretch in 100 bp. A given 16-mer turns up by chance about
once per 4 Gbp, so unrelated examples share almost none. K-mers found at more than ``MAX_LOCI`` loci
(low-complexity sequence, high-copy repeat families such as Alu) are ignored: they would join most examples into
one family. An example shorter than ``K`` has no k-mer to compare and is a family of its own.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from genoformer.io.fasta import N_CODE

log = logging.getLogger(__name__)

K = 16
MIN_SHARED = 0.3
MAX_LOCI = 64
VARIANT_FLANK = 50  # bp on either side of a variant compared (its context, whatever the baseline's --context)


def canonical_kmers(codes: np.ndarray, k: int = K) -> np.ndarray:
    """Distinct canonical k-mers of base codes (uint64, 2 bits per base: the lesser of a k-mer and its reverse
    complement), sorted; k-mers holding an N are skipped. ``k`` is at most 32."""
    codes = np.asarray(codes, dtype=np.uint64)
    if codes.size < k:
        return np.zeros(0, dtype=np.uint64)
    windows = sliding_window_view(codes, k)
    windows = windows[(windows < N_CODE).all(axis=1)]
    weights = np.uint64(4) ** np.arange(k - 1, -1, -1, dtype=np.uint64)
    forward = windows @ weights
    reverse = (np.uint64(3) - windows[:, ::-1]) @ weights  # codes A0 C1 G2 T3: complement = 3 - code
    return np.unique(np.minimum(forward, reverse))


def loci(contigs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Locus id of each interval: intervals on one contig that overlap, directly or through others, share one."""
    order = np.lexsort((starts, contigs))
    locus = np.empty(len(order), dtype=np.int64)
    current, reach, contig = -1, 0, None
    for index in order.tolist():
        if contigs[index] != contig or starts[index] >= reach:
            current, contig, reach = current + 1, contigs[index], ends[index]
        reach = max(reach, ends[index])
        locus[index] = current
    return locus


def homologous_pairs(kmers: list[np.ndarray], locus: np.ndarray) -> np.ndarray:
    """``[m, 2]`` pairs of examples at different loci that share at least :data:`MIN_SHARED` of the shorter
    one's k-mers (``kmers``: each example's distinct canonical k-mers, from :func:`canonical_kmers`)."""
    sizes = np.array([len(values) for values in kmers])
    examples = np.repeat(np.arange(len(kmers)), sizes)
    values, column = np.unique(np.concatenate(kmers) if kmers else np.zeros(0, np.uint64), return_inverse=True)
    # a k-mer joins examples of other loci only if it is found at two; one found at too many joins everything
    n_all = int(locus.max()) + 1 if locus.size else 1
    kmer_at_locus = np.unique(column.astype(np.int64) * n_all + locus[examples])
    n_loci = np.bincount(kmer_at_locus // n_all, minlength=values.size)
    keep = (n_loci >= 2) & (n_loci <= MAX_LOCI)
    if (n_loci > MAX_LOCI).any():
        log.info("%d k-mers found at more than %d loci (low-complexity or high-copy repeats) ignored for homology",
                 int((n_loci > MAX_LOCI).sum()), MAX_LOCI)
    shared = keep[column]
    membership = csr_matrix((np.ones(int(shared.sum()), dtype=np.int32), (examples[shared], column[shared])),
                            shape=(len(kmers), values.size))
    counts = (membership @ membership.T).tocoo()
    first, second, n_shared = counts.row, counts.col, counts.data
    candidate = (first < second) & (locus[first] != locus[second])
    first, second, n_shared = first[candidate], second[candidate], n_shared[candidate]
    similar = n_shared >= MIN_SHARED * np.minimum(sizes[first], sizes[second])
    return np.stack([first[similar], second[similar]], axis=1)


def repeat_families(reference, contigs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Family id of each example: examples joined by homology, directly or through others, share one; an example
    without a homolog is a family of its own. Example i is ``contigs[i][starts[i]:ends[i]]`` (0-based, end
    exclusive) of ``reference`` (:class:`genoformer.io.fasta.Reference`)."""
    contigs, starts, ends = np.asarray(contigs, dtype=str), np.asarray(starts), np.asarray(ends)
    kmers = [canonical_kmers(reference.codes(contig, int(start), int(end))[0])
             for contig, start, end in zip(contigs.tolist(), starts, ends)]
    pairs = homologous_pairs(kmers, loci(contigs, starts, ends))
    links = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(kmers), len(kmers)))
    family = connected_components(links, directed=False)[1]
    size = np.bincount(family)
    if len(pairs):
        log.info("%d examples have a near-identical copy at another locus (%d repeat families)",
                 int((size[family] > 1).sum()), int((size > 1).sum()))
    return family
