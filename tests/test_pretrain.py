"""Pretraining: config and overrides, schedule, bit-exact resume after SIGKILL, CLI help and bad input."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from genoformer.atomic import claim
from genoformer.cli import build_parser, main
from genoformer.errors import ConfigError
from genoformer.train.checkpoint import LATEST_FILES, RUN_MARKER, step_dirs
from genoformer.train.config import PretrainConfig, load_config
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.train.distributed import Distributed
from genoformer.train.loop import MicroBatch, accumulate_gradients, learning_rate
from genoformer.train.masking import IGNORE_INDEX, MaskedBatch
from host_syncs import HostSyncCounter

TINY = {
    "model": {"dim": 32, "depth": 2, "heads": 2, "bucket_size": 32, "n_hashes": 1, "max_seq_len": 512,
              "dropout": 0.1},
    "optim": {"lr": 3e-3, "warmup_steps": 3},
    "data": {"batch_size": 2, "span_bases": 2},
    "run": {"steps": 8, "log_every": 1, "eval_every": 4, "eval_windows": 4, "checkpoint_every": 4,
            "keep_checkpoints": 2},
}


@pytest.fixture(scope="module")
def chloroplast_tokens(tmp_path_factory, chloroplast_fasta):
    """The A. thaliana chloroplast as k=1 tokens, 256-token windows, block split."""
    out = tmp_path_factory.mktemp("tokens") / "cp_k1"
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "1", "--window", "256",
                 "--block", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def one_line_error(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"genoformer {command}: error: ")
    return err[0]


# ---------------------------------------------------------------------------------------------- config


def test_config_file_and_overrides(tiny_config):
    config = load_config(tiny_config, ["optim.lr=1e-4", "optim.betas=[0.8, 0.9]", "data.window=128",
                                       "model.depth=3", "run.device=cpu"])
    assert config.optim.lr == 1e-4 and isinstance(config.optim.lr, float)
    assert config.optim.betas == [0.8, 0.9]
    assert config.data.window == 128 and config.model["depth"] == 3 and config.model["dim"] == 32
    assert config.run.steps == 8 and config.optim.accumulation == 1  # file value and default
    assert PretrainConfig.from_dict(config.to_dict(), "round trip") == config


@pytest.mark.parametrize("override,named", [("optim.lrr=1", "optim.lrr"), ("model.dims=8", "model.dims"),
                                            ("training.steps=3", "training.steps")])
def test_unknown_override_key_is_named(tiny_config, override, named):
    with pytest.raises(ConfigError, match=f"unknown config key '{named}'"):
        load_config(tiny_config, [override])


def test_bad_config_file_values_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.001\n  warmup: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'optim.warmup'"):
        load_config(path)
    path.write_text("run:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: run.steps must be int"):
        load_config(path)
    path.write_text("data:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"data.batch_size must be > 0"):
        load_config(path)
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["steps=3"])


@pytest.mark.parametrize("text, named", [
    ("run:\n  seed: -1\n", "run.seed must be in [0, 2**64), got -1"),
    ("run:\n  seed: 18446744073709551616\n", "run.seed must be in [0, 2**64), got 18446744073709551616"),
    ("data:\n  mask_ratio: 1.5\n", "data.mask_ratio must be in (0, 1), got 1.5"),
    ("data:\n  span_bases: 0\n", "data.span_bases must be >= 1, got 0"),
    ("data:\n  p_mask: 0.95\n  p_random: 0.1\n", "data.p_mask + data.p_random must be within [0, 1]"),
    ("model:\n  dim: -4\n", "model config: 'dim' must be at least 1, got -4"),
    ("model:\n  dropout: 1.5\n", "model config: 'dropout' must be in [0, 1), got 1.5"),
])
def test_out_of_range_values_name_the_config_file_and_key(tmp_path, text, named):
    """Masking and model values are checked where the config is read, so the error names its file (not only the
    key, found later while the data loads), and a seed torch or numpy refuses is a config error, not a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and named in message, message


@pytest.mark.parametrize("name", ["default", "gpu"])
def test_bundled_configs_load(name):
    config = load_config(Path(__file__).resolve().parents[1] / "config" / "pretrain" / f"{name}.yaml")
    assert config.data.window <= config.model["max_seq_len"]
    assert config.model["reversible"] is True


def test_learning_rate_warms_up_then_follows_cosine():
    config = load_config(None, ["optim.lr=1.0", "optim.warmup_steps=10", "optim.min_lr_ratio=0.1",
                                "run.steps=110"])
    rates = [learning_rate(step, config) for step in range(110)]
    assert rates[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert rates[10] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.1)
    for step in range(10, 110):  # reference: cosine from 1.0 down to 0.1 over steps 10..109
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 99))
        assert rates[step] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- CLI


def test_pretrain_help_documents_every_option():
    parser = build_parser()
    pretrain = parser._subparsers._group_actions[0].choices["pretrain"]
    for action in pretrain._actions:
        assert action.help, action.dest
    options = {opt for action in pretrain._actions for opt in action.option_strings}
    assert {"--data", "--config", "--out", "--resume", "--set"} <= options


def test_short_run_writes_run_directory_and_metrics(chloroplast_tokens, tiny_config, tmp_path, caplog):
    run = tmp_path / "run"
    caplog.set_level("INFO", logger="genoformer.train.loop")
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(run), "--set", "run.steps=4", "--set", "run.checkpoint_every=2"]) == 0
    assert {"config.json", "model.safetensors", "vocab.json", "trainer_state.json", "metrics.jsonl"} <= \
        {p.name for p in run.iterdir()}
    assert [p.name for p in step_dirs(run)] == ["step-2", "step-4"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(records[0])
    assert "val_bits_per_base" in records[3] and "val_bits_per_base" not in records[0]
    assert 0 < records[3]["val_bits_per_base"] < 4
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["data"]["k"] == 1 and state["config"]["run"]["steps"] == 4
    # how much of the train split the run reads: a fixed step count is a fraction of an epoch on a big genome
    windows = int(re.search(r": (\d+) train windows of", caplog.text).group(1))
    assert f"4 steps of 2 windows ({8 / windows:.2f} epochs)" in caplog.text


def run_counting_host_syncs(data, config, out, steps: int, device: str):
    """Pretrain ``steps`` steps that log, evaluate and checkpoint once (at the end); the host waits counted."""
    command = ["-q", "pretrain", "--data", str(data), "--config", str(config), "--out", str(out),
               "--set", f"run.steps={steps}", "--set", f"run.log_every={steps}", "--set", "run.eval_every=0",
               "--set", f"run.checkpoint_every={steps}", "--set", f"run.device={device}"]
    if device == "cpu":
        with HostSyncCounter() as syncs:
            assert main(command) == 0
        return syncs.counts
    torch._dynamo.reset()  # each run compiles afresh (new model objects would otherwise meet dynamo's cache limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            assert main(command) == 0
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return Counter(str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")])])
def test_training_steps_do_not_wait_for_the_device(chloroplast_tokens, tiny_config, tmp_path, device):
    """Steps between log lines never make the host wait for the device (so a GPU is never left idle while
    the host launches the next step): 8 steps wait exactly as often as 4 when both log once. A first run
    takes what only happens once per process (compilation, its autotuning) out of the comparison."""
    run_counting_host_syncs(chloroplast_tokens, tiny_config, tmp_path / "warm", 2, device)
    four = run_counting_host_syncs(chloroplast_tokens, tiny_config, tmp_path / "four", 4, device)
    eight = run_counting_host_syncs(chloroplast_tokens, tiny_config, tmp_path / "eight", 8, device)
    assert sum(four.values()) > 0  # the logging step reads the loss: the counter sees waits
    assert eight == four, f"4 more steps added host waits: {eight - four}"


def test_gradients_do_not_depend_on_how_a_step_is_split_into_micro_batches():
    """Three windows, one of them short and padded, with their masks fixed: one micro-batch of three, or three of
    one, or two and one, give the same gradients: those of the mean cross-entropy over all masked tokens (a
    mean per micro-batch would weigh the short window's few masked tokens many times more)."""
    config = ReformerConfig(vocab_size=9, dim=16, depth=2, heads=2, n_hashes=2, bucket_size=8, max_seq_len=128)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 9, (3, 96), generator=generator)
    attention = torch.ones(3, 96, dtype=torch.bool)
    attention[2, 12:] = False  # 12 real tokens
    ids[~attention] = 0
    masked = (torch.rand(3, 96, generator=generator) < 0.15) & attention
    masked[2, :2] = True
    corrupted = torch.where(masked, torch.ones_like(ids), ids)  # [MASK] = 1
    labels = torch.where(masked, ids, torch.full_like(ids, IGNORE_INDEX))
    single = Distributed(rank=0, world_size=1, device=torch.device("cpu"))

    def gradients(splits):
        torch.manual_seed(0)
        model = ReformerForMaskedLM(config).double()
        micro_batches = [MicroBatch(MaskedBatch(corrupted[rows], labels[rows], masked[rows]),
                                    None if attention[rows].all() else attention[rows]) for rows in splits]
        summed, n_masked = accumulate_gradients(model, micro_batches, seed=3, dist=single, precision="fp32")
        assert int(n_masked) == int(masked.sum())
        return float(summed / n_masked), [p.grad.clone() for p in model.parameters()]

    loss, expected = gradients([[0, 1, 2]])
    torch.manual_seed(0)
    model = ReformerForMaskedLM(config).double()
    direct = F.cross_entropy(model(corrupted, attention, seed=3)[masked], ids[masked])
    assert loss == pytest.approx(direct.item(), rel=1e-12)
    for splits in ([[0], [1], [2]], [[0, 2], [1]]):
        split_loss, found = gradients(splits)
        assert split_loss == pytest.approx(loss, rel=1e-12)
        for got, want in zip(found, expected):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_a_step_without_masked_tokens_has_zero_loss_and_gradient():
    config = ReformerConfig(vocab_size=9, dim=16, depth=1, heads=2, n_hashes=1, bucket_size=8, max_seq_len=64)
    ids = torch.randint(5, 9, (2, 16), generator=torch.Generator().manual_seed(0))
    nothing = torch.zeros_like(ids, dtype=torch.bool)
    model = ReformerForMaskedLM(config)
    single = Distributed(rank=0, world_size=1, device=torch.device("cpu"))
    micro = MicroBatch(MaskedBatch(ids, torch.full_like(ids, IGNORE_INDEX), nothing), None)
    summed, n_masked = accumulate_gradients(model, [micro], seed=0, dist=single, precision="fp32")
    assert float(summed / n_masked) == 0.0
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- resume


def pretrain_command(data, config, out, *extra):
    return [sys.executable, "-m", "genoformer", "pretrain", "--data", str(data), "--config", str(config),
            "--out", str(out), *extra]


def comparable(run):
    """metrics.jsonl without the wall-clock field."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in r.items() if key != "tokens_per_s"} for r in records]


@pytest.fixture()
def one_thread():
    """Intra-op threads = 1 in this process, as in the subprocesses (OMP_NUM_THREADS=1), so float sums match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_exact(chloroplast_tokens, tmp_path, one_thread):
    config = tmp_path / "resume.yaml"
    config.write_text(yaml.safe_dump({**TINY, "run": {**TINY["run"], "steps": 16, "checkpoint_every": 2,
                                                        "eval_every": 6, "keep_checkpoints": 3}}))
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen(pretrain_command(chloroplast_tokens, config, interrupted), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(step_dirs(interrupted)) < 2 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    kept = step_dirs(interrupted)
    assert len(kept) >= 2 and kept[-1].name != "step-16", "the run finished before it could be killed"
    # damage the newest checkpoint: resuming falls back to the one before, with a warning
    weights = kept[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    resumed_from = int(kept[-2].name.split("-")[1])

    resumed = subprocess.run(pretrain_command(chloroplast_tokens, config, interrupted, "--resume"), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping checkpoint {kept[-1]}" in resumed.stderr
    assert f"resuming from {kept[-2]} (step {resumed_from})" in resumed.stderr
    assert "step/s" not in resumed.stderr  # no progress-bar frames when stderr is a file (a workflow log)

    # the uninterrupted run, in this process (one thread, like the subprocesses)
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(config),
                 "--out", str(whole)]) == 0
    expected, got = comparable(whole), comparable(interrupted)
    assert [r["step"] for r in got] == list(range(1, 17))
    assert got == expected  # every step's loss, lr, grad norm and validation bits, after the resume too
    assert (whole / "model.safetensors").read_bytes() == (interrupted / "model.safetensors").read_bytes()
    assert [p.name for p in step_dirs(interrupted)] == ["step-12", "step-14", "step-16"]


def test_rerun_of_a_finished_run_puts_its_weights_back(chloroplast_tokens, tiny_config, tmp_path):
    """What the workflow does when it reruns pretrain (a deleted output, --forcerun): snakemake has removed the
    top-level files, --resume finds the last checkpoint at the final step; the files come back from it."""
    run = tmp_path / "run"
    base = ["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(run),
            "--set", "run.steps=2"]
    assert main(base) == 0
    metrics = (run / "metrics.jsonl").read_text()
    for name in LATEST_FILES:
        (run / name).unlink()
    assert main(base + ["--resume"]) == 0
    for name in LATEST_FILES:
        assert (run / name).read_bytes() == (run / "checkpoints" / "step-2" / name).read_bytes(), name
    assert (run / "metrics.jsonl").read_text() == metrics


def test_resume_sets_aside_a_newest_checkpoint_it_cannot_read(chloroplast_tokens, tiny_config, tmp_path, caplog):
    """A newest checkpoint without its trainer state is skipped, renamed damaged-step-N, and the resumed run
    writes its own step-N in its place (before, that folder blocked every later save)."""
    run = tmp_path / "run"
    base = ["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(run),
            "--set", "run.steps=4", "--set", "run.checkpoint_every=2"]
    assert main(base) == 0
    (run / "checkpoints" / "step-4" / "trainer_state.json").unlink()
    assert main(base + ["--resume"]) == 0
    assert [p.name for p in step_dirs(run)] == ["step-2", "step-4"]
    assert (run / "checkpoints" / "step-4" / "trainer_state.json").is_file()
    assert (run / "checkpoints" / "damaged-step-4" / "model.safetensors").is_file()
    assert "set aside damaged checkpoint" in caplog.text
    assert json.loads((run / "trainer_state.json").read_text())["step"] == 4


# ---------------------------------------------------------------------------------------------- bad input


def test_unknown_config_key_exits_2_naming_it(chloroplast_tokens, tiny_config, tmp_path, capsys):
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(tmp_path / "run"), "--set", "optim.learning_rate=1e-3"]) == 2
    assert "unknown config key 'optim.learning_rate'" in one_line_error(capsys, "pretrain")


@pytest.mark.parametrize("override, named", [
    ("optim.eps=-1", "optim.eps must be > 0, got -1.0"),
    ("optim.lr=nan", "optim.lr must be > 0, got nan"),
    ("optim.lr=.inf", "optim.lr must be > 0, got inf"),
    ("optim.betas=[2,0.9]", "optim.betas must be two numbers in [0, 1), got [2.0, 0.9]"),
    ("optim.weight_decay=-5", "optim.weight_decay must be >= 0, got -5.0"),
    ("optim.grad_clip=-1", "optim.grad_clip must be >= 0 (0 or .inf: no clipping), got -1.0"),
    ("optim.grad_clip=nan", "optim.grad_clip must be >= 0 (0 or .inf: no clipping), got nan"),
    ("run.eval_every=-5", "run.eval_every must be >= 0, got -5"),
])
def test_optimizer_values_out_of_range_exit_2_naming_the_key(chloroplast_tokens, tiny_config, tmp_path, capsys,
                                                             override, named):
    """Values that AdamW refuses (or NaN, which passes a <= 0 check) are config errors, not a torch traceback."""
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(tmp_path / "run"), "--set", override]) == 2
    assert named in one_line_error(capsys, "pretrain")
    assert not (tmp_path / "run").exists()


def test_no_clipping_can_be_written_as_zero_or_infinity():
    assert load_config(None, ["optim.grad_clip=0"]).optim.grad_clip == 0
    assert load_config(None, ["optim.grad_clip=.inf"]).optim.grad_clip == float("inf")


def test_a_diverging_run_stops_with_an_error_not_nan_weights(chloroplast_tokens, tiny_config, tmp_path, capsys):
    """lr 1e6 without warmup or clipping: the gradient norm turns NaN within a few steps. The run stops with a
    one-line error instead of finishing with exit 0 and NaN weights (every downstream score NaN)."""
    out = tmp_path / "run"
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(out),
                 "--set", "optim.lr=1e6", "--set", "optim.warmup_steps=0", "--set", "optim.grad_clip=0",
                 "--set", "run.checkpoint_every=100"]) == 2
    # the progress bar shares stderr: it ends its line first, so the error is the last line, of its own
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"genoformer pretrain: error: {out}: training diverged at step "), lines
    assert sum("error:" in line for line in lines) == 1
    assert not (out / "model.safetensors").exists() and step_dirs(out) == []


def test_the_progress_bar_ends_its_line_before_an_error(chloroplast_tokens, tiny_config, tmp_path, capsys,
                                                        monkeypatch):
    """On a terminal (the bar draws only there), an error leaving the training loop is a line of its own after
    the bar's last frame, not glued to it. Captured stderr is no terminal: it is made to say it is one."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out = tmp_path / "run"
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(out),
                 "--set", "optim.lr=1e6", "--set", "optim.warmup_steps=0", "--set", "optim.grad_clip=0",
                 "--set", "run.checkpoint_every=100"]) == 2
    err = capsys.readouterr().err
    assert "step/s" in err or "s/step" in err, err  # the bar did draw
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"genoformer pretrain: error: {out}: training diverged at step "), lines


def test_a_run_diverging_between_log_steps_saves_no_nan_checkpoint(chloroplast_tokens, tiny_config, tmp_path,
                                                                   capsys):
    """checkpoint_every need not be a multiple of log_every (config/pretrain/default.yaml: 20 and 250): a
    checkpoint step between log steps checks the gradient norm too, so no checkpoint holds NaN weights (a resume
    would refuse every one: 'every checkpoint is damaged') and the run's top-level weights are not NaN."""
    out = tmp_path / "run"
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(out),
                 "--set", "optim.lr=1e6", "--set", "optim.warmup_steps=0", "--set", "optim.grad_clip=0",
                 "--set", "run.steps=12", "--set", "run.log_every=5", "--set", "run.eval_every=0",
                 "--set", "run.checkpoint_every=2", "--set", "run.keep_checkpoints=2"]) == 2
    assert "training diverged at step " in capsys.readouterr().err
    assert not (out / "model.safetensors").exists() and step_dirs(out) == []


def test_window_longer_than_model_exits_2(chloroplast_tokens, tiny_config, tmp_path, capsys):
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(tmp_path / "run"), "--set", "model.max_seq_len=128"]) == 2
    line = one_line_error(capsys, "pretrain")
    assert "windows of 256 tokens are longer than the model's max_seq_len 128" in line


def test_existing_run_needs_resume_and_same_config(chloroplast_tokens, tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(run),
            "--set", "run.steps=2"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "already holds checkpoints; pass --resume" in one_line_error(capsys, "pretrain")
    assert main(base + ["--resume", "--set", "optim.lr=0.1"]) == 2
    assert "differs from the run's in optim.lr" in one_line_error(capsys, "pretrain")
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--out", str(tmp_path / "none"),
                 "--resume"]) == 2
    assert "no checkpoint to resume from" in one_line_error(capsys, "pretrain")


def trained_then_retokenized(tmp_path, tokens, config, fasta, *, k: int, block: int) -> tuple[Path, Path]:
    """A one-step run on ``tokens`` and the same genome tokenized again with ``k`` and ``block`` (window 256):
    the run folder and the new token folder."""
    run, other = tmp_path / "run", tmp_path / f"cp_k{k}_block{block}"
    assert main(["-q", "pretrain", "--data", str(tokens), "--config", str(config), "--out", str(run),
                 "--set", "run.steps=1"]) == 0
    assert main(["-q", "tokenize", "--fasta", str(fasta), "--k", str(k), "--window", "256", "--block", str(block),
                 "--out", str(other)]) == 0
    return run, other


def test_resume_on_data_with_another_k_exits_2(chloroplast_tokens, chloroplast_fasta, tiny_config, tmp_path,
                                               capsys):
    run, other = trained_then_retokenized(tmp_path, chloroplast_tokens, tiny_config, chloroplast_fasta, k=2, block=4)
    capsys.readouterr()
    assert main(["pretrain", "--data", str(other), "--out", str(run), "--resume"]) == 2
    line = one_line_error(capsys, "pretrain")
    assert "token dataset has k=2" in line and "k=1" in line


def test_missing_data_and_config_files_exit_2(chloroplast_tokens, tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert "manifest.json: not found" in one_line_error(capsys, "pretrain")
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tmp_path / "no.yaml"),
                 "--out", str(tmp_path / "run")]) == 2
    assert "no.yaml: config file not found" in one_line_error(capsys, "pretrain")


def test_resume_on_other_data_exits_2_naming_both(chloroplast_tokens, chloroplast_fasta, sarscov2, tiny_config,
                                                  tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(run), "--set", "run.steps=1"]) == 0
    other = tmp_path / "sarscov2_k1"  # same k, stride and window: only the genome differs
    assert main(["-q", "tokenize", "--fasta", str(sarscov2 / "NC_045512.2.fasta"), "--k", "1", "--window", "256",
                 "--block", "4", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--data", str(other), "--out", str(run), "--resume"]) == 2
    line = one_line_error(capsys, "pretrain")
    assert f"{other}: --resume on another dataset than {run / 'checkpoints' / 'step-1'}" in line
    assert f"({chloroplast_tokens})" in line and "source sha256" in line
    shorter = tmp_path / "cp_k1_w128"  # the same genome in windows of 128 tokens
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "1", "--window", "128",
                 "--block", "4", "--out", str(shorter)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--data", str(shorter), "--out", str(run), "--resume"]) == 2
    line = one_line_error(capsys, "pretrain")
    assert f"{shorter}: windows of 128 tokens" in line and f"windows of 256 from {chloroplast_tokens}" in line
    assert not (run / "checkpoints" / "step-2").exists()


def test_resume_on_the_same_genome_split_otherwise_exits_2(chloroplast_tokens, chloroplast_fasta, tiny_config,
                                                         tmp_path, capsys):
    """The same genome, k and window, tokenized with longer blocks: other train and validation windows (some the
    model trained on are now held out). Resuming there would silently change the data order and leak training
    windows into the validation bits/base; it is refused, naming both datasets."""
    run, other = trained_then_retokenized(tmp_path, chloroplast_tokens, tiny_config, chloroplast_fasta, k=1, block=8)
    capsys.readouterr()
    assert main(["pretrain", "--data", str(other), "--out", str(run), "--resume", "--set", "run.steps=1"]) == 2
    line = one_line_error(capsys, "pretrain")
    assert line.startswith(f"genoformer pretrain: error: {other}: ") and str(chloroplast_tokens) in line
    assert "train or validation windows" in line and "start a new run" in line
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--out", str(run), "--resume"]) == 0


def test_a_resume_may_change_the_device_and_nothing_else(chloroplast_tokens, tiny_config, tmp_path):
    """run.device is where a run trains, not what it trains: the workflow sets it from the GPUs a job holds, so a
    run started under one profile resumes under another. On this CPU-only machine `auto` is the CPU again, so the
    resumed run ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    def run_to(out, *overrides):
        return main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out",
                     str(out), "--set", "run.steps=4", "--set", "run.checkpoint_every=2", *overrides])

    assert run_to(tmp_path / "whole", "--set", "run.device=cpu") == 0
    assert run_to(tmp_path / "resumed", "--set", "run.device=cpu") == 0
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-4")
    assert run_to(tmp_path / "resumed", "--set", "run.device=auto", "--resume") == 0
    state = json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["config"]["run"]["device"] == "auto"
    whole, resumed = (load_file(tmp_path / name / "model.safetensors") for name in ("whole", "resumed"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    assert run_to(tmp_path / "resumed", "--set", "run.device=cpu", "--set", "run.seed=1", "--resume") == 2


def test_a_finished_run_resumed_keeps_only_its_last_checkpoints(chloroplast_tokens, tiny_config, tmp_path,
                                                                 monkeypatch):
    """A run killed after its final checkpoint was written but before the older ones were pruned: the resume
    (what the workflow's rerun does) finds the run finished, and prunes to run.keep_checkpoints."""
    import genoformer.train.checkpoint as checkpoint

    publish = checkpoint.publish

    def publish_then_die(run_dir, step_dir):
        publish(run_dir, step_dir)
        if step_dir.name == "step-4":
            raise SystemExit("killed before pruning")

    base = ["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out",
            str(tmp_path / "run"), "--set", "run.steps=4", "--set", "run.checkpoint_every=2",
            "--set", "run.keep_checkpoints=1"]
    monkeypatch.setattr(checkpoint, "publish", publish_then_die)
    with pytest.raises(SystemExit, match="killed before pruning"):
        main(base)
    monkeypatch.undo()
    assert [p.name for p in step_dirs(tmp_path / "run")] == ["step-2", "step-4"]
    assert main(base + ["--resume"]) == 0
    assert [p.name for p in step_dirs(tmp_path / "run")] == ["step-4"]


def test_a_new_run_never_writes_into_a_folder_of_the_users_own(chloroplast_tokens, tiny_config, tmp_path, capsys):
    """A mistyped --out naming a folder of the user's: refused before training, nothing written there; a run's
    own folder whose top-level files snakemake deleted before a rerun (no checkpoint yet) is its own."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(mine),
                 "--set", "run.steps=2"]) == 2
    assert "mine: output folder exists and is not one this command wrote" in one_line_error(capsys, "pretrain")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # a --resume there fails (no checkpoint) without making the folder the run's
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(mine),
                 "--resume"]) == 2
    capsys.readouterr()
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out", str(mine),
                 "--set", "run.steps=2"]) == 2
    assert (mine / "notes.txt").read_text() == "x"
    run = tmp_path / "run"
    run.mkdir()
    claim(run, RUN_MARKER, ["train.log"])  # what a run killed before its first checkpoint leaves, with its log
    (run / "train.log").write_text("killed\n")
    assert main(["-q", "pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config), "--out",
                 str(run), "--set", "run.steps=2", "--set", "run.checkpoint_every=2"]) == 0
    assert (run / RUN_MARKER).is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_gpu_exits_2(chloroplast_tokens, tiny_config, tmp_path, capsys):
    assert main(["pretrain", "--data", str(chloroplast_tokens), "--config", str(tiny_config),
                 "--out", str(tmp_path / "run"), "--set", "run.device=cuda"]) == 2
    assert "device 'cuda' asked for, but torch sees no CUDA GPU" in one_line_error(capsys, "pretrain")
