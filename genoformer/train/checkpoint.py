"""Training checkpoints: safetensors + JSON, written atomically, the last few kept, corrupt ones skipped.

Layout of a run directory::

    RUN/config.json, model.safetensors, vocab.json     latest weights (a save_pretrained directory)
    RUN/trainer_state.json                             and their trainer state (k, stride, masking, config)
    RUN/checkpoints/step-<N>/config.json, model.safetensors, vocab.json
                            optimizer.safetensors      AdamW state as tensors; the rest as JSON metadata
                            trainer_state.json         step, data position, RNG states, config

Each ``step-<N>`` folder appears only once complete (``genoformer.atomic.atomic_dir``), so a run killed while
saving leaves the previous checkpoints intact. Nothing is pickled: optimizer tensors are flattened to
``state.<param index>.<name>`` keys and the non-tensor parts (param groups, scalar state) go to the safetensors
metadata as JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from genoformer.atomic import atomic_path, atomic_dir, write_json
from genoformer.errors import GenoformerError, InputError, MissingFileError
from genoformer.model import ReformerForMaskedLM, load_pretrained, save_pretrained
from genoformer.tokenize.vocab import KmerVocab
from genoformer.train.steps import CHECKPOINTS, newest_trainer_state, step_dirs, step_number

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LATEST_FILES = ("config.json", "model.safetensors", "vocab.json", "trainer_state.json")  # copied to RUN/
RUN_MARKER = "trainer_state.json"  # a run folder, and each checkpoint folder, holds it
TRAINER_STATE_KEYS = ("step", "position", "rng", "config", "data")  # what a resume reads from trainer_state.json
# What a damaged checkpoint raises while it is read back (besides genoformer's own errors).
DAMAGED = (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError)


def optimizer_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Flatten ``optimizer.state_dict()`` into safetensors tensors and string metadata (JSON)."""
    tensors, scalars = {}, {}
    for index, state in state_dict["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    metadata = {"param_groups": json.dumps(state_dict["param_groups"]), "scalars": json.dumps(scalars),
                "format_version": str(FORMAT_VERSION)}
    return tensors, metadata


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict:
    """Rebuild an optimizer state dict from ``optimizer_to_tensors`` output."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value.clone()
    for key, value in json.loads(metadata["scalars"]).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": json.loads(metadata["param_groups"])}


def rng_state(device: torch.device | str = "cpu") -> dict:
    """This process's torch RNG states as base64 strings: the CPU's and, when ``device`` is a GPU, that GPU's (the
    one this process trains on; each process of a multi-GPU run saves its own)."""
    encode = lambda state: base64.b64encode(state.numpy().tobytes()).decode("ascii")  # noqa: E731
    device = torch.device(device)
    cuda = [encode(torch.cuda.get_rng_state(device))] if device.type == "cuda" else []
    return {"torch": encode(torch.get_rng_state()), "cuda": cuda}


def set_rng_state(state: dict, device: torch.device | str = "cpu") -> None:
    """Restore the RNG states saved by ``rng_state`` (for the same ``device``)."""
    decode = lambda text: torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)  # noqa: E731
    torch.set_rng_state(decode(state["torch"]))
    device = torch.device(device)
    if state["cuda"] and device.type == "cuda":
        torch.cuda.set_rng_state(decode(state["cuda"][0]), device)


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    vocab: KmerVocab, trainer_state: dict, keep: int) -> Path:
    """Write ``RUN/checkpoints/step-<step>/`` atomically, refresh the run's top-level weights, keep the last
    ``keep`` checkpoints. ``model`` is the bare ReformerForMaskedLM (not a DDP wrapper)."""
    run_dir = Path(run_dir)
    final = run_dir / CHECKPOINTS / f"step-{trainer_state['step']}"
    for leftover in final.parent.glob(".step-*"):  # half-written by a killed run (this process is the only writer)
        shutil.rmtree(leftover, ignore_errors=True)
    with atomic_dir(final, marker=RUN_MARKER) as tmp:
        save_pretrained(model, tmp)
        write_json(tmp / "vocab.json", vocab.to_json())
        tensors, metadata = optimizer_to_tensors(optimizer.state_dict())
        save_file(tensors, tmp / "optimizer.safetensors", metadata=metadata)
        write_json(tmp / "trainer_state.json", {"format_version": FORMAT_VERSION, **trainer_state})
    publish(run_dir, final)
    prune(run_dir, keep)
    log.info("saved checkpoint %s", final)
    return final


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints of a run."""
    for old in step_dirs(run_dir)[:-keep]:
        shutil.rmtree(old)


def publish(run_dir: str | Path, step_dir: str | Path) -> None:
    """Make ``step_dir``'s weights, config, vocabulary and trainer state the run's top-level files (each one
    replaced atomically; trainer_state.json, which names the step, last)."""
    for name in LATEST_FILES:
        with atomic_path(Path(run_dir) / name) as tmp:
            shutil.copyfile(Path(step_dir) / name, tmp)


def set_aside_newer(run_dir: str | Path, step_dir: str | Path) -> None:
    """Rename the checkpoints newer than ``step_dir`` (the damaged ones a resume skipped) to
    ``damaged-step-<N>``, so that the resumed run can write its own ``step-<N>``."""
    for path in step_dirs(run_dir):
        if step_number(path) <= step_number(step_dir):
            continue
        target = path.with_name(f"damaged-{path.name}")
        shutil.rmtree(target, ignore_errors=True)  # set aside by an earlier resume of the same step
        path.rename(target)
        log.warning("set aside damaged checkpoint %s as %s (delete it once you no longer need it)", path, target)


def load_checkpoint(step_dir: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[ReformerForMaskedLM, dict, dict]:
    """Read one ``step-<N>`` folder: the model (on ``device``), the optimizer state dict and the trainer state.
    Raises InputError when a file is missing or damaged (also ``vocab.json``, which a resume publishes, and a
    trainer state without an entry a resume reads)."""
    step_dir = Path(step_dir)
    try:
        model = load_pretrained(step_dir, ReformerForMaskedLM).to(device)
        with safe_open(step_dir / "optimizer.safetensors", framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            optimizer_state = optimizer_from_tensors(tensors, handle.metadata())
        trainer_state = json.loads((step_dir / "trainer_state.json").read_text())
        if trainer_state.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{step_dir}/trainer_state.json: unknown format_version")
        missing = [key for key in TRAINER_STATE_KEYS if key not in trainer_state]
        if missing:
            raise InputError(f"{step_dir}/trainer_state.json: no '{missing[0]}' entry")
        if not isinstance(json.loads((step_dir / "vocab.json").read_text()), dict):  # published with the weights
            raise InputError(f"{step_dir}/vocab.json: not a vocabulary")
    except DAMAGED as err:
        raise InputError(f"{step_dir}: damaged checkpoint: {' '.join(str(err).split())}") from err
    return model, optimizer_state, trainer_state


def load_latest_checkpoint(run_dir: str | Path, device: torch.device | str = "cpu"
                           ) -> tuple[Path, ReformerForMaskedLM, dict, dict]:
    """The newest readable checkpoint of a run, falling back (with a warning) past damaged ones.
    Raises MissingFileError when the run has none, InputError when none is readable."""
    candidates = step_dirs(run_dir)
    if not candidates:
        raise MissingFileError(f"{Path(run_dir) / CHECKPOINTS}: no checkpoint to resume from")
    for step_dir in reversed(candidates):
        try:
            return (step_dir, *load_checkpoint(step_dir, device))
        except GenoformerError as err:
            log.warning("skipping checkpoint %s: %s", step_dir, err)
    raise InputError(f"{Path(run_dir) / CHECKPOINTS}: every checkpoint is damaged ({len(candidates)} tried)")


def saved_config(run_dir: str | Path) -> dict:
    """The training config stored with the newest checkpoint whose trainer_state.json reads back."""
    state = newest_trainer_state(run_dir)
    if state is None:
        raise MissingFileError(f"{Path(run_dir) / CHECKPOINTS}: no checkpoint to resume from")
    return state["config"]
