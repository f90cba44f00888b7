"""Downstream evaluation on the bundled data: the real-biology checks of issue 6, at CPU demo scale.

1. A CPU demo model: ``genoformer tokenize`` + ``genoformer pretrain`` on C. diphtheriae (k=3, stride 1), unless
   ``--checkpoint`` names a run to evaluate instead.
2. Coding variants (``coding-variants``): zero-shot ``score-variants`` LLR, AUROC of stop-gained vs synonymous
   (-GF_LLR ranks stop-gained first), next to model-free zero-shot Markov LLRs (order 0 = base composition, and
   the order chosen on held-out sequence), which show how much of the signal composition alone carries.
3. ``classify-variants`` on the same classes: probe on the model's features vs the k-mer context baseline.
4. ``classify-regions`` on coding vs intergenic regions (``region-labels``): probe, fine-tuning, k-mer baseline.
5. The long-range motif-order task (``genoformer.tasks.longrange``) through ``classify-regions``: a bag of
   k-mers is at chance by construction; CPU scale uses shorter windows than the 100 kbp of the real task.

Every step goes through the CLI as a user would run it. Prints a table; writes
benchmarks/results/downstream_eval.json. Usage: ``python benchmarks/downstream_eval.py [--steps 400]
[--checkpoint RUN] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from genoformer.atomic import write_json
from genoformer.io.fasta import Reference
from genoformer.io.vcf import read_variants
from genoformer.tasks.baselines import markov_llr
from genoformer.tasks.longrange import motif_order_task, write_motif_order_task
from genoformer.tasks.metrics import classification_metrics
from genoformer.train.markov import MarkovModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "downstream_eval.json"
GENOME = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
GFF = ROOT / "resources" / "cdiph" / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"
CONTIG = "NZ_LN831026.1"
DEMO_MODEL = {"model": {"dim": 64, "depth": 2, "heads": 4, "n_hashes": 1, "bucket_size": 32, "max_seq_len": 65536},
              "optim": {"lr": 2.0e-3, "warmup_steps": 50}, "data": {"batch_size": 16},
              "run": {"log_every": 50, "eval_every": 0, "eval_windows": 8, "checkpoint_every": 100_000,
                      "device": "cpu"}}


def genoformer(*args) -> float:
    """Run the CLI in a subprocess; return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genoformer", "-q", *map(str, args)], check=True)
    return time.perf_counter() - start


def auroc_row(metrics: dict) -> dict:
    """AUROC (and AUPRC, accuracy when present) with their 95% CIs, rounded."""
    row = {}
    for name in ("auroc", "auprc", "accuracy"):
        if name in metrics:
            row[name] = round(metrics[name]["value"], 3)
            row[f"{name}_ci95"] = [round(v, 3) for v in metrics[name]["ci95"]]
    return row


def pretrain(work: Path, steps: int) -> tuple[Path, float]:
    """Tokenize the genome and pretrain the CPU demo model; return the run and the seconds it took."""
    config = work / "demo.yaml"
    config.write_text(yaml.safe_dump({**DEMO_MODEL, "run": {**DEMO_MODEL["run"], "steps": steps}}))
    seconds = genoformer("tokenize", "--fasta", GENOME, "--k", 3, "--stride", 1, "--window", 256, "--split-by",
                         "blocks", "--out", work / "tokens")
    seconds += genoformer("pretrain", "--data", work / "tokens", "--config", config, "--out", work / "run")
    return work / "run", seconds


def coding_variants(work: Path, run: Path, genes: int, per_class: int, window: int) -> list[dict]:
    """Zero-shot LLR of stop-gained vs synonymous SNVs, next to Markov LLRs; then classify-variants."""
    genoformer("coding-variants", "--reference", GENOME, "--gff", GFF, "--genes", genes, "--seed", 0,
               "--out", work / "coding.vcf.gz")
    with Reference(GENOME) as reference:
        variants = read_variants(work / "coding.vcf.gz", reference).variants
        rng = np.random.default_rng(0)
        chosen = []
        for name in ("stop_gained", "synonymous"):
            members = [v for v in variants if v.info["CONSEQUENCE"] == name]
            chosen += [members[i] for i in sorted(rng.choice(len(members), min(per_class, len(members)),
                                                             replace=False))]
        chosen.sort(key=lambda v: v.pos)
        lines = [f"{v.contig}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t.\t.\tCONSEQUENCE={v.info['CONSEQUENCE']}" for v in chosen]
        header = (f"##fileformat=VCFv4.2\n##contig=<ID={CONTIG},length={reference.contigs[CONTIG]}>\n"
                  '##INFO=<ID=CONSEQUENCE,Number=1,Type=String,Description="consequence">\n'
                  "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        (work / "labelled.vcf").write_text(header + "\n".join(lines) + "\n")
        seconds = genoformer("score-variants", "--reference", GENOME, "--vcf", work / "labelled.vcf", "--checkpoint",
                             run, "--out", work / "scored.vcf.gz", "--window", window, "--no-embeddings",
                             "--mask-spacing", 64, "--batch-size", 16)
        table = pd.read_csv(work / "scored.tsv", sep="\t")
        stop = np.array([chosen[r - 1].info["CONSEQUENCE"] == "stop_gained" for r in table["record"]])
        rows = [{"task": "coding SNVs, zero-shot", "method": "genoformer GF_LLR", "n": len(table),
                 "n_stop_gained": int(stop.sum()), "seconds": round(seconds, 1),
                 **auroc_row(classification_metrics(stop, -table["GF_LLR"].to_numpy(), seed=0))}]
        train = reference.codes(CONTIG, 1_000_000, reference.contigs[CONTIG])[0]
        markov = MarkovModel.select([train], [reference.codes(CONTIG, 0, 200_000)[0]], max_order=8)
        scored = [chosen[r - 1] for r in table["record"]]
        for order in sorted({0, markov.order}):
            llr = markov_llr(scored, reference, markov, order)
            rows.append({"task": "coding SNVs, zero-shot", "method": f"Markov order {order} LLR (no model)",
                         "n": len(table), **auroc_row(classification_metrics(stop, -llr, seed=0))})
    seconds = genoformer("classify-variants", "--reference", GENOME, "--vcf", work / "labelled.vcf", "--label-field",
                         "CONSEQUENCE", "--positive", "stop_gained", "--negative", "synonymous", "--checkpoint",
                         run, "--out", work / "variant_classes", "--window", window, "--batch-size", 16,
                         "--max-per-class", 150)
    metrics = json.loads((work / "variant_classes" / "metrics.json").read_text())
    for name, label in (("model_probe", "genoformer features + logistic regression"),
                        ("kmer_baseline", "k-mer context + logistic regression (no model)"),
                        ("zero_shot_neg_llr", "genoformer -GF_LLR (no training)")):
        rows.append({"task": "coding SNVs, classify-variants (held-out blocks)", "method": label,
                     "n": metrics["split"]["n_test"], "seconds": round(seconds, 1),
                     **auroc_row(metrics["test"][name])})
    return rows


def classify_regions(work: Path, run: Path, name: str, fasta: Path, bed: Path, window: int, extra: list) -> list[dict]:
    """One classify-regions task; rows for probe, fine-tuning and the k-mer baseline."""
    out = work / name.replace(" ", "_")
    seconds = genoformer("classify-regions", "--reference", fasta, "--bed", bed, "--checkpoint", run, "--out", out,
                         "--window", window, "--batch-size", 8, *extra)
    metrics = json.loads((out / "metrics.json").read_text())
    labels = {"probe": "genoformer frozen embeddings + logistic regression",
              "finetune": "genoformer fine-tuned", "kmer": "k-mer spectrum + logistic regression (no model)"}
    return [{"task": name, "method": labels[method], "n": metrics["split"]["n_test"], "seconds": round(seconds, 1),
             **auroc_row(result)} for method, result in metrics["test"].items()]


def checkpoint_summary(run: Path) -> dict:
    """What a ``--checkpoint`` run is: its path, model config, training config and data, and steps trained."""
    summary = {"path": str(run), "config": json.loads((run / "config.json").read_text())}
    state_file = run / "trainer_state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        summary.update(steps=state.get("step"), training=state.get("config"), data=state.get("data"))
    return summary


def main(argv: list[str] | None = None) -> None:
    """Run every check, print the table, write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="evaluate this run instead of pretraining the demo model")
    parser.add_argument("--steps", type=int, default=400, help="pretraining steps of the demo model (default 400)")
    parser.add_argument("--workdir", type=Path, help="keep intermediate files here (default: a temporary folder)")
    parser.add_argument("--genes", type=int, default=30, help="genes for the coding-variant set (default 30)")
    parser.add_argument("--per-class", type=int, default=400, help="SNVs per class to score zero-shot (default 400)")
    parser.add_argument("--motif-window", type=int, default=4096,
                        help="motif-order window in bp (issue: 100,000; default 4096 at CPU scale)")
    parser.add_argument("--motif-examples", type=int, default=160, help="motif-order examples (default 160)")
    parser.add_argument("--motif-finetune-epochs", type=int, default=2,
                        help="fine-tuning epochs on the motif-order task (default 2; 0: linear probe only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        rows, pretrain_seconds = [], 0.0
        run = args.checkpoint
        if run is None:
            run, pretrain_seconds = pretrain(work, args.steps)
        rows += coding_variants(work, run, args.genes, args.per_class, window=512)
        genoformer("region-labels", "--reference", GENOME, "--gff", GFF, "--length", 200, "--per-class", 200,
                   "--out", work / "regions.bed")
        rows += classify_regions(work, run, "coding vs intergenic (200 bp)", GENOME, work / "regions.bed", 256,
                                 ["--finetune-epochs", 2, "--lr", 5e-4])
        with Reference(GENOME) as reference:
            task = motif_order_task(reference, args.motif_examples, window=args.motif_window,
                                    min_distance=args.motif_window // 2, seed=0)
        write_motif_order_task(task, work / "motif_order.fa", work / "motif_order.bed")
        # Its windows reuse the genome (80 x 100 kbp from 2.46 Mbp), so many examples share background sequence;
        # the background says nothing of the motifs' order, so such copies stay on both sides.
        rows += classify_regions(work, run, f"motif order, {args.motif_window} bp windows, motifs >= "
                                 f"{args.motif_window // 2} bp apart", work / "motif_order.fa",
                                 work / "motif_order.bed", args.motif_window,
                                 ["--split", "contig", "--finetune-epochs", args.motif_finetune_epochs, "--lr", 5e-4,
                                  "--kmer", 4, "--keep-repeat-copies"])
    result = {"benchmark": "downstream_eval", "device": platform.processor() or platform.machine(),
              "torch": torch.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "model": checkpoint_summary(args.checkpoint) if args.checkpoint else {
                  **DEMO_MODEL, "steps": args.steps, "k": 3, "stride": 1, "window_tokens": 256},
              "pretrain_seconds": round(pretrain_seconds, 1), "rows": rows}
    write_json(RESULTS, result)
    print(f"{'task':<62} {'method':<52} {'n':>5} {'AUROC':>6}  95% CI")
    for row in rows:
        print(f"{row['task']:<62} {row['method']:<52} {row['n']:>5} {row['auroc']:>6.3f}  {row['auroc_ci95']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
