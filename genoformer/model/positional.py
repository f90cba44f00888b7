"""Rotary position embeddings (RoPE, Su et al. 2021) for the shared query/key vectors.

Why rotary and not the paper's axial embeddings or a learned table:
- Relative: rotating each (i, i + dh/2) pair of channels by ``position · θ_i`` makes the dot product of two
  rotated vectors depend only on their distance, which is what matters in DNA (a motif means the same
  thing at base 10 and base 900,000).
- Nothing learned, nothing to size: no [max_len, dim] table (4 GiB at 1M tokens × 1,024 dims), no axial
  shape that the sequence length must factor into (both existing Reformers impose one), so any length works
  and a model trained on short windows still runs, and can be fine-tuned, on longer ones.
- Rotation preserves norms, so it commutes with the key normalization of shared-QK attention.

Rotary with LSH and shared QK: the rotation is applied to qk once, *before* hashing, and the same rotated
vectors are used as queries and (normalized) keys. Hashing the rotated vectors is consistent with what is
attended to: two tokens share a bucket when their rotated vectors point the same way, i.e. when they are
similar *at their relative offset*; the low-frequency channels also nudge nearby tokens into the same
bucket. (Hashing the unrotated vectors would bucket by content alone and then attend by rotated similarity,
a mismatch between what is found and what is scored.)

Angles are computed in float64 (a float32 product position·θ loses ~0.03 rad at position 10^6) and cached
per (length, device, dtype), since every layer uses the same table.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=4)
def rotary_tables(
    length: int, dim: int, base: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``[length, dim]`` for positions ``0..length-1`` (each half repeated twice).

    Made outside inference mode even when called inside it, so a cached table can be used for training later.
    """
    with torch.inference_mode(False):
        inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
        angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotate ``x [..., N, dh]`` (``dh`` even) by its positions ``0..N-1`` along the second-to-last axis."""
    length, dim = x.shape[-2], x.shape[-1]
    if dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {dim}")
    # Under torch.compile the tables are computed inside the graph (dynamo does not use an lru_cache).
    tables = rotary_tables.__wrapped__ if torch.compiler.is_compiling() else rotary_tables
    cos, sin = tables(length, dim, float(base), x.device, x.dtype)
    first, second = x.chunk(2, dim=-1)
    rotated_half = torch.cat([-second, first], dim=-1)
    return x * cos + rotated_half * sin
