"""Checkpoint I/O: optimizer state through safetensors, RNG states, pruning, falling back past a damaged one."""

import json
import logging

import pytest
import torch

from genoformer.atomic import OWNER_FILE
from genoformer.errors import InputError, MissingFileError
from genoformer.model import ReformerConfig, ReformerForMaskedLM, load_pretrained
from genoformer.tokenize.vocab import KmerVocab
from genoformer.train.checkpoint import (
    load_checkpoint,
    load_latest_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_dirs,
)

VOCAB = KmerVocab(2)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = ReformerConfig(vocab_size=VOCAB.size, dim=16, depth=2, heads=2, bucket_size=8, max_seq_len=64)
    return ReformerForMaskedLM(config)


def train_steps(model, optimizer, n, seed=1):
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(n):
        ids = torch.randint(5, VOCAB.size, (2, 32), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(ids, seed=step).flatten(0, 1), ids.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_optimizer_state_round_trips_through_tensors_and_json():
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    train_steps(model, optimizer, 3)
    tensors, metadata = optimizer_to_tensors(optimizer.state_dict())
    assert all(isinstance(value, str) for value in metadata.values())
    assert all(isinstance(value, torch.Tensor) for value in tensors.values())

    copy = tiny_model()
    copy.load_state_dict(model.state_dict())
    restored = torch.optim.AdamW(copy.parameters(), lr=0.5)
    restored.load_state_dict(optimizer_from_tensors(tensors, metadata))
    assert restored.param_groups[0]["lr"] == 1e-2 and restored.param_groups[0]["betas"] == [0.9, 0.95]
    # both continue identically
    assert train_steps(model, optimizer, 2, seed=9) == train_steps(copy, restored, 2, seed=9)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), copy.parameters()))


def test_rng_state_round_trip():
    state = rng_state()
    first = torch.rand(5)
    torch.rand(3)
    set_rng_state(json.loads(json.dumps(state)))
    assert torch.equal(torch.rand(5), first)


def save(run, model, optimizer, step, keep=2):
    state = {"step": step, "position": {"epoch": 0, "offset": step}, "rng": [rng_state()], "config": {},
             "data": {}, "note": "test"}
    return save_checkpoint(run, model, optimizer, VOCAB, state, keep=keep)


def test_save_keeps_last_k_and_refreshes_run_weights(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    (tmp_path / "checkpoints" / ".step-9.x1y2.tmp").mkdir(parents=True)  # left by a run killed while saving
    for step in (1, 2, 3):
        train_steps(model, optimizer, 1, seed=step)
        save(tmp_path, model, optimizer, step)
    assert [p.name for p in step_dirs(tmp_path)] == ["step-2", "step-3"]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "step-3").iterdir()) == [
        OWNER_FILE, "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "vocab.json"]
    latest = load_pretrained(tmp_path, ReformerForMaskedLM)
    for (name, a), b in zip(model.state_dict().items(), latest.state_dict().values()):
        assert torch.equal(a, b), name
    assert json.loads((tmp_path / "vocab.json").read_text()) == VOCAB.to_json()

    loaded, optimizer_state, trainer_state = load_checkpoint(tmp_path / "checkpoints" / "step-3")
    assert trainer_state["step"] == 3 and trainer_state["note"] == "test"
    assert torch.equal(optimizer_state["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    # no leftover temporary folders
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path, caplog):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train_steps(model, optimizer, 1)
    save(tmp_path, model, optimizer, 5)
    good = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    train_steps(model, optimizer, 1)
    save(tmp_path, model, optimizer, 10)
    weights = tmp_path / "checkpoints" / "step-10" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with caplog.at_level(logging.WARNING):
        step_dir, loaded, _, state = load_latest_checkpoint(tmp_path)
    assert step_dir.name == "step-5" and state["step"] == 5
    assert "step-10" in caplog.text and "skipping checkpoint" in caplog.text
    assert all(torch.equal(good[name], tensor) for name, tensor in loaded.state_dict().items())

    (tmp_path / "checkpoints" / "step-5" / "optimizer.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="every checkpoint is damaged"):
        load_latest_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["vocab.json missing", "vocab.json cut", "trainer state without rng"])
def test_a_checkpoint_missing_its_vocabulary_or_state_keys_is_damaged(tmp_path, damage):
    """Every file and trainer-state entry a resume needs is checked on load: a checkpoint without them is skipped
    (falling back to the one before), not accepted and then failing at its use with a KeyError traceback or a
    missing-file error."""
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train_steps(model, optimizer, 1)
    save(tmp_path, model, optimizer, 5)
    train_steps(model, optimizer, 1)
    newest = save(tmp_path, model, optimizer, 10)
    if damage == "vocab.json missing":
        (newest / "vocab.json").unlink()
    elif damage == "vocab.json cut":
        (newest / "vocab.json").write_text('{"k": 2,')
    else:
        state = json.loads((newest / "trainer_state.json").read_text())
        del state["rng"]
        (newest / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(InputError, match="step-10"):
        load_checkpoint(newest)
    step_dir, _, _, state = load_latest_checkpoint(tmp_path)
    assert step_dir.name == "step-5" and state["step"] == 5


def test_no_checkpoint_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="no checkpoint to resume"):
        load_latest_checkpoint(tmp_path)


def test_damaged_trainer_state_is_an_input_error(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    step_dir = save(tmp_path, model, optimizer, 1)
    (step_dir / "trainer_state.json").write_text('{"step": 1,')
    with pytest.raises(InputError, match="step-1"):
        load_checkpoint(step_dir)
