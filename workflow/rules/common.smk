# Inputs, names and paths shared by the rules, checked before the DAG is built.
import os
import re
import shlex
import sys
from pathlib import Path

from genoformer import workflow_checks
from genoformer.errors import GenoformerError
from snakemake.exceptions import WorkflowError

# Jobs (also inside the conda env, see workflow/envs/genoformer.post-deploy.sh) run this repository's genoformer.
os.environ.setdefault("GENOFORMER_ROOT", str(Path(workflow.current_basedir).parents[1]))  # workflow/rules/..

# A bad input stops the run here, before any job, with one line naming the file, the record and the problem.
# The inputs are read (a labelled VCF whole) by the main snakemake process only: each cluster job parses this
# file again to run its rule, and would otherwise read them all again. A labelled VCF's passing check is kept in
# .snakemake/genoformer/ and reused until the file or its task's labels change, as is an unindexed VCF's contig
# check (genoformer/check_cache.py).
try:
    SAMPLES = workflow_checks.read_samples(config["samples"])
    for row in SAMPLES:
        workflow_checks.check_schema(
            {key: value for key, value in row.items() if key != "line"},
            Path(workflow.current_basedir).parent / "schemas/samples.schema.yaml",
            f"{config['samples']}: line {row['line']}",
        )
    if workflow.is_main_process:
        workflow_checks.check_inputs(config, SAMPLES, config["samples"], cache_dir=".snakemake/genoformer")
    VCF_INDEX = workflow_checks.vcf_index_kind(config)  # tbi, or csi where a contig is over 512 Mbp
except GenoformerError as err:
    sys.exit(f"genoformer workflow: error: {err}")

REFERENCES = config["references"]
RUN = config["pretrain"]["reference"]
SAMPLE = {row["sample"]: row for row in SAMPLES}
ANNOTATED = [name for name, entry in REFERENCES.items() if "annotation" in entry]

# Variant sets scored by the model: each sample's VCF and the coding SNVs derived from each annotation.
VARIANT_SETS = {name: row["vcf"] for name, row in SAMPLE.items() if "vcf" in row}
VARIANT_SETS.update({f"{ref}_coding": f"results/annotation/{ref}/coding_variants.vcf.gz" for ref in ANNOTATED})
VARIANT_SET_REFERENCE = {name: row["reference"] for name, row in SAMPLE.items() if "vcf" in row}
VARIANT_SET_REFERENCE.update({f"{ref}_coding": ref for ref in ANNOTATED})

# Supervised tasks: labelled VCFs (label = an INFO key) and BED label sets, derived ones first.
VARIANT_TASKS = {
    f"{ref}_coding": {
        "reference": ref,
        "vcf": f"results/annotation/{ref}/coding_variants.vcf.gz",
        "label_field": "CONSEQUENCE",
        "positive": ["stop_gained"],
        "negative": ["synonymous"],
    }
    for ref in ANNOTATED
}
VARIANT_TASKS.update(config.get("variant_tasks", {}))
REGION_TASKS = {
    f"{ref}_genes": {"reference": ref, "bed": f"results/annotation/{ref}/regions.bed"} for ref in ANNOTATED
}
REGION_TASKS.update(config.get("region_tasks", {}))

CODING_SETS = [f"{ref}_coding" for ref in ANNOTATED]
CHUNKS = [f"{i:03d}" for i in range(config["score_variants"]["chunks"])]
BAM_SAMPLES = [name for name, row in SAMPLE.items() if "bam" in row]


def one_of(names):
    """A wildcard constraint matching exactly one of ``names``."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    reference=one_of(REFERENCES),
    sample=one_of(SAMPLE),
    variant_set=one_of(VARIANT_SETS),
    variant_task=one_of(VARIANT_TASKS),
    region_task=one_of(REGION_TASKS),
    chunk=r"\d{3}",


def fasta_of(reference):
    """The FASTA path of a configured reference."""
    return REFERENCES[reference]["fasta"]


def run_files(run=RUN):
    """The declared files of a finished pretraining run: its latest weights (a `save_pretrained` folder).

    metrics.jsonl and checkpoints/ in the same folder are deliberately not declared: snakemake deletes a
    job's outputs before rerunning it, and a resumed run continues both of them.
    """
    return {
        "model": f"runs/{run}/model.safetensors",
        "config": f"runs/{run}/config.json",
        "vocab": f"runs/{run}/vocab.json",
    }


def class_options(task):
    """`--positive ... --negative ...` for classify-variants when the task names its classes."""
    entry = VARIANT_TASKS[task]
    return " ".join(
        f"--{side} " + " ".join(shlex.quote(value) for value in entry[side])
        for side in ("positive", "negative")
        if entry.get(side)
    )


def evaluate_options():
    """`genoformer evaluate`'s options from config evaluate: `--mask-passes P`, and `--max-windows N` when
    max_windows is set."""
    limit = config["evaluate"]["max_windows"]
    passes = f"--mask-passes {config['evaluate']['mask_passes']}"
    return passes if limit is None else f"--max-windows {limit} {passes}"


def model_device(wildcards, resources):
    """The `--device` of a job that runs the model, from the `gpu` resource it holds (config <stage>.gpus, or what
    a profile's set-resources gives it): `cpu` with none, even on a machine with a GPU, so that a job that claimed
    no GPU never shares one with the jobs that did; `auto` (CUDA when torch sees a GPU) with one or more, so that a
    GPU that torch cannot use (a CPU-only torch) leaves the job on the CPU, as its log says, rather than failing."""
    return "auto" if int(resources.gpu) > 0 else "cpu"


def pretrain_launcher(wildcards, resources):
    """`genoformer`, or the same CLI under torchrun with one process per GPU when the job has several.

    A profile may give the job more GPUs than config pretrain.gpus (the Slurm profile asks for one), never fewer:
    Snakemake would silently cap the job at the profile's count, so this stops the job instead.
    """
    gpus, asked = int(resources.gpu), config["pretrain"]["gpus"]
    if gpus < asked:
        raise WorkflowError(
            f"pretrain: config pretrain.gpus is {asked} but the job gets {gpus} GPU(s): the profile caps it "
            "(`resources: gpu:` in config/profiles/local, `set-resources: pretrain: gpu:` in config/profiles/slurm); "
            f"raise it there to {asked}"
        )
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} --no-python genoformer"
    return "genoformer"


def report_figures():
    """Every figure and table page of the report."""
    return [
        "results/report/summary.html",
        "results/report/training_loss.png",
        "results/report/bits_per_base.png",
        *expand("results/report/regions/{region_task}.png", region_task=REGION_TASKS),
        *expand("results/report/variant_classes/{variant_set}.png", variant_set=CODING_SETS),
        *expand("results/report/variant_track/{variant_set}.png", variant_set=VARIANT_SETS),
        *expand("results/report/top_variants/{variant_set}.html", variant_set=VARIANT_SETS),
        "results/report/benchmarks.png",
    ]


def benchmark_files():
    """The benchmark TSV of every job the default run makes, except the benchmark figure's own."""
    return [
        *expand(rules.tokenize_reference.benchmark, reference=RUN),
        *expand(rules.tokenize_sample.benchmark, sample=BAM_SAMPLES),
        *expand(rules.pretrain.benchmark, reference=RUN),
        *expand(rules.evaluate.benchmark, reference=RUN),
        *expand(rules.evaluate_sample.benchmark, sample=BAM_SAMPLES),
        *expand(rules.coding_variants.benchmark, reference=ANNOTATED),
        *expand(rules.region_labels.benchmark, reference=ANNOTATED),
        *expand(rules.score_variants.benchmark, variant_set=VARIANT_SETS, chunk=CHUNKS),
        *expand(rules.merge_scored_variants.benchmark, variant_set=VARIANT_SETS),
        *expand(rules.classify_variants.benchmark, variant_task=VARIANT_TASKS),
        *expand(rules.classify_regions.benchmark, region_task=REGION_TASKS),
        *expand(rules.report_training_loss.benchmark),
        *expand(rules.report_bits_per_base.benchmark),
        *expand(rules.report_regions.benchmark, region_task=REGION_TASKS),
        *expand(rules.report_variant_classes.benchmark, variant_set=CODING_SETS),
        *expand(rules.report_variant_track.benchmark, variant_set=VARIANT_SETS),
        *expand(rules.report_top_variants.benchmark, variant_set=VARIANT_SETS),
        *expand(rules.report_summary.benchmark),
    ]


def final_outputs():
    """Everything `snakemake` builds by default: every result and every report figure (results are listed
    too, so that a deleted one is rebuilt even while the figures made from it are still there)."""
    return [
        f"runs/{RUN}/eval.json",
        *expand("results/eval/{sample}.json", sample=BAM_SAMPLES),
        *expand("results/variants/{variant_set}.vcf.gz", variant_set=VARIANT_SETS),
        *expand("results/variant_classes/{variant_task}/metrics.json", variant_task=VARIANT_TASKS),
        *expand("results/regions/{region_task}/metrics.json", region_task=REGION_TASKS),
        *report_figures(),
    ]
