"""A region-classification task from a genome annotation: coding vs intergenic stretches of the genome.

Regions are non-overlapping stretches of ``length`` bp on a grid (start = a multiple of ``length``) that lie
wholly inside coding sequence (every base covered by a CDS of the GFF3) or wholly outside it; ``per_class``
of each are drawn with a seeded generator. Written as BED with the class in column 7, the format
`genoformer classify-regions --bed` reads.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from genoformer.atomic import atomic_path
from genoformer.errors import InputError
from genoformer.tasks.coding import read_cds

CLASSES = ("coding", "intergenic")


def coding_intergenic_regions(reference, gff_path: str | os.PathLike, *, length: int, per_class: int,
                              seed: int = 0) -> pd.DataFrame:
    """BED rows (chrom, start, end, name, score, strand, label) of coding and intergenic regions, in genome order.

    Raises ``InputError`` when the annotation leaves fewer than ``per_class`` regions of a class.
    """
    if length < 1 or per_class < 1:
        raise InputError(f"region length ({length}) and regions per class ({per_class}) must be >= 1")
    cds_list = read_cds(gff_path, reference.contigs)
    for contig in sorted({cds.contig for cds in cds_list}):
        reference.check_contig(contig, source=str(gff_path))
    candidates = {name: [] for name in CLASSES}
    for contig, contig_length in reference.contigs.items():
        coding = np.zeros(contig_length, dtype=np.int64)
        for cds in cds_list:
            if cds.contig == contig:
                for start, end in cds.segments:
                    coding[start:end] = 1
        covered = np.concatenate([[0], np.cumsum(coding)])
        starts = np.arange(0, contig_length - length + 1, length)
        inside = covered[starts + length] - covered[starts]
        candidates["coding"] += [(contig, int(s)) for s in starts[inside == length]]
        candidates["intergenic"] += [(contig, int(s)) for s in starts[inside == 0]]
    rng = np.random.default_rng(seed)
    rows = []
    for label, found in candidates.items():
        if len(found) < per_class:
            raise InputError(f"{gff_path}: only {len(found)} {label} regions of {length} bp, {per_class} asked for")
        for index in sorted(rng.choice(len(found), size=per_class, replace=False)):
            contig, start = found[index]
            rows.append((contig, start, start + length, f"{label}_{contig}:{start + 1}", 0, ".", label))
    order = {name: rank for rank, name in enumerate(reference.contigs)}
    rows.sort(key=lambda row: (order[row[0]], row[1]))
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "name", "score", "strand", "label"])


def write_bed(path: str | os.PathLike, regions: pd.DataFrame) -> None:
    """Write BED rows atomically, no header."""
    with atomic_path(path) as tmp:
        regions.to_csv(tmp, sep="\t", header=False, index=False)
