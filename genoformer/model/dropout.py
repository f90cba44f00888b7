"""Hidden dropout with counter-based masks: each element's keep bit is a pure function of a key and its index.

``nn.Dropout`` draws its mask from the random number generator, so the reversible backward, which recomputes
each block, could only redraw the forward's masks by saving and restoring the generator's state, and a compiled
graph draws its random numbers its own way. Here the mask is ``hash(key, element index) >= p · 2**32``: recomputed
from the same key it is the same mask, eager or compiled, with no generator involved, and it fuses into the
elementwise work around it.

Keys. A model in training mode draws one 32-bit dropout seed per forward pass from the CPU random number
generator (the trainer seeds it per process and saves it in checkpoints); :func:`derive` turns it into one key per
dropout site (embedding; each block's attention output; each block's feed-forward, per sequence chunk) on the
host, so the compiled sublayers receive plain integers. A key of None means no dropout (eval mode, or p = 0).

The hash. Two rounds of MurmurHash3's 32-bit finalizer (``fmix32``, a bijection with full avalanche): the first
on ``index mod 2**32`` XOR the key, the second on that XOR ``index >> 32`` plus the key, so that two keys give two
unrelated streams, not one stream shifted. Values are 32-bit numbers held in int64 tensors and every product is
kept below 2**63 in magnitude (:func:`mul32`), so nothing overflows (no reliance on signed wraparound), and right
shifts of non-negative numbers are logical. The same functions hash Python integers (keys) and tensors (masks).
Tests check the keep fraction and independence across sites, steps and neighbouring elements
(tests/test_dropout.py).
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: spreads small site ids before they are mixed


def mul32(x, c: int):
    """``x · c mod 2**32`` for ``x`` in [0, 2**32) (int or int64 tensor) and a constant ``c`` in [0, 2**32).

    ``c`` above 2**31 is replaced by ``c - 2**32`` (the same modulo 2**32), so the product stays within
    (-2**63, 2**63) and the low 32 bits of its two's complement are the result; ``x`` appears once, which keeps
    Inductor's inlined expression small (each repeated use doubles what it walks)."""
    return (x * (c - 2**32 if c >= 2**31 else c)) & MASK32


def fmix32(x):
    """MurmurHash3's finalizer on 32-bit ``x`` (int or int64 tensor in [0, 2**32))."""
    x = x ^ (x >> 16)
    x = mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def draw_seed() -> int:
    """A 32-bit dropout seed from the CPU random number generator (one draw on the host; no device involved)."""
    return torch.randint(0, 2**32, (1,), dtype=torch.int64).tolist()[0]


def derive(key: int | None, *ids: int) -> int | None:
    """The 32-bit key of a sub-site ``ids`` (non-negative ints) of ``key``, computed on the host; None stays None."""
    if key is None:
        return None
    for site in ids:
        key = fmix32(key ^ fmix32((site * GOLDEN + GOLDEN) & MASK32))
    return key


def keep_mask(shape, key: int, p: float, device: torch.device, offset: int = 0) -> torch.Tensor:
    """The keep mask (bool, ``shape``) of elements ``offset, offset + 1, ...`` (row-major) of stream ``key``:
    True with probability ``1 - p``, each element independently."""
    index = torch.arange(offset, offset + shape.numel(), device=device, dtype=torch.int64)
    h = fmix32((index & MASK32) ^ key)
    h = fmix32(((h ^ (index >> 32)) + key) & MASK32)
    return (h >= round(p * 2**32)).view(shape)


def dropout(x: torch.Tensor, p: float, key: int | None, offset: int = 0) -> torch.Tensor:
    """``x`` with the elements outside :func:`keep_mask` zeroed and the rest scaled by ``1 / (1 - p)``; ``x`` itself
    when ``key`` is None or ``p`` is 0."""
    if key is None or p == 0:
        return x
    return x * keep_mask(x.shape, key, p, x.device, offset) * (1.0 / (1.0 - p))
