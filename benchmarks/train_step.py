"""GPU benchmark: one masked-LM training step (forward, backward, AdamW) per model, at growing lengths.

Every model has the same shape (6 layers, dim 512, 8 heads, MLP 4·dim, vocabulary of 16 single-nucleotide tokens,
batch 1) and runs under bf16 autocast with fp32 weights; the loss is cross-entropy on 15% masked positions. Rows:
genoformer with the CUDA fast path (each block's sublayers compiled, as the trainer does on CUDA; variants compile
less), genoformer with the reference kernel, reformer-pytorch 1.4.4, Hugging Face ReformerForMaskedLM, a
flash-attention (SDPA) encoder and HyenaDNA (benchmarks/peers/), at 4k, 16k, 64k, 256k and 1,048,576 tokens where
each fits; plus genoformer at 12 vs 6 layers (peak memory of the reversible stack). Run it with
``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` (the genoformer CLI's default; benchmarks/gpu_suite.sh sets
it) for peak reserved memory close to peak allocated.

Each case is timed after warm-up steps (compilation, autotuning): the timed steps run back to back with one CUDA
synchronization at the end, as the trainer runs them (since the version after the H100 run; that run synchronized
after every step, so the host's launching did not overlap the GPU's work); peak memory is
``torch.cuda.max_memory_allocated`` over warm-up and timed steps. An out-of-memory case is recorded as ``oom``
(and larger lengths of that model are skipped); any other failure as ``error: <message>``; a case whose predicted
time exceeds ``--max-case-s`` (from the model's last measured step and its scaling in N) or that would start after
``--deadline-s`` is ``skipped: <why>``. Prints a table and writes ``{"benchmark", "device", "torch", "date",
"config", "rows"}`` to ``--out``.

    python benchmarks/train_step.py                       # the full table (needs a CUDA GPU)
    python benchmarks/train_step.py --impls genoformer-fast --seq-lens 4096 16384
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import sys
import time
from pathlib import Path

# Import from the repository root, not from this folder: run as a script, Python puts benchmarks/ first on
# the path, and benchmarks/tokenize.py would shadow the standard library's tokenize (imported by torch).
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.peers import hf_reformer, hyenadna, reformer_pytorch_lm, sdpa_encoder  # noqa: E402
from genoformer.atomic import write_json  # noqa: E402
from genoformer.model import ReformerConfig, ReformerForMaskedLM  # noqa: E402
from genoformer.model.fast import compile_sublayers  # noqa: E402
from genoformer.model.fast.flex_lsh import COMPILE_ENV  # noqa: E402
from genoformer.model.lsh_attention import KERNEL_ENV  # noqa: E402

SEQ_LENS = (4096, 16384, 65536, 262144, 1048576)
VOCAB, DIM, DEPTH, HEADS = 16, 512, 6, 8
N_HASHES, BUCKET_SIZE = 4, 128
MASK_FRACTION = 0.15


class GenoformerLM(torch.nn.Module):
    """genoformer's ReformerForMaskedLM; ``forward(ids) -> logits``."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.model = ReformerForMaskedLM(config)
        self.step = 0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.step += 1  # a new hashing seed per step, as in training, without reading a GPU counter
        return self.model(input_ids, seed=self.step, check_ids=False)  # as the trainer: no host sync


def genoformer_builder(kernel: str, depth: int | None = None, compile_scope: str = "function",
                       compiled: str = "sublayers", reversible: bool = True):
    """A ``build`` function for genoformer with the LSH kernel ``kernel``: 'fast' (the automatic choice,
    the fast path on CUDA) or 'reference'. The choice is the process-wide ``GENOFORMER_LSH_KERNEL``
    setting, made when the model is built, since the reversible backward pass picks its kernel again; so is
    the fast path's ``GENOFORMER_FAST_COMPILE`` scope ('function' or 'kernel'). ``compiled``: 'sublayers'
    (what the trainer does on CUDA: ``compile_sublayers``), 'ff' (the feed-forward sublayers only) or
    'none'. ``reversible=False``: the plain residual stack (autograd keeps the activations instead of the
    backward pass recomputing them)."""

    def build(seq_len, vocab_size, dim, depth_, heads):
        if kernel == "reference":
            os.environ[KERNEL_ENV] = "reference"
        else:
            os.environ.pop(KERNEL_ENV, None)
        os.environ[COMPILE_ENV] = compile_scope
        config = ReformerConfig(vocab_size=vocab_size, dim=dim, depth=depth or depth_, heads=heads,
                                n_hashes=N_HASHES, bucket_size=BUCKET_SIZE, max_seq_len=max(seq_len, 1),
                                reversible=reversible)
        lm = GenoformerLM(config)
        if kernel == "fast" and compiled == "sublayers":
            compile_sublayers(lm.model)
        elif compiled == "ff":
            for block in lm.model.reformer.blocks:
                block.g.position_wise = torch.compile(block.g.position_wise)
        return lm

    return build


# name -> (build, how its step time grows with N: 1 linear, 2 quadratic)
IMPLS = {
    "genoformer-fast": (genoformer_builder("fast"), 1),
    "genoformer-reference": (genoformer_builder("reference", compiled="none"), 1),
    "reformer-pytorch": (reformer_pytorch_lm.build, 1),
    "hf-reformer": (hf_reformer.build, 1),
    "sdpa-full-attention": (sdpa_encoder.build, 2),
    "hyenadna": (hyenadna.build, 1),
}
EXTRA_IMPLS = {
    "genoformer-fast-12-layers": (genoformer_builder("fast", depth=12), 1),
    "genoformer-fast-not-reversible": (genoformer_builder("fast", reversible=False), 1),
    "genoformer-fast-attention-compiled": (genoformer_builder("fast", compiled="none"), 1),
    "genoformer-fast-attention-and-ff-compiled": (genoformer_builder("fast", compiled="ff"), 1),
    "genoformer-fast-kernel-compiled": (genoformer_builder("fast", compile_scope="kernel", compiled="none"), 1),
}


def mlm_batch(seq_len: int, device):
    """Random tokens of one sequence; labels at 15% of positions (the rest -100), those inputs masked to 1."""
    generator = torch.Generator(device="cpu").manual_seed(seq_len)
    ids = torch.randint(5, VOCAB, (1, seq_len), generator=generator)
    masked = torch.rand(1, seq_len, generator=generator) < MASK_FRACTION
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    return torch.where(masked, torch.ones_like(ids), ids).to(device), labels.to(device)


def train_step(model, optimizer, ids, labels) -> torch.Tensor:
    """One bf16-autocast masked-LM step: forward, loss, backward, AdamW update; returns the loss."""
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(ids)
    loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def gib(n_bytes: int) -> float:
    return round(n_bytes / 2**30, 2)


def measure(build, seq_len: int, *, warmup: int, min_steps: int, min_seconds: float) -> dict:
    """Time one case; returns step_s, tokens_per_s, peak memory (allocated and reserved)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = build(seq_len, VOCAB, DIM, DEPTH, HEADS).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids, labels = mlm_batch(seq_len, "cuda")
    start = time.perf_counter()
    for _ in range(warmup):
        train_step(model, optimizer, ids, labels)
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    # One synchronized step sizes the timed run; the timed steps are queued back to back and synchronized
    # once at the end, as the trainer runs them (no host sync inside a step), so the host's launching of a
    # step overlaps the GPU's work on the previous one.
    start = time.perf_counter()
    train_step(model, optimizer, ids, labels)
    torch.cuda.synchronize()
    steps = max(min_steps, math.ceil(min_seconds / (time.perf_counter() - start)))
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, optimizer, ids, labels)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss is {loss.item()} after {warmup + steps} steps")
    return {"step_s": round(step_s, 5), "tokens_per_s": round(seq_len / step_s), "steps": steps,
            "loss": round(loss.item(), 4),
            "warmup_s": round(warmup_s, 1), "peak_mem_gib": gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gib": gib(torch.cuda.max_memory_reserved())}


def short_error(err: BaseException) -> str:
    """The first line of an exception, shortened: what a table cell can hold."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"error: {type(err).__name__}: {text[:200]}"


def run_cases(cases, impls, args, measure_case, on_row) -> list[dict]:
    """Run ``cases`` [(impl, seq_len)] in order with ``measure_case(build, seq_len) -> dict``; each row is
    passed to ``on_row`` as soon as it exists. ``impls`` maps a name to (build, exponent of N in its time)."""
    rows, largest, failed_at = [], {}, {}
    began = time.perf_counter()
    for name, seq_len in cases:
        build, exponent = impls[name]
        row = {"impl": name, "seq_len": seq_len, "tokens_per_s": None, "peak_mem_gib": None}
        measured = largest.get(name)  # (seq_len, step_s) of the longest case measured so far
        predicted = None if measured is None else measured[1] * (seq_len / measured[0]) ** exponent
        if name in failed_at and seq_len > failed_at[name][0]:
            row["status"] = "skipped: {1} at {0}".format(*failed_at[name])
        elif time.perf_counter() - began > args.deadline_s:
            row["status"] = "skipped: time budget of this run spent"
        elif predicted is not None and predicted * (args.warmup + args.min_steps) > args.max_case_s:
            row["status"] = f"skipped: predicted {predicted:.1f} s/step"
        else:
            try:
                row.update(measure_case(build, seq_len))
                row["status"] = "ok"
                if measured is None or seq_len > measured[0]:
                    largest[name] = (seq_len, row["step_s"])
            except torch.OutOfMemoryError:
                row["status"] = "oom"
                row["peak_mem_gib"] = gib(torch.cuda.max_memory_allocated())
                failed_at[name] = (seq_len, "oom")
            except Exception as err:  # one broken peer must not stop the table
                row["status"] = short_error(err)
                failed_at[name] = (seq_len, "failed")
            gc.collect()
            torch.cuda.empty_cache()
        rows.append(row)
        on_row(row)
    return rows


def format_table(rows, columns=("impl", "seq_len", "tokens_per_s", "peak_mem_gib", "status")) -> str:
    """Rows as an aligned text table."""
    cells = [[str(row.get(column, "")) if row.get(column) is not None else "-" for column in columns]
             for row in rows]
    widths = [max(len(column), *(len(cell[i]) for cell in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def header(benchmark: str, config: dict) -> dict:
    """The JSON header: benchmark name, device, torch version, date, config."""
    return {"benchmark": benchmark, "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config}


def default_cases(impls, seq_lens):
    """The order that keeps the important rows if the run is cut short: the fast path (and its variants) up
    to 64k, its 12-layer memory row, the fast path at longer lengths, every peer at 16k and 64k, then the rest."""
    variants = [name for name in impls if name.startswith("genoformer-fast") and name != "genoformer-fast-12-layers"]
    fast = [(name, n) for name in variants for n in seq_lens]
    first = [case for case in fast if case[1] <= 65536]
    if "genoformer-fast-12-layers" in impls and 65536 in seq_lens:
        first.append(("genoformer-fast-12-layers", 65536))
    first += [case for case in fast if case[1] > 65536]
    peers = [name for name in impls if not name.startswith("genoformer-fast")]
    middle = [(name, n) for n in (16384, 65536) if n in seq_lens for name in peers]
    rest = [(name, n) for name in peers for n in seq_lens if n not in (16384, 65536)]
    rest.sort(key=lambda case: case[1])
    return first + middle + rest


def profile(impl: str, seq_len: int, path: Path) -> None:
    """Write the top CUDA kernels of two steps of ``impl`` at ``seq_len`` (after a warm-up) to ``path``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    build = {**IMPLS, **EXTRA_IMPLS}[impl][0]
    model = build(seq_len, VOCAB, DIM, DEPTH, HEADS).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids, labels = mlm_batch(seq_len, "cuda")
    for _ in range(2):  # compilation and autotuning
        train_step(model, optimizer, ids, labels)
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            train_step(model, optimizer, ids, labels)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=30, max_name_column_width=90)
    path.write_text(f"{impl}, {seq_len} tokens, 2 steps, {torch.cuda.get_device_name()}\n{table}\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", nargs="+", default=[*IMPLS, *EXTRA_IMPLS],
                        choices=[*IMPLS, *EXTRA_IMPLS], help="models to run (default: all)")
    parser.add_argument("--seq-lens", nargs="+", type=int, default=list(SEQ_LENS), help="sequence lengths")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--min-steps", type=int, default=3, help="timed steps at least")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="keep timing steps until this long")
    parser.add_argument("--max-case-s", type=float, default=40.0,
                        help="skip a case whose predicted warm-up + timed steps exceed this many seconds")
    parser.add_argument("--deadline-s", type=float, default=1e9,
                        help="start no case after this many seconds of the run (rows say 'skipped')")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_step.json",
                        help="JSON file to write")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also profile --profile-impl at --profile-len tokens and write the kernel table here")
    parser.add_argument("--profile-impl", default="genoformer-fast", choices=[*IMPLS, *EXTRA_IMPLS],
                        help="model to profile (default genoformer-fast)")
    parser.add_argument("--profile-len", type=int, default=65536, help="sequence length of the profile")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    impls = {name: spec for name, spec in {**IMPLS, **EXTRA_IMPLS}.items() if name in args.impls}
    config = {"batch": 1, "dim": DIM, "depth": DEPTH, "heads": HEADS, "vocab": VOCAB, "autocast": "bfloat16",
              "optimizer": "AdamW (fused)", "genoformer": {"n_hashes": N_HASHES, "bucket_size": BUCKET_SIZE},
              "reformer-pytorch": {"n_hashes": 4, "bucket_size": 64},
              "hf-reformer": {"num_hashes": 4, "chunk_length": 64}}
    report = header("train_step", config)
    rows = []

    def on_row(row):
        rows.append(row)
        print(format_table([row]).splitlines()[1], flush=True)
        write_json(args.out, {**report, "rows": rows})

    def measure_case(build, seq_len):
        return measure(build, seq_len, warmup=args.warmup, min_steps=args.min_steps, min_seconds=args.min_seconds)

    run_cases(default_cases(impls, args.seq_lens), impls, args, measure_case, on_row)
    rows.sort(key=lambda row: (list(impls).index(row["impl"]), row["seq_len"]))
    write_json(args.out, {**report, "rows": rows})
    print(f"\n{report['device']}, torch {report['torch']}\n" + format_table(rows), flush=True)
    if args.profile:
        profile(args.profile_impl, args.profile_len, args.profile)


if __name__ == "__main__":
    main()
