"""Random inputs for the LSH attention kernels' tests (tests/test_fast_path.py, tests/test_chunked_lsh.py)."""

from __future__ import annotations

import sys

import torch

import genoformer.model.lsh_attention  # noqa: F401  (the module, not the function of the same name)
from genoformer.model.hashing import hash_buckets

reference = sys.modules["genoformer.model.lsh_attention"]


def random_case(batch, heads, length, head_dim, bucket_size, n_hashes, *, padded, seed, dtype, device="cpu"):
    """Random qk, v, buckets (from the real hashing) and a key padding mask (True = padding) or None."""
    generator = torch.Generator().manual_seed(seed)
    qk = torch.randn(batch, heads, length, head_dim, generator=generator, dtype=torch.float64)
    v = torch.randn(batch, heads, length, head_dim, generator=generator, dtype=torch.float64)
    n_buckets = reference.n_buckets_for(length, bucket_size)
    buckets = hash_buckets(qk, n_buckets, n_hashes, seed)
    mask = None
    if padded:
        mask = torch.rand(batch, length, generator=generator) < 0.25
        mask[0, -length // 3:] = True  # a padded tail, as a batch of unequal lengths has
    to = dict(device=device)
    return (qk.to(dtype=dtype, **to), v.to(dtype=dtype, **to), buckets.to(**to),
            None if mask is None else mask.to(**to))


# (batch, heads, length, head_dim, bucket_size, n_hashes, causal, padded): prime and non-multiple lengths,
# one chunk, many chunks, buckets smaller and larger than the 128-wide sparse tiles, not a power of two.
CASES = [
    (2, 2, 37, 8, 4, 3, False, True),
    (1, 3, 131, 16, 8, 2, True, False),
    (1, 1, 8, 4, 8, 2, False, False),
    (2, 2, 257, 8, 64, 4, False, True),
    (1, 2, 509, 16, 200, 1, True, True),
    (1, 1, 384, 8, 128, 2, False, False),
]
