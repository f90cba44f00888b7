"""Novel held-out bases: those that no ``REPEAT_K``-mer shared with the train split covers.

Position-block splits are not repeat-aware: the copies of a repeat (rRNA operons, insertion sequences, a
chloroplast's inverted repeat) land on both sides, and a model that memorised the training copy looks better on
the held-out one than it generalises. A held-out base is *repeat* when some canonical ``REPEAT_K``-mer covering
it (a k-mer and its reverse complement count as one, so copies on either strand match) also occurs anywhere in
the train split; it is *novel* otherwise. A 31-mer turns up by chance about once per 4**31 bp, so in practice
only real copies match.

The k-mers are those of a window's decoded bases (``genoformer.tokenize.encode.decode``): only k-mers lying
wholly inside the window count, so a copy that starts just outside the window shows in it only from its first
whole k-mer on. K-mers holding an N (also the padding after a contig end) never match, and a window shorter
than ``REPEAT_K`` bases has no k-mer: all its bases are novel.

Memory does not grow with the train split nor with the window length: the k-mers looked up are only the scored
windows' (distinct and sorted, at most 8 bytes per scored base), gathered ``CHUNK_BP`` bases of windows at a
time, and the train split's sequences are streamed past them in chunks of ``CHUNK_BP`` bases.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from genoformer.io.fasta import N_CODE
from genoformer.tasks.homology import NO_KMER, canonical_kmers

REPEAT_K = 31
CHUNK_BP = 1 << 22


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct ``values`` less :data:`NO_KMER` (a sort and a mask: numpy's ``unique`` is many times
    slower on uint64)."""
    values = np.sort(values)
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep & (values != NO_KMER)]


def _separated(windows: np.ndarray) -> np.ndarray:
    """The rows of ``windows`` (base codes ``[B, L]``) one after another, an N after each, so no k-mer spans two."""
    return np.concatenate([windows, np.full((len(windows), 1), N_CODE, dtype=np.uint8)], axis=1).ravel()


def _lookup(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``values``: its index in ``sorted_values`` (clipped), and whether it is there."""
    if sorted_values.size == 0:
        return np.zeros(values.size, dtype=np.int64), np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, values), sorted_values.size - 1)
    return at, sorted_values[at] == values


def window_kmers(batches: Iterable[np.ndarray], k: int = REPEAT_K) -> np.ndarray:
    """The distinct canonical ``k``-mers (sorted uint64, no :data:`NO_KMER`) lying wholly inside a window, over
    batches of windows (base codes ``[B, L]``)."""
    found = [_distinct(canonical_kmers(_separated(np.asarray(windows, dtype=np.uint8)), k)) for windows in batches]
    return _distinct(np.concatenate([np.zeros(0, dtype=np.uint64), *found]))


def kmers_found_in(query: np.ndarray, sequences: Iterable[np.ndarray], k: int = REPEAT_K,
                   chunk_bp: int = CHUNK_BP) -> np.ndarray:
    """Those of the sorted distinct ``query`` k-mers that occur in any of ``sequences`` (base codes, read one
    chunk of ``chunk_bp`` bases at a time, chunks overlapping by ``k - 1`` bases so no k-mer is missed)."""
    found = np.zeros(query.size, dtype=bool)
    for codes in sequences:
        for first in range(0, max(codes.size - k + 1, 0), chunk_bp):
            at, hit = _lookup(query, _distinct(canonical_kmers(codes[first:first + chunk_bp + k - 1], k)))
            found[at[hit]] = True
    return query[found]


def repeat_bases(windows: np.ndarray, repeat_kmers: np.ndarray, k: int = REPEAT_K) -> np.ndarray:
    """Bool ``[B, L]`` per base of ``windows`` (base codes ``[B, L]``): True where a canonical ``k``-mer lying
    wholly inside the row covers it (a base at ``p`` is covered by the k-mers starting at ``p - k + 1 .. p``)
    and is one of the sorted ``repeat_kmers``."""
    windows = np.asarray(windows, dtype=np.uint8)
    batch, length = windows.shape
    kmers = canonical_kmers(_separated(windows), k)  # a k-mer holding a row's closing N is NO_KMER: never found
    starts = np.zeros(batch * (length + 1), dtype=bool)
    starts[:kmers.size] = _lookup(repeat_kmers, kmers)[1]
    running = np.zeros((batch, length + 1), dtype=np.int64)
    np.cumsum(starts.reshape(batch, length + 1)[:, :length], axis=1, out=running[:, 1:])
    first = np.maximum(np.arange(length) - k + 1, 0)  # found k-mers starting at first .. p cover base p
    return running[:, 1:] > running[:, first]
