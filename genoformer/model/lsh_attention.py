"""LSH self-attention with shared queries and keys (Reformer, section 2), the reference implementation.

The kernel boundary (docs/design.md): :func:`lsh_attention` takes shared ``qk``, ``v`` and the buckets from
:func:`genoformer.model.hashing.hash_buckets`, and is what the CUDA fast path in ``genoformer.model.fast``
replaces; :func:`select_kernel` picks one for a device. Its rules, which the fast path must follow exactly:

1. Per hash round, positions are sorted by ``(bucket, position)`` (packed key ``bucket · N + position``),
   padded positions (``key_padding_mask`` True) after every real one, as one extra bucket of their own, so
   the real tokens' order and chunks do not depend on how much padding follows them.
2. The sorted sequence is cut into chunks of ``bucket_size``; each chunk's queries attend to the keys of
   their own chunk and of the chunk before it (look-one-back; the first chunk of a round looks back at
   nothing, no wrap-around). Unless ``causal`` (rule 4), keys from a different bucket that fall in these two
   chunks are attended to as well (the paper's same-bucket-only mask is not applied: it only removes
   targets, and the chunk already bounds the cost). A key seen in several rounds counts once per round (no
   duplicate correction).
3. Keys are the L2-normalized qk, queries the raw qk; logits are scaled by ``dh ** -0.5``.
4. Masks: padded keys are excluded (logit -inf). When ``causal``, the query at sorted index s attends only
   to keys **of its own bucket** at sorted indices ``s - bucket_size < j <= s``: its ``bucket_size - 1``
   most recent same-bucket predecessors (a bucket is contiguous in (bucket, position) order, so these are
   earlier positions) and itself. This band lies inside the query's chunk and the one before, so rule 2's
   layout holds it, and it depends only on tokens at earlier or equal positions (a token's bucket depends
   on its own vector alone), so causal attention is strictly causal: later tokens cannot move an earlier
   query's targets, as chunk boundaries in the sorted order would. A token's own key gets logit
   ``SELF_LOGIT`` (-1e5) instead of being excluded, so it is attended to only when it has no other valid
   target (a shared-QK token would otherwise always attend mostly to itself).
5. Each round gives a softmax output and its log-sum-exp; rounds are combined with weights
   ``softmax over rounds of the log-sum-exps``, a convex combination.
6. Dropout (``dropout_p``) drops attention weights after the softmax, drawing from ``generator`` (or the
   global RNG when None); the log-sum-exps are taken before dropout.

Lengths that are not a multiple of ``bucket_size`` are padded internally with masked positions and the
padding is stripped from the output. Outputs at padded query positions are defined but meaningless.
Half-precision inputs: the logits' matrix product runs in that precision (its result rounded to it, as under
autocast), the masks, softmaxes and log-sum-exps in float32, the weighted sums of values in the input precision
again; float64 stays float64. On bf16 inputs with logits of a few units that gives 0.4 % relative error against
exact attention on the same inputs, where rounding the exact output to bf16 alone gives 0.17 %. The CUDA fast
path accumulates the logits in float32 and does not round them.

Bucket counts. :class:`LSHSelfAttention` hashes each row into :func:`n_buckets_for` its own number of real
tokens (:func:`lsh_buckets`), not the batch length: with rule 1 this makes a sequence's outputs the same
alone or padded in any batch. Those counts are read back from the device once per forward pass
(:func:`key_padding`, called by the model), not once per layer.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genoformer.errors import ConfigError
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


class KeyPadding(NamedTuple):
    """A padded batch's key padding mask with its rows' bucket counts, read from the device once
    (:func:`key_padding`) for every layer of a forward pass and of the reversible backward pass.

    ``mask [B, N]``: True at padding. ``bucket_counts``: the distinct :func:`n_buckets_for` of the rows' numbers
    of real tokens for ``bucket_size``, ascending.
    """

    mask: torch.Tensor
    bucket_size: int
    bucket_counts: tuple[int, ...]


def key_padding(key_padding_mask: torch.Tensor, bucket_size: int) -> KeyPadding | None:
    """The :class:`KeyPadding` of ``key_padding_mask [B, N]`` (True at padding), or None when no row has any
    padding. Reads the rows' numbers of real tokens back from the device: one host sync."""
    length = key_padding_mask.shape[1]
    real = (~key_padding_mask).sum(dim=1).tolist()  # waits for the device
    if all(count == length for count in real):
        return None
    counts = tuple(sorted({n_buckets_for(count, bucket_size) for count in real}))
    return KeyPadding(key_padding_mask, bucket_size, counts)


def lsh_buckets(qk: torch.Tensor, key_padding_mask: torch.Tensor | KeyPadding | None, bucket_size: int,
                n_hashes: int, seed: int) -> torch.Tensor:
    """Buckets ``[B, H, n_hashes, N]`` of ``qk [B, H, N, dh]``, each row hashed into as many buckets as
    :func:`n_buckets_for` gives its own number of real tokens, so a padded sequence hashes as it does alone.

    The batch length would put a padded row into the bucket count of a longer sequence (another power-of-two
    band), hence other hashes and other outputs. The whole batch is hashed once per bucket count its rows need,
    all from ``seed``, and each row takes its own (selected on the device). A mask tensor is read back from the
    device here (:func:`key_padding`); a :class:`KeyPadding` has been read already, and without padding all
    rows have N real tokens: one call, no host sync.
    """
    if isinstance(key_padding_mask, torch.Tensor):
        key_padding_mask = key_padding(key_padding_mask, bucket_size)
    if key_padding_mask is None:
        return hash_buckets(qk, n_buckets_for(qk.shape[2], bucket_size), n_hashes, seed)
    if key_padding_mask.bucket_size != bucket_size:
        raise ValueError(f"KeyPadding made for bucket_size {key_padding_mask.bucket_size}, used with {bucket_size}")
    *smaller, largest = key_padding_mask.bucket_counts
    buckets = hash_buckets(qk, largest, n_hashes, seed)
    real = (~key_padding_mask.mask).sum(dim=1)[:, None, None, None]
    for n_buckets in reversed(smaller):  # a row keeps the smallest count that holds its real tokens: its own
        buckets = torch.where(real <= n_buckets * bucket_size, hash_buckets(qk, n_buckets, n_hashes, seed), buckets)
    return buckets


def attention_weights(logits: torch.Tensor, dropout_p: float, generator: torch.Generator | None):
    """Softmax over the last axis and its log-sum-exp, with dropout applied to the weights only."""
    weights = torch.softmax(logits, dim=-1)
    if dropout_p > 0:
        # the same draws as torch.rand(weights.shape), but traceable when torch.compile makes the length symbolic
        keep = torch.empty_like(weights).uniform_(generator=generator)
        weights = weights * (keep >= dropout_p) / (1 - dropout_p)
    return weights, torch.logsumexp(logits, dim=-1)


def mask_logits(logits, query_pos, key_pos, targets) -> torch.Tensor:
    """Rule 4 on ``logits [..., i, j]``: -inf where ``targets [..., i, j]`` is False, and ``SELF_LOGIT`` where
    the key is the query's own (same original position)."""
    logits = logits.masked_fill(~targets, float("-inf"))
    return logits.masked_fill(key_pos[..., None, :] == query_pos[..., :, None], SELF_LOGIT)


def recent_same_bucket(query_index, key_index, query_bucket, key_bucket, bucket_size: int) -> torch.Tensor:
    """Rule 4's causal band ``[..., i, j]``: key j is in query i's bucket at sorted index ``s - bucket_size
    < j <= s`` (``*_index`` are sorted indices, ``*_bucket`` buckets, of the queries and keys)."""
    offset = query_index[..., :, None] - key_index[..., None, :]
    return (key_bucket[..., None, :] == query_bucket[..., :, None]) & (offset >= 0) & (offset < bucket_size)


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

    def sort_labels(x):  # per-position labels [B, H, R, Np] -> [B, H, R, C, L] in sorted order
        return x.gather(3, order).reshape(shape)

    def sort(x):  # [B, H, Np, D] -> [B, H, R, C, L, D] in sorted order
        x = x[:, :, None].expand(batch, heads, n_hashes, padded, dim)
        return x.gather(3, order[..., None].expand(-1, -1, -1, -1, dim)).reshape(*shape, dim)

    query = sort(qk)
    key = look_one_back(F.normalize(query, dim=-1), 0.0)
    value = look_one_back(sort(v), 0.0)
    query_pos = order.reshape(shape)
    key_pos = look_one_back(query_pos, -1)
    targets = look_one_back(sort_labels(valid[:, None, None, :].expand_as(order)), False)[..., None, :]
    if causal:
        query_index = positions.view(1, 1, 1, n_chunks, bucket_size)  # sorted indices, the same in every round
        query_bucket = sort_labels(buckets)
        targets = targets & recent_same_bucket(query_index, look_one_back(query_index, -padded),
                                               query_bucket, look_one_back(query_bucket, -1), bucket_size)

    # Rules 2-4: attend within chunk + look-one-back, masked.
    logits = torch.einsum("...id,...jd->...ij", query * dim**-0.5, key).to(compute_dtype)
    logits = mask_logits(logits, query_pos, key_pos, targets)
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
    """Exact softmax attention ``[B, H, N, dh]`` with LSH attention's keys, scale, padding and self masks and
    dropout (rules 3, 4, 6); ``causal`` lets each query attend to every earlier position (no buckets)."""
    batch, heads, length, dim = qk.shape
    positions = torch.arange(length, device=qk.device)
    targets = torch.ones(batch, 1, 1, length, dtype=torch.bool, device=qk.device)
    if key_padding_mask is not None:
        targets = ~key_padding_mask[:, None, None, :]
    if causal:
        targets = targets & (positions[None, :] <= positions[:, None])
    logits = (qk * dim**-0.5) @ F.normalize(qk, dim=-1).transpose(-1, -2)
    logits = mask_logits(logits.to(torch.promote_types(qk.dtype, torch.float32)), positions, positions, targets)
    weights, _ = attention_weights(logits, dropout_p, generator)
    return weights.to(v.dtype) @ v


AttentionKernel = Callable[..., torch.Tensor]


def select_kernel(device: torch.device | str) -> AttentionKernel:
    """The LSH attention function (signature of :func:`lsh_attention`) to use on ``device``.

    CPU (and anything not CUDA): ``genoformer.model.chunked_lsh.lsh_attention``, the reference's function
    with less memory traffic. CUDA: ``genoformer.model.fast.lsh_attention`` (FlexAttention) when that module
    imports and, if it defines ``is_available(device) -> bool``, says yes; otherwise the chunked kernel, with
    one logged warning saying why. Setting the environment variable ``GENOFORMER_LSH_KERNEL=reference`` forces
    this module's reference :func:`lsh_attention` everywhere; any other non-empty value is a ConfigError (a typo
    must not quietly run the default kernel).
    """
    device = torch.device(device)
    choice = os.environ.get(KERNEL_ENV, "")
    if choice == "reference":
        return lsh_attention
    if choice:
        raise ConfigError(f"environment variable {KERNEL_ENV}={choice!r}: the only value it takes is 'reference' "
                          "(or leave it unset for the default kernel)")
    if device.type != "cuda":
        return chunked_kernel()
    return cuda_kernel(device.index)


def chunked_kernel() -> AttentionKernel:
    """The chunked kernel for devices without the CUDA fast path (imported here: it builds on this module)."""
    from genoformer.model.chunked_lsh import lsh_attention as chunked_lsh_attention

    return chunked_lsh_attention


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
    log.warning("LSH attention: CUDA fast path not used (%s); using the chunked PyTorch kernel", reason)
    return chunked_kernel()


class LSHSelfAttention(nn.Module):
    """Multi-head self-attention with a shared query/key projection, LSH (or exact) attention and rotary.

    ``forward(x [B, N, dim], key_padding_mask [B, N] (True = padding) | KeyPadding | None, seed) -> [B, N, dim]``.
    ``seed`` chooses the hash rotations; the same seed gives the same output (with dropout off). Each row is
    hashed into as many buckets as its own real tokens call for (:func:`lsh_buckets`), so padding never
    changes the outputs at real positions.
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

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | KeyPadding | None = None,
                seed: int = 0) -> torch.Tensor:
        """Attend over ``x [B, N, dim]``; see the class docstring. A mask tensor is read back from the device
        (one host sync); a :class:`KeyPadding` (:func:`key_padding`) carries what that read gives."""
        batch, length, dim = x.shape
        split = lambda t: t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)  # noqa: E731
        qk = apply_rotary(split(self.to_qk(x)), self.rotary_base)
        v = split(self.to_v(x))
        dropout_p = self.dropout if self.training else 0.0
        mask = key_padding_mask.mask if isinstance(key_padding_mask, KeyPadding) else key_padding_mask
        if self.full_attention:
            out = full_attention(qk, v, key_padding_mask=mask, causal=self.causal, dropout_p=dropout_p)
        else:
            buckets = lsh_buckets(qk, key_padding_mask, self.bucket_size, self.n_hashes, seed)
            kernel = select_kernel(x.device)
            out = kernel(qk, v, buckets, bucket_size=self.bucket_size, key_padding_mask=mask,
                         causal=self.causal, dropout_p=dropout_p)
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))
