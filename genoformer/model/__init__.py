"""The Reformer: LSH hashing, LSH attention, reversible residual stack, chunked feed-forward, heads.

The attention kernel is imported from its module (``from genoformer.model.lsh_attention import lsh_attention``):
re-exporting it here would shadow the submodule of the same name.
"""

from genoformer.model.hashing import hash_buckets
from genoformer.model.lsh_attention import LSHSelfAttention, full_attention, select_kernel
from genoformer.model.reformer import (
    Reformer,
    ReformerConfig,
    ReformerForMaskedLM,
    ReformerForSequenceClassification,
    ReformerForTokenClassification,
    load_pretrained,
    save_pretrained,
)

__all__ = [
    "LSHSelfAttention",
    "Reformer",
    "ReformerConfig",
    "ReformerForMaskedLM",
    "ReformerForSequenceClassification",
    "ReformerForTokenClassification",
    "full_attention",
    "hash_buckets",
    "load_pretrained",
    "save_pretrained",
    "select_kernel",
]
