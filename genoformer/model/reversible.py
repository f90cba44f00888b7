"""The reversible residual stack (RevNet; Reformer, section 3) and its ordinary counterpart.

Each block holds two sublayers, ``f`` (attention) and ``g`` (feed-forward), acting on two halves:

    y1 = x1 + f(x2)        x2 = y2 - g(y1)
    y2 = x2 + g(y1)        x1 = y1 - f(x2)

Since a block's inputs can be recomputed from its outputs, the backward pass does not need the activations
of the forward pass: :class:`ReversibleStackFunction` keeps only the stack's final outputs, and its backward
walks the blocks in reverse, recomputing each block's inputs and differentiating it on the spot. Activation
memory is then that of one block, whatever the depth.

Exact recomputation. Hidden dropout (each sublayer's output, the feed-forward's hidden layer) draws its masks
from keys (genoformer.model.dropout), one per sublayer (and per feed-forward chunk) derived from the stack's
``dropout_seed``, so the recomputation draws the same masks, eager or compiled; LSH hashing takes an explicit
per-block seed, so it draws the same rotations; the autocast state of the forward pass is re-entered. Attention
dropout draws from the random number generator: before each sublayer the forward pass records the CPU and CUDA
RNG states and the backward pass restores them (inside ``torch.random.fork_rng``, so the caller's RNG stream is
untouched), which eager sublayers honour and compiled graphs do not (genoformer.train.compiling). The
recomputed inputs differ from the true ones only by floating-point rounding (y1 - f(x2) vs x1).

Gradients and DDP. Every parameter of the stack is an explicit input of the Function and its gradient is
*returned* from backward (computed with ``torch.autograd.grad``; nothing calls ``.backward()`` inside), so
autograd, and DistributedDataParallel's hooks, see each parameter's gradient produced exactly once per
backward. (Reformers that call ``.backward()`` inside backward accumulate into ``.grad`` behind autograd's
back and fail under DDP with "Expected to mark a variable ready only once".)

Protocol for a block: ``block.f(x, key_padding_mask, seed, dropout_key) -> same shape`` and ``block.g``
position-wise with ``block.g.chunks`` (int) and ``block.g.position_wise(x, dropout_key)``, where
``block.g(x, key)`` is ``position_wise`` applied to each of ``x.chunk(chunks, dim=1)`` with
``feedforward.chunk_key(key, i)``; the backward pass recomputes and differentiates ``g`` chunk by chunk, so
``ff_chunks`` bounds the memory of training as well as of inference. A dropout key of None means no dropout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from genoformer.model.dropout import derive
from genoformer.model.feedforward import chunk_key


class Block(nn.Module):
    """One residual block: ``f(x, key_padding_mask, seed, dropout_key)`` (attention) and ``g(x, dropout_key)``
    (feed-forward)."""

    def __init__(self, f: nn.Module, g: nn.Module):
        super().__init__()
        self.f = f
        self.g = g


def sublayer_keys(dropout_seed: int | None, depth: int) -> tuple[tuple[int | None, int | None], ...]:
    """The dropout keys ``(f, g)`` of each block of a stack run with ``dropout_seed`` (None: no dropout)."""
    return tuple((derive(dropout_seed, i, 0), derive(dropout_seed, i, 1)) for i in range(depth))


def plain_stack(blocks, x1, x2, key_padding_mask, seeds, dropout_seed=None):
    """The ordinary residual stack: same arithmetic and dropout masks as the reversible one, activations kept by
    autograd."""
    for block, seed, (f_key, g_key) in zip(blocks, seeds, sublayer_keys(dropout_seed, len(blocks))):
        x1 = x1 + block.f(x2, key_padding_mask, seed, f_key)
        x2 = x2 + block.g(x1, g_key)
    return x1, x2


def reversible_stack(blocks, x1, x2, key_padding_mask, seeds, dropout_seed=None):
    """The reversible residual stack ``(y1, y2)``; backward recomputes activations (see the module docstring).
    ``seeds``: each block's hashing seed; ``dropout_seed``: the pass's dropout seed, or None for no dropout."""
    params = [p for block in blocks for p in block.parameters()]
    keys = sublayer_keys(dropout_seed, len(blocks))
    return ReversibleStackFunction.apply(x1, x2, key_padding_mask, tuple(seeds), keys, tuple(blocks), *params)


def rng_state(device: torch.device):
    """The CPU RNG state and, on a CUDA device, that device's RNG state."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(state, device: torch.device) -> None:
    """Restore a state from :func:`rng_state`."""
    cpu_state, cuda_state = state
    torch.set_rng_state(cpu_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state(cuda_state, device)


def grads_of(output, inputs, grad_output):
    """``d(output)/d(input) · grad_output`` per input: zeros if unused, None if the input needs no gradient."""
    found = iter(torch.autograd.grad(output, [x for x in inputs if x.requires_grad], grad_output, allow_unused=True))
    grads = []
    for x in inputs:
        grad = next(found) if x.requires_grad else None
        grads.append(torch.zeros_like(x) if grad is None and x.requires_grad else grad)
    return grads


class ReversibleStackFunction(torch.autograd.Function):
    """``apply(x1, x2, key_padding_mask, seeds, keys, blocks, *params) -> (y1, y2)``; saves only y1, y2, the mask.
    ``keys``: each block's dropout keys ``(f, g)`` (:func:`sublayer_keys`).

    ``key_padding_mask`` is passed to each ``block.f`` as it is (a tensor, None, or whatever ``f`` takes)."""

    @staticmethod
    def forward(ctx, x1, x2, key_padding_mask, seeds, keys, blocks, *params):
        device = x1.device
        ctx.blocks, ctx.seeds, ctx.keys = blocks, seeds, keys
        ctx.autocast = (device.type, torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))
        ctx.rng_states = []
        for block, seed, (f_key, g_key) in zip(blocks, seeds, keys):
            state_f = rng_state(device)
            x1 = x1 + block.f(x2, key_padding_mask, seed, f_key)
            state_g = rng_state(device)
            x2 = x2 + block.g(x1, g_key)
            ctx.rng_states.append((state_f, state_g))
        ctx.save_for_backward(x1, x2)
        ctx.key_padding_mask = key_padding_mask  # an input, never differentiated
        return x1, x2

    @staticmethod
    @once_differentiable
    def backward(ctx, dy1, dy2):
        y1, y2 = ctx.saved_tensors
        key_padding_mask = ctx.key_padding_mask
        device = y1.device
        device_type, autocast_enabled, autocast_dtype = ctx.autocast
        param_grads = []
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked), torch.autocast(device_type, autocast_dtype, autocast_enabled):
            for block, seed, (f_key, g_key), (state_f, state_g) in reversed(list(zip(
                    ctx.blocks, ctx.seeds, ctx.keys, ctx.rng_states))):
                # y2 = x2 + g(y1): recompute x2 and differentiate g, one sequence chunk at a time.
                set_rng_state(state_g, device)
                g_params = list(block.g.parameters())
                g_grads = [None] * len(g_params)
                x2_parts, dy1_parts = [], []
                for i, (y1_part, y2_part, dy1_part, dy2_part) in enumerate(zip(*(t.chunk(block.g.chunks, dim=1)
                                                                                  for t in (y1, y2, dy1, dy2)))):
                    with torch.enable_grad():
                        y1_part = y1_part.detach().requires_grad_()
                        g_out = block.g.position_wise(y1_part, chunk_key(g_key, i))
                    dy1_g, *grads = grads_of(g_out, [y1_part, *g_params], dy2_part)
                    g_grads = [g if acc is None else acc + g for acc, g in zip(g_grads, grads)]
                    x2_parts.append(y2_part - g_out.detach())
                    dy1_parts.append(dy1_part + dy1_g)
                x2, dy1 = torch.cat(x2_parts, dim=1), torch.cat(dy1_parts, dim=1)

                # y1 = x1 + f(x2): recompute x1 and differentiate f.
                set_rng_state(state_f, device)
                f_params = list(block.f.parameters())
                with torch.enable_grad():
                    x2_in = x2.detach().requires_grad_()
                    f_out = block.f(x2_in, key_padding_mask, seed, f_key)
                dx2_f, *f_grads = grads_of(f_out, [x2_in, *f_params], dy1)
                y1, y2 = y1 - f_out.detach(), x2
                dy2 = dy2 + dx2_f
                param_grads = f_grads + g_grads + param_grads
        return (dy1, dy2, None, None, None, None, *param_grads)
