"""HyenaDNA's standalone model (HazyResearch/hyena-dna, ``standalone_hyenadna.py``), same width and depth.

The file is fetched, not committed: a checkout of the repository in ``.external/hyena-dna`` (git-ignored).
Its layer settings are those of the released HyenaDNA checkpoints (filter order 64, short filter 3,
modulated implicit filters); d_model 512, 6 layers, d_inner 2048; a tied output layer makes it a
masked-LM of the same shape as the others. The file imports a tokenizer base class from
``transformers.tokenization_utils``, which transformers 5 no longer has: a small alias module stands in
(the tokenizer is not used here).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SOURCE = Path(__file__).resolve().parents[2] / ".external" / "hyena-dna" / "standalone_hyenadna.py"


def load_module():
    """Import ``standalone_hyenadna.py`` from the checkout."""
    if not SOURCE.is_file():
        raise FileNotFoundError(f"{SOURCE}: no HyenaDNA checkout (fetch github:HazyResearch/hyena-dna there)")
    try:
        import transformers.tokenization_utils  # noqa: F401  (only checks that it exists)
    except ImportError:
        from tokenizers import AddedToken
        from transformers import PreTrainedTokenizer

        alias = types.ModuleType("transformers.tokenization_utils")
        alias.AddedToken, alias.PreTrainedTokenizer = AddedToken, PreTrainedTokenizer
        sys.modules["transformers.tokenization_utils"] = alias
    spec = importlib.util.spec_from_file_location("standalone_hyenadna", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HyenaDNALM(nn.Module):
    """HyenaDNA backbone + tied output layer: ``forward(input_ids) -> logits``."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids)
        return F.linear(hidden, self.backbone.backbone.embeddings.word_embeddings.weight)


def build(seq_len: int, vocab_size: int, dim: int, depth: int, heads: int) -> nn.Module:
    """``HyenaDNAModel`` with implicit filters of length ``seq_len`` (``heads`` does not apply)."""
    hyena = load_module()
    layer = {"emb_dim": 5, "filter_order": 64, "local_order": 3, "l_max": seq_len + 2, "modulate": True,
             "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}
    backbone = hyena.HyenaDNAModel(d_model=dim, n_layer=depth, d_inner=4 * dim, vocab_size=vocab_size,
                                   layer=layer, embed_dropout=0.0, resid_dropout=0.0, use_head=False)
    return HyenaDNALM(backbone)
