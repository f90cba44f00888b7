"""reformer-pytorch 1.4.4 (lucidrains) ``ReformerLM`` at its defaults (bucket 64, 4 hashes, reversible, chunked
feed-forward), the same width and depth. Installed from wheels (``../shared/tools/peer-wheels.sh``)."""

from __future__ import annotations

from torch import nn


def build(seq_len: int, vocab_size: int, dim: int, depth: int, heads: int) -> nn.Module:
    """``ReformerLM``; it needs ``seq_len`` to be a multiple of twice its bucket size (128)."""
    from reformer_pytorch import ReformerLM

    return ReformerLM(num_tokens=vocab_size, dim=dim, depth=depth, heads=heads, dim_head=dim // heads,
                      max_seq_len=seq_len, bucket_size=64, n_hashes=4, causal=False)
