"""LSH self-attention with shared queries and keys (Reformer, section 2), the reference implementation.

The kernel boundary (docs/design.md): :func:`lsh_attention` takes shared ``qk``, ``v`` and the buckets from
:func:`genoformer.model.hashing.hash_buckets`, and is what the CUDA fast path in ``genoformer.model.fast``
replaces; :func:`select_kernel` picks one for a device. Its rules, which the fast path must follow exactly:

1. Per hash round, positions are sorted by ``(bucket, position)`` (packed key ``bucket · N + position``),
   padded positions (``key_padding_mask`` True) after every real one, so the real tokens' order and chunks
   do not depend on how much padding follows them.
2. The sorted sequence is cut into chunks of ``bucket_size``; each chunk's queries attend to the keys of
   their own chunk and of the chunk before it (look-one-back; the first chunk of a round looks back at
   nothing, no wrap-around). Keys from a different bucket that fall in these two chunks are attended to as
   well (the paper's same-bucket-only mask is not applied: it only removes targets, and the chunk already
   bounds the cost); a key seen in several rounds counts once per round (no duplicate correction).
3. Keys are the L2-normalized qk, queries the raw qk; logits are scaled by ``dh ** -0.5``.
4. Masks: padded keys and, when ``causal``, keys at a later original position are excluded (logit -inf).
   A token's own key gets logit ``SELF_LOGIT`` (-1e5) instead, so it is attended to only when it has no
   other valid target (a shared-QK token would otherwise always attend mostly to itself).
5. Each round gives a softmax output and its log-sum-exp; rounds are combined with weights
   ``softmax over rounds of the log-sum-exps``, a convex combination.
6. Dropout (``dropout_p``) drops attention weights after the softmax, drawing from ``generator`` (or the
   global RNG when None); the log-sum-exps are taken before dropout.

Lengths that are not a multiple of ``bucket_size`` are padded internally with masked positions and the
padding is stripped from the output. Outputs at padded query positions are defined but meaningless.
Logits are computed in float32 for half-precision inputs (float64 stays float64).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genoformer.model.hashing import hash_buckets
from genoformer.model.positional import apply_rotary

log = logging.getLogger(__name__)

SELF_LOGIT = -1e5  # a token's logit for itself: it wins only when it is alone
KERNEL_ENV = "GENOFORMER_LSH_KERNEL"  # set to "reference" to force the reference kernel on CUDA


def n_buckets_for(length: int, bucket_size: int) -> int:
    """Number of hash buckets for a sequence: the smallest power of two >= length / bucket_size, at least 2.

    A power of two always factorizes evenly (see hashing.py) and keeps the average bucket at most
    ``bucket_size`` tokens, so most of a bucket fits in its chunk plus the one before.
    """
    chunks = -(-length // bucket_size)
    return max(2, 1 << (chunks - 1).bit_length())


def attention_weights(logits: torch.Tensor, dropout_p: float, generator: torch.Generator | None):
    """Softmax over the last axis and its log-sum-exp, with dropout applied to the weights only."""
    weights = torch.softmax(logits, dim=-1)
    if dropout_p > 0:
        keep = torch.rand(weights.shape, generator=generator, device=weights.device, dtype=weights.dtype)
        weights = weights * (keep >= dropout_p) / (1 - dropout_p)
    return weights, torch.logsumexp(logits, dim=-1)


def mask_logits(logits, query_pos, key_pos, key_valid, causal: bool) -> torch.Tensor:
    """Apply rules 4 (padding, causal, self) to ``logits [..., i, j]`` given positions and key validity."""
    excluded = ~key_valid[..., None, :]
    if causal:
        excluded = excluded | (key_pos[..., None, :] > query_pos[..., :, None])
    logits = logits.masked_fill(excluded, float("-inf"))
    return logits.masked_fill(key_pos[..., None, :] == query_pos[..., :, None], SELF_LOGIT)


def look_one_back(x: torch.Tensor, fill) -> torch.Tensor:
    """``x [B, H, R, C, L, ...] -> [B, H, R, C, 2L, ...]``: each chunk, then the chunk before it.

    The first chunk has no chunk before it (no wrap-around): it gets a chunk of ``fill``.
    """
    nothing = torch.full_like(x[:, :, :, :1], fill)
    return torch.cat([x, torch.cat([nothing, x[:, :, :, :-1]], dim=3)], dim=4)


def lsh_attention(
    qk: torch.Tensor,
    v: torch.Tensor,
    buckets: torch.Tensor,
    *,
    bucket_size: int,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LSH attention ``out [B, H, N, dh]`` of ``qk, v [B, H, N, dh]`` over ``buckets [B, H, n_hashes, N]``.

    ``key_padding_mask``: BoolTensor ``[B, N]``, True at padding (PyTorch's convention), or None.
    Follows the rules in the module docstring.
    """
    batch, heads, length, dim = qk.shape
    n_hashes = buckets.shape[2]
    n_chunks = max(1, math.ceil(length / bucket_size))
    padded = n_chunks * bucket_size
    device = qk.device
    compute_dtype = torch.promote_types(qk.dtype, torch.float32)

    valid = torch.ones(batch, padded, dtype=torch.bool, device=device)
    valid[:, length:] = False
    if key_padding_mask is not None:
        valid[:, :length] = ~key_padding_mask
    if padded > length:
        qk = F.pad(qk, (0, 0, 0, padded - length))
        v = F.pad(v, (0, 0, 0, padded - length))
        buckets = F.pad(buckets, (0, padded - length))

    # Rule 1: sort each round by (bucket, position), padding last.
    positions = torch.arange(padded, device=device)
    last_bucket = buckets.max() + 1
    buckets = torch.where(valid[:, None, None, :], buckets, last_bucket)
    order = (buckets * padded + positions).argsort(dim=-1)  # [B, H, R, Np]; keys are unique
    shape = (batch, heads, n_hashes, n_chunks, bucket_size)

    def sort(x):  # [B, H, Np, D] -> [B, H, R, C, L, D] in sorted order
        x = x[:, :, None].expand(batch, heads, n_hashes, padded, dim)
        return x.gather(3, order[..., None].expand(-1, -1, -1, -1, dim)).reshape(*shape, dim)

    query = sort(qk)
    key = look_one_back(F.normalize(query, dim=-1), 0.0)
    value = look_one_back(sort(v), 0.0)
    query_pos = order.reshape(shape)
    key_pos = look_one_back(query_pos, -1)
    key_valid = look_one_back(valid[:, None, None, :].expand(batch, heads, n_hashes, padded)
                              .gather(3, order).reshape(shape), False)

    # Rules 2-4: attend within chunk + look-one-back, masked.
    logits = torch.einsum("...id,...jd->...ij", query * dim**-0.5, key).to(compute_dtype)
    logits = mask_logits(logits, query_pos, key_pos, key_valid, causal)
    weights, lse = attention_weights(logits, dropout_p, generator)
    out = torch.einsum("...ij,...jd->...id", weights.to(value.dtype), value)

    # Unsort, then rule 5: combine rounds by the softmax of their log-sum-exps.
    undo = torch.empty_like(order).scatter_(-1, order, positions.expand_as(order))
    out = out.reshape(batch, heads, n_hashes, padded, dim).gather(3, undo[..., None].expand(-1, -1, -1, -1, dim))
    lse = lse.reshape(batch, heads, n_hashes, padded).gather(3, undo)
    round_weights = torch.softmax(lse, dim=2).to(out.dtype)
    out = (out * round_weights[..., None]).sum(dim=2)
    return out[:, :, :length]


def full_attention(
    qk: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Exact softmax attention ``[B, H, N, dh]`` with LSH attention's keys, scale and masks (rules 3, 4, 6)."""
    batch, heads, length, dim = qk.shape
    positions = torch.arange(length, device=qk.device)
    valid = torch.ones(batch, 1, length, dtype=torch.bool, device=qk.device)
    if key_padding_mask is not None:
        valid = ~key_padding_mask[:, None, :]
    logits = (qk * dim**-0.5) @ F.normalize(qk, dim=-1).transpose(-1, -2)
    logits = mask_logits(logits.to(torch.promote_types(qk.dtype, torch.float32)), positions, positions, valid, causal)
    weights, _ = attention_weights(logits, dropout_p, generator)
    return weights.to(v.dtype) @ v


AttentionKernel = Callable[..., torch.Tensor]


def select_kernel(device: torch.device | str) -> AttentionKernel:
    """The LSH attention function (signature of :func:`lsh_attention`) to use on ``device``.

    CPU (and anything not CUDA): the reference :func:`lsh_attention`. CUDA: ``genoformer.model.fast.
    lsh_attention`` when that module imports and, if it defines ``is_available(device) -> bool``, says
    yes; otherwise the reference, with one logged warning saying why. Setting the environment variable
    ``GENOFORMER_LSH_KERNEL=reference`` forces the reference everywhere.
    """
    device = torch.device(device)
    if device.type != "cuda" or os.environ.get(KERNEL_ENV) == "reference":
        return lsh_attention
    return cuda_kernel(device.index)


@functools.lru_cache(maxsize=None)
def cuda_kernel(index: int | None) -> AttentionKernel:
    """The fast CUDA kernel for GPU ``index`` if usable, else the reference (warned once per GPU)."""
    try:
        from genoformer.model import fast

        is_available = getattr(fast, "is_available", None)
        if is_available is None or is_available(torch.device("cuda", index)):
            return fast.lsh_attention
        reason = "genoformer.model.fast.is_available() returned False"
    except Exception as err:  # a missing or broken fast path must never stop a run
        reason = f"{type(err).__name__}: {err}"
    log.warning("LSH attention: CUDA fast path not used (%s); using the PyTorch reference kernel", reason)
    return lsh_attention


class LSHSelfAttention(nn.Module):
    """Multi-head self-attention with a shared query/key projection, LSH (or exact) attention and rotary.

    ``forward(x [B, N, dim], key_padding_mask [B, N] (True = padding) | None, seed) -> [B, N, dim]``.
    ``seed`` chooses the hash rotations; the same seed gives the same output (with dropout off).
    With ``full_attention`` the same masks are applied to exact softmax attention (for tests and ablations).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        n_hashes: int = 2,
        bucket_size: int = 64,
        causal: bool = False,
        dropout: float = 0.0,
        full_attention: bool = False,
        rotary_base: float = 10_000.0,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.n_hashes = n_hashes
        self.bucket_size = bucket_size
        self.causal = causal
        self.dropout = dropout
        self.full_attention = full_attention
        self.rotary_base = rotary_base
        self.to_qk = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """Attend over ``x [B, N, dim]``; see the class docstring."""
        batch, length, dim = x.shape
        split = lambda t: t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)  # noqa: E731
        qk = apply_rotary(split(self.to_qk(x)), self.rotary_base)
        v = split(self.to_v(x))
        dropout_p = self.dropout if self.training else 0.0
        if self.full_attention:
            out = full_attention(qk, v, key_padding_mask=key_padding_mask, causal=self.causal, dropout_p=dropout_p)
        else:
            buckets = hash_buckets(qk, n_buckets_for(length, self.bucket_size), self.n_hashes, seed)
            kernel = select_kernel(x.device)
            out = kernel(qk, v, buckets, bucket_size=self.bucket_size, key_padding_mask=key_padding_mask,
                         causal=self.causal, dropout_p=dropout_p)
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))
