"""The workflow through a real Slurm: tokenize + pretrain (asking for a GPU) submitted with the Slurm executor.

Needs the one-node cluster of tests/slurm/start-slurm.sh (.ci/run starts it; this test starts it itself when
Slurm is installed but not running, and then stops it again). Checks that each job went through Slurm
(squeue keeps finished jobs, slurmctld logged their allocation) and that the pretrain job got its GPU GRES; and
that a pretrain job cancelled with scancel fails readably and the same command resumes it from its checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_workflow import ROOT, VENV_BIN, copy_workflow, snakemake, tiny_config

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),
    pytest.mark.skipif(shutil.which("sinfo") is None,
                       reason="Slurm is not installed (sinfo not found); tests/slurm/start-slurm.sh installs it"),
]

SLURM_DIR = ROOT / "tests" / "slurm"
CONTROLLER_LOG = Path("/var/log/slurm/slurmctld.log")
# the profile, fitted to the one-node test cluster (2 cores, a few GB; the profile's real-genome sizes don't fit;
# no accounting: the plugin submits without an account); set-resources given here replaces the profile's, so
# pretrain's gpu is given again
SMALL_CLUSTER = (
    "--profile", "config/profiles/slurm", "--slurm-init-seconds-before-status-checks", "2",
    "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=10", "cpus_per_task=1",
    "--set-resources", "pretrain:gpu=1", "pretrain:mem_mb=2000", "pretrain:cpus_per_task=2",
    "--set-threads", "pretrain=2",
    "--jobs", "2",
)


def controller_up() -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return "UP" in ping.stdout


@pytest.fixture(scope="module")
def cluster():
    """A running one-node Slurm with one (fake) GPU; started here, and stopped after, if it was not running."""
    started = False
    if not controller_up():
        subprocess.run(["bash", str(SLURM_DIR / "start-slurm.sh")], check=True, capture_output=True, text=True)
        started = True
    yield
    if started:
        subprocess.run(["bash", str(SLURM_DIR / "stop-slurm.sh")], check=False, capture_output=True)


def test_tokenize_and_pretrain_run_as_slurm_jobs_with_a_gpu(tmp_path, cluster):
    workdir = copy_workflow(tmp_path)
    override = tiny_config(workdir, reference="human_q")  # the 12 kbp genome keeps it quick
    target = "runs/human_q/model.safetensors"
    log_offset = CONTROLLER_LOG.stat().st_size if CONTROLLER_LOG.exists() else 0
    started = time.monotonic()
    result = snakemake(workdir, target, "--configfile", override, *SMALL_CLUSTER, timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"slurm run: {elapsed:.0f} s")
    assert (workdir / target).stat().st_size > 0

    # the pretrain job ran inside a Slurm allocation with the GPU mapped
    log = (workdir / "logs/pretrain/human_q.log").read_text()
    match = re.search(r"CUDA_VISIBLE_DEVICES=(\S*) SLURM_JOB_ID=(\d+)", log)
    assert match, log[:2000]
    assert match.group(1) == "0"
    pretrain_job = match.group(2)

    # both jobs are known to Slurm: squeue keeps finished jobs (MinJobAge), the comment names the rule
    listing = subprocess.run(["squeue", "--states=all", "-h", "-O", "JobID:12,State:14,tres-per-job:24,Comment:80"],
                             capture_output=True, text=True, check=True).stdout
    jobs = {fields[0]: fields[1:] for fields in (line.split() for line in listing.splitlines())}
    assert pretrain_job in jobs, listing
    assert jobs[pretrain_job][0] == "COMPLETED"
    assert "gpu:1" in jobs[pretrain_job][1]
    assert jobs[pretrain_job][2].startswith("rule_pretrain")
    tokenize_jobs = [job for job, fields in jobs.items() if fields[-1].startswith("rule_tokenize_reference")
                     and fields[0] == "COMPLETED"]
    assert tokenize_jobs, listing

    # and the controller allocated them and saw them exit 0 (only its log lines written during this run)
    with open(CONTROLLER_LOG, errors="replace") as handle:
        handle.seek(log_offset)
        controller = handle.read()
    for job in (pretrain_job, tokenize_jobs[-1]):
        # the main scheduler logs "sched: Allocate JobId=N", the backfill scheduler "_start_job: Started JobId=N"
        assert re.search(rf"(sched: Allocate JobId={job} NodeList=|Started JobId={job} in )", controller), \
            controller[-2000:]
        assert f"_job_complete: JobId={job} WEXITSTATUS 0" in controller


def test_a_cancelled_pretrain_job_fails_readably_and_the_same_command_resumes_it(tmp_path, cluster):
    """scancel of the pretrain job after its first checkpoint: snakemake names the job and its Slurm state and
    exits; the same command again (the profile sets --rerun-incomplete) resumes from the checkpoint."""
    workdir = copy_workflow(tmp_path)
    # 800 steps (about 20 ms each here): the job is still running when scancel comes, seconds after step 10
    override = tiny_config(workdir, reference="human_q", steps=800, checkpoint_every=10, eval_every=400)
    target = "runs/human_q/model.safetensors"
    command = [str(VENV_BIN / "snakemake"), target, "--configfile", override, *SMALL_CLUSTER]
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with open(tmp_path / "first-run.txt", "w") as out:
        run = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    log, weights = workdir / "logs/pretrain/human_q.log", workdir / target  # weights: refreshed per checkpoint
    job = None
    try:
        deadline = time.monotonic() + 180
        while not (job and weights.exists()) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
            found = re.search(r"SLURM_JOB_ID=(\d+)", log.read_text()) if log.exists() else None
            job = found and found.group(1)
        assert job and weights.exists() and run.poll() is None, "no checkpoint before the run ended"
        subprocess.run(["scancel", job], check=True)
        run.wait(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    output = (tmp_path / "first-run.txt").read_text()
    assert run.returncode != 0, output[-3000:]
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in output, output[-3000:]

    result = snakemake(workdir, *command[1:], timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumed = log.read_text()
    assert re.search(r"SLURM_JOB_ID=(?!" + job + r"\b)\d+", resumed), resumed[:500]  # a new Slurm job
    assert re.search(r"resuming from \S+step-\d+", resumed), resumed[-2000:]
    metrics = (workdir / "runs/human_q/metrics.jsonl").read_text()
    assert [json.loads(line)["step"] for line in metrics.splitlines()] == list(range(1, 801))  # none twice
