"""Compiling the model for training, where torch.compile can build, and training eagerly where it cannot.

torch.compile builds its kernels when first called: Triton on CUDA (which needs a supported GPU and a working
Triton install; not every platform has one), C++ through the system's compiler on CPU (``g++`` or ``$CXX``).
Without them, training would fail at its first step, so :func:`compile_for_training` runs one forward and
backward pass on an example batch first; if that fails, the sublayers go back to eager mode with a warning
naming the cause, and training goes on.

Hidden dropout (``dropout``) compiles: its masks are a function of keys (genoformer.model.dropout), which the
reversible backward passes again, so compiled and eager, reversible and plain stacks draw the same masks
(tests/test_model_reversible.py). A model with attention dropout (``attention_dropout``) stays eager: the
attention kernel draws those masks from the random number generator, which the reversible backward replays by
restoring its state, and compiled graphs draw their random numbers their own way (the forward runs the no-grad
graph, the recomputation the training graph); eager, the replay is exact.
"""

from __future__ import annotations

import logging

import torch

from genoformer.errors import GenoformerError
from genoformer.model.fast import compile_sublayers, eager_sublayers
from genoformer.train import distributed

log = logging.getLogger(__name__)


def compile_for_training(model: torch.nn.Module, batch_size: int, window: int, precision: str) -> bool:
    """:func:`~genoformer.model.fast.compile_sublayers` on ``model``, proven by one forward and backward pass
    on a ``[batch_size, window]`` batch (the shape of the training batches, so nothing is compiled twice).
    Leaves no gradients and no trace in the random number generators. Returns whether the model is compiled;
    if compiling failed, the model is eager again and a warning says why. A :class:`GenoformerError` of the pass
    (a bad kernel environment variable) is raised as it is, the model eager again: it is no failure to build."""
    device = next(model.parameters()).device
    if model.config.attention_dropout > 0:
        log.info("attention_dropout %g: training with eager sublayers (see genoformer.train.compiling)",
                 model.config.attention_dropout)
        return False
    log.info("compiling each block's sublayers with torch.compile on %s (can take a few minutes the first time)",
             device)
    compile_sublayers(model)
    generator = torch.Generator(device).manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, window), generator=generator, device=device)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with distributed.autocast_for(device, precision):
                logits = model(ids, seed=0, check_ids=False)
            logits.float().mean().backward()
    except GenoformerError:  # the user's mistake (a kernel environment variable): eager training fails on it too
        eager_sublayers(model)
        raise
    except Exception as err:  # noqa: BLE001  (any failure to build: no compiler, no OpenMP, unsupported op)
        eager_sublayers(model)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("torch.compile could not build the model on %s (%s); training without it", device,
                    reason[:300])
        return False
    finally:
        model.zero_grad(set_to_none=True)
    log.info("compiled: training with the compiled sublayers")
    return True
