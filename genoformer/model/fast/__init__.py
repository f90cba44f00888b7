"""The CUDA fast path of the Reformer: LSH attention through compiled FlexAttention (see flex_lsh.py).

``genoformer.model.lsh_attention.select_kernel`` imports this package on CUDA and uses
:func:`lsh_attention` when :func:`is_available` says yes.
"""

from __future__ import annotations

import torch

from genoformer.model.fast.flex_lsh import lsh_attention

__all__ = ["is_available", "lsh_attention"]


def is_available(device: torch.device) -> bool:
    """True on a CUDA GPU that FlexAttention's Triton kernels support (compute capability 8.0 or newer)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
