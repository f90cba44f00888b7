"""A plain full-attention Transformer encoder on PyTorch's scaled_dot_product_attention (flash kernels).

Pre-LayerNorm blocks (attention, then a GELU MLP of 4·dim), rotary positions (the same as genoformer's),
tied embeddings: the usual modern encoder, exact O(N²) attention, as the baseline a Reformer must beat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genoformer.model.positional import apply_rotary


class EncoderBlock(nn.Module):
    """Pre-LN multi-head self-attention (SDPA) and MLP, each with a residual connection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.to_qkv(self.attn_norm(x)).view(batch, length, 3, self.heads, dim // self.heads).unbind(2)
        q, k, v = apply_rotary(q.transpose(1, 2)), apply_rotary(k.transpose(1, 2)), v.transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)
        x = x + self.to_out(attended.transpose(1, 2).reshape(batch, length, dim))
        return x + self.mlp(x)


class SDPAEncoderLM(nn.Module):
    """Embedding, ``depth`` encoder blocks, final LayerNorm, tied output layer: ``forward(ids) -> logits``."""

    def __init__(self, vocab_size: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.embedding.weight, std=0.02)  # the tied output layer needs small weights

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.norm(x), self.embedding.weight)


def build(seq_len: int, vocab_size: int, dim: int, depth: int, heads: int) -> nn.Module:
    """The SDPA encoder (any sequence length)."""
    return SDPAEncoderLM(vocab_size, dim, depth, heads)
