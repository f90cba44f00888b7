"""Data-parallel training under ``torchrun``: process group, device per rank, DDP wrapper, reductions.

``torchrun --nproc_per_node N genoformer pretrain ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; each
process then trains on its share of every optimizer step's windows (see ``genoformer.train.loop``) and DDP
averages the gradients. NCCL on CUDA, gloo on CPU. Without those variables this is a 1-process run and nothing
here touches ``torch.distributed``. Only rank 0 writes checkpoints, metrics and logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: ``rank`` of ``world_size``, and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def setup(device_choice: str = "auto") -> Distributed:
    """Join the torchrun process group when there is one and pick this rank's device (``auto|cpu|cuda``)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    from genoformer.tasks.encoder import pick_device  # not at the top: that module imports this one

    use_cuda = pick_device(device_choice).type == "cuda"  # ConfigError when CUDA is asked for but absent
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        log.info("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return Distributed(rank, world_size, device)


def wrap(model: torch.nn.Module, distributed: Distributed) -> torch.nn.Module:
    """The model to train: a DDP wrapper in a multi-process job, else the model itself.

    Plain DDP works with the reversible stack because its autograd Function returns every parameter's
    gradient from backward (``genoformer.model.reversible``), so each parameter is marked ready once per
    backward; tests/test_ddp.py checks it against a 1-process run.
    """
    if not distributed.enabled:
        return model
    device_ids = [distributed.device.index] if distributed.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA for precision ``auto`` or ``bf16`` (bf16 on CPU only when asked), else fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def total(value: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    """The sum over all processes of a per-process tensor (on this process's device), still on the device."""
    if distributed.enabled:
        value = value.detach().clone()
        dist.all_reduce(value)
    return value


def gather(obj, distributed: Distributed) -> list:
    """Every process's ``obj`` (JSON-like), in rank order, on every process (``[obj]`` in a 1-process run)."""
    if not distributed.enabled:
        return [obj]
    gathered = [None] * distributed.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(distributed: Distributed) -> None:
    """Wait for every process (no-op in a 1-process run)."""
    if distributed.enabled:
        dist.barrier()


def teardown(distributed: Distributed) -> None:
    """Leave the process group."""
    if distributed.enabled and dist.is_initialized():
        dist.destroy_process_group()
