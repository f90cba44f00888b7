"""DDP: two gloo processes under torchrun (reversible stack) match one process with the same global batch."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from genoformer.cli import main

CONFIG = {
    "model": {"dim": 32, "depth": 2, "heads": 2, "bucket_size": 32, "n_hashes": 2, "max_seq_len": 256,
              "reversible": True},
    "optim": {"lr": 3e-3, "warmup_steps": 1},
    "data": {"batch_size": 2, "span_bases": 2},
    "run": {"steps": 3, "log_every": 1, "eval_windows": 2, "checkpoint_every": 3},
}


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_accumulation(tmp_path, chloroplast_fasta, capsys):
    data = tmp_path / "tokens"
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "2", "--window", "256",
                 "--block", "4", "--out", str(data)]) == 0
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    # 2 processes x 2 micro-batches of 2 windows  ==  1 process x 4 micro-batches of 2 windows
    ddp_run, single_run = tmp_path / "ddp", tmp_path / "single"
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "genoformer",
         "pretrain", "--data", str(data), "--config", str(config), "--out", str(ddp_run),
         "--set", "optim.accumulation=2"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "Expected to mark a variable ready only once" not in ddp.stderr
    assert main(["-q", "pretrain", "--data", str(data), "--config", str(config), "--out", str(single_run),
                 "--set", "optim.accumulation=4"]) == 0

    def records(run):
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    got, expected = records(ddp_run), records(single_run)
    assert [r["step"] for r in got] == [1, 2, 3]  # rank 0 alone writes: one line per step
    for a, b in zip(got, expected):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert got[-1]["val_bits_per_base"] == pytest.approx(expected[-1]["val_bits_per_base"], rel=1e-4)
    ddp_weights, single_weights = load_file(ddp_run / "model.safetensors"), load_file(single_run / "model.safetensors")
    for name, tensor in single_weights.items():
        assert torch.allclose(ddp_weights[name], tensor, atol=1e-5), name
    assert json.loads((ddp_run / "trainer_state.json").read_text())["world_size"] == 2
    # one process cannot resume what two trained: its batches would differ
    capsys.readouterr()
    assert main(["-q", "pretrain", "--data", str(data), "--config", str(config), "--out", str(ddp_run),
                 "--set", "optim.accumulation=2", "--resume"]) == 2
    assert "trained by 2 process(es), resumed by 1" in capsys.readouterr().err


def torchrun(data, config, out, *extra):
    """``genoformer pretrain`` under torchrun with two gloo processes, one intra-op thread each."""
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "genoformer",
         "pretrain", "--data", str(data), "--config", str(config), "--out", str(out), *extra],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_processes_with_dropout_resume_bit_exactly(tmp_path, chloroplast_fasta):
    """With dropout each process draws from a stream of its own, saved per process in the checkpoint: a 2-process
    run resumed from step 2 ends with the same weights as the run that was never stopped (restoring rank 0's
    stream in both processes, as before, gave rank 1 other dropout masks)."""
    data = tmp_path / "tokens"
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "2", "--window", "256",
                 "--block", "4", "--out", str(data)]) == 0
    config = tmp_path / "dropout.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "model": {**CONFIG["model"], "dropout": 0.2},
                                      "run": {**CONFIG["run"], "steps": 4, "checkpoint_every": 2}}))
    run = tmp_path / "run"
    torchrun(data, config, run)
    whole = load_file(run / "model.safetensors")
    state = json.loads((run / "trainer_state.json").read_text())
    assert len(state["rng"]) == 2 and state["rng"][0]["torch"] != state["rng"][1]["torch"]
    shutil.rmtree(run / "checkpoints" / "step-4")
    resumed = torchrun(data, config, run, "--resume")
    assert "resuming from" in resumed.stderr and "(step 2)" in resumed.stderr
    for name, tensor in load_file(run / "model.safetensors").items():
        assert torch.equal(tensor, whole[name]), name
