"""Benchmark: k-mer tokenizer speed on one core, in memory and end to end from a FASTA file, with peak memory.

Everything runs pinned to one CPU (``sched_setaffinity``) with BLAS/OpenMP threads at 1.

Rates per core are from the process's CPU time (``time.process_time``, user + system), so time the shared
machine gives to other processes does not count; ``wall_mbp_per_s`` is from the wall clock.

- ``in-memory``: ``encode`` over a sequence of ``--mbp`` Mbp (the real C. diphtheriae chromosome, repeated)
  into a preallocated output: the best of ``--repeats`` runs is ``mbp_per_s_per_core``. ``first_call_mbp_per_s``
  is a single ``encode()`` call that also allocates (and first-touches) its output array. The ``1% N`` row
  sets a random 1% of the bases to N, so every chunk takes the UNK path.
- ``fasta``: ``write_token_dataset`` (what ``genoformer tokenize`` runs: read FASTA chunks through pyfaidx,
  encode, write shards, windows and splits) in a fresh subprocess, on the bundled bgzipped 2.46 Mbp genome and
  on a ``--big-mbp`` Mbp plain FASTA (that genome tiled into one contig) written to a temporary folder.
  ``peak_rss_mb`` is the subprocess's maximum resident set (VmHWM), ``rss_before_mb`` the same process after
  its imports: the difference is what tokenizing holds, and it should not grow with the genome.
- ``cli``: ``genoformer tokenize`` on the 2.46 Mbp genome through ``genoformer.cli.main``, wall time including
  the imports of every subcommand.

(Named tokenize_speed.py, not tokenize.py: a script's folder comes first on sys.path, and a benchmarks/tokenize.py would shadow the standard library's tokenize module for every benchmark.) Prints a table and writes benchmarks/results/tokenize.json. Usage:
``python benchmarks/tokenize_speed.py [--mbp 32] [--repeats 5] [--big-mbp 128]``.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``tokenize``: keep its folder off the import path so that
# ``import tokenize`` (done by inspect, linecache, ...) finds the real one.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tokenize.json"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
CONTIG = "NZ_LN831026.1"


def pin_to_one_core() -> int:
    """Restrict this process (and its children) to one CPU; return which."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def genome_codes() -> np.ndarray:
    from genoformer.io.fasta import Reference

    with Reference(GENOME) as reference:
        return reference.codes(CONTIG)[0]


def in_memory_rows(mbp: float, repeats: int) -> list[dict]:
    """Encoding speed from an in-memory sequence, for the headline setting and a few others."""
    from genoformer.tokenize.encode import encode, encode_into, n_tokens
    from genoformer.tokenize.vocab import KmerVocab

    genome = genome_codes()
    codes = np.tile(genome, int(np.ceil(mbp * 1e6 / genome.size)))[:int(mbp * 1e6)]
    with_n = codes.copy()
    with_n[np.random.default_rng(0).random(codes.size) < 0.01] = 4
    rows = []
    for label, k, stride, sequence in [("k=6 stride 1", 6, 1, codes), ("k=6 stride 6", 6, 6, codes),
                                       ("k=1 stride 1", 1, 1, codes), ("k=8 stride 1", 8, 1, codes),
                                       ("k=6 stride 1, 1% N", 6, 1, with_n)]:
        vocab = KmerVocab(k)
        start = time.process_time()
        first = encode(sequence, vocab, stride)
        first_seconds = time.process_time() - start
        out = np.ones(n_tokens(sequence.size, k, stride), dtype=vocab.dtype)  # touched once, then reused
        cpu, wall = [], []
        for _ in range(repeats):
            start, start_wall = time.process_time(), time.perf_counter()
            encode_into(sequence, vocab, stride, out)
            cpu.append(time.process_time() - start)
            wall.append(time.perf_counter() - start_wall)
        assert np.array_equal(out, first)
        mbp = sequence.size / 1e6
        rows.append({"name": f"in-memory {label}", "k": k, "stride": stride, "mbp": mbp,
                     "seconds": round(min(cpu), 4), "median_seconds": round(float(np.median(cpu)), 4),
                     "mbp_per_s_per_core": round(mbp / min(cpu), 1), "wall_mbp_per_s": round(mbp / min(wall), 1),
                     "first_call_mbp_per_s": round(mbp / first_seconds, 1)})
        del first, out
    return rows


def memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc. getrusage's ru_maxrss is no use here:
    a child starts with its parent's size at fork."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))


def measure_fasta(fasta: Path, out: Path) -> dict:
    """In the subprocess: ``write_token_dataset`` over every contig of ``fasta``, timed after the imports."""
    from genoformer.io.fasta import Reference
    from genoformer.tokenize.dataset import Stretch, TokenizeOptions, write_token_dataset

    reference = Reference(fasta)  # indexes a new FASTA first (not timed)
    before = memory_mb("VmRSS")
    start, start_cpu = time.perf_counter(), time.process_time()
    stretches = [Stretch(name, name, 0, length) for name, length in reference.contigs.items()]
    source = {"path": str(fasta), "sha256": reference.sha256(), "kind": "fasta"}
    write_token_dataset(out, stretches, reference.codes, TokenizeOptions(k=6, stride=1, window=65536), source)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - start_cpu,
            "bp": sum(reference.contigs.values()), "rss_before_mb": before, "peak_rss_mb": memory_mb("VmHWM")}


def measure_cli(out: Path) -> dict:
    """In the subprocess: ``genoformer tokenize`` on the bundled genome, timed from process start."""
    from genoformer.cli import main as genoformer

    code = genoformer(["-q", "tokenize", "--fasta", str(GENOME), "--out", str(out)])
    assert code == 0
    return {"cpu_seconds": time.process_time(), "peak_rss_mb": memory_mb("VmHWM")}


def in_subprocess(*args: str) -> dict:
    """Run this script with ``args`` in a fresh process (its own memory and imports); its JSON answer."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return {"process_seconds": time.perf_counter() - start, **json.loads(result.stdout)}


def fasta_row(name: str, fasta: Path, out: Path) -> dict:
    """End to end from a FASTA file in a fresh subprocess."""
    measured = in_subprocess("--measure-fasta", str(fasta), str(out))
    mbp = measured["bp"] / 1e6
    return {"name": name, "k": 6, "stride": 1, "mbp": round(mbp, 3), "seconds": round(measured["cpu_seconds"], 3),
            "mbp_per_s_per_core": round(mbp / measured["cpu_seconds"], 1),
            "wall_mbp_per_s": round(mbp / measured["seconds"], 1), "genome_mb": round(fasta.stat().st_size / 1e6, 1),
            "rss_before_mb": round(measured["rss_before_mb"], 1), "peak_rss_mb": round(measured["peak_rss_mb"], 1)}


def cli_row(out: Path) -> dict:
    """``genoformer tokenize`` on the bundled genome, from process start (imports of every subcommand included)."""
    measured = in_subprocess("--measure-cli", str(out))
    mbp = sum(contig["length_bp"] for contig in json.loads((out / "manifest.json").read_text())["contigs"]) / 1e6
    return {"name": f"cli genoformer tokenize ({mbp:.2f} Mbp, with startup)", "k": 6, "stride": 1, "mbp": mbp,
            "seconds": round(measured["cpu_seconds"], 2),
            "mbp_per_s_per_core": round(mbp / measured["cpu_seconds"], 1),
            "wall_mbp_per_s": round(mbp / measured["process_seconds"], 1),
            "peak_rss_mb": round(measured["peak_rss_mb"], 1)}


def tiled_fasta(path: Path, mbp: float, width: int = 60) -> None:
    """One contig ``tiled`` of ``mbp`` Mbp: the real genome repeated, ``width`` bases a line."""
    total = int(mbp * 1e6)
    bases = np.frombuffer(b"ACGTN", dtype=np.uint8)[np.resize(genome_codes(), total)]
    n_lines = -(-total // width)
    text = np.full((n_lines, width + 1), ord("\n"), dtype=np.uint8)
    text[:, :width].flat[:total] = bases  # the last line's unused tail is cut below
    last_line = total - (n_lines - 1) * width
    path.write_bytes(b">tiled\n" + text.tobytes()[:(n_lines - 1) * (width + 1) + last_line] + b"\n")


def device(cpu: int) -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown CPU")
    return f"{model}, pinned to CPU {cpu} of {os.cpu_count()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbp", type=float, default=32, help="in-memory sequence length in Mbp (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats in memory; best is kept (default 5)")
    parser.add_argument("--big-mbp", type=float, default=128,
                        help="size of the large FASTA for the end-to-end memory check, Mbp (default 128)")
    parser.add_argument("--measure-fasta", nargs=2, metavar=("FASTA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-cli", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_fasta:  # the subprocess sides of fasta_row and cli_row
        print(json.dumps(measure_fasta(*map(Path, args.measure_fasta))))
        return
    if args.measure_cli:
        print(json.dumps(measure_cli(Path(args.measure_cli))))
        return
    cpu = pin_to_one_core()
    rows = in_memory_rows(args.mbp, args.repeats)
    with tempfile.TemporaryDirectory(prefix="genoformer-bench-") as tmp:
        tmp = Path(tmp)
        rows.append(fasta_row("fasta bgzip 2.46 Mbp (cdiph)", GENOME, tmp / "small"))
        tiled_fasta(tmp / "tiled.fa", args.big_mbp)
        rows.append(fasta_row(f"fasta plain {args.big_mbp:g} Mbp (cdiph tiled)", tmp / "tiled.fa", tmp / "big"))
        rows.append(cli_row(tmp / "cli"))
    report = {"benchmark": "tokenize", "device": device(cpu), "torch": importlib.metadata.version("torch"),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from genoformer.atomic import write_json

    write_json(RESULTS, report)
    print(f"{'case':<50} {'Mbp':>7} {'CPU s':>7} {'Mbp/s/core':>10} {'wall Mbp/s':>10} {'1st call':>8} "
          f"{'RSS MB':>12}")
    for row in rows:
        rss = f"{row.get('rss_before_mb', '')}->{row['peak_rss_mb']}" if "peak_rss_mb" in row else ""
        print(f"{row['name']:<50} {row['mbp']:>7.2f} {row['seconds']:>7.3f} {row['mbp_per_s_per_core']:>10.1f} "
              f"{row.get('wall_mbp_per_s', ''):>10} {row.get('first_call_mbp_per_s', ''):>8} {rss:>12}")
    print(f"device: {report['device']}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
