"""The position-wise feed-forward sublayer, applied in chunks along the sequence (Reformer, section 3).

Every position is transformed independently, so the sequence can be cut into ``chunks`` pieces that are
processed one after another: the [N, ff_mult·dim] hidden activation then only exists for N/chunks
positions at a time. Same result, less peak memory, a little less parallelism. The reversible stack's
backward pass recomputes and differentiates it chunk by chunk too (see reversible.py).
"""

from __future__ import annotations

import torch
from torch import nn


class FeedForward(nn.Module):
    """Pre-LayerNorm GELU MLP ``dim -> mult·dim -> dim`` with dropout, run in ``chunks`` along the sequence.

    ``forward(x [B, N, dim]) -> [B, N, dim]`` equals ``position_wise`` on the whole of ``x``;
    ``position_wise`` is what is applied to each of ``x.chunk(chunks, dim=1)``.
    """

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0, chunks: int = 1):
        super().__init__()
        self.chunks = chunks
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(
            nn.Linear(dim, mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mult * dim, dim),
            nn.Dropout(dropout),
        )

    def position_wise(self, x: torch.Tensor) -> torch.Tensor:
        """The sublayer on ``x [B, n, dim]`` in one piece."""
        return self.net(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The sublayer on ``x [B, N, dim]``, ``chunks`` pieces along N at a time."""
        if self.chunks == 1:
            return self.position_wise(x)
        return torch.cat([self.position_wise(part) for part in x.chunk(self.chunks, dim=1)], dim=1)
