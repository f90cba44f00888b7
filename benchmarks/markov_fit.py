"""Benchmark: fitting `genoformer evaluate`'s Markov baseline on a train split of many position blocks.

A genome of one or two contigs is split by position blocks (`tokenize --split-by blocks`, 8 windows of 512 tokens
per block with the workflow's settings): the bundled 2.46 Mbp genome has 427 train blocks, a 17.7 Mbp chromosome
3,076. Counting the chain's contexts per block paid the `4**(max_order + 1)` bins of every order (45 MB of
int64 at order 10) once per block, about 15 ms per block whatever its length, so the fit grew with the number of
blocks (a smaller `--block`, as docs/workflow.md advises for small genomes, made it slower still); `markov.count`
now joins short sequences into pieces of `CHUNK_BASES` bases (an N between them: the same counts). Per genome and
`--block`, each row times (CPU seconds of this process, `time.process_time`):

- `one call per block`: `count([block])` for every train block, summed (what `count(blocks)` cost before);
- `joined`: `count(blocks)` (the counts are checked to be equal);
- `select`: `MarkovModel.select` (counting, and every order 0..10 and smoothing scored on the val split), as
  `genoformer evaluate` runs it.

Genomes: the bundled C. diphtheriae, and each `--fasta` (e.g. a bgzipped C. elegans chromosome X), tokenized
with k = 1 and 512-token windows into a temporary folder. Prints a table and writes
benchmarks/results/markov_fit.json. Usage: ``python benchmarks/markov_fit.py [--fasta X.fa.bgz] [--blocks 8 2]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genoformer.atomic import write_json
from genoformer.tokenize.dataset import Manifest
from genoformer.train.evaluate import iter_split_sequences, split_sequences
from genoformer.train.markov import MarkovModel, count

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "markov_fit.json"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
MAX_ORDER = 10  # genoformer evaluate's default --max-markov-order


def seconds(call):
    """CPU seconds of ``call()`` and its result."""
    start = time.process_time()
    result = call()
    return time.process_time() - start, result


def one_call_per_block(train: list[np.ndarray]) -> list[np.ndarray]:
    """The counts of ``train`` with one ``count`` call per block, summed as they come."""
    total = count(train[:1], MAX_ORDER)
    for codes in train[1:]:
        for table, part in zip(total, count([codes], MAX_ORDER)):
            table += part
    return total


def measure(fasta: Path, block: int, folder: Path) -> dict:
    """Tokenize ``fasta`` as the workflow does with ``--block block`` and time the three ways of fitting."""
    out = folder / f"{fasta.name}.block{block}"
    subprocess.run([sys.executable, "-m", "genoformer", "-q", "tokenize", "--fasta", str(fasta), "--k", "1",
                    "--window", "512", "--block", str(block), "--out", str(out)], check=True)
    manifest = Manifest.load(out)
    train = list(iter_split_sequences(manifest, "train"))
    per_block, summed = seconds(lambda: one_call_per_block(train))
    joined, counts = seconds(lambda: count(train, MAX_ORDER))
    assert all(np.array_equal(a, b) for a, b in zip(summed, counts))
    select, model = seconds(lambda: MarkovModel.select(train, split_sequences(manifest, "val"), MAX_ORDER))
    return {"genome": fasta.name, "train_mbp": round(sum(codes.size for codes in train) / 1e6, 2),
            "block_windows": block, "train_blocks": len(train), "one_call_per_block_s": round(per_block, 2),
            "joined_s": round(joined, 2), "speedup": round(per_block / joined, 1), "select_s": round(select, 2),
            "order": model.order}


def main() -> None:
    """Time each genome and block size, print the table, write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasta", type=Path, action="append", default=[], help="another genome (repeatable)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[8, 2], help="tokenize --block values")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for fasta in [GENOME, *args.fasta]:
            for block in args.blocks:
                rows.append(measure(fasta, block, Path(folder)))
                row = rows[-1]
                print(f"{row['genome']:<28}{row['train_mbp']:>7} Mbp  block {block:>2}: {row['train_blocks']:>6} "
                      f"train blocks, one call per block {row['one_call_per_block_s']:>7.2f} s, joined "
                      f"{row['joined_s']:>6.2f} s ({row['speedup']}x), select {row['select_s']:>6.2f} s "
                      f"(order {row['order']})", flush=True)
    write_json(RESULTS, {"benchmark": "markov_fit", "device": platform.processor() or platform.machine(),
                         "torch": torch.__version__, "date": datetime.date.today().isoformat(),
                         "cpus": len(os.sched_getaffinity(0)), "max_order": MAX_ORDER, "rows": rows})


if __name__ == "__main__":
    main()
