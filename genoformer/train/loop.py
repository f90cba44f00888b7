"""The masked-LM training loop: data order, masking, AdamW with warmup + cosine, checkpoints, metrics.

Determinism. Everything random is a pure function of ``run.seed`` and the step: the initial weights
(``torch.manual_seed(seed)``), the window order (``TokenDataset.epoch_order(epoch)``), each micro-batch's span
mask (a generator seeded from ``(seed, step, slot)``) and the LSH hashing seed (the step). Dropout draws from the
global RNG, seeded apart in every process (``(seed, rank)``, so processes do not drop the same units) and
checkpointed per process (its CPU and GPU states). So a run resumed from a checkpoint continues bit-exactly on
CPU, with one process or several.

Data position. Optimizer step ``s`` takes the next ``batch_size * accumulation * world_size`` windows of the
epoch's order (an epoch ends when fewer are left; the rest are skipped). Slot ``j`` of that global batch (its
``j``-th group of ``batch_size`` windows) goes to rank ``j % world_size`` as its micro-batch ``j // world_size``,
so N processes with accumulation A see the same windows and masks as one process with accumulation N*A.

Loss. Cross-entropy (nats) averaged over every masked token of the global batch, whatever micro-batch and process
it fell in: each micro-batch backpropagates its summed cross-entropy divided by the step's count of masked tokens
(summed over processes), so the gradient does not depend on how windows are split into micro-batches and
processes, nor weigh the few masked tokens of a short, padded window more than those of a full one; a step
with no masked token at all contributes zero gradient (and logs a loss of 0). ``metrics.jsonl`` gets ``step,
loss, lr, grad_norm, tokens_per_s`` every ``log_every`` steps and
``val_bits_per_base`` (see ``genoformer.train.evaluate``) on evaluation steps.

No host syncs between log lines. A step never reads a value back from the device (the loss and gradient norm
stay device tensors until a logging step; batches go up through pinned memory; padding and id checks use what
the host already knows), so on a GPU the host queues the next step while the device runs this one.
tests/test_pretrain.py counts the waits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genoformer.atomic import check_replaceable, claim, write_text
from genoformer.errors import ConfigError, MismatchError
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.tokenize.dataset import TokenDataset
from genoformer.train import distributed
from genoformer.train.checkpoint import (
    CHECKPOINTS,
    LATEST_FILES,
    RUN_MARKER,
    load_latest_checkpoint,
    prune,
    publish,
    rng_state,
    save_checkpoint,
    set_aside_newer,
    set_rng_state,
    step_dirs,
)
from genoformer.train.compiling import compile_for_training
from genoformer.train.config import WHERE_IT_RUNS, PretrainConfig, differences
from genoformer.train.evaluate import check_data_fits_model, masked_lm_scores
from genoformer.train.masking import IGNORE_INDEX, MaskedBatch, masker_for, mixed_seed, seeded_generator

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
TRAIN_LOG = "train.log"
RUN_ENTRIES = (*LATEST_FILES, CHECKPOINTS, METRICS, TRAIN_LOG)  # what a run folder holds (see atomic.claim)


def learning_rate(step: int, config: PretrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup to ``lr``, then cosine decay to
    ``min_lr_ratio * lr`` at the last step."""
    optim, total = config.optim, config.run.steps
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = (step - optim.warmup_steps) / max(1, total - 1 - optim.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return optim.lr * (optim.min_lr_ratio + (1 - optim.min_lr_ratio) * cosine)


def summed_masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy (nats) over the tokens whose label is not IGNORE_INDEX, in float32 at least."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")


@dataclass
class MicroBatch:
    """One micro-batch of a step: the masked batch and its padding mask (None when every window is full)."""

    batch: MaskedBatch
    padding: torch.Tensor | None


def accumulate_gradients(trained: torch.nn.Module, micro_batches: list[MicroBatch], seed: int,
                         dist: distributed.Distributed, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward every micro-batch of one optimizer step, the gradients adding up to those of the
    mean cross-entropy over all masked tokens of the step on all processes (see the module docstring).
    Returns this process's summed loss and the step's count of masked tokens, as device tensors (no host sync)."""
    local = torch.stack([(micro.batch.labels != IGNORE_INDEX).sum() for micro in micro_batches]).sum()
    n_masked = distributed.total(local, dist).clamp(min=1)
    scale = dist.world_size / n_masked  # DDP averages the processes' gradients: undo its division
    losses = []
    for number, micro in enumerate(micro_batches):
        sync = number == len(micro_batches) - 1 or not dist.enabled
        with (contextlib.nullcontext() if sync else trained.no_sync()):
            with distributed.autocast_for(dist.device, precision):
                # the dataset's vocabulary was checked against the model (check_data_fits_model): no id check
                logits = trained(micro.batch.input_ids, micro.padding, seed=seed, check_ids=False)
            loss = summed_masked_lm_loss(logits, micro.batch.labels)
            (loss * scale).backward()
        losses.append(loss.detach())
    return torch.stack(losses).sum(), n_masked


def optimizer_for(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (incl. the tied embedding) and none on biases and norms; on CUDA
    the fused implementation (one kernel for the whole update, as benchmarks/train_step.py measures)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optim = config.optim
    on_cuda = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW([{"params": decay, "weight_decay": optim.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, fused=on_cuda or None)


@dataclass
class DataPosition:
    """Where the next optimizer step starts reading: epoch and offset into that epoch's order."""

    epoch: int = 0
    offset: int = 0


class Batches:
    """Global batches of window indices in the seeded order (see the module docstring)."""

    def __init__(self, dataset: TokenDataset, per_step: int, position: DataPosition):
        if per_step > len(dataset):
            raise ConfigError(f"{dataset.manifest.root}: the train split has {len(dataset)} windows of "
                              f"{dataset.window} tokens, but one optimizer step needs {per_step} "
                              "(data.batch_size * optim.accumulation * processes); lower them or data.window")
        self.dataset, self.per_step, self.position = dataset, per_step, position
        self._order = dataset.epoch_order(position.epoch)

    def next_step(self) -> np.ndarray:
        """Indices of the windows of the next optimizer step; advances the position."""
        if self.position.offset + self.per_step > len(self._order):
            self.position = DataPosition(self.position.epoch + 1, 0)
            self._order = self.dataset.epoch_order(self.position.epoch)
        start = self.position.offset
        self.position = DataPosition(self.position.epoch, start + self.per_step)
        return self._order[start:start + self.per_step]


def collate(dataset: TokenDataset, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack windows into ``input_ids [B, N]`` and ``attention_mask [B, N]`` on ``device``; also returns the
    number of real (unpadded) tokens, counted on the host so that nobody waits for the device to read it."""
    items = [dataset[int(i)] for i in indices]
    input_ids = torch.stack([item["input_ids"] for item in items])
    attention_mask = torch.stack([item["attention_mask"] for item in items])
    return to_device(input_ids, device), to_device(attention_mask, device), int(attention_mask.numpy().sum())


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to ``device`` without waiting for the work queued there: on CUDA through pinned
    memory, asynchronously (a copy from pageable memory makes the host wait for the whole stream)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def pretrain(data_dir: str | Path, out: str | Path, config: PretrainConfig, *, resume: bool = False) -> Path:
    """Train a ReformerForMaskedLM on the token dataset ``data_dir``; checkpoints and metrics go to ``out``.
    With ``resume``, continue from the newest readable checkpoint of ``out`` (``config`` must equal the run's).
    Returns the run directory. Under torchrun, every process calls this (see ``genoformer.train.distributed``)."""
    data_dir, out = Path(data_dir), Path(out)
    dist = distributed.setup(config.run.device)
    file_log = None
    try:
        if not resume:  # a new run never writes into a folder of the user's own
            check_replaceable(out, RUN_MARKER)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            if not resume:
                claim(out, RUN_MARKER, RUN_ENTRIES)
            file_log = logging.FileHandler(out / TRAIN_LOG)
            file_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(file_log)
        return _train(data_dir, out, config, resume, dist)
    finally:
        if file_log is not None:
            logging.getLogger().removeHandler(file_log)
            file_log.close()
        distributed.teardown(dist)


def windows_digest(*datasets: TokenDataset) -> str:
    """sha256 of the datasets' window tables (sequence, start token, length): the windows a run reads."""
    digest = hashlib.sha256()
    for dataset in datasets:
        table = np.ascontiguousarray(dataset.windows, dtype=np.int64)
        digest.update(f"{table.shape}".encode())
        digest.update(table.tobytes())
    return digest.hexdigest()


def check_same_data(saved: dict, data_info: dict, source: str) -> None:
    """Raise MismatchError when a resumed run would train on other data than the checkpoint ``source`` was:
    another source genome (sha256 of the FASTA), another window length, or other train or validation windows
    (the same genome tokenized with other split or window options: other data order, and windows trained on
    now held out)."""
    trained_on, sha, saved_sha = saved.get("path"), data_info["source_sha256"], saved.get("source_sha256")
    if saved_sha is not None and sha != saved_sha:
        raise MismatchError(f"{data_info['path']}: --resume on another dataset than {source} was trained on "
                            f"({trained_on}): source sha256 {str(sha)[:12]}..., not {saved_sha[:12]}...; resume "
                            f"with --data {trained_on}, or start a new run")
    if saved.get("window", data_info["window"]) != data_info["window"]:
        raise MismatchError(f"{data_info['path']}: windows of {data_info['window']} tokens, but {source} was "
                            f"trained on windows of {saved['window']} from {trained_on}")
    saved_windows = saved.get("windows_sha256")  # absent in checkpoints of earlier versions
    if saved_windows is not None and saved_windows != data_info["windows_sha256"]:
        raise MismatchError(f"{data_info['path']}: other train or validation windows than {source} was trained on "
                            f"({trained_on}), from the same genome (tokenized with other --block, --window-stride, "
                            "--max-n-fraction or split options?): its weights may have read sequence now held out; "
                            "start a new run (another --out, or delete the run folder first)")


def _train(data_dir: Path, out: Path, config: PretrainConfig, resume: bool, dist: distributed.Distributed) -> Path:
    run, data = config.run, config.data
    train_set = TokenDataset(data_dir, "train", window=data.window, seed=run.seed, window_stride=data.window_stride)
    # held-out windows side by side, whatever the training stride (as in genoformer.train.evaluate)
    val_set = TokenDataset(data_dir, "val", window=train_set.window, seed=run.seed, window_stride=train_set.window)
    vocab, stride = train_set.vocab, train_set.manifest["stride"]
    masker = masker_for(config.data, vocab, stride)
    eval_masker = masker_for(config.data, vocab, stride, evaluation=True)
    data_info = {"path": str(data_dir), "k": vocab.k, "stride": stride, "window": train_set.window,
                 "source_sha256": train_set.manifest["source"].get("sha256"),
                 "windows_sha256": windows_digest(train_set, val_set)}

    if resume:
        step_dir, model, optimizer_state, state = load_latest_checkpoint(out, dist.device)
        saved = PretrainConfig.from_dict(state["config"], f"{step_dir}/trainer_state.json")
        changed = [key for key in differences(saved, config) if key not in WHERE_IT_RUNS]
        if changed:
            raise ConfigError(f"{out}: --resume with a config that differs from the run's in {', '.join(changed)}; "
                              "resume with the same config, or start a new run")
        check_data_fits_model(data_dir, vocab, train_set.window, model.config, state["data"]["vocab"], str(step_dir))
        if state["data"]["stride"] != stride:
            raise MismatchError(f"{data_dir}: stride {stride}, but {step_dir} was trained with stride "
                                f"{state['data']['stride']}")
        check_same_data(state["data"], data_info, str(step_dir))
        if state.get("world_size", 1) != dist.world_size:
            raise ConfigError(f"{step_dir}: trained by {state.get('world_size', 1)} process(es), resumed by "
                              f"{dist.world_size}: the global batch and the windows each process reads depend on "
                              f"it; resume with {state.get('world_size', 1)} (torchrun --nproc_per_node), or start "
                              "a new run")
        start_step, position = state["step"], DataPosition(**state["position"])
        saved_rng = state["rng"]  # one entry per process; a single dict in checkpoints of earlier versions
        saved_rng = saved_rng[dist.rank] if isinstance(saved_rng, list) else saved_rng
        set_rng_state(saved_rng, dist.device)
        trained_on = "cuda" if saved_rng["cuda"] else "cpu"
        if trained_on != dist.device.type:
            log.warning("%s trained on %s and resumes on %s: the run goes on, but not bit for bit as it would have "
                        "on %s", step_dir, trained_on, dist.device.type, trained_on)
        log.info("resuming from %s (step %d)", step_dir, start_step)
        if dist.is_main:
            claim(out, RUN_MARKER, RUN_ENTRIES)
            set_aside_newer(out, step_dir)
        if start_step >= run.steps:  # nothing left to train; the run's top-level files may have been deleted
            if dist.is_main:  # a run killed while saving its last checkpoint may not have pruned the older ones
                publish(out, step_dir)
                prune(out, run.keep_checkpoints)
            log.info("the run had finished (step %d of %d): %s holds its final weights", start_step, run.steps, out)
            distributed.barrier(dist)
            return out
    else:
        if step_dirs(out):
            raise ConfigError(f"{out}: already holds checkpoints; pass --resume to continue that run, or choose "
                              "another --out")
        model_config = ReformerConfig.from_dict({**config.model, "vocab_size": vocab.size}, "config model section")
        check_data_fits_model(data_dir, vocab, train_set.window, model_config, None, "the config")
        torch.manual_seed(run.seed)
        model = ReformerForMaskedLM(model_config).to(dist.device)
        torch.manual_seed(mixed_seed(run.seed, dist.rank))  # dropout: a stream of its own in every process
        start_step, position, optimizer_state = 0, DataPosition(), None
    model.train()
    if run.compile and dist.device.type == "cuda":  # on CPU, compiling costs more than it saves in a short run
        compile_for_training(model, data.batch_size, train_set.window, run.precision)
    optimizer = optimizer_for(model, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    trained = distributed.wrap(model, dist)
    accumulation = config.optim.accumulation
    batches = Batches(train_set, data.batch_size * accumulation * dist.world_size, position)
    metrics = MetricsFile(out / METRICS, start_step) if dist.is_main else None
    n_params = sum(p.numel() for p in model.parameters())
    log.info("training %d parameters on %s: %d train windows of %d tokens, %d steps of %d windows (%.2f epochs), "
             "%d process(es)", n_params, dist.device, len(train_set), train_set.window, run.steps, batches.per_step,
             run.steps * batches.per_step / len(train_set), dist.world_size)

    bar = tqdm(total=run.steps, initial=start_step, unit="step", desc="pretrain",
               disable=None if dist.is_main else True)  # None: a terminal only, not a log file
    window_tokens, clock = 0, time.perf_counter()
    try:  # the bar ends its line before an error is printed, so the error is a line of its own
        for step in range(start_step, run.steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            indices = batches.next_step()
            micro_batches = []
            for micro in range(accumulation):
                slot = micro * dist.world_size + dist.rank
                window_ids = indices[slot * data.batch_size:(slot + 1) * data.batch_size]
                input_ids, attention_mask, n_real = collate(train_set, window_ids, dist.device)
                batch = masker(input_ids, attention_mask, seeded_generator(dist.device, run.seed, step, slot))
                # whether the windows are padded comes from the host (n_real), not from reading the mask back
                micro_batches.append(MicroBatch(batch, attention_mask if n_real < attention_mask.numel() else None))
                window_tokens += n_real * dist.world_size
            step_loss, n_masked = accumulate_gradients(trained, micro_batches, step, dist, run.precision)
            clip = config.optim.grad_clip if config.optim.grad_clip > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1

            is_last = done == run.steps
            evaluate = (run.eval_every and done % run.eval_every == 0) or is_last
            save = done % run.checkpoint_every == 0 or is_last
            if done % run.log_every == 0 or evaluate or save:
                # the weights are NaN from a non-finite norm on: stop before they are saved, also at a checkpoint
                # step between log steps (checkpoint_every need not be a multiple of log_every)
                norm_value = grad_norm.item()
                if not math.isfinite(norm_value):
                    raise ConfigError(f"{out}: training diverged at step {done} (gradient norm {norm_value}, "
                                      f"learning rate {optimizer.param_groups[0]['lr']:g}); lower optim.lr or set "
                                      "optim.grad_clip > 0. Checkpoints saved before it are kept")
            if done % run.log_every == 0 or evaluate:
                loss_value = (distributed.total(step_loss, dist) / n_masked).item()  # the step's only device reads
                elapsed = time.perf_counter() - clock
                record = {"step": done, "loss": loss_value, "lr": optimizer.param_groups[0]["lr"],
                          "grad_norm": norm_value, "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
                if evaluate and dist.is_main:
                    scores = masked_lm_scores(model, val_set, eval_masker, dist.device, max_windows=run.eval_windows,
                                              batch_size=data.batch_size, seed=run.seed, precision=run.precision)
                    model.train()
                    record["val_bits_per_base"] = scores["bits_per_base"]
                    log.info("step %d: loss %.4f, validation %.4f bits/base", done, loss_value, scores["bits_per_base"])
                if metrics is not None:
                    metrics.append(record)
                bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                window_tokens, clock = 0, time.perf_counter()  # evaluation time is not training throughput
            if save:
                rng = distributed.gather(rng_state(dist.device), dist)  # each process's own streams, in rank order
                if dist.is_main:
                    state = {"step": done, "position": vars(batches.position), "rng": rng,
                             "config": config.to_dict(), "data": {**data_info, "vocab": vocab.to_json()},
                             "world_size": dist.world_size}
                    save_checkpoint(out, model, optimizer, vocab, state, keep=run.keep_checkpoints)
            bar.update(1)
    finally:
        bar.close()
    distributed.barrier(dist)
    return out


class MetricsFile:
    """``metrics.jsonl``, one JSON object per line; on resume, lines after the resumed step are dropped
    (they belong to the part of the run that is redone), and a line cut by a kill is discarded."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("step", math.inf) <= start_step:
                    kept.append(line)
        write_text(path, "".join(line + "\n" for line in kept))

    def append(self, record: dict) -> None:
        """Add one line (flushed at once, so a kill loses at most the line being written)."""
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
