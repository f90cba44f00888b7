"""LSH attention through FlexAttention: the reference's sorted, chunked attention as one block-sparse kernel.

The reference (:mod:`genoformer.model.lsh_attention`, whose module docstring states the rules) sorts each
hash round by (bucket, position), cuts the sorted sequence into chunks of ``bucket_size`` and lets every
chunk attend to itself and to the chunk before it. Seen from the sorted sequence that is a block-sparse
pattern: query chunk c sees key chunks c - 1 and c. This module runs exactly that pattern with
``torch.nn.attention.flex_attention``:

1. one argsort per (batch, head, round) of the packed key ``bucket · N + position``, padding last; each
   sorted slot holds an original position, and since padding sorts last, a key is valid exactly when its
   sorted index is below the row's count of real tokens;
2. one permutation each of queries (qk), keys (L2-normalized qk) and values for all rounds at once, the rounds
   folded into the head axis (``[B, H · n_hashes, N, dh]``); permutations are differentiated by gathering
   with their inverse (:mod:`genoformer.model.permute`), not by a scatter-add;
3. FlexAttention with a ``BlockMask`` built directly from key-block index ranges (never a dense N × N
   mask), a ``mask_mod`` for chunk membership, padding and the causal band, and a ``score_mod`` giving a
   token's own key the reference's -1e5 logit (within a round the sort is a permutation, so "own key" is
   simply ``q_idx == kv_idx``);
4. the per-round outputs and log-sum-exps are permuted back to sequence order and combined with the softmax
   over rounds of the log-sum-exps (FlexAttention differentiates its log-sum-exp, so gradients are exact).

On CUDA the whole of :func:`sorted_chunk_attention` is compiled (``torch.compile``, one compiled function per
(bucket_size, causal); PyTorch's automatic dynamic shapes recompile once when the length first changes, then
one kernel serves every length): the sort, permutations and round combination fuse around FlexAttention's
Triton kernels (bf16 in, fp32 softmax statistics), the tile layout is computed once per length and cached,
and nothing waits for the host. ``GENOFORMER_FAST_COMPILE=kernel`` compiles FlexAttention alone instead
(slower: 378k vs 564k training tokens/s at 64k on an H100), a fallback should the whole function fail to
compile on another torch version. Called from code that is itself being compiled (``compile_sublayers``), the
function is traced into the caller's graph instead; it traces without a graph break (tested on CPU with
``torch._dynamo.explain``), so the attention sublayer compiles as one graph. On CPU FlexAttention runs eagerly,
densely and forward-only: the tests use that to compare forward outputs with the reference; gradients and the
compiled kernels are compared on CUDA.

Attention dropout rescales probabilities after the softmax, which no score or mask modification can
express, so ``dropout_p > 0`` runs the reference kernel instead (same results, reference speed).
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import AuxRequest, BlockMask, flex_attention

from genoformer.errors import ConfigError
from genoformer.model.permute import permute_rounds
from genoformer.model.lsh_attention import lsh_attention as reference_lsh_attention

# Edge of the tiles of the sparse block mask (FlexAttention's default, and its Triton kernels' tile).
SPARSE_BLOCK = 128
COMPILE_ENV = "GENOFORMER_FAST_COMPILE"  # 'function' or 'kernel': see compile_scope()


@functools.lru_cache(maxsize=16)
def look_back_blocks(length: int, bucket_size: int, device: torch.device, block: int = SPARSE_BLOCK):
    """The sparse layout of chunk + look-one-back attention over ``length`` sorted positions, in tiles.

    Query tile j holds sorted positions ``[j·block, (j+1)·block)``, i.e. chunks first..last; it needs the
    keys of chunks ``max(first - 1, 0)`` to last (no wrap-around): a contiguous range of key tiles
    ``start_j..end_j``, both non-decreasing in j. So key tile k is needed by a contiguous range of query
    tiles too, found by binary search. Returns ``BlockMask`` fields ``(kv_counts, kv_indices, q_counts,
    q_indices)``, shaped ``[1, 1, n]`` and ``[1, 1, n, n]`` (int32): each index row is a rotation of
    ``0..n-1`` that starts with the needed tiles, the ordered format FlexAttention reads (first ``count``
    entries used). Depends only on the lengths, so it is computed once per length and device and cached
    (2·n² int32 entries: 512 MiB at 1,048,576 tokens, 2 MiB at 65,536).
    """
    n_blocks = -(-length // block)
    tiles = torch.arange(n_blocks, device=device)
    first_chunk = tiles * block // bucket_size
    last_chunk = (((tiles + 1) * block).clamp(max=length) - 1) // bucket_size
    start = (first_chunk - 1).clamp(min=0) * bucket_size // block
    end = ((last_chunk + 1) * bucket_size - 1) // block  # inclusive
    q_start = torch.searchsorted(end, tiles, right=False)
    q_end = torch.searchsorted(start, tiles, right=True) - 1

    def ordered(first, last):
        counts = (last - first + 1).to(torch.int32)
        indices = ((first[:, None] + tiles) % n_blocks).to(torch.int32)
        return counts[None, None], indices[None, None]

    return (*ordered(start, end), *ordered(q_start, q_end))


def sort_rounds(buckets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Original positions in (bucket, position) order, ``[B, H, R, Np]``; invalid positions last, by position.

    ``buckets [B, H, R, Np]``, ``valid [B, Np]`` (False at padding). Same order as the reference's rule 1.
    """
    length = buckets.shape[-1]
    positions = torch.arange(length, device=buckets.device)
    last_bucket = buckets.max() + 1
    keys = torch.where(valid[:, None, None, :], buckets, last_bucket) * length + positions
    return keys.argsort(dim=-1)


def sorted_chunk_attention(
    qk: torch.Tensor,
    v: torch.Tensor,
    buckets: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    layout: tuple[torch.Tensor, ...],
    bucket_size: int,
    causal: bool,
) -> torch.Tensor:
    """Sort, gather, attend in chunks with look-one-back, unsort and combine rounds (module docstring).

    ``layout`` is :func:`look_back_blocks` for the padded length (a multiple of ``bucket_size``).
    """
    batch, heads, length, head_dim = qk.shape
    n_hashes = buckets.shape[2]
    padded = -(-length // bucket_size) * bucket_size
    padding = padded - length
    valid = torch.ones(batch, length, dtype=torch.bool, device=qk.device)
    if key_padding_mask is not None:
        valid = ~key_padding_mask.to(torch.bool)
    if padding:
        qk, v = F.pad(qk, (0, 0, 0, padding)), F.pad(v, (0, 0, 0, padding))
        buckets, valid = F.pad(buckets, (0, padding)), F.pad(valid, (0, padding), value=False)
    n_valid = valid.sum(dim=1)  # [B]: sorted indices below this are real keys

    order = sort_rounds(buckets, valid)  # [B, H, R, Np]
    undo = torch.empty_like(order).scatter_(-1, order, torch.arange(padded, device=qk.device).expand_as(order))

    def to_sorted(x):  # [B, H, Np, dh] -> [B, H·R, Np, dh] in each round's sorted order
        rounds = x[:, :, None].expand(-1, -1, n_hashes, -1, -1)
        return permute_rounds(rounds, order, undo).reshape(batch, heads * n_hashes, padded, head_dim)

    query, key, value = to_sorted(qk), to_sorted(F.normalize(qk, dim=-1)), to_sorted(v)
    bucket = None  # read by mask_mod only when causal; an unassigned closure cell breaks torch.compile's graph
    if causal:  # each sorted index's bucket, padding in a bucket of its own (-1) as in the reference
        bucket = torch.where(valid[:, None, None, :], buckets, -1).gather(3, order)
        bucket = bucket.reshape(batch, heads * n_hashes, padded)

    def mask_mod(b, h, q_idx, kv_idx):
        q_chunk, kv_chunk = q_idx // bucket_size, kv_idx // bucket_size
        allowed = (kv_chunk == q_chunk) | (kv_chunk == q_chunk - 1)
        target = kv_idx < n_valid[b]
        if causal:  # the reference's rule 4: the query's bucket, at most bucket_size - 1 sorted indices back
            recent = (kv_idx <= q_idx) & (kv_idx > q_idx - bucket_size)
            target = target & recent & (bucket[b, h, kv_idx] == bucket[b, h, q_idx])
        # A token may always see its own key (at the self logit), so no row is empty, not even padding's.
        return allowed & (target | (q_idx == kv_idx))

    def score_mod(score, b, h, q_idx, kv_idx):
        # The reference's SELF_LOGIT written out: a literal stays a constant in the compiled kernel (a
        # module-level float is lifted to a tensor input, which Inductor on torch 2.11 failed to lower).
        return torch.where(q_idx == kv_idx, -1e5, score)

    kv_counts, kv_indices, q_counts, q_indices = layout
    block_mask = BlockMask(
        (padded, padded), kv_counts, kv_indices, None, None, q_counts, q_indices, None, None,
        BLOCK_SIZE=(SPARSE_BLOCK, SPARSE_BLOCK), mask_mod=mask_mod,
    )
    attend = compiled_flex_attention() if qk.is_cuda and not torch.compiler.is_compiling() else flex_attention
    out, aux = attend(
        query, key, value, score_mod=score_mod, block_mask=block_mask, scale=head_dim**-0.5,
        return_aux=AuxRequest(lse=True),
    )

    out = permute_rounds(out.reshape(batch, heads, n_hashes, padded, head_dim), undo, order)
    lse = permute_rounds(aux.lse.reshape(batch, heads, n_hashes, padded, 1), undo, order)[..., 0]
    round_weights = torch.softmax(lse.float(), dim=2).to(out.dtype)
    return (out * round_weights[..., None]).sum(dim=2)[:, :, :length]


@functools.cache
def compiled_flex_attention():
    """FlexAttention compiled once per process (PyTorch's automatic dynamic shapes: one recompilation when
    the length first changes, then one kernel for every length)."""
    return torch.compile(flex_attention)


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
    """LSH attention ``out [B, H, N, dh]``: the reference's function and signature, through FlexAttention.

    ``qk``, ``v``: ``[B, H, N, dh]`` (queries and unnormalized keys share ``qk``); ``buckets``: ``LongTensor
    [B, H, n_hashes, N]`` from ``hash_buckets``; ``key_padding_mask``: ``BoolTensor [B, N]``, True at
    padding, or None. Any N works. Compiled on CUDA, eager (forward only) on CPU; ``dropout_p > 0`` runs
    the reference kernel (see the module docstring).
    """
    if dropout_p > 0.0:
        return reference_lsh_attention(
            qk, v, buckets, bucket_size=bucket_size, key_padding_mask=key_padding_mask,
            causal=causal, dropout_p=dropout_p, generator=generator,
        )
    padded = -(-qk.shape[2] // bucket_size) * bucket_size
    layout = look_back_blocks(padded, bucket_size, qk.device)
    if qk.is_cuda and compile_scope() == "function" and not torch.compiler.is_compiling():
        return compiled_chunk_attention(bucket_size, causal)(qk, v, buckets, key_padding_mask, layout)
    return sorted_chunk_attention(qk, v, buckets, key_padding_mask, layout, bucket_size, causal)


def compile_scope() -> str:
    """What is compiled on CUDA: ``function`` (the default: the whole of :func:`sorted_chunk_attention`, so the
    sort, gathers, round combination and their backward fuse around the kernel) or ``kernel`` (FlexAttention
    alone, the rest eager), from the environment variable ``GENOFORMER_FAST_COMPILE``."""
    scope = os.environ.get(COMPILE_ENV, "function")
    if scope not in ("function", "kernel"):
        raise ConfigError(f"environment variable {COMPILE_ENV} must be 'function' or 'kernel', got {scope!r}")
    return scope


@functools.lru_cache(maxsize=None)
def compiled_chunk_attention(bucket_size: int, causal: bool):
    """:func:`sorted_chunk_attention` for one ``(bucket_size, causal)``, compiled once per process with both as
    constants (FlexAttention inside it is compiled with it). One compiled function per pair: given a single
    compiled function, PyTorch's automatic dynamic shapes turn an integer argument that changes between calls
    into a symbol, and a symbolic bucket size inside the mask gave wrong results on torch 2.11. Sequence
    lengths stay dynamic (one recompilation when the length first changes, then one kernel for all lengths)."""

    def attention(qk, v, buckets, key_padding_mask, layout):
        return sorted_chunk_attention(qk, v, buckets, key_padding_mask, layout, bucket_size, causal)

    return torch.compile(attention)
