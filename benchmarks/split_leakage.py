"""Benchmark: repeat copies across a split by position: how many, and what they do to the k-mer baseline's AUROC.

Coding vs intergenic 100 bp regions of the bundled C. diphtheriae genome (``genoformer region-labels`` with
``--per-class 1500``: nearly every intergenic region the annotation leaves), 100 kbp blocks, 30% held out, for
several seeds. The k-mer spectrum baseline (4-mers of the 512 bp window, the workflow's ``classify-regions``
baseline) is fit and scored three ways per seed:

- ``by position``: the blocks' test side, trained on the training side (copies of test regions included);
- ``copies not trained on``: the same test side, trained without the training regions that are copies of a test
  region: the difference from ``by position`` is what training on a copy buys (memorisation);
- ``copies left out`` (what the classifiers do, :func:`genoformer.tasks.splits.assign_split` with repeat
  families): trained as ``by position``, scored without the test regions that have a copy in training.

Each row: regions scored, how many of them have a copy on the training side, the held-out AUROC.
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
from genoformer.tasks.homology import repeat_families
from genoformer.tasks.linear import fit_linear
from genoformer.tasks.metrics import auroc
from genoformer.tasks.regions import kmer_features, region_windows, window_sequences
from genoformer.tasks.splits import assign_split, has_copy_in, split_groups

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
    classes = sorted(table["label"].unique().tolist())
    labels = np.searchsorted(classes, table["label"].to_numpy())
    groups = split_groups(contigs, (starts + ends) // 2, method="blocks", block=BLOCK)
    in_family = np.bincount(families)[families] > 1
    names = table["label"].to_numpy()
    rows = []
    for seed in range(args.seeds):
        train, test = assign_split(groups, names, test_fraction=TEST_FRACTION, seed=seed)
        copies = has_copy_in(train, families)  # per example: a member of its family is in training
        trained_copies = train & has_copy_in(test, families)
        for split, fit, scored in (("by position", train, test),
                                   ("copies not trained on", train & ~trained_copies, test),
                                   ("copies left out", train, test & ~copies)):
            model = fit_linear(features[fit], labels[fit], groups[fit], classes, seed, families[fit])
            scores = model.predict_proba(features)[:, 1]
            rows.append({"seed": seed, "split": split, "n_train": int(fit.sum()), "n_test": int(scored.sum()),
                         "test_with_trained_copy": int((scored & has_copy_in(fit, families)).sum()),
                         "kmer_auroc": round(auroc(labels[scored], scores[scored]), 4)})
    splits = ("by position", "copies not trained on", "copies left out")
    print(f"{len(table)} regions ({', '.join(classes)}), {int(in_family.sum())} with a copy at another locus")
    print(f"{'seed':>4}  {'split':<24}{'trained':>8}{'scored':>8}{'copy trained':>14}{'k-mer AUROC':>13}")
    for row in rows:
        print(f"{row['seed']:>4}  {row['split']:<24}{row['n_train']:>8}{row['n_test']:>8}"
              f"{row['test_with_trained_copy']:>14}{row['kmer_auroc']:>13.4f}")
    by_split = {split: np.mean([r["kmer_auroc"] for r in rows if r["split"] == split]) for split in splits}
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
