"""Repeat families: examples at different loci with near-identical sequence.

Splitting by position (whole contigs or interval blocks) puts the copies of a repeat (rRNA operons, insertion
sequences, a chloroplast's inverted repeat) on both sides of a split whenever they lie apart, and a test example
whose copy was trained on measures recall, not generalisation. :func:`repeat_families` links such copies, and
:func:`genoformer.tasks.splits.assign_split` leaves out of the test side every example with a copy in training.

Two examples are *homologous* when their intervals do not overlap (overlapping neighbours are the block split's
business) and they share at least ``MIN_SHARED`` of the shorter one's distinct canonical ``K``-mers (a k-mer and
its reverse complement count as one, so copies on either strand match): copies about 96% identical with the
differences spread evenly, or a 41 bp identical stretch in 100 bp. A given 16-mer turns up by chance about once
per 4 Gbp, so unrelated examples share almost none. K-mers found at more than ``MAX_COPIES`` positions of the
sequence the examples cover (low-complexity sequence, high-copy repeat families such as Alu) are ignored: they
would join most examples into one family. An example shorter than ``K`` has no k-mer to compare and is a family
of its own.
"""

from __future__ import annotations

import bisect
import logging

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from genoformer.io.fasta import N_CODE

log = logging.getLogger(__name__)

K = 16
MIN_SHARED = 0.3
MAX_COPIES = 64
VARIANT_FLANK = 50  # bp on either side of a variant compared (its context, whatever the baseline's --context)
NO_KMER = np.iinfo(np.uint64).max  # the k-mer at a position whose k bases hold an N


def canonical_kmers(codes: np.ndarray, k: int = K) -> np.ndarray:
    """The canonical k-mer starting at each position of base codes (uint64, 2 bits per base: the lesser of the
    k-mer and its reverse complement; :data:`NO_KMER` where the k bases hold an N). ``k`` is at most 31.

    Built base by base (k passes over the sequence), so memory stays a few arrays of its length."""
    codes = np.asarray(codes, dtype=np.uint8)
    n = codes.size - k + 1
    if n < 1:
        return np.zeros(0, dtype=np.uint64)
    bases = np.minimum(codes, 3).astype(np.uint64)
    complement = np.uint64(3) - bases  # codes A0 C1 G2 T3: complement = 3 - code
    forward, reverse = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    for j in range(k):
        forward = forward * np.uint64(4) + bases[j:j + n]
        reverse = reverse * np.uint64(4) + complement[k - 1 - j:k - 1 - j + n]
    n_count = np.concatenate([[0], np.cumsum(codes == N_CODE)])
    return np.where(n_count[k:] == n_count[:n], np.minimum(forward, reverse), NO_KMER)


def _covered_segments(contigs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[tuple[str, int, int]]:
    """The union of the intervals as disjoint ``(contig, start, end)`` segments."""
    segments: list[list] = []
    for index in np.lexsort((starts, contigs)).tolist():
        contig, start, end = contigs[index], int(starts[index]), int(ends[index])
        if segments and segments[-1][0] == contig and start <= segments[-1][2]:
            segments[-1][2] = max(segments[-1][2], end)
        else:
            segments.append([contig, start, end])
    return [tuple(segment) for segment in segments]


def example_kmers(reference, contigs: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per interval, its distinct canonical k-mers found at 2 to :data:`MAX_COPIES` positions of the sequence
    the intervals cover (sorted uint64), and the number of all its distinct k-mers."""
    segments = _covered_segments(contigs, starts, ends)
    kmers_of = {(contig, first): canonical_kmers(reference.codes(contig, first, end)[0], K)
                for contig, first, end in segments}
    values, copies = np.unique(np.concatenate([np.zeros(0, np.uint64), *kmers_of.values()]), return_counts=True)
    frequent = (copies > MAX_COPIES) & (values != NO_KMER)
    if frequent.any():
        log.info("%d k-mers found at more than %d positions (low-complexity or high-copy repeats) ignored for "
                 "homology", int(frequent.sum()), MAX_COPIES)
    repeated = values[(copies >= 2) & (copies <= MAX_COPIES) & (values != NO_KMER)]
    firsts: dict[str, list[int]] = {}
    for contig, first, _ in segments:
        firsts.setdefault(contig, []).append(first)
    shared, sizes = [], np.zeros(len(starts), dtype=np.int64)
    for index, (contig, start, end) in enumerate(zip(contigs.tolist(), starts.tolist(), ends.tolist())):
        first = firsts[contig][bisect.bisect_right(firsts[contig], start) - 1]  # the segment holding the interval
        segment_kmers = kmers_of[contig, first]
        own = np.unique(segment_kmers[start - first:max(start - first, end - first - K + 1)])
        own = own[own != NO_KMER]
        sizes[index] = own.size
        shared.append(own[np.isin(own, repeated, assume_unique=True)])
    return shared, sizes


def homologous_pairs(shared: list[np.ndarray], sizes: np.ndarray, contigs: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray) -> np.ndarray:
    """``[m, 2]`` pairs ``i < j`` of non-overlapping intervals whose ``shared`` k-mers (:func:`example_kmers`)
    in common are at least :data:`MIN_SHARED` of the smaller of their ``sizes``."""
    lengths = np.array([values.size for values in shared], dtype=np.int64)
    values, column = np.unique(np.concatenate([np.zeros(0, np.uint64), *shared]), return_inverse=True)
    rows = np.repeat(np.arange(len(shared)), lengths)
    membership = csr_matrix((np.ones(rows.size, dtype=np.int32), (rows, column)), shape=(len(shared), values.size))
    counts = (membership @ membership.T).tocoo()
    first, second, n_shared = counts.row, counts.col, counts.data
    keep = first < second
    first, second, n_shared = first[keep], second[keep], n_shared[keep]
    overlap = (contigs[first] == contigs[second]) & (starts[first] < ends[second]) & (starts[second] < ends[first])
    similar = ~overlap & (n_shared >= MIN_SHARED * np.minimum(sizes[first], sizes[second]))
    return np.stack([first[similar], second[similar]], axis=1).astype(np.int64)


def repeat_families(reference, contigs, starts, ends) -> np.ndarray:
    """Family id of each example: examples joined by homology, directly or through others, share one; an example
    without a homolog is a family of its own. Example i is ``contigs[i][starts[i]:ends[i]]`` (0-based, end
    exclusive) of ``reference`` (:class:`genoformer.io.fasta.Reference`)."""
    intervals = np.rec.fromarrays([np.asarray(contigs, dtype=str), np.asarray(starts, dtype=np.int64),
                                   np.asarray(ends, dtype=np.int64)])
    unique, example_of = np.unique(intervals, return_inverse=True)  # variants at one site share one interval
    contigs, starts, ends = (np.asarray(unique[name]) for name in unique.dtype.names)
    shared, sizes = example_kmers(reference, contigs, starts, ends)
    pairs = homologous_pairs(shared, sizes, contigs, starts, ends)
    links = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(unique.size, unique.size))
    family = connected_components(links, directed=False)[1][example_of.ravel()]
    size = np.bincount(family, minlength=1)
    if len(pairs):
        log.info("%d examples have a near-identical copy at another locus (%d repeat families)",
                 int((size[family] > 1).sum()), int((size > 1).sum()))
    return family
