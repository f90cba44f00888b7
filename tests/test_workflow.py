"""The Snakemake workflow end to end on the bundled data, with a tiny model, in a copy of the workflow.

Runs the real `genoformer` commands through the real Snakefile: outputs are checked, a second run has nothing to
do, a deleted output is rebuilt with only what depends on it, `--lint` is clean, and bad configuration or inputs
stop the run at DAG time with one message naming the problem. Also the VCF scatter/gather helpers it uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pysam
import pytest
import yaml

from genoformer import region_labels, workflow_checks
from genoformer.cli import main
from genoformer.errors import ConfigError, GenoformerError, InputError, MismatchError
from genoformer.io.fasta import Reference
from genoformer.stage_options import stage_options
from genoformer.vcf_shards import merge_vcfs, read_tables, write_merged_table
from io_helpers import consensus

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
HUMAN_VCF = ROOT / "resources/human_chr22_q/q.vcf.gz"
# the tests sharing one finished run stay on one xdist worker (--dist loadgroup), so it is made once
ONE_RUN = pytest.mark.xdist_group("workflow-run")


def copy_workflow(tmp_path: Path) -> Path:
    """A copy of the workflow (Snakefile, workflow/, config/) with the bundled data linked in."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    shutil.copy(ROOT / "Snakefile", workdir)
    shutil.copytree(ROOT / "workflow", workdir / "workflow")
    shutil.copytree(ROOT / "config", workdir / "config")
    (workdir / "resources").symlink_to(ROOT / "resources")
    return workdir


TINY_PRETRAIN = {
    "model": {"dim": 32, "depth": 2, "heads": 2, "bucket_size": 16, "n_hashes": 1},
    "optim": {"warmup_steps": 2},
    "data": {"batch_size": 4},
}
TINY_RUN = {"steps": 8, "log_every": 1, "eval_every": 4, "eval_windows": 4, "checkpoint_every": 4}


def tiny_config(workdir: Path, reference: str = "cdiph", **run) -> str:
    """Write a config override (with a tiny pretraining config on ``reference``; ``run`` changes its run
    section) that makes the whole workflow small enough for CI; return the override's file name."""
    (workdir / "tiny-pretrain.yaml").write_text(yaml.safe_dump(TINY_PRETRAIN))
    config = {
        "tokenize": {"k": 3, "stride": 1, "window": 128},
        # set: merged key by key into config.yaml's, so every run key it could hold is given here
        "pretrain": {"reference": reference, "config": "tiny-pretrain.yaml",
                     "set": {f"run.{key}": value for key, value in {**TINY_RUN, **run}.items()}},
        "evaluate": {"max_windows": 16, "mask_passes": 2},
        "score_variants": {"window": 256, "chunks": 2},
        "coding_variants": {"genes": 6, "per_class": 12, "seed": 0},
        "region_labels": {"length": 100, "per_class": 30},
        "classify_variants": {"window": 256, "extra": "--bootstrap 100"},
        "classify_regions": {"window": 256, "finetune_epochs": 0, "extra": "--bootstrap 100"},
    }
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path.name


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with this environment's tools first on PATH."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(VENV_BIN / "snakemake"), "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a dry run."""
    jobs = {}
    for line in dry_run_output.split("Job stats:", 1)[1].splitlines()[3:]:  # after the header and its rule
        rule, *count = line.split()
        if rule == "total":
            return jobs
        jobs[rule] = int(count[0])
    raise AssertionError("no total line in the job stats")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workflow copy after a complete default run with the tiny config."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    override = tiny_config(workdir)
    started = time.monotonic()
    result = snakemake(workdir, "--configfile", override)
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"tiny workflow: {time.monotonic() - started:.0f} s")
    return workdir, override


@pytest.mark.slow
@ONE_RUN
def test_default_run_writes_every_result(finished):
    workdir, _ = finished
    for figure in ("training_loss", "bits_per_base", "regions/cdiph_genes", "variant_classes/cdiph_coding",
                   "variant_track/cdiph_coding", "variant_track/NA12878", "benchmarks"):
        assert (workdir / f"results/report/{figure}.png").stat().st_size > 10_000, figure
    summary = (workdir / "results/report/summary.html").read_text()
    for row in ("<td>cdiph</td>", "<td>NA12878</td>", "<td>cdiph_coding</td>", "<td>cdiph_genes</td>"):
        assert row in summary, row
    for variant_set in ("cdiph_coding", "NA12878"):
        assert "GF_LLR</th>" in (workdir / f"results/report/top_variants/{variant_set}.html").read_text()
    for path in ("runs/cdiph/eval.json", "results/eval/NA12878.json"):
        test_split = json.loads((workdir / path).read_text())["splits"]["test"]
        assert 0 < test_split["bits_per_base"] < 3 and 0 < test_split["markov_bits_per_base"] < 3, path
        assert 0 <= test_split["novel_bases"] <= test_split["scored_bases"], path
        assert test_split["distinct_scored_bases"] < test_split["scored_bases"], path  # 2 mask passes
        low, high = test_split["ci95"]["model_minus_markov_two_sided"]
        assert low <= test_split["bits_per_base"] - test_split["markov_two_sided_bits_per_base"] <= high, path
    # the scattered scoring lost and duplicated nothing: the merged VCF has every input record, indexed
    with pysam.VariantFile(str(workdir / "results/annotation/cdiph/coding_variants.vcf.gz")) as source:
        expected = [(r.contig, r.pos, r.ref, r.alts) for r in source]
    merged = pysam.VariantFile(str(workdir / "results/variants/cdiph_coding.vcf.gz"))
    got = [(r.contig, r.pos, r.ref, r.alts) for r in merged]
    assert got == expected
    assert any(key.startswith("GF_") for key in merged.header.info)
    contig, pos = expected[len(expected) // 2][:2]
    assert [r.pos for r in merged.fetch(contig, pos - 1, pos)] == [p for c, p, *_ in expected if p == pos]
    # no shard is left behind
    assert not list((workdir / "results/variants").glob("*/shard-*"))
    regions = json.loads((workdir / "results/regions/cdiph_genes/metrics.json").read_text())
    assert {"probe", "kmer"} <= set(regions["test"])
    assert (workdir / "results/variant_classes/cdiph_coding/metrics.json").exists()


@pytest.mark.slow
@ONE_RUN
def test_report_gathers_every_figure_with_its_caption(finished):
    workdir, override = finished
    result = snakemake(workdir, "--configfile", override, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    for figure in ("summary.html", "training_loss.png", "bits_per_base.png", "cdiph_genes.png", "cdiph_coding.png",
                   "NA12878.png", "NA12878.html", "benchmarks.png"):
        assert figure in html, figure
    for caption in ("Summary: the numbers behind the figures", "Learning curves", "Bits per base on held-out sequence",
                    "ROC and precision-recall curves", "Zero-shot scores by variant class",
                    "Variant scores along the genome", "The least expected variants", "Time per rule"):
        assert caption in html, caption
    # the workflow description says how held-out copies were handled (classify_*.extra has no --keep-repeat-copies)
    assert "leaving out held-out examples that have a near-identical copy in training" in html
    # The report is a JavaScript app: open it in a real headless browser and check what it rendered.
    rendered = render_in_chromium(workdir / "report.html", workdir / "report.png")
    for category in ("0. Summary", "1. Pretraining", "2. Variant effects", "3. Region classification",
                     "4. Run time"):
        assert category in rendered, category
    from PIL import Image

    with Image.open(workdir / "report.png") as shot:
        assert shot.size == (1400, 1000)
        colours = shot.convert("L").getextrema()
    assert colours[1] - colours[0] > 100, "the screenshot is blank"


@pytest.mark.parametrize("extra, branch", [("", "scored on others, leaving out held-out examples"),
                                           ("--keep-repeat-copies", "scored on others, keeping held-out examples")])
def test_workflow_description_keeps_the_spaces_around_its_condition(extra, branch):
    """workflow.rst rendered as `snakemake --report` renders it (jinja2 with trim_blocks and lstrip_blocks): each
    branch reads as a sentence, not glued to the words around it (it once read "others,leaving" and
    "training.Their")."""
    from jinja2 import Environment

    class Snakemake:
        config = {"pretrain": {"reference": "cdiph"}, "classify_regions": {"extra": extra},
                  "classify_variants": {"extra": ""}}

    template = (ROOT / "workflow/report/workflow.rst").read_text()
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(snakemake=Snakemake)
    assert branch in " ".join(text.split())
    assert re.search(r"[.)] Their sequence may still lie", " ".join(text.split()))


def render_in_chromium(html: Path, screenshot: Path) -> str:
    """The text of ``html`` after headless Chromium ran its scripts, and a 1400x1000 screenshot of it.

    Chromium is a CI requirement (.ci/run installs Debian's package when it is missing): outside CI a machine
    without it skips this check with the reason; in CI its absence fails the test.
    """
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (/usr/bin/chromium) to render the report")
        pytest.skip("needs Debian's chromium to render the report (apt install chromium)")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=15000", "--window-size=1400,1000"]
    url = html.resolve().as_uri()
    dom = subprocess.run([*flags, f"--user-data-dir={html.parent / 'chromium-dom'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run([*flags, f"--user-data-dir={html.parent / 'chromium-shot'}", f"--screenshot={screenshot}",
                           url], capture_output=True, text=True, timeout=180)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom.stdout, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@pytest.mark.slow
@ONE_RUN
def test_second_run_has_nothing_to_do(finished):
    workdir, override = finished
    result = snakemake(workdir, "--configfile", override, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
@ONE_RUN
def test_deleted_output_is_rebuilt_with_only_its_dependents(finished):
    workdir, override = finished
    model = workdir / "runs/cdiph/model.safetensors"
    model_mtime = model.stat().st_mtime_ns
    (workdir / "results/eval/NA12878.json").unlink()
    plan = snakemake(workdir, "--configfile", override, "--dry-run")
    assert planned_jobs(plan.stdout) == {"evaluate_sample": 1, "report_bits_per_base": 1, "report_summary": 1,
                                         "report_benchmarks": 1, "all": 1}
    result = snakemake(workdir, "--configfile", override)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "results/eval/NA12878.json").exists()
    assert model.stat().st_mtime_ns == model_mtime


@pytest.mark.slow
@ONE_RUN
def test_a_folder_output_whose_declared_file_was_deleted_is_rebuilt(finished):
    """snakemake deletes a job's declared file (classify_regions' metrics.json) before rerunning it, not the rest
    of the folder (probe.json, the fine-tuned model): the rerun replaces the folder instead of refusing it."""
    workdir, override = finished
    out = workdir / "results/regions/cdiph_genes"
    assert (out / "probe.json").is_file()  # stays when snakemake deletes metrics.json
    (out / "metrics.json").unlink()
    result = snakemake(workdir, "--configfile", override)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["split"]["method"] == "blocks"


@pytest.mark.slow
def test_killed_pretrain_resumes_from_its_checkpoint(tmp_path):
    workdir = copy_workflow(tmp_path)
    override = tiny_config(workdir, reference="human_q", steps=8, checkpoint_every=2)  # a 12 kbp genome
    target = "runs/human_q/model.safetensors"
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    run = subprocess.Popen([str(VENV_BIN / "snakemake"), "--cores", "2", target, "--configfile", override],
                           cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    weights = workdir / target  # refreshed after each checkpoint is complete
    try:
        deadline = time.monotonic() + 240
        while not weights.exists() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert weights.exists() and run.poll() is None, "no checkpoint before the run ended"
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and its job, mid-run
        run.wait()
    assert snakemake(workdir, "--unlock", "--configfile", override).returncode == 0
    plan = snakemake(workdir, target, "--configfile", override, "--dry-run")
    assert "incomplete" in (plan.stdout + plan.stderr).lower()
    result = snakemake(workdir, target, "--configfile", override, "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (workdir / "logs/pretrain/human_q.log").read_text()
    assert re.search(r"resuming from \S+step-\d+", log), log[-2000:]
    metrics = (workdir / "runs/human_q/metrics.jsonl").read_text()
    assert [json.loads(line)["step"] for line in metrics.splitlines()] == list(range(1, 9))  # kept, none twice
    # a pretraining or k-mer value changed after the run: the DAG stops, naming the values and what to do (before,
    # tokenize rewrote the tokens and then the pretrain job failed with "Error in rule pretrain ... check log")
    changed = workdir / "changed.yaml"
    changed.write_text(yaml.safe_dump({"pretrain": {"set": {"run.steps": 9}}, "tokenize": {"k": 2}}))
    error = _one_line_error(_dag_error(workdir, target, "--configfile", override, str(changed.name)))
    assert "runs/human_q: trained with other values than the workflow would now train with (run.steps 8 -> 9, " \
           "tokenize.k 3 -> 2;" in error and "delete runs/human_q to train anew" in error
    # as do tokenize options that would cut the genome into other windows (before, the pretrain job refused them)
    changed.write_text(yaml.safe_dump({"tokenize": {"window": 64, "extra": "--block 4"}}))
    error = _one_line_error(_dag_error(workdir, target, "--configfile", override, str(changed.name)))
    assert "(tokenize.window 128 -> 64, tokenize.extra --block 8 -> 4; from " in error
    assert snakemake(workdir, target, "--configfile", override, "--dry-run").returncode == 0  # unchanged: fine


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def _dag_error(workdir: Path, *args: str) -> str:
    result = snakemake(workdir, "--dry-run", *args)
    assert result.returncode != 0, "the dry run should have stopped"
    assert "Job stats" not in result.stdout, "jobs were planned before the error"
    return result.stdout + result.stderr


def _one_line_error(output: str) -> str:
    """The run's error: one line (no traceback, no schema dump)."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("genoformer workflow: error: ")]
    assert len(errors) == 1 and len(lines) <= 3, output[-3000:]
    return errors[0]


@pytest.mark.slow
def test_unknown_config_key_is_named(tmp_path):
    """A misspelt key, a nested one, a value out of range, a bad sample row: one line naming the key or line."""
    workdir = copy_workflow(tmp_path)
    assert "config: Additional properties are not allowed ('score_variant' was unexpected)" in _one_line_error(
        _dag_error(workdir, "--config", "score_variant={}"))
    override = workdir / "bad.yaml"
    override.write_text("tokenize: {kmer: 6}\n")
    assert "config: key tokenize: Additional properties are not allowed ('kmer' was unexpected)" in \
        _one_line_error(_dag_error(workdir, "--configfile", override.name))
    override.write_text("score_variants: {chunks: 1001}\n")  # shard names have three digits
    assert "config: key score_variants.chunks: 1001 is greater than the maximum of 1000" in _one_line_error(
        _dag_error(workdir, "--configfile", override.name))
    override.write_text("classify_regions: {extra: --bootstrap 100 --finetune-epoch 1 --kmers 3}\n")  # --kmer
    assert "config key classify_regions.extra: unrecognized arguments: --kmers 3 (genoformer classify-regions " \
        "would stop on it" in _one_line_error(_dag_error(workdir, "--configfile", override.name))
    samples = workdir / "config/samples.tsv"
    samples.write_text(samples.read_text().replace("NA12878\t", "NA 12878\t"))
    assert "config/samples.tsv: line 2: key sample: 'NA 12878' does not match" in _one_line_error(
        _dag_error(workdir))


@pytest.mark.parametrize("key, value", [("score_variants", {"window": 512, "chunks": 2.0}),
                                        ("tokenize", {"k": 1, "stride": 1, "window": 512.0})])
def test_a_whole_number_written_as_a_float_is_not_an_integer(key, value):
    """JSON Schema counts 2.0 as an integer; the workflow does not (range(2.0) raised a TypeError traceback while
    the DAG was built, `--window 512.0` failed the tokenize job): one line naming the key."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    workflow_checks.check_schema(config, ROOT / "workflow/schemas/config.schema.yaml", "config")
    config[key] = value
    number = next(v for v in value.values() if isinstance(v, float))
    field = next(k for k, v in value.items() if isinstance(v, float))
    with pytest.raises(ConfigError, match=re.escape(f"config: key {key}.{field}: {number} is not of type 'integer'")):
        workflow_checks.check_schema(config, ROOT / "workflow/schemas/config.schema.yaml", "config")


@pytest.mark.slow
def test_a_copied_config_replaces_the_bundled_one_only_with_replace_workflow_config(tmp_path):
    """README "Your own data": a copy of config.yaml naming only the chloroplast, run with --configfile, keeps the
    bundled cdiph reference and its tasks (Snakemake merges the two files), with a warning naming them; with
    --replace-workflow-config it does not."""
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    config["references"] = {"athal_cp": {"fasta": "resources/athal_cp/NC_000932.1.fa",
                                         "annotation": "resources/athal_cp/NC_000932.1.gff3", "genetic_code": 11}}
    config["pretrain"]["reference"] = "athal_cp"
    config["samples"] = "my_samples.tsv"
    (workdir / "my_samples.tsv").write_text("sample\treference\tbam\tvcf\n")
    (workdir / "my.yaml").write_text(yaml.safe_dump(config))
    merged = snakemake(workdir, "--dry-run", "--configfile", "my.yaml")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert planned_jobs(merged.stdout)["classify_regions"] == 2 and "cdiph_genes" in merged.stdout
    assert "genoformer workflow: warning: references cdiph, human_q are not in the --configfile but stay" in \
        merged.stderr and "add --replace-workflow-config" in merged.stderr
    replaced = snakemake(workdir, "--dry-run", "--printshellcmds", "--configfile", "my.yaml",
                         "--replace-workflow-config")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "--seed 0 --table 11 --index tbi" in replaced.stdout  # the reference's genetic_code
    assert planned_jobs(replaced.stdout)["classify_regions"] == 1 and "cdiph" not in replaced.stdout
    assert "regions/athal_cp_genes/metrics.json" in replaced.stdout
    assert "warning" not in replaced.stderr


def test_merged_references_warning_only_for_a_configfile_that_lists_references():
    """The bundled config merged with a file naming only athal_cp warns about cdiph and human_q; a file that
    changes other values (the tests' tiny config), one that lists every reference, or a replaced config: none."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    mine = {"references": {"athal_cp": {"fasta": "resources/athal_cp/NC_000932.1.fa"}}}
    config["references"].update(mine["references"])
    warning = workflow_checks.merged_references_warning(config, mine, replaced=False)
    assert warning.startswith("references cdiph, human_q are not in the --configfile but stay")
    assert workflow_checks.merged_references_warning(config, mine, replaced=True) is None
    assert workflow_checks.merged_references_warning(config, {"tokenize": {"k": 3}}, replaced=False) is None
    assert workflow_checks.merged_references_warning(config, {"references": config["references"]}, False) is None


def test_pretrain_run_check_compares_what_the_checkpoint_holds(tmp_path):
    """The newest readable checkpoint's trainer state against the pretraining config file, pretrain.set and
    tokenize k/stride: a changed value is named; a key the checkpoint does not hold (an older version's) and
    run.device (the workflow sets it) are not compared; a damaged newest state is passed over."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["pretrain"]["config"] = str(ROOT / config["pretrain"]["config"])
    saved = yaml.safe_load(Path(config["pretrain"]["config"]).read_text())
    del saved["run"]["eval_windows"]  # as if written before that key existed
    saved["run"]["device"] = "cuda"
    run = tmp_path / "runs" / "cdiph"
    for step, state in ((250, {"config": saved, "data": {"k": 1, "stride": 1}}), (500, None)):
        (run / "checkpoints" / f"step-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"step-{step}" / "trainer_state.json").write_text(
            json.dumps(state) if state else "{damaged")
    workflow_checks.check_pretrain_run(config, run)
    workflow_checks.check_pretrain_run(config, tmp_path / "no_run")
    config["pretrain"]["set"] = {"optim.lr": 0.5, "run.eval_windows": 7}
    config["tokenize"]["stride"] = 3
    with pytest.raises(ConfigError, match=r"runs/cdiph: trained with other values than the workflow would now train "
                                          r"with \(optim.lr 0.01 -> 0.5, tokenize.stride 1 -> 3; from "):
        workflow_checks.check_pretrain_run(config, run)


def test_idle_gpus_warning_where_the_driver_lists_gpus_and_pretraining_claims_none(tmp_path):
    """The bundled config (every gpus 0) on a machine whose NVIDIA driver lists two GPUs (a folder laid out like
    /proc/driver/nvidia/gpus: one entry per PCI address) warns, naming the stages; none when pretraining claims a
    GPU, where the driver lists none, or where there is no driver (this machine: no such folder)."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    gpus = tmp_path / "gpus"
    for address in ("0000:17:00.0", "0000:65:00.0"):
        (gpus / address).mkdir(parents=True)
    warning = workflow_checks.idle_gpus_warning(config, gpus)
    assert warning.startswith("this machine has 2 NVIDIA GPU(s), but config gpus is 0 for pretrain, evaluate, "
                              "score_variants, classify_variants, classify_regions: those jobs run on the CPU")
    config["pretrain"]["gpus"] = 1
    assert workflow_checks.idle_gpus_warning(config, gpus) is None
    config["pretrain"]["gpus"] = 0
    assert workflow_checks.idle_gpus_warning(config, tmp_path / "none") is None
    (tmp_path / "empty").mkdir()
    assert workflow_checks.idle_gpus_warning(config, tmp_path / "empty") is None


@pytest.mark.slow
def test_missing_input_path_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    samples = workdir / "config/samples.tsv"
    samples.write_text(samples.read_text().replace("NA12878.chr22.tiny.bam", "absent.bam"))
    message = _dag_error(workdir)
    assert "config/samples.tsv: line 2 (sample NA12878): bam: resources/human_chr22_q/absent.bam does not exist" \
        in message


@pytest.mark.slow
def test_duplicate_sample_name_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    samples = workdir / "config/samples.tsv"
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join(lines + [lines[1]]) + "\n")
    message = _dag_error(workdir)
    assert "config/samples.tsv: line 3: sample name 'NA12878' is used twice (first on line 2)" in message


@pytest.mark.slow
def test_vcf_on_another_reference_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    samples = workdir / "config/samples.tsv"
    samples.write_text(samples.read_text().replace("NA12878\thuman_q", "NA12878\tcdiph"))
    message = _dag_error(workdir)
    assert "sample NA12878" in message
    assert "has contig(s) q not in reference resources/cdiph/NZ_LN831026.1.fa.gz" in message


@pytest.mark.slow
def test_inputs_that_would_fail_their_jobs_stop_the_run_before_any_job(tmp_path):
    """A sample BAM aligned to another genome, a region task BED naming a contig the reference lacks (which
    would fail only after pretraining), a variant task labelling by an undeclared INFO field: each stops the dry
    run in one line naming the config key or table line."""
    workdir = copy_workflow(tmp_path)
    samples = workdir / "config/samples.tsv"
    original = samples.read_text()
    samples.write_text(original.replace("human_chr22_q/NA12878.chr22.tiny.bam", "sarscov2/SRR11728627.sorted.bam"))
    assert "line 2 (sample NA12878): bam: resources/sarscov2/SRR11728627.sorted.bam: contigs disagree with " \
        "reference" in _one_line_error(_dag_error(workdir))
    samples.write_text(original)
    (workdir / "labels.bed").write_text("NZ_LN831026.1\t0\t100\ta\t0\t+\tx\nchrX\t0\t100\tb\t0\t+\ty\n")
    override = workdir / "tasks.yaml"
    override.write_text("region_tasks: {mine: {reference: cdiph, bed: labels.bed}}\n")
    assert "config key region_tasks.mine.bed: labels.bed line 2: contig 'chrX' is not in reference" in \
        _one_line_error(_dag_error(workdir, "--configfile", override.name))
    override.write_text("variant_tasks: {mine: {reference: human_q, vcf: resources/human_chr22_q/q.vcf.gz, "
                        "label_field: CLNSIG}}\n")
    assert "config key variant_tasks.mine.label_field: INFO field 'CLNSIG' is not declared in " \
        "resources/human_chr22_q/q.vcf.gz" in _one_line_error(_dag_error(workdir, "--configfile", override.name))
    # a cluster job's snakemake (mode remote) parses the workflow only to run its one rule: it reads no input again
    remote = snakemake(workdir, "--dry-run", "--configfile", override.name, "--mode", "remote")
    assert remote.returncode == 0 and "Job stats" in remote.stdout
    override.write_text("variant_tasks: {mine: {reference: human_q, vcf: resources/human_chr22_q/q.vcf.gz, "
                        "label_field: TYPE, positive: [snp], negative: [deletion]}}\n")
    assert _one_line_error(_dag_error(workdir, "--configfile", override.name)) == "genoformer workflow: error: " \
        "config key variant_tasks.mine: resources/human_chr22_q/q.vcf.gz: no variant has the negative label " \
        "value(s) deletion in INFO field 'TYPE' (its values: del, snp)"


def test_pre_job_vcf_checks_refuse_a_plain_gzip_vcf_in_one_line(tmp_path):
    """The real human VCF recompressed with plain gzip: an InputError saying so, not NotImplementedError."""
    import gzip

    plain = tmp_path / "q.vcf.gz"
    plain.write_bytes(gzip.compress(pysam.BGZFile(str(HUMAN_VCF)).read()))
    with pytest.raises(InputError, match=f"^{plain}: plain gzip, not bgzip"):
        workflow_checks.vcf_contigs(plain)
    with pytest.raises(InputError, match=f"^task.vcf: {plain}: plain gzip, not bgzip"):
        workflow_checks.check_variant_labels({"vcf": plain, "label_field": "DP"}, "task")


def bad_qual(path):
    """q.vcf.gz with its 5th record's QUAL 'abc' (which htslib reads as 0), as a plain VCF."""
    lines = pysam.BGZFile(str(HUMAN_VCF)).read().decode().splitlines()
    fifth = [number for number, line in enumerate(lines) if not line.startswith("#")][4]
    fields = lines[fifth].split("\t")
    lines[fifth] = "\t".join(fields[:5] + ["abc"] + fields[6:])
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_numalt(path):
    """q.vcf.gz with its 5th record's NUMALT (Type=Integer) 'x' (which htslib drops), as a plain VCF."""
    lines = pysam.BGZFile(str(HUMAN_VCF)).read().decode().splitlines()
    fifth = [number for number, line in enumerate(lines) if not line.startswith("#")][4]
    assert ";NUMALT=1;" in lines[fifth]
    lines[fifth] = lines[fifth].replace(";NUMALT=1;", ";NUMALT=x;")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("task, message", [
    ({"label_field": "TYPE", "positive": ["snp", "mnp"], "negative": ["del"]},
     "{vcf}: no variant has the positive label value(s) mnp in INFO field 'TYPE' (its values: del, snp)"),
    ({"label_field": "MIN_DP"}, "{vcf}: no variant has a value in INFO field 'MIN_DP'"),
    ({"label_field": "TYPE"}, "{vcf}: INFO field 'TYPE' has values del, snp; name the classes"),
    ({"label_field": "NUMALT"}, "{vcf}: INFO field 'NUMALT' gives 0 0 and 16 1 variants; each class needs at least 2"),
    ({"label_field": "TYPE", "vcf": bad_qual}, ".vcf: {vcf} record 5 (line 70, q:1917): QUAL 'abc' is not a number"),
    ({"label_field": "NUMALT", "vcf": bad_numalt}, ".vcf: {vcf} record 5 (line 70, q:1917): INFO NUMALT='x' is not "
     "an Integer as its header declares"),  # the label field: an error, not the warning of a passed-through field
])
def test_variant_task_labels_are_read_before_any_job(tmp_path, task, message):
    """The bundled freebayes calls, labelled by INFO TYPE (14 snp, 2 del): the labels classify-variants would read
    after pretraining are read at DAG time, in one message naming the config key, the VCF and what is missing."""
    good = {"vcf": HUMAN_VCF, "label_field": "TYPE", "positive": ["snp"], "negative": ["del"]}
    workflow_checks.check_variant_labels(good, "config key variant_tasks.mine")
    vcf = task.pop("vcf", lambda path: HUMAN_VCF)(tmp_path / "q.vcf")
    with pytest.raises(GenoformerError) as err:
        workflow_checks.check_variant_labels({**good, "vcf": vcf, "positive": None, "negative": None, **task},
                                             "config key variant_tasks.mine")
    assert str(err.value).startswith(f"config key variant_tasks.mine{'' if message[0] == '.' else ': '}"
                                     + message.format(vcf=vcf))


def test_pre_job_checks_read_inputs_as_their_jobs_will_and_write_nothing(tmp_path, chloroplast_fasta, sarscov2):
    """A region BED labelled in its name column passes when classify_regions.extra says --label-column name
    (and only then); a BAM without its index is checked without building one (the tokenize job builds it)."""
    bed = tmp_path / "named.bed"
    bed.write_text("".join(f"NC_000932.1\t{i * 1000}\t{i * 1000 + 100}\t{'ab'[i % 2]}\n" for i in range(20)))
    workflow_checks.check_region_labels(bed, chloroplast_fasta, "name", "task")
    with pytest.raises(InputError, match=r"^task: .*named.bed: no label column 7"):
        workflow_checks.check_region_labels(bed, chloroplast_fasta, "7", "task")
    bam = tmp_path / "reads.bam"
    shutil.copy(sarscov2 / "SRR11728627.sorted.bam", bam)
    strict = stage_options({"tokenize": {"extra": "--min-mapq 61"}}, "tokenize")  # above every read's MAPQ
    workflow_checks.check_bam_on_reference(bam, sarscov2 / "NC_045512.2.fasta", "sample", strict)  # no index: left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.bed", "reads.bam"]


def test_a_bam_none_of_whose_reads_counts_stops_before_any_job(human_q):
    """The bundled NA12878 BAM (indexed) passes with the bundled tokenize options; with a --min-mapq above every
    read's in config tokenize.extra, its consensus would be all N: the run stops before any job, in one line naming
    the table line, the BAM, the read filter and what helps (before, the tokenize_sample job failed on it)."""
    bam, fasta = human_q / "NA12878.chr22.tiny.bam", human_q / "q.fa"
    workflow_checks.check_bam_on_reference(bam, fasta, "samples.tsv: line 2 (sample NA12878): bam",
                                           stage_options({"tokenize": {"extra": ""}}, "tokenize"))
    strict = stage_options({"tokenize": {"extra": "--min-depth 1 --min-mapq 61"}}, "tokenize")
    with pytest.raises(InputError, match=r"^samples.tsv: line 2 \(sample NA12878\): bam: .*NA12878.chr22.tiny.bam: "
                                         r"no read on q is mapped with MAPQ >= 61 .*lower --min-mapq"):
        workflow_checks.check_bam_on_reference(bam, fasta, "samples.tsv: line 2 (sample NA12878): bam", strict)


def test_a_cram_made_against_another_sequence_stops_before_any_job(tmp_path, human_q, sarscov2):
    """The NA12878 reads as a CRAM (no .crai: the tokenize job makes it) on q plus the SARS-CoV-2 genome, checked on
    a copy of that reference with two lines of the latter hard-masked (the same names and lengths): the CRAM's @SQ
    M5 says so before any job, in the tokenize job's own message after the table line. Only the contigs tokenize
    reads are hashed: with --contigs q, or --regions on q, it passes."""
    both, masked = tmp_path / "both.fa", tmp_path / "masked.fa"
    q, virus = (human_q / "q.fa").read_text(), (sarscov2 / "NC_045512.2.fasta").read_text()
    both.write_text(q + virus)
    lines = virus.splitlines(keepends=True)
    masked.write_text(q + "".join("N" * (len(line) - 1) + "\n" if number in (30, 31) else line
                                  for number, line in enumerate(lines)))
    cram = tmp_path / "two.cram"
    with pysam.AlignmentFile(str(human_q / "NA12878.chr22.tiny.bam")) as reads:
        header = reads.header.to_dict()
        header["SQ"] = [{"SN": "q", "LN": 12356}, {"SN": "NC_045512.2", "LN": 29903}]
        with pysam.AlignmentFile(str(cram), "wc", header=header, reference_filename=str(both)) as out:
            for read in reads:
                out.write(pysam.AlignedSegment.from_dict(read.to_dict(), out.header))
    where = "samples.tsv: line 2 (sample NA12878): bam"
    with pytest.raises(MismatchError) as err:
        workflow_checks.check_bam_on_reference(cram, masked, where, stage_options({}, "tokenize"))
    (tmp_path / "q.bed").write_text("q\t100\t5000\n")
    for extra in ("--contigs q", f"--regions {tmp_path / 'q.bed'}"):
        workflow_checks.check_bam_on_reference(cram, masked, where, stage_options({"tokenize": {"extra": extra}},
                                                                                  "tokenize"))
    assert not (tmp_path / "two.cram.crai").exists()
    with Reference(masked) as reference:
        assert reference.contigs == {"q": 12356, "NC_045512.2": 29903}
        with pytest.raises(MismatchError) as job:
            consensus(cram, reference, "NC_045512.2")
    assert "contig NC_045512.2: MD5 105c82802b67521950854a851fc6eefd in the CRAM header" in str(job.value)
    assert str(err.value) == f"{where}: {job.value}"


def test_a_sample_table_column_given_twice_is_refused(tmp_path):
    """The bundled table with its vcf column headed bam too: the second bam column would silently replace the
    first (the VCF read as the sample's reads); refused naming the header line and the column."""
    table = tmp_path / "samples.tsv"
    table.write_text((ROOT / "config/samples.tsv").read_text().replace("bam\tvcf", "bam\tbam"))
    with pytest.raises(ConfigError, match=f"^{table}: line 1: column bam is given twice"):
        workflow_checks.read_samples(table)


def test_an_unreadable_sample_vcf_is_named_with_its_table_line(monkeypatch):
    """The bundled sample's BAM given as its VCF: the one-line error names the table line and the sample, as the
    other checks of a sample row do, not the file alone."""
    monkeypatch.chdir(ROOT)  # the bundled config's paths are relative to the repository
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    bam = "resources/human_chr22_q/NA12878.chr22.tiny.bam"
    rows = [{"sample": "NA12878", "reference": "human_q", "vcf": bam, "line": 2}]
    with pytest.raises(InputError, match=re.escape(f"samples.tsv: line 2 (sample NA12878): vcf: {bam}: not a "
                                                   "readable VCF/BCF")):
        workflow_checks.check_inputs(config, rows, "samples.tsv")


def test_an_annotation_on_other_contig_names_stops_before_any_job(tmp_path, monkeypatch, resources):
    """The chloroplast's curated GFF3 with its contig renamed chrC (the FASTA says NC_000932.1), as a user's own
    config names it: one line naming the config key, the file, its first gene line and the FASTA's contigs, where
    the coding_variants and region_labels jobs would have failed (a tRNA gene alone on a missing contig too);
    gzip-compressed as it is, it passes; an annotation without CDS lines is refused too, and so is a genetic_code
    that NCBI does not define."""
    monkeypatch.chdir(ROOT)
    gff = resources / "athal_cp/NC_000932.1.gff3"
    renamed = tmp_path / "chrC.gff3"
    renamed.write_text(gff.read_text().replace("NC_000932.1\t", "chrC\t"))
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    config["references"] = {"athal_cp": {"fasta": "resources/athal_cp/NC_000932.1.fa", "annotation": str(renamed)}}
    config["pretrain"]["reference"] = "athal_cp"
    first_gene = next(number for number, line in enumerate(renamed.read_text().splitlines(), start=1)
                      if line.split("\t")[2:3] == ["gene"])
    with pytest.raises(MismatchError, match=re.escape(
            f"config key references.athal_cp.annotation: {renamed} line {first_gene}: gene on contig 'chrC', which "
            "is not in reference resources/athal_cp/NC_000932.1.fa (its contigs: NC_000932.1); name the contigs")):
        workflow_checks.check_inputs(config, [], "samples.tsv")
    # Every CDS on the FASTA's contig, but a tRNA gene on a plasmid it lacks: region_labels would fail on it.
    plasmid = tmp_path / "plasmid.gff3"
    plasmid.write_text(gff.read_text() + "plasmid1\tRefSeq\tgene\t10\t90\t.\t+\t.\tID=gene-x\n"
                       "plasmid1\tRefSeq\ttRNA\t10\t90\t.\t+\t.\tID=rna-x;Parent=gene-x\n")
    fasta = "resources/athal_cp/NC_000932.1.fa"
    line = len(gff.read_text().splitlines()) + 1
    with pytest.raises(MismatchError, match=re.escape(f"athal_cp: {plasmid} line {line}: gene on contig 'plasmid1', ")):
        workflow_checks.check_annotation_on_reference(plasmid, fasta, "athal_cp")
    with Reference(fasta) as reference, pytest.raises(MismatchError, match="contig 'plasmid1' is not in reference"):
        region_labels.coding_intergenic_regions(reference, plasmid, length=200, per_class=5, seed=0)  # the job's
    compressed = tmp_path / "cp.gff3.gz"
    pysam.tabix_compress(str(gff), str(compressed))
    config["references"]["athal_cp"]["annotation"] = str(compressed)
    workflow_checks.check_inputs(config, [], "samples.tsv")
    genes_only = tmp_path / "genes.gff3"
    genes_only.write_text("".join(line for line in gff.read_text().splitlines(keepends=True)
                                  if "\tCDS\t" not in line))
    with pytest.raises(InputError, match=re.escape(f"{genes_only}: no CDS features found")):
        workflow_checks.check_annotation_on_reference(genes_only, "resources/athal_cp/NC_000932.1.fa", "athal_cp")
    config["references"]["athal_cp"]["genetic_code"] = 7  # codes 7 and 8 were merged into 1
    with pytest.raises(ConfigError, match=re.escape("config key references.athal_cp.genetic_code: 7 is not an NCBI "
                                                    "genetic code; known codes: 1, 2, 3, 4, 5, 6, 9,")):
        workflow_checks.check_inputs(config, [], "samples.tsv")


@pytest.mark.slow
def test_sample_named_like_a_reference_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    samples = workdir / "config/samples.tsv"
    samples.write_text(samples.read_text().replace("NA12878\t", "cdiph\t"))
    assert "config/samples.tsv: line 2: sample name 'cdiph' is also a reference name" in _dag_error(workdir)


@pytest.mark.parametrize("change,message", [
    (lambda config, rows: rows[0].update(sample="cdiph_coding"),
     "line 2: sample name 'cdiph_coding' is also the name of the coding SNVs derived from references.cdiph"),
    (lambda config, rows: config.update(variant_tasks={"cdiph_coding": {}}),
     "config key variant_tasks.cdiph_coding: the name of the task on the coding SNVs derived from"),
    (lambda config, rows: config.update(region_tasks={"cdiph_genes": {}}),
     "config key region_tasks.cdiph_genes: the name of the task on the coding vs intergenic regions derived from"),
])
def test_names_that_would_collide_in_the_outputs_are_refused(change, message):
    """The bundled config and sample table with one name changed so that two results would share it."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    rows = workflow_checks.read_samples(ROOT / "config/samples.tsv")
    workflow_checks.check_names(config, rows, "config/samples.tsv")  # as bundled: no collision
    change(config, rows)
    with pytest.raises(ConfigError, match=re.escape(message)):
        workflow_checks.check_names(config, rows, "config/samples.tsv")


@pytest.mark.slow
def test_vcf_index_csi_gives_every_scored_vcf_a_csi_index(tmp_path):
    """config vcf_index: csi (what auto picks for a contig over 512 Mbp, tests/test_vcf_index.py) through the
    real rules: the shards and the merged VCF get .csi indexes that region queries use."""
    workdir = copy_workflow(tmp_path)
    override = tiny_config(workdir, reference="human_q")  # a 12 kbp genome
    target = "results/variants/NA12878.vcf.gz.csi"
    result = snakemake(workdir, target, "--configfile", override, "--config", "vcf_index=csi")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(workdir.glob("results/**/*.tbi"))
    with pysam.VariantFile(str(HUMAN_VCF)) as source:
        first = next(iter(source))
    with pysam.VariantFile(str(workdir / "results/variants/NA12878.vcf.gz"), index_filename=str(workdir / target)) \
            as scored:
        assert [r.pos for r in scored.fetch(first.contig, first.pos - 1, first.pos)] == [first.pos]


# ---- gather of sharded scoring -----------------------------------------------------------------------------


def _records(path) -> list[tuple]:
    with pysam.VariantFile(str(path)) as vcf:
        return [(r.contig, r.pos, r.ref, r.alts, r.id, tuple(r.info.items())) for r in vcf]


def write_shards(tmp_path, n: int) -> list[Path]:
    """Shards of the bundled human VCF as `score-variants --shard i/n` writes them: every n-th record (window)
    each, position-sorted, each header with its own ##genoformer_shard line."""
    paths = [tmp_path / f"shard-{i}.vcf.gz" for i in range(n)]
    with pysam.VariantFile(str(HUMAN_VCF)) as source:
        records = list(source)
        for i, path in enumerate(paths):
            header = source.header.copy()
            header.add_meta("genoformer_shard", f"{i}/{n}")
            with pysam.VariantFile(str(path), "wz", header=header) as sink:
                for record in records[i::n]:
                    sink.write(record)
            pysam.tabix_index(str(path), preset="vcf", force=True)
    return paths


@pytest.mark.parametrize("shards", [1, 3, 40])
def test_merged_shards_give_back_the_vcf(tmp_path, shards):
    merged = tmp_path / "merged.vcf.gz"
    original = _records(HUMAN_VCF)
    assert merge_vcfs(write_shards(tmp_path, shards), merged) == len(original)
    assert _records(merged) == original
    with pysam.VariantFile(str(merged)) as vcf:  # the index works, the shard line is gone
        assert len(list(vcf.fetch("q", 0, 12356))) == len(original)
        assert "genoformer_shard" not in str(vcf.header)


def test_merge_rejects_an_unsorted_shard(tmp_path):
    path = tmp_path / "unsorted.vcf"
    with open(path, "w") as handle:
        handle.write("##fileformat=VCFv4.2\n##contig=<ID=q,length=12356>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\t"
                     "FILTER\tINFO\nq\t500\t.\tA\tG\t.\t.\t.\nq\t100\t.\tC\tT\t.\t.\t.\n")
    assert main(["merge-vcf", "--vcfs", str(path), "--out", str(tmp_path / "m.vcf.gz")]) == 2
    assert not (tmp_path / "m.vcf.gz").exists()


def test_merge_rejects_shards_of_different_runs(tmp_path, cdiph_fasta):
    other = tmp_path / "other.vcf"
    other.write_text("##fileformat=VCFv4.2\n##contig=<ID=NZ_LN831026.1,length=2463666>\n"
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    with pytest.raises(Exception, match="other.vcf: INFO fields or contigs differ"):
        merge_vcfs([HUMAN_VCF, other], tmp_path / "m.vcf.gz")


def merge_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genoformer merge-vcf: error: "), err
    return err[0]


def test_merge_reports_bad_vcfs_and_tables_in_one_line_and_writes_nothing(tmp_path, capsys):
    """The real human VCF without its ##contig lines, plain-gzipped, next to a table that is not one, or merged
    into a name that is not .vcf.gz: one-line errors (no KeyError/NotImplementedError traceback) and no
    merged VCF left behind."""
    import gzip

    text = pysam.BGZFile(str(HUMAN_VCF)).read().decode()
    undeclared = tmp_path / "no_contig_lines.vcf"
    undeclared.write_text("".join(line for line in text.splitlines(keepends=True) if not line.startswith("##contig")))
    plain = tmp_path / "plain.vcf.gz"
    with gzip.open(plain, "wt") as handle:
        handle.write(text)
    out = tmp_path / "m.vcf.gz"
    assert main(["merge-vcf", "--vcfs", str(undeclared), "--out", str(out)]) == 2
    assert f"{undeclared}: record 1 (q:186): contig 'q' has no ##contig line" in merge_error(capsys)
    assert main(["merge-vcf", "--vcfs", str(plain), "--out", str(out)]) == 2
    assert f"{plain}: plain gzip, not bgzip" in merge_error(capsys)
    assert main(["merge-vcf", "--vcfs", str(HUMAN_VCF), "--out", str(out), "--tables", str(undeclared),
                 "--table-out", str(tmp_path / "m.tsv")]) == 2
    assert f"{undeclared}: not a tab-separated table" in merge_error(capsys)
    assert main(["merge-vcf", "--vcfs", str(HUMAN_VCF), "--out", str(tmp_path / "m.vcf")]) == 2
    assert "must end in .vcf.gz" in merge_error(capsys)
    assert main(["merge-vcf", "--vcfs", str(HUMAN_VCF), "--out", str(out), "--tables", str(undeclared),
                 "--table-out", str(tmp_path)]) == 2
    assert f"{tmp_path}: output path is a folder" in merge_error(capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["no_contig_lines.vcf", "plain.vcf.gz"]


def test_merge_tables_restores_record_order(tmp_path):
    """Rows in record order, the ALTs of one record (split between the tables) in allele order."""
    (tmp_path / "a.tsv").write_text("contig\tpos\trecord\tallele\tGF_LLR\nq\t10\t1\t2\tNA\nq\t90\t3\t1\t1e-05\n")
    (tmp_path / "b.tsv").write_text("contig\tpos\trecord\tallele\tGF_LLR\nq\t10\t1\t1\t-0.5\nq\t50\t2\t1\t0.25\n"
                                    "q\t900\t10\t1\t2\n")
    assert write_merged_table(read_tables([tmp_path / "a.tsv", tmp_path / "b.tsv"]), tmp_path / "m.tsv") == 5
    assert (tmp_path / "m.tsv").read_text() == ("contig\tpos\trecord\tallele\tGF_LLR\nq\t10\t1\t1\t-0.5\n"
                                                "q\t10\t1\t2\tNA\nq\t50\t2\t1\t0.25\nq\t90\t3\t1\t1e-05\n"
                                                "q\t900\t10\t1\t2\n")
    (tmp_path / "c.tsv").write_text("chrom\tpos\trecord\tGF_LLR\nq\t5\t4\t0\n")
    with pytest.raises(MismatchError, match="c.tsv: line 1: columns differ from those of .*a.tsv"):
        read_tables([tmp_path / "a.tsv", tmp_path / "c.tsv"])
    assert not (tmp_path / "n.tsv").exists()


# ---- derived region task ----------------------------------------------------------------------------------


def test_region_labels_lie_inside_or_outside_coding_sequence(tmp_path, chloroplast_fasta, resources):
    from genoformer.io.fasta import Reference
    from genoformer.region_labels import coding_intergenic_regions

    gff = resources / "athal_cp" / "NC_000932.1.gff3"
    with Reference(chloroplast_fasta) as reference:
        regions = coding_intergenic_regions(reference, gff, length=50, per_class=40, seed=3)
        coding = np.zeros(reference.contigs["NC_000932.1"], dtype=bool)
    genic = coding.copy()
    for line in gff.read_text().splitlines()[2:]:  # gene, CDS, tRNA and rRNA lines
        _, _, kind, start, end = line.split("\t")[:5]
        genic[int(start) - 1:int(end)] = True
        coding[int(start) - 1:int(end)] |= kind == "CDS"
    assert regions["label"].value_counts().to_dict() == {"coding": 40, "intergenic": 40}
    for row in regions.itertuples():
        assert coding[row.start:row.end].all() if row.label == "coding" else not genic[row.start:row.end].any(), row
    assert (regions["start"].diff().dropna() >= 50).all()  # sorted, no overlap
    out = tmp_path / "labels.bed"
    assert main(["region-labels", "--reference", str(chloroplast_fasta), "--gff", str(gff), "--length", "50",
                 "--per-class", "40", "--seed", "3", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0].split("\t") == [str(v) for v in regions.iloc[0]]
    assert main(["region-labels", "--reference", str(chloroplast_fasta), "--gff", str(gff),
                 "--per-class", "100000", "--out", str(tmp_path / "x.bed")]) == 2


@pytest.mark.slow
def test_both_evaluate_rules_pass_the_configured_mask_passes(tmp_path):
    """config evaluate.mask_passes reaches `genoformer evaluate` in the reference's and the samples' rules (with
    max_windows null, no --max-windows); 0 passes stops the run in one line naming the key."""
    workdir = copy_workflow(tmp_path)
    (workdir / "passes.yaml").write_text("evaluate: {max_windows: null, mask_passes: 3}\n")
    plan = snakemake(workdir, "--dry-run", "--printshellcmds", "--configfile", "passes.yaml", "--",
                     "runs/cdiph/eval.json", "results/eval/NA12878.json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    commands = [line for line in plan.stdout.splitlines() if "genoformer evaluate" in line]
    assert len(commands) == 2 and all(" --mask-passes 3 --out " in line for line in commands), commands
    assert not any("--max-windows" in line for line in commands)
    (workdir / "passes.yaml").write_text("evaluate: {mask_passes: 0}\n")
    assert "config: key evaluate.mask_passes: 0 is less than the minimum of 1" in _one_line_error(
        _dag_error(workdir, "--configfile", "passes.yaml"))


def test_the_slurm_profile_gives_every_job_that_runs_the_model_a_gpu():
    """Every rule that reads the pretrained weights and runs on the cluster (report figures run locally) asks the
    Slurm profile for a GPU: a sample's held-out evaluation is the same forward pass as the reference's."""
    rules = {}
    for path in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), flags=re.M):
            rules[name] = body
    uses_model = {name for name, body in rules.items() if "run_files(" in body and not name.startswith("report_")}
    assert {"evaluate", "evaluate_sample", "score_variants", "classify_variants", "classify_regions"} <= uses_model
    profile = yaml.safe_load((ROOT / "config/profiles/slurm/config.yaml").read_text())
    without_gpu = sorted(name for name in uses_model if profile["set-resources"].get(name, {}).get("gpu", 0) < 1)
    assert without_gpu == [], without_gpu
    assert uses_model == {name for name, res in profile["set-resources"].items() if "gpu" in res}


MODEL_RULES = ("pretrain", "evaluate", "evaluate_sample", "score_variants", "classify_variants", "classify_regions")


def planned_commands(dry_run_output: str) -> list[tuple[str, str, str]]:
    """(rule, resources line, shell command) of every job of a `--dry-run --printshellcmds` output."""
    jobs = []
    for block in re.split(r"^\[[^\]\n]+\]$", dry_run_output, flags=re.M)[1:]:
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        command = block.split("Shell command:", 1)[1].split("Job stats:", 1)[0] if "Shell command:" in block else ""
        jobs.append((rule.group(1), resources.group(1) if resources else "", " ".join(command.split())))
    return jobs


@pytest.mark.slow
def test_every_job_that_runs_the_model_claims_its_gpus_and_runs_where_they_say(tmp_path):
    """The bundled config (every stage's gpus 0): each model job holds gpu=0 and is told --device cpu (pretrain:
    run.device=cpu), so on a machine with a GPU it does not use one it did not claim. With the stages' gpus 1, and
    a profile-style --set-resources giving pretrain a GPU and taking classify_regions' away, each job's device
    follows the gpu it holds. The variant task's label check, passing, is kept in .snakemake/genoformer/."""
    workdir = copy_workflow(tmp_path)
    (workdir / "task.yaml").write_text(
        "variant_tasks: {mine: {reference: human_q, vcf: resources/human_chr22_q/q.vcf.gz, label_field: TYPE, "
        "positive: [snp], negative: [del]}}\n")
    plan = snakemake(workdir, "--dry-run", "--printshellcmds", "--configfile", "task.yaml")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    jobs = [job for job in planned_commands(plan.stdout) if job[0] in MODEL_RULES]
    assert {rule for rule, _, _ in jobs} == set(MODEL_RULES)
    assert sum(rule == "classify_variants" for rule, _, _ in jobs) == 2  # cdiph_coding and mine
    for rule, resources, command in jobs:
        assert "gpu=0" in resources.split(", "), (rule, resources)
        device = "--set run.device=cpu" if rule == "pretrain" else "--device cpu"
        assert device in command and "auto" not in command, (rule, command)
    (entry,) = (workdir / ".snakemake/genoformer/variant-labels").iterdir()
    assert json.loads(entry.read_text())["result"] == {"del": 2, "snp": 14}

    (workdir / "gpus.yaml").write_text("".join(f"{stage}: {{gpus: 1}}\n" for stage in (
        "evaluate", "score_variants", "classify_variants", "classify_regions")))
    plan = snakemake(workdir, "--dry-run", "--printshellcmds", "--configfile", "gpus.yaml",
                     "--set-resources", "pretrain:gpu=1", "classify_regions:gpu=0")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    for rule, resources, command in planned_commands(plan.stdout):
        if rule in MODEL_RULES:
            gpus = 0 if rule == "classify_regions" else 1
            device = {0: "cpu", 1: "auto"}[gpus]
            assert f"gpu={gpus}" in resources.split(", "), (rule, resources)
            assert (f"--set run.device={device}" if rule == "pretrain" else f"--device {device}") in command, \
                (rule, command)


def test_every_schema_key_with_a_default_is_in_the_bundled_config():
    """config/config.yaml shows every setting a user may change (with its comment), except the optional task
    tables, which it gives as commented examples: a key with a schema default missing from it goes unnoticed."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    missing = [f"{section}.{key}" if key else section
               for section, spec in schema["properties"].items()
               for key, sub in [("", spec), *spec.get("properties", {}).items()]
               if "default" in sub and (section not in config or (key and key not in config[section]))]
    assert missing == ["region_tasks", "variant_tasks"]


@pytest.mark.parametrize("config, message", [
    ({"pretrain": {"set": {"run.device": "cuda"}}}, "config key pretrain.set: run.device is set by the workflow"),
    ({"score_variants": {"extra": "--batch-size 8 --device=cuda:1"}}, "config key score_variants.extra: --device "
     "is set by the workflow (auto when the job gets a GPU: config score_variants.gpus or the profile's gpu; else "
     "cpu)"),
    # argparse takes any unique prefix of an option: the job would run on cuda:1 after the workflow's --device cpu
    ({"classify_variants": {"extra": "--dev cuda:1"}}, "config key classify_variants.extra: --device is set"),
    ({"score_variants": {"extra": "--de=cuda"}}, "config key score_variants.extra: --device is set"),
    ({"classify_regions": {"extra": "--label-column 'name"}},
     "config key classify_regions.extra: No closing quotation"),
])
def test_a_config_that_picks_its_own_device_is_refused(config, message):
    """The device follows each job's gpu resource; a stage's extra or pretrain.set choosing one is refused."""
    bundled = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for key, value in config.items():
        bundled[key] = {**bundled[key], **value}
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        workflow_checks.check_devices(bundled)
    workflow_checks.check_devices(yaml.safe_load((ROOT / "config/config.yaml").read_text()))


def test_pretrain_gpus_launch_torchrun_and_a_profile_cannot_silently_cap_them(tmp_path):
    """config pretrain.gpus 4: with the machine's GPUs raised to 4 the job runs torchrun with 4 processes; with
    the local profile's 1 GPU Snakemake would cap the job at 1, so the workflow stops and says where to raise it."""
    workdir = copy_workflow(tmp_path)
    four = workdir / "four_gpus.yaml"
    four.write_text("pretrain: {gpus: 4}\n")
    base = ["--dry-run", "--printshellcmds", "--profile", "config/profiles/local", "--configfile", four.name,
            "--", "runs/cdiph/model.safetensors"]
    raised = snakemake(workdir, "--resources", "gpu=4", *base)
    assert raised.returncode == 0, raised.stdout + raised.stderr
    assert "torchrun --standalone --nproc_per_node 4 --no-python genoformer pretrain" in raised.stdout
    assert "--set run.device=auto" in raised.stdout
    capped = snakemake(workdir, *base)
    assert capped.returncode != 0
    assert "config pretrain.gpus is 4 but the job gets 1 GPU(s)" in capped.stdout + capped.stderr


def test_a_number_r_label_field_is_read_per_alt_before_any_job(allele_type_vcf):
    """ALLELE_TYPE (Number=R) on the real freebayes calls: each ALT's own entry is its label, as classify-variants
    reads it (the REF's 'ref' is no class value), and a record with too few values stops the run in one line."""
    task = {"vcf": allele_type_vcf(), "label_field": "ALLELE_TYPE", "positive": ["snp"], "negative": ["del", "ins"]}
    workflow_checks.check_variant_labels(task, "config key variant_tasks.mine")
    with pytest.raises(ConfigError, match=r"no variant has the negative label value\(s\) ref in INFO field "
                                          r"'ALLELE_TYPE' \(its values: del, ins, snp\)"):
        workflow_checks.check_variant_labels({**task, "negative": ["ref"]}, "config key variant_tasks.mine")
    vcf = allele_type_vcf(("ref", "snp"))
    with pytest.raises(InputError) as err:
        workflow_checks.check_variant_labels({**task, "vcf": vcf}, "config key variant_tasks.mine")
    assert str(err.value) == f"config key variant_tasks.mine.vcf: {vcf} record 1 (q:186): INFO ALLELE_TYPE has 2 " \
        "value(s) for 2 ALT(s); it is declared Number=R (one value for REF and one per ALT), so 3"
