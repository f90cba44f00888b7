"""Counting the operations that make the host wait for the device, on any device.

On CUDA, ``torch.cuda.set_sync_debug_mode`` reports such waits; on CPU nothing waits, but the same operations
still pass through the dispatcher, so a dispatch mode can count them: reading a tensor's value on the host
(``.item()``, ``int()``, ``float()``) and every operation whose output shape depends on tensor values (boolean
indexing, ``nonzero``, ``masked_select``, ``unique``). Inside ``optimizer.step`` they are not counted: the
optimizers' step counters live on the host even when training on a GPU.
"""

from collections import Counter

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

ALWAYS_WAITS = {"_local_scalar_dense", "nonzero", "masked_select", "unique_consecutive", "_unique", "_unique2",
                "unique_dim", "equal", "is_nonzero"}
WAITS_WITH_A_BOOL_INDEX = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in indices)


class HostSyncCounter(TorchDispatchMode):
    """``with HostSyncCounter() as syncs: ...`` then ``syncs.counts``: a Counter of the waiting operations."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self._in_optimizer = False

    def __enter__(self):
        self._hooks = [register_optimizer_step_pre_hook(lambda *_: self._optimizer(True)),
                       register_optimizer_step_post_hook(lambda *_: self._optimizer(False))]
        return super().__enter__()

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        return super().__exit__(*exc)

    def _optimizer(self, inside: bool) -> None:
        self._in_optimizer = inside

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not self._in_optimizer and (name in ALWAYS_WAITS or
                                       (name in WAITS_WITH_A_BOOL_INDEX and _has_bool_index(args))):
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))
