"""LSH attention on the CPU (any device without the CUDA fast path): the reference's chunks, less memory traffic.

The reference (:mod:`genoformer.model.lsh_attention`, whose module docstring states the rules) is written to be
read: it builds, per chunk, tensors of the keys' positions, validity and self-match the size of the logits, and
masks the logits out of place, twice. On a CPU, where attention is bound by memory bandwidth, those passes cost
more than the two matrix products. This kernel computes the same function with what the sort already tells:

1. Sorting as the reference (rule 1: ``(bucket, position)``, padding last), with the permutation and its inverse
   (:mod:`genoformer.model.permute`), so the backward pass gathers instead of scatter-adding.
2. Validity without per-logit tensors: padding sorts after every real token, so a key is valid exactly when its
   sorted index is below its row's count of real tokens; unpadded, only the first chunk's look-back (which holds
   nothing) is masked. A token's own key is always at the same place: the diagonal of the chunk's own half
   (within a round each position appears once), so rule 4's self logit is one in-place fill of that diagonal.
3. The logits are masked in place, and with one hash round the softmax output is all that is needed (its
   log-sum-exp only weighs rounds against each other).

Outputs and gradients equal the reference's to float64 rounding (tests/test_chunked_lsh.py, random inputs);
attention dropout runs the reference kernel (same results, reference speed). Measured in
benchmarks/attention_cpu.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genoformer.model.lsh_attention import SELF_LOGIT, look_one_back
from genoformer.model.lsh_attention import lsh_attention as reference_lsh_attention
from genoformer.model.permute import permute_rounds


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
    """Same signature and results as :func:`genoformer.model.lsh_attention.lsh_attention`: ``out [B, H, N, dh]``
    of ``qk, v [B, H, N, dh]`` over ``buckets [B, H, n_hashes, N]``; see the module docstring."""
    if dropout_p > 0:
        return reference_lsh_attention(qk, v, buckets, bucket_size=bucket_size, key_padding_mask=key_padding_mask,
                                       causal=causal, dropout_p=dropout_p, generator=generator)
    batch, heads, length, dim = qk.shape
    n_hashes = buckets.shape[2]
    n_chunks = max(1, math.ceil(length / bucket_size))
    padded = n_chunks * bucket_size
    positions = torch.arange(padded, device=qk.device)
    has_padding = key_padding_mask is not None or padded > length
    if padded > length:
        qk, v = F.pad(qk, (0, 0, 0, padded - length)), F.pad(v, (0, 0, 0, padded - length))
        buckets = F.pad(buckets, (0, padded - length))

    # Rule 1: sort each round by (bucket, position), padding last (as one bucket after every other).
    keys = buckets * padded + positions
    if has_padding:
        padding = (positions >= length).expand(batch, padded) if key_padding_mask is None else \
            F.pad(key_padding_mask.to(torch.bool), (0, padded - length), value=True)
        keys = torch.where(padding[:, None, None, :], (buckets.max() + 1) * padded + positions, keys)
    order = keys.argsort(dim=-1)
    inverse = torch.empty_like(order).scatter_(-1, order, positions.expand_as(order))
    shape = (batch, heads, n_hashes, n_chunks, bucket_size, dim)

    def sort(x):  # [B, H, Np, D] -> [B, H, R, C, L, D], every round in its own order
        return permute_rounds(x[:, :, None].expand(-1, -1, n_hashes, -1, -1), order, inverse).reshape(shape)

    query = sort(qk)
    key = look_one_back(F.normalize(query, dim=-1), 0.0)
    value = look_one_back(sort(v), 0.0)
    compute_dtype = torch.promote_types(qk.dtype, torch.float32)
    logits = torch.matmul(query * dim**-0.5, key.transpose(-1, -2)).to(compute_dtype)  # [B, H, R, C, L, 2L]

    # Rules 2 and 4, in place: invalid keys (padding; before the first chunk) and, if causal, the band.
    chunk_index = positions.view(n_chunks, bucket_size)
    key_index = torch.cat([chunk_index, chunk_index - bucket_size], dim=-1)  # [C, 2L]: sorted index of each key
    if has_padding:
        n_real = (~padding).sum(dim=1)
        invalid = (key_index < 0) | (key_index >= n_real[:, None, None])  # [B, C, 2L]
        logits.masked_fill_(invalid[:, None, None, :, None, :], float("-inf"))
    else:
        logits[..., 0, :, bucket_size:] = float("-inf")
    if causal:
        sorted_buckets = buckets.gather(-1, order).reshape(shape[:-1])  # [B, H, R, C, L]
        key_buckets = look_one_back(sorted_buckets, -1)
        offset = chunk_index[:, :, None] - key_index[:, None, :]  # [C, L, 2L]
        band = (key_buckets[..., None, :] == sorted_buckets[..., :, None]) & (offset >= 0) & (offset < bucket_size)
        logits.masked_fill_(~band, float("-inf"))
    logits[..., :bucket_size].diagonal(dim1=-2, dim2=-1).fill_(SELF_LOGIT)

    # Rules 3 and 5: softmax per round, rounds combined by the softmax of their log-sum-exps.
    if n_hashes == 1:
        weights = torch.softmax(logits, dim=-1)
        out = torch.matmul(weights.to(value.dtype), value).reshape(batch, heads, 1, padded, dim)
        return permute_rounds(out, inverse, order)[:, :, 0, :length]
    lse = torch.logsumexp(logits, dim=-1)
    weights = torch.exp(logits - lse[..., None])
    out = torch.matmul(weights.to(value.dtype), value).reshape(batch, heads, n_hashes, padded, dim)
    out = permute_rounds(out, inverse, order)
    lse = lse.reshape(batch, heads, n_hashes, padded).gather(3, inverse)
    round_weights = torch.softmax(lse, dim=2).to(out.dtype)
    return (out * round_weights[..., None]).sum(dim=2)[:, :, :length]
