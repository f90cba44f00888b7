"""The position-wise feed-forward sublayer, applied in chunks along the sequence (Reformer, section 3).

Every position is transformed independently, so the sequence can be cut into ``chunks`` pieces that are
processed one after another: the [N, ff_mult·dim] hidden activation then only exists for N/chunks
positions at a time. Same result, less peak memory, a little less parallelism. The reversible stack's
backward pass recomputes and differentiates it chunk by chunk too (see reversible.py), with each chunk's dropout
key (:func:`chunk_key`), so it draws the forward's masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genoformer.model.dropout import derive, dropout


class FeedForward(nn.Module):
    """Pre-LayerNorm GELU MLP ``dim -> mult·dim -> dim`` with dropout on its hidden layer and its output, run in
    ``chunks`` along the sequence.

    ``forward(x [B, N, dim], key) -> [B, N, dim]`` applies ``position_wise`` to each of ``x.chunk(chunks, dim=1)``
    with its :func:`chunk_key`; ``key`` None (the default) means no dropout (genoformer.model.dropout).
    """

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0, chunks: int = 1):
        super().__init__()
        self.chunks = chunks
        self.dropout = dropout
        self.norm = nn.LayerNorm(dim)
        # "net.0" and "net.3": the weights' names in checkpoints (an nn.Sequential with dropout modules in between)
        self.net = nn.ModuleDict({"0": nn.Linear(dim, mult * dim), "3": nn.Linear(mult * dim, dim)})

    def position_wise(self, x: torch.Tensor, key: int | None = None) -> torch.Tensor:
        """The sublayer on ``x [B, n, dim]`` in one piece, its dropout masks drawn from ``key``."""
        hidden = dropout(F.gelu(self.net["0"](self.norm(x))), self.dropout, key)
        return dropout(self.net["3"](hidden), self.dropout, key, offset=hidden.numel())  # the stream's next elements

    def forward(self, x: torch.Tensor, key: int | None = None) -> torch.Tensor:
        """The sublayer on ``x [B, N, dim]``, ``chunks`` pieces along N at a time."""
        parts = [self.position_wise(part, chunk_key(key, i)) for i, part in enumerate(x.chunk(self.chunks, dim=1))]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def chunk_key(key: int | None, index: int) -> int | None:
    """The dropout key of the feed-forward's chunk ``index`` (None: no dropout)."""
    return derive(key, index)
