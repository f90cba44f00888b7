"""The long-range motif-order task: is motif A upstream of motif B, or B upstream of A, 50 kbp+ apart?

Each example is a window of real sequence from a reference genome with two fixed random motifs written over it,
at least ``min_distance`` bp apart; the label is their order. Windows, positions and labels are drawn
independently, and both classes hold exactly one copy of each motif, so any bag-of-k-mers model is at chance by
construction: only a model that relates sequence far apart can beat it. Not necessarily the two motifs to each
other, though: the upstream motif lies nearer the window's start, so where one motif sits relative to the
window's ends also tells the order (with the default window of twice ``min_distance``, motif A starts in the
first half exactly when it is upstream). That relation spans tens of kbp too, but a model that beats the task
has shown long-range sensitivity, not necessarily motif-to-motif reasoning. The task is written as a FASTA (one
contig per example) and a BED of whole contigs with the label in column 7, ready for ``classify-regions``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from genoformer.atomic import write_text
from genoformer.errors import ConfigError, InputError
from genoformer.io.fasta import N_CODE, decode_bases, reverse_complement_codes

CLASSES = ("B_then_A", "A_then_B")  # label 0, label 1
MAX_TRIES_PER_EXAMPLE = 100


@dataclass
class MotifOrderTask:
    """Examples of the task: ``sequences`` (base codes), ``labels`` (1 = A upstream of B), motif strings, and per
    example the source window (``contig``, ``start``) and the 0-based starts of A and B in the window."""

    sequences: list[np.ndarray]
    labels: np.ndarray
    motif_a: str
    motif_b: str
    sources: list[tuple[str, int]]
    starts: list[tuple[int, int]]


def _count(sequence: np.ndarray, motif: np.ndarray) -> int:
    """Occurrences of ``motif`` on either strand of ``sequence``."""
    windows = np.lib.stride_tricks.sliding_window_view(sequence, motif.size)
    reverse = reverse_complement_codes(motif)
    return int((windows == motif).all(axis=1).sum() + (windows == reverse).all(axis=1).sum())


def _draw_motifs(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    while True:
        a, b = rng.integers(0, 4, size=(2, length), dtype=np.uint8)
        distinct = {a.tobytes(), b.tobytes(), reverse_complement_codes(a).tobytes(),
                    reverse_complement_codes(b).tobytes()}
        if len(distinct) == 4:
            return a, b


def motif_order_task(reference, n_examples: int, *, window: int = 100_000, min_distance: int = 50_000,
                     motif_length: int = 16, seed: int = 0) -> MotifOrderTask:
    """Draw ``n_examples`` balanced examples from N-free windows of ``reference`` (seeded).

    Background windows that already contain either motif (either strand) are redrawn, and so is a planting that
    creates an extra copy across a motif's edge, so every window holds each motif exactly once.
    """
    if min_distance + motif_length > window:
        raise ConfigError(f"motif distance {min_distance} bp plus motif length {motif_length} does not fit "
                          f"a {window} bp window")
    contigs = [(name, length) for name, length in reference.contigs.items() if length >= window]
    if not contigs:
        raise InputError(f"{reference.path}: no contig is at least {window} bp long for the motif-order task")
    rng = np.random.default_rng(seed)
    motif_a, motif_b = _draw_motifs(rng, motif_length)
    lengths = np.array([length - window + 1 for _, length in contigs], dtype=float)
    labels = rng.permutation(np.arange(n_examples) % 2)
    sequences, sources, starts = [], [], []
    for label in labels:
        for _ in range(MAX_TRIES_PER_EXAMPLE):
            contig, length = contigs[rng.choice(len(contigs), p=lengths / lengths.sum())]
            start = int(rng.integers(0, length - window + 1))
            codes = reference.codes(contig, start, start + window)[0].copy()
            if (codes == N_CODE).any() or _count(codes, motif_a) or _count(codes, motif_b):
                continue
            first = int(rng.integers(0, window - min_distance - motif_length + 1))
            second = int(rng.integers(first + min_distance, window - motif_length + 1))
            upstream, downstream = (motif_a, motif_b) if label == 1 else (motif_b, motif_a)
            codes[first:first + motif_length] = upstream
            codes[second:second + motif_length] = downstream
            if _count(codes, motif_a) == 1 and _count(codes, motif_b) == 1:
                break
        else:
            raise InputError(f"{reference.path}: found no clean background window for the motif-order task in "
                             f"{MAX_TRIES_PER_EXAMPLE} tries")
        sequences.append(codes)
        sources.append((contig, start))
        starts.append((first, second) if label == 1 else (second, first))
    return MotifOrderTask(sequences, labels.astype(np.int64), decode_bases(motif_a), decode_bases(motif_b),
                          sources, starts)


def write_motif_order_task(task: MotifOrderTask, fasta_path: str | os.PathLike, bed_path: str | os.PathLike) -> None:
    """Write the examples as FASTA contigs ``motif_order_<i>`` and a BED (label in column 7, atomically)."""
    fasta, bed = [], []
    for i, (codes, label) in enumerate(zip(task.sequences, task.labels)):
        name = f"motif_order_{i:05d}"
        text = decode_bases(codes)
        fasta.append(f">{name}\n" + "\n".join(text[j:j + 80] for j in range(0, len(text), 80)) + "\n")
        bed.append(f"{name}\t0\t{codes.size}\t{name}\t0\t+\t{CLASSES[label]}\n")
    write_text(fasta_path, "".join(fasta))
    write_text(bed_path, "".join(bed))
