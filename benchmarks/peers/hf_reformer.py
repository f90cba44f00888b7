"""Hugging Face transformers ``ReformerForMaskedLM``: all-LSH layers, chunk length 64, 4 hashes, axial
position embeddings shaped to the sequence (HF requires ``prod(axial_pos_shape) == seq_len`` in training)."""

from __future__ import annotations

import math

import torch
from torch import nn


class HFReformerLM(nn.Module):
    """Wraps the HF model so ``forward(input_ids) -> logits``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits


def axial_shape(seq_len: int) -> tuple[int, int]:
    """Two factors of ``seq_len`` as close to its square root as possible (HF's axial embedding grid)."""
    first = 1 << (int(math.log2(seq_len)) // 2)
    while seq_len % first:
        first //= 2
    return first, seq_len // first


def build(seq_len: int, vocab_size: int, dim: int, depth: int, heads: int) -> nn.Module:
    """HF ``ReformerForMaskedLM`` (``seq_len`` must be a multiple of the chunk length, 64)."""
    from transformers import ReformerConfig, ReformerForMaskedLM

    config = ReformerConfig(
        vocab_size=vocab_size, hidden_size=dim, num_attention_heads=heads, attention_head_size=dim // heads,
        attn_layers=["lsh"] * depth, feed_forward_size=4 * dim, hidden_act="gelu", is_decoder=False,
        lsh_attn_chunk_length=64, num_hashes=4, max_position_embeddings=seq_len,
        axial_pos_shape=axial_shape(seq_len), axial_pos_embds_dim=(dim // 4, dim - dim // 4),
        hidden_dropout_prob=0.0, lsh_attention_probs_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0,
        pad_token_id=0, eos_token_id=None,
    )
    return HFReformerLM(ReformerForMaskedLM(config))
