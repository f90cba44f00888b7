"""Benchmark: score-variants throughput (variants per second) and forward passes on CPU (or GPU if present).

Scores SNVs of the bundled C. diphtheriae genome with the CPU demo model shape (k=3, stride 1, dim 64, depth 2;
weights untrained, which does not change the cost) through ``genoformer.tasks.variants.score_variants``:

- ``dense LLR``: every SNV (3 ALTs per base) of a 3,334 bp stretch, 10,002 variants, LLR only, 8 kbp windows;
- ``dense LLR + embeddings``: 60 of them with embedding distances (one alternate pass per ALT and strand);
- ``131 kbp LLR``: 30 variants 600 bp apart in the default 131,072 bp window, LLR only.

Rows give the forward passes (sequences through the encoder) by kind, seconds, variants/s and tokens/s.
Prints a table and writes benchmarks/results/score_variants.json. Usage: ``python benchmarks/score_variants.py``.
"""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path

import torch

from genoformer.atomic import write_json
from genoformer.io.fasta import Reference
from genoformer.io.vcf import Variant
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.tasks.encoder import Encoder, pick_device
from genoformer.tasks.variants import score_variants
from genoformer.tokenize.vocab import KmerVocab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "score_variants.json"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
CONTIG = "NZ_LN831026.1"
START = 600_000  # 0-based start of the scored stretch


def snvs(reference, positions) -> list[Variant]:
    """Every SNV (three ALTs) at each 0-based position."""
    variants = []
    for pos in positions:
        ref = reference.fetch(CONTIG, pos, pos + 1).upper()
        variants += [Variant(CONTIG, pos + 1, ref, alt, None, None, (), {}, len(variants) + 1)
                     for alt in "ACGT" if alt != ref]
    return variants


def measure(name: str, encoder: Encoder, reference, variants, **options) -> dict:
    """Score ``variants`` once; forward passes, time and throughput."""
    encoder.forwards.clear()
    start = time.perf_counter()
    scores = score_variants(variants, reference, encoder, progress=False, **options)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    windows = {(int(s), int(e)) for s, e in zip(scores.window_start, scores.window_end)}
    tokens = sum(encoder.forwards.values()) * (max(e - s for s, e in windows) - encoder.k + 1)
    return {"name": name, "variants": len(variants), "window_bp": options["window"], "windows": len(windows),
            "embeddings": options.get("embeddings", True), "mask_spacing_bp": options.get("mask_spacing"),
            "forwards": dict(encoder.forwards), "forwards_total": sum(encoder.forwards.values()),
            "seconds": round(seconds, 2), "variants_per_s": round(len(variants) / seconds, 2),
            "tokens_per_s": round(tokens / seconds)}


def main() -> None:
    """Run the three measurements, print the table, write the results JSON."""
    torch.manual_seed(0)
    device = pick_device("auto")
    torch.set_num_threads(2)
    vocab = KmerVocab(3)
    config = ReformerConfig(vocab_size=vocab.size, dim=64, depth=2, heads=4, n_hashes=1, bucket_size=32)
    encoder = Encoder(ReformerForMaskedLM(config), vocab, 1, device, batch_size=8)
    with Reference(GENOME) as reference:
        dense = snvs(reference, range(START, START + 3334))
        sparse = snvs(reference, range(START, START + 6000, 600))
        rows = [
            measure("dense LLR", encoder, reference, dense, window=8192, step=4096, mask_spacing=64,
                    embeddings=False),
            measure("dense LLR + embeddings", encoder, reference, dense[::167], window=8192, step=4096,
                    mask_spacing=64),
            measure("131 kbp LLR", encoder, reference, sparse, window=131_072, step=65_536, mask_spacing=512,
                    embeddings=False),
        ]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    write_json(RESULTS, {"benchmark": "score_variants", "device": device_name, "torch": torch.__version__,
                         "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                         "model": {**config.to_dict(), "k": 3, "stride": 1}, "rows": rows})
    print(f"{'row':<26} {'variants':>8} {'window':>8} {'forwards':>8} {'seconds':>8} {'variants/s':>10} {'tokens/s':>9}")
    for row in rows:
        print(f"{row['name']:<26} {row['variants']:>8} {row['window_bp']:>8} {row['forwards_total']:>8} "
              f"{row['seconds']:>8} {row['variants_per_s']:>10} {row['tokens_per_s']:>9}")
    print(f"wrote {RESULTS} ({device_name})")


if __name__ == "__main__":
    main()
