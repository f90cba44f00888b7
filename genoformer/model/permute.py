"""Per-round permutations along the sequence with a gather in both directions.

LSH attention reorders every hash round by a permutation (sort by bucket) and later undoes it. Written as
``x.gather(dim, index)``, autograd differentiates the gather with a scatter-add into zeros: atomic adds over
the whole activation, in bf16 too. But the index of a permutation has an inverse, and the gradient of
gathering by a permutation is gathering by its inverse: no atomics, no zero fill, one read and one write.
"""

from __future__ import annotations

import torch


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x [B, H, R, N, D]`` gathered along N by ``index [B, H, R, N]``.

    On CUDA a ``gather`` (the compiled fast path fuses it). Elsewhere whole rows of D values are copied with one
    ``index_select`` over the flattened rows, about 3x faster on a CPU than a gather with an expanded index; an
    ``x`` broadcast over the rounds (stride 0) is read from its one copy, not materialized R times.
    """
    if x.is_cuda:
        return x.gather(3, index[..., None].expand(*index.shape, x.shape[-1]))
    batch, heads, rounds, length = index.shape
    if x.stride(2) == 0:
        rows, blocks = x[:, :, 0].reshape(-1, x.shape[-1]), torch.arange(batch * heads).view(batch, heads, 1, 1)
    else:
        rows, blocks = x.reshape(-1, x.shape[-1]), torch.arange(batch * heads * rounds).view(batch, heads, rounds, 1)
    flat = (index + blocks.to(index.device) * length).flatten()
    return rows.index_select(0, flat).view(batch, heads, rounds, length, x.shape[-1])


class PermuteRounds(torch.autograd.Function):
    """``apply(x [B, H, R, N, D], index, inverse) -> x[..., index[...], :]``; ``index [B, H, R, N]`` must be
    a permutation of ``0..N-1`` in each (B, H, R) row and ``inverse`` its inverse. ``x`` may be an expanded
    view (e.g. one tensor broadcast over the rounds): autograd sums the gradient over the broadcast axis."""

    @staticmethod
    def forward(ctx, x, index, inverse):
        ctx.save_for_backward(inverse)
        return gather_rows(x, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return gather_rows(grad, inverse), None, None


def permute_rounds(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Reorder ``x [B, H, R, N, D]`` by the permutations ``index [B, H, R, N]`` (see :class:`PermuteRounds`)."""
    return PermuteRounds.apply(x, index, inverse)
