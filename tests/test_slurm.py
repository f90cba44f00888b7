"""The workflow through a real Slurm: tokenize + pretrain (asking for a GPU) submitted with the Slurm executor.

Needs the one-node cluster of tests/slurm/start-slurm.sh (.ci/run starts it; this test starts it itself when
Slurm is installed but not running, and then stops it again). Checks that each job went through Slurm
(squeue keeps finished jobs, slurmctld logged their allocation) and that the pretrain job got its GPU GRES.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_workflow import ROOT, copy_workflow, snakemake, tiny_config

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),
    pytest.mark.skipif(shutil.which("sinfo") is None,
                       reason="Slurm is not installed (sinfo not found); tests/slurm/start-slurm.sh installs it"),
]

SLURM_DIR = ROOT / "tests" / "slurm"
CONTROLLER_LOG = Path("/var/log/slurm/slurmctld.log")


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
    result = snakemake(
        workdir, target,
        "--profile", "config/profiles/slurm", "--configfile", override,
        # the one-node test cluster: no accounting, 2 cores, a few GB; the profile's real-genome sizes don't fit
        "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "2",
        "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=10", "cpus_per_task=1",
        "--set-resources", "pretrain:gpu=1", "pretrain:mem_mb=2000", "pretrain:cpus_per_task=2",
        "--set-threads", "pretrain=2",
        "--jobs", "2",
        timeout=300,
    )
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
