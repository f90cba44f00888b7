"""A region-classification task from a genome annotation: coding vs intergenic stretches of the genome.

Regions are non-overlapping stretches of ``length`` bp on a grid (start = a multiple of ``length``) of two classes:

- ``coding``: every base inside a CDS line of the GFF3 (any CDS, trans-spliced ones such as plastid rps12 too);
- ``intergenic``: no base inside a gene-level feature, i.e. between genes. A gene-level feature is a gene or
  pseudogene (any type ending in ``gene``, ``gene_segment`` or starting with ``pseudogen``), a transcript (any type
  ending in ``RNA`` or ``transcript``: mRNA, tRNA, rRNA, ncRNA, tmRNA ...) or a part of one (``CDS``, any type
  ending in ``exon``, ``intron``, ``UTR`` or ``_codon``); the whole span of its line counts, introns included.

Stretches in neither class (inside a non-coding gene such as a tRNA or rRNA, an intron, a UTR, or partly coding)
are not drawn: calling them intergenic would mislabel genes, and a biologist reads "intergenic" as "between genes".
Other features (repeat_region, mobile_genetic_element, origin, region ...) do not matter. For an annotation of CDS
only (Prodigal), intergenic is simply outside every CDS. Regions are drawn only on the contigs that the GFF3 has
feature lines on: a contig of the reference that it does not annotate (a plasmid or scaffold left out of it) has no
gene calls, not no genes, and is skipped with a warning. ``per_class`` regions of each class are drawn with a seeded
generator and written as BED with the class in column 7, the format `genoformer classify-regions --bed` reads.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from genoformer.atomic import atomic_path
from genoformer.errors import InputError
from genoformer.io.gff3 import EndCheck, is_gene_level, pieces, read_features

log = logging.getLogger(__name__)

CLASSES = ("coding", "intergenic")


def annotation_masks(reference, gff_path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per contig of ``reference`` that the GFF3 annotates (has a feature line on), which bases are coding (inside a
    CDS) and which lie inside a gene-level feature; the other contigs are left out, with a warning naming them.

    Contigs of those features must be in ``reference`` (:class:`MismatchError` otherwise); a feature ending past its
    contig (but crossing the origin of a contig declared circular: both its pieces count) or an annotation without
    CDS raises :class:`InputError` naming the file (and line).
    """
    coding, genic = {}, {}  # masks only of the contigs the GFF3 annotates
    checked, n_cds, ends = set(), 0, EndCheck(reference.contigs, gff_path)
    for feature in read_features(gff_path):
        ends.note(feature)
        if feature.contig in reference.contigs and feature.contig not in genic:
            length = reference.contigs[feature.contig]
            coding[feature.contig], genic[feature.contig] = np.zeros(length, dtype=bool), np.zeros(length, dtype=bool)
        if not is_gene_level(feature.type):
            continue
        if feature.contig not in checked:
            reference.check_contig(feature.contig, source=str(gff_path))
            checked.add(feature.contig)
        ends.check(feature)
        for start, end in pieces(feature.start, feature.end, reference.contigs[feature.contig]):
            genic[feature.contig][start:end] = True
            if feature.type == "CDS":
                coding[feature.contig][start:end] = True
        n_cds += feature.type == "CDS"
    ends.finish()
    if not n_cds:
        raise InputError(f"{gff_path}: no CDS features found")
    skipped = [contig for contig in reference.contigs if contig not in genic]
    if skipped:
        log.warning("%s has no feature line on %d contig(s) of %s (%s%s): no regions are drawn there (unannotated "
                    "sequence is not intergenic)", gff_path, len(skipped), reference.path, ", ".join(skipped[:5]),
                    ", ..." if len(skipped) > 5 else "")
    annotated = [contig for contig in reference.contigs if contig in genic]  # reference order, as drawn
    return {contig: coding[contig] for contig in annotated}, {contig: genic[contig] for contig in annotated}


def region_candidates(reference, gff_path: str | os.PathLike, length: int) -> dict[str, list[tuple[str, int]]]:
    """Per class, every (contig, 0-based start) of a ``length`` bp grid slot of that class, in genome order."""
    coding, genic = annotation_masks(reference, gff_path)
    candidates = {name: [] for name in CLASSES}
    for contig in coding:
        starts = np.arange(0, reference.contigs[contig] - length + 1, length)
        for label, mask, wanted in (("coding", coding, length), ("intergenic", genic, 0)):
            covered = np.concatenate([[0], np.cumsum(mask[contig], dtype=np.int64)])
            inside = covered[starts + length] - covered[starts]
            candidates[label] += [(contig, int(s)) for s in starts[inside == wanted]]
    return candidates


def coding_intergenic_regions(reference, gff_path: str | os.PathLike, *, length: int, per_class: int,
                              seed: int = 0) -> pd.DataFrame:
    """BED rows (chrom, start, end, name, score, strand, label) of coding and intergenic regions, in genome order.

    Raises ``InputError`` when the annotation leaves fewer than ``per_class`` regions of a class.
    """
    if length < 1 or per_class < 1:
        raise InputError(f"region length ({length}) and regions per class ({per_class}) must be >= 1")
    candidates = region_candidates(reference, gff_path, length)
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
