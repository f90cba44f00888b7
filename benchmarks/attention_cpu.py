"""Benchmark: LSH attention vs exact softmax attention on CPU, N = 1k ... 32k tokens.

Each (method, pass, N) runs in its own subprocess, so its peak memory is the growth of the process's maximum
resident set (``resource.getrusage``) over the run, which sees torch's allocations (tracemalloc does not).
Time is the best of a few passes on one thread, float32, batch 1, one head of size 64 (the default model's
head), bucket_size 64, n_hashes 2. Passes: ``forward`` (no autograd) and ``train`` (forward and backward).

Methods:
- ``lsh``: ``hash_buckets`` + ``chunked_lsh.lsh_attention`` (what the model runs on CPU).
- ``lsh-reference``: ``hash_buckets`` + the reference ``lsh_attention`` (same function, written to be read).
- ``exact``: the reference ``full_attention`` (same keys, scale and masks, dense [N, N] logits), forward only.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` without masks, PyTorch's fused exact
  kernel, shown as the strongest exact baseline (it does not apply our self/padding rules), forward only.

``exact`` is skipped where its dense logits (about 4 copies of N² floats) would need more than a quarter
of the memory available at start; the row says so. Prints a table and writes
benchmarks/results/attention_cpu.json. Usage: ``python benchmarks/attention_cpu.py [--lengths 1024 2048 ...]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "attention_cpu.json"
LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768)
HEAD_DIM, BUCKET_SIZE, N_HASHES = 64, 64, 2
EXACT_COPIES = 4  # dense float32 [N, N] tensors alive at once in full_attention's forward


def run_case(method: str, kind: str, length: int) -> dict:
    """Time and peak memory of one method and pass at one length, in this process (call in a fresh subprocess)."""
    import torch

    from genoformer.model.chunked_lsh import lsh_attention as chunked_lsh_attention
    from genoformer.model.hashing import hash_buckets
    from genoformer.model.lsh_attention import full_attention, lsh_attention, n_buckets_for

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    train = kind == "train"
    qk = torch.randn(1, 1, length, HEAD_DIM, generator=generator).requires_grad_(train)
    v = torch.randn(1, 1, length, HEAD_DIM, generator=generator).requires_grad_(train)
    kernels = {"lsh": chunked_lsh_attention, "lsh-reference": lsh_attention}

    def forward(qk, v):
        if method in kernels:
            buckets = hash_buckets(qk.detach(), n_buckets_for(qk.shape[2], BUCKET_SIZE), N_HASHES, seed=0)
            return kernels[method](qk, v, buckets, bucket_size=BUCKET_SIZE)
        if method == "exact":
            return full_attention(qk, v)
        return torch.nn.functional.scaled_dot_product_attention(qk, torch.nn.functional.normalize(qk, dim=-1), v)

    def one_pass(qk, v):
        with torch.set_grad_enabled(train):
            out = forward(qk, v)
            if train:
                out.sum().backward()

    one_pass(qk[:, :, :256], v[:, :, :256])  # warm up, so one-time library set-up is not counted below
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3 if length <= 8192 else 1):
        start = time.perf_counter()
        one_pass(qk, v)
        times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib
    return {"time_s": min(times), "peak_mib": peak_kib / 1024}


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), or a conservative 8 GiB elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def measure(method: str, kind: str, length: int) -> dict:
    """Run one case in a subprocess and return its result dict."""
    output = subprocess.run([sys.executable, __file__, "--case", method, kind, str(length)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


CASES = [("lsh", "forward"), ("lsh-reference", "forward"), ("exact", "forward"), ("sdpa", "forward"),
         ("lsh", "train"), ("lsh-reference", "train")]


def main(argv: list[str] | None = None) -> None:
    """Run every case, print the table, write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="sequence lengths to time")
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "PASS", "N"),
                        help="internal: run one case and print JSON")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], args.case[1], int(args.case[2]))))
        return

    import torch

    budget = available_bytes() / 4
    rows = []
    columns = [f"{method} {kind}" for method, kind in CASES]
    header = f"{'N':>6} | " + " | ".join(f"{name + ' s / MiB':>28}" for name in columns)
    print(header)
    print("-" * len(header))
    for length in args.lengths:
        row = {"n": length}
        for method, kind in CASES:
            key = f"{method}_{kind}".replace("-", "_")
            needed = EXACT_COPIES * length**2 * 4
            if method == "exact" and needed > budget:
                row["exact_note"] = (f"skipped: needs ~{needed / 2**30:.1f} GiB, more than a quarter of the "
                                     f"{4 * budget / 2**30:.1f} GiB available")
                row[f"{key}_time_s"] = row[f"{key}_peak_mib"] = None
                continue
            result = measure(method, kind, length)
            row[f"{key}_time_s"], row[f"{key}_peak_mib"] = result["time_s"], result["peak_mib"]
        for kind in ("forward", "train"):
            row[f"{kind}_time_ratio_reference_over_lsh"] = (row[f"lsh_reference_{kind}_time_s"]
                                                           / row[f"lsh_{kind}_time_s"])
        if row["exact_forward_time_s"] is not None:
            row["forward_time_ratio_exact_over_lsh"] = row["exact_forward_time_s"] / row["lsh_forward_time_s"]
        rows.append(row)
        fmt = lambda value, spec: "skipped" if value is None else format(value, spec)  # noqa: E731
        cells = [f"{fmt(row[f'{m}_{k}_time_s'.replace('-', '_')], '.3f')} / "
                 f"{fmt(row[f'{m}_{k}_peak_mib'.replace('-', '_')], '.1f')}" for m, k in CASES]
        print(f"{length:>6} | " + " | ".join(f"{cell:>28}" for cell in cells), flush=True)
        print(f"{'':>6}   reference / chunked time: forward {row['forward_time_ratio_reference_over_lsh']:.2f}x, "
              f"train {row['train_time_ratio_reference_over_lsh']:.2f}x", flush=True)
        if "exact_note" in row:
            print(f"{'':>6}   exact {row['exact_note']}")

    from genoformer.atomic import write_json

    write_json(RESULTS, {
        "benchmark": "attention_cpu",
        "device": f"CPU ({platform.processor() or platform.machine()}), 1 thread",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"batch": 1, "heads": 1, "head_dim": HEAD_DIM, "bucket_size": BUCKET_SIZE,
                     "n_hashes": N_HASHES, "dtype": "float32",
                     "passes": {"forward": "no autograd", "train": "forward + backward of out.sum()"}},
        "rows": rows,
    })
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
