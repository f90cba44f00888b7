"""Angular locality-sensitive hashing of shared query/key vectors (Reformer, section 2).

A vector x is hashed by a random rotation R (a Gaussian matrix of shape [d, b/2]) to
``argmax([xR ; -xR])``, one of b buckets: vectors at a small angle land in the same bucket with high
probability. ``n_hashes`` independent rotations give independent rounds.

Cost. One rotation into b buckets costs O(N·d·b). With N/bucket_size buckets that is O(N²·d/bucket_size)
again, so when ``n_buckets`` is large the bucket is *factorized*: n_buckets = b1·b2 with two rotations of
b1/2 and b2/2 columns, bucket = i1·b2 + i2. The cost drops to O(N·d·(b1 + b2)) = O(N·d·sqrt(n_buckets)),
e.g. 2·128 columns instead of 8,192 for a million tokens in buckets of 64.

Reproducibility. The rotations are drawn from ``torch.Generator(device=qk.device).manual_seed(seed)``,
shared across the batch (so a sequence hashes the same whatever else is in its batch, for the same
``n_buckets``: ``lsh_attention.lsh_buckets`` gives each row the count for its own number of real tokens) and
independent per head and per round. The same seed always gives the same buckets, which is what lets the
reversible backward pass recompute attention exactly. The rotation is done in float32 (float64 for float64
inputs) whatever the input dtype, so bf16 activations do not create spurious ties.
"""

from __future__ import annotations

import functools
import math

import torch

# Above this many buckets the rotation is factorized into two smaller ones (see the module docstring).
FACTORIZE_ABOVE = 64


def bucket_factors(n_buckets: int) -> tuple[int, ...]:
    """The bucket counts of the rotations that make up ``n_buckets``: ``(n_buckets,)`` or ``(b1, b2)``.

    Factorizes only when ``n_buckets > FACTORIZE_ABOVE`` and into the most balanced pair of even factors;
    a count with no even factor pair (e.g. 2·prime) stays one rotation.
    """
    if n_buckets < 2 or n_buckets % 2:
        raise ValueError(f"n_buckets must be even and at least 2, got {n_buckets}")
    if n_buckets <= FACTORIZE_ABOVE:
        return (n_buckets,)
    for b1 in range(math.isqrt(n_buckets), 1, -1):
        b2, rest = divmod(n_buckets, b1)
        if rest == 0 and b1 % 2 == 0 and b2 % 2 == 0:
            return (b1, b2)
    return (n_buckets,)


@torch.library.custom_op("genoformer::draw_rotations", mutates_args=())
def draw_rotations(
    heads: int, dim: int, n_hashes: int, half_widths: list[int], seed: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Gaussian rotations for factors of ``2·w`` buckets, ``w`` in ``half_widths``, drawn in that order from
    ``seed``, side by side: ``[heads, dim, n_hashes, sum(half_widths)]``.

    A custom operator, so that ``torch.compile`` keeps it in the graph as one opaque call: a
    ``torch.Generator`` made inside a compiled function breaks the graph (four breaks per attention sublayer).
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.cat(
        [torch.randn(heads, dim, n_hashes, w, generator=generator, device=device, dtype=dtype) for w in half_widths],
        dim=-1,
    )


@draw_rotations.register_fake
def _(heads, dim, n_hashes, half_widths, seed, device, dtype):
    return torch.empty(heads, dim, n_hashes, sum(half_widths), device=device, dtype=dtype)


def random_rotations(
    heads: int, dim: int, n_hashes: int, factors: tuple[int, ...], seed: int, device, dtype
) -> list[torch.Tensor]:
    """One Gaussian rotation ``[heads, dim, n_hashes, b/2]`` per factor ``b``, drawn from ``seed``."""
    half_widths = [b // 2 for b in factors]
    rotations = draw_rotations(heads, dim, n_hashes, half_widths, seed, torch.device(device), dtype)
    return list(rotations.split(half_widths, dim=-1))


def rotated_argmax(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """``argmax([xR ; -xR])`` per round: ``x [B, H, N, d]``, ``rotation [H, d, R, b/2]`` -> ``[B, H, R, N]``."""
    rotated = torch.einsum("bhnd,hdrk->bhrnk", x, rotation)  # [B, H, R, N, b/2]
    return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)


@functools.cache
def compiled_rotated_argmax():
    """:func:`rotated_argmax` compiled, for CUDA: one fused kernel instead of an einsum, a concatenation and an
    eager argmax over a short axis (the slowest kernel of a training step before it was compiled)."""
    return torch.compile(rotated_argmax)


@torch.no_grad()
def hash_buckets(qk: torch.Tensor, n_buckets: int, n_hashes: int, seed: int) -> torch.Tensor:
    """Bucket ids ``LongTensor [B, H, n_hashes, N]`` in ``[0, n_buckets)`` for ``qk [B, H, N, dh]``.

    ``n_buckets`` must be even (the rotation picks among ``[xR ; -xR]``). Not differentiable (an argmax).
    Runs in float32 (float64 for float64 input) even under autocast.
    """
    batch, heads, length, dim = qk.shape
    dtype = torch.float64 if qk.dtype == torch.float64 else torch.float32
    factors = bucket_factors(n_buckets)
    rotations = random_rotations(heads, dim, n_hashes, factors, seed, qk.device, dtype)
    # Inside a compiled caller (compile_sublayers) the plain function is traced into the caller's graph.
    argmax = compiled_rotated_argmax() if qk.is_cuda and not torch.compiler.is_compiling() else rotated_argmax
    buckets = torch.zeros(batch, heads, n_hashes, length, dtype=torch.long, device=qk.device)
    with torch.autocast(qk.device.type, enabled=False):
        x = qk.to(dtype)
        for b, rotation in zip(factors, rotations):
            buckets = buckets * b + argmax(x, rotation)
    return buckets
