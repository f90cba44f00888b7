"""Benchmark: masked-LM training throughput of config/pretrain/default.yaml on CPU (tokens per second).

Tokenizes the bundled C. diphtheriae genome (k=1, 1024-token windows) into a temporary folder, then runs
``genoformer pretrain`` with the default config for a few steps at 1 and 2 intra-op threads, with the LSH
attention kernel the CPU uses (``chunked``: genoformer/model/chunked_lsh.py) and with the reference kernel
(``GENOFORMER_LSH_KERNEL=reference``), each in its own subprocess, alternating. Throughput is window tokens per second of training (``tokens_per_s`` in metrics.jsonl) over the
steps after the first log interval (warm-up excluded); the rows also give seconds per optimizer step. Prints a
table and writes benchmarks/results/pretrain_cpu.json.
Usage: ``python benchmarks/pretrain_cpu.py [--steps 30] [--threads 1 2] [--kernels chunked reference]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pretrain_cpu.json"
CONFIG = ROOT / "config" / "pretrain" / "default.yaml"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
LOG_EVERY = 5


def genoformer(*args: str, threads: int | None = None, kernel: str = "chunked") -> None:
    """Run the genoformer CLI in a subprocess (``threads``: OMP_NUM_THREADS; ``kernel``: chunked or reference)."""
    env = {key: value for key, value in os.environ.items() if key != "GENOFORMER_LSH_KERNEL"}
    if kernel == "reference":
        env["GENOFORMER_LSH_KERNEL"] = "reference"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run([sys.executable, "-m", "genoformer", "-q", *args], check=True, env=env)


def measure(tokens: Path, out: Path, steps: int, threads: int, kernel: str) -> dict:
    """Train ``steps`` steps of the default config with ``threads`` threads; throughput after warm-up."""
    genoformer("pretrain", "--data", str(tokens), "--config", str(CONFIG), "--out", str(out),
               "--set", f"run.steps={steps}", "--set", f"run.log_every={LOG_EVERY}",
               "--set", f"run.checkpoint_every={steps}", "--set", "run.eval_windows=1", threads=threads,
               kernel=kernel)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records[1:] if r.get("tokens_per_s")]
    state = json.loads((out / "trainer_state.json").read_text())
    data, optim = state["config"]["data"], state["config"]["optim"]
    tokens_per_step = data["batch_size"] * optim["accumulation"] * state["data"]["window"]
    tokens_per_s = len(rates) / sum(1 / rate for rate in rates)  # harmonic mean: equal steps per interval
    return {"config": str(CONFIG.relative_to(ROOT)), "kernel": kernel, "threads": threads, "steps_timed": LOG_EVERY * len(rates),
            "window": state["data"]["window"], "tokens_per_step": tokens_per_step, "tokens_per_s": tokens_per_s,
            "s_per_step": tokens_per_step / tokens_per_s}


def main(argv: list[str] | None = None) -> None:
    """Tokenize once, time every thread count, print the table, write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per measurement (default 30)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts")
    parser.add_argument("--kernels", nargs="+", default=["chunked", "reference"], choices=["chunked", "reference"],
                        help="LSH attention kernels to time (default both)")
    args = parser.parse_args(argv)

    import torch

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tokens = Path(scratch) / "tokens"
        genoformer("tokenize", "--fasta", str(GENOME), "--k", "1", "--window", "1024", "--out", str(tokens))
        print(f"{'kernel':>9} | {'threads':>7} | {'tokens/s':>9} | {'s/step':>7} | tokens/step")
        for threads in args.threads:
            for kernel in args.kernels:
                row = measure(tokens, Path(scratch) / f"run-{kernel}-{threads}", args.steps, threads, kernel)
                rows.append(row)
                print(f"{kernel:>9} | {threads:>7} | {row['tokens_per_s']:>9.0f} | {row['s_per_step']:>7.2f} | "
                      f"{row['tokens_per_step']}", flush=True)

    from genoformer.atomic import write_json

    write_json(RESULTS, {
        "benchmark": "pretrain_cpu",
        "device": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    })
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
