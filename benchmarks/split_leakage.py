"""Benchmark: how much repeat copies leak across a split by position, and what the k-mer baseline gains from it.

Coding vs intergenic 100 bp regions of the bundled C. diphtheriae genome (``genoformer region-labels`` with
``--per-class 1500``: every intergenic region the annotation leaves, nearly), split into 100 kbp blocks with 30%
held out, for several seeds, twice: by position alone, and with repeat families
(:func:`genoformer.tasks.homology.repeat_families`: a test region with a near-identical copy in training moves
to training). Each row: held-out regions, how many of them have a copy on the training side ("leaked"), and the
held-out AUROC of the k-mer spectrum baseline (4-mers of the 512 bp window, the workflow's ``classify-regions``
baseline), fit on the training side. A baseline that scores higher when copies leak has been memorising repeats.

Prints a table and writes benchmarks/results/split_leakage.json. Usage: ``python benchmarks/split_leakage.py
[--seeds 5]``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np

from genoformer.atomic import write_json
from genoformer.io.fasta import Reference
from genoformer.region_labels import coding_intergenic_regions
from genoformer.tasks.homology import canonical_kmers, homologous_pairs, loci, repeat_families
from genoformer.tasks.linear import fit_linear
from genoformer.tasks.metrics import auroc
from genoformer.tasks.regions import kmer_features, region_windows, window_sequences
from genoformer.tasks.splits import assign_test, split_groups

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "split_leakage.json"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
ANNOTATION = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"
LENGTH, PER_CLASS, WINDOW, BLOCK, TEST_FRACTION, KMER = 100, 1500, 512, 100_000, 0.3, 4


def main() -> None:
    """Split with and without repeat families per seed, print the table, write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    with Reference(GENOME) as reference:
        table = coding_intergenic_regions(reference, ANNOTATION, length=LENGTH, per_class=PER_CLASS)
        contigs, starts, ends = table["chrom"].to_numpy(str), table["start"].to_numpy(), table["end"].to_numpy()
        window_starts, window_ends = region_windows(table, reference.contigs, WINDOW, 1)
        features = kmer_features(window_sequences(reference, table, window_starts, window_ends), KMER)
        families = repeat_families(reference, contigs, starts, ends)
        pairs = homologous_pairs([canonical_kmers(reference.codes(c, int(s), int(e))[0])
                                  for c, s, e in zip(contigs, starts, ends)], loci(contigs, starts, ends))
    classes = sorted(table["label"].unique().tolist())
    labels = np.searchsorted(classes, table["label"].to_numpy())
    groups = split_groups(contigs, (starts + ends) // 2, method="blocks", block=BLOCK)
    in_family = np.bincount(families)[families] > 1
    rows = []
    for seed in range(args.seeds):
        for split, split_families in (("by position", None), ("with repeat families", families)):
            is_test = assign_test(groups, table["label"].to_numpy(), test_fraction=TEST_FRACTION, seed=seed,
                                  families=split_families)
            leaked = np.zeros(len(table), dtype=bool)
            crossing = is_test[pairs[:, 0]] != is_test[pairs[:, 1]]
            leaked[pairs[crossing].ravel()] = True
            model = fit_linear(features[~is_test], labels[~is_test], groups[~is_test], classes, seed)
            scores = model.predict_proba(features)[:, 1]
            rows.append({"seed": seed, "split": split, "n_test": int(is_test.sum()),
                         "test_leaked": int((leaked & is_test).sum()),
                         "kmer_auroc": round(auroc(labels[is_test], scores[is_test]), 4)})
    print(f"{len(table)} regions ({', '.join(classes)}), {int(in_family.sum())} with a copy at another locus")
    print(f"{'seed':>4}  {'split':<22}{'held out':>9}{'leaked':>8}{'k-mer AUROC':>13}")
    for row in rows:
        print(f"{row['seed']:>4}  {row['split']:<22}{row['n_test']:>9}{row['test_leaked']:>8}"
              f"{row['kmer_auroc']:>13.4f}")
    by_split = {split: np.mean([r["kmer_auroc"] for r in rows if r["split"] == split])
                for split in ("by position", "with repeat families")}
    print("mean k-mer AUROC: " + ", ".join(f"{split} {value:.4f}" for split, value in by_split.items()))
    write_json(RESULTS, {
        "benchmark": "split_leakage", "device": platform.processor() or platform.machine(),
        "date": datetime.date.today().isoformat(),
        "task": {"regions": len(table), "length_bp": LENGTH, "window_bp": WINDOW, "block_bp": BLOCK,
                 "test_fraction": TEST_FRACTION, "kmer": KMER, "with_copy_elsewhere": int(in_family.sum()),
                 "with_copy_by_class": {name: int((in_family & (table["label"].to_numpy() == name)).sum())
                                        for name in classes}},
        "mean_kmer_auroc": {split: round(float(value), 4) for split, value in by_split.items()},
        "rows": rows})


if __name__ == "__main__":
    main()
