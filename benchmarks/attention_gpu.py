"""GPU benchmark: the attention layer alone, forward + backward, at 4k to 1,048,576 tokens.

Batch 1, 8 heads of 64, bf16. ``lsh-fast``: genoformer's hashing + the CUDA fast path (compiled
FlexAttention); ``lsh-reference``: the same hashing + the reference kernel; ``sdpa-full``: exact attention
through ``scaled_dot_product_attention`` (flash). LSH rows use 4 hash rounds and buckets of 128, as in
train_step.py. Each row: time of one forward + backward (``step_s``), tokens per second, peak memory.
Cases that run out of memory, fail, or are predicted to take too long are recorded as such (see
train_step.py). Writes ``benchmarks/results/attention_gpu.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Import from the repository root, not from this folder: run as a script, Python puts benchmarks/ first on
# the path, and benchmarks/tokenize.py would shadow the standard library's tokenize (imported by torch).
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.train_step import SEQ_LENS, format_table, gib, header, run_cases  # noqa: E402
from genoformer.atomic import write_json  # noqa: E402
from genoformer.model import fast  # noqa: E402
from genoformer.model.hashing import hash_buckets  # noqa: E402
from genoformer.model.lsh_attention import lsh_attention as reference_lsh_attention  # noqa: E402
from genoformer.model.lsh_attention import n_buckets_for  # noqa: E402

HEADS, HEAD_DIM, N_HASHES, BUCKET_SIZE = 8, 64, 4, 128


def lsh(kernel):
    """An attention function ``(qk, v) -> out``: hashing, then ``kernel``."""

    def attend(qk, v):
        buckets = hash_buckets(qk, n_buckets_for(qk.shape[2], BUCKET_SIZE), N_HASHES, seed=0)
        return kernel(qk, v, buckets, bucket_size=BUCKET_SIZE)

    return attend


def sdpa(qk, v):
    """Exact attention with shared query/key, through SDPA's flash kernel."""
    return F.scaled_dot_product_attention(qk, F.normalize(qk, dim=-1), v)


IMPLS = {
    "lsh-fast": (lambda: lsh(fast.lsh_attention), 1),
    "lsh-reference": (lambda: lsh(reference_lsh_attention), 1),
    "sdpa-full": (lambda: sdpa, 2),
}


def measure(build, seq_len: int, *, warmup: int, min_steps: int, min_seconds: float) -> dict:
    """Time forward + backward of one attention function on random bf16 inputs."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    attend = build()
    qk = torch.randn(1, HEADS, seq_len, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, HEADS, seq_len, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn_like(v)

    def step():
        out = attend(qk, v)
        torch.autograd.grad(out, (qk, v), grad)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step()
        steps += 1
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    return {"step_s": round(step_s, 6), "tokens_per_s": round(seq_len / step_s), "steps": steps,
            "peak_mem_gib": gib(torch.cuda.max_memory_allocated())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS), help="kernels to run")
    parser.add_argument("--seq-lens", nargs="+", type=int, default=list(SEQ_LENS), help="sequence lengths")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward + backward passes first")
    parser.add_argument("--min-steps", type=int, default=5, help="timed passes at least")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="keep timing passes until this long")
    parser.add_argument("--max-case-s", type=float, default=20.0,
                        help="skip a case whose predicted warm-up + timed passes exceed this many seconds")
    parser.add_argument("--deadline-s", type=float, default=1e9, help="start no case after this many seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attention_gpu.json",
                        help="JSON file to write")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    impls = {name: IMPLS[name] for name in args.impls}
    report = header("attention_gpu", {"batch": 1, "heads": HEADS, "head_dim": HEAD_DIM, "dtype": "bfloat16",
                                      "n_hashes": N_HASHES, "bucket_size": BUCKET_SIZE, "pass": "forward+backward"})
    rows = []

    def on_row(row):
        rows.append(row)
        print(format_table([row], ("impl", "seq_len", "step_s", "tokens_per_s", "peak_mem_gib", "status"))
              .splitlines()[1], flush=True)
        write_json(args.out, {**report, "rows": rows})

    def measure_case(build, seq_len):
        return measure(build, seq_len, warmup=args.warmup, min_steps=args.min_steps, min_seconds=args.min_seconds)

    # 64k and 16k first (the lengths the issue compares at), so a run cut short still has them.
    order = sorted(args.seq_lens, key=lambda n: (n not in (65536, 16384), -n if n in (65536, 16384) else n))
    run_cases([(name, n) for n in order for name in impls], impls, args, measure_case, on_row)
    rows.sort(key=lambda row: (list(impls).index(row["impl"]), row["seq_len"]))
    write_json(args.out, {**report, "rows": rows})
    print(f"\n{report['device']}, torch {report['torch']}\n"
          + format_table(rows, ("impl", "seq_len", "step_s", "tokens_per_s", "peak_mem_gib", "status")))


if __name__ == "__main__":
    main()
