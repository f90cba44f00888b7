"""Counter-based hidden dropout (genoformer.model.dropout): the hash against NumPy's uint32 arithmetic, the masks'
statistics on large tensors (tolerances from the binomial standard deviation), and replay in the model."""

import math

import numpy as np
import pytest
import torch

from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.model.dropout import derive, dropout, fmix32, keep_mask

Z = 5  # tolerance in standard deviations: a sound mask fails a check with probability below 1e-6
N = 1 << 22


def fmix32_numpy(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix32 in wrapping uint32 arithmetic, the way it is written in C."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def test_the_hash_is_murmur3_fmix32_on_ints_and_tensors():
    values = np.random.default_rng(0).integers(0, 2**32, 10_000, dtype=np.uint64)
    values[:4] = [0, 1, 2**31, 2**32 - 1]
    expected = fmix32_numpy(values).astype(np.int64)
    assert torch.equal(fmix32(torch.from_numpy(values.astype(np.int64))), torch.from_numpy(expected))
    assert [fmix32(int(v)) for v in values[:50]] == expected[:50].tolist()


def assert_binomial(count: int, n: int, q: float, what: str):
    sd = math.sqrt(n * q * (1 - q))
    assert abs(count - n * q) < Z * sd, f"{what}: {count} of {n}, expected {n * q:.0f} +- {sd:.0f}"


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_is_one_minus_p(p):
    mask = keep_mask(torch.Size([N]), derive(123, 4, 1), p, torch.device("cpu"))
    assert_binomial(int(mask.sum()), N, 1 - p, f"kept at p={p}")


def pairs():
    """Masks that must be independent of each other: other sites of a pass, other passes, neighbours."""
    p, device, shape = 0.3, torch.device("cpu"), torch.Size([N])
    seed, other_seed = 2024, 2025
    mask = lambda key, offset=0: keep_mask(shape, key, p, device, offset)  # noqa: E731
    base = mask(derive(seed, 0, 1))
    return p, [
        ("other layer", base, mask(derive(seed, 1, 1))),
        ("other sublayer", base, mask(derive(seed, 0, 0))),
        ("other step", base, mask(derive(other_seed, 0, 1))),
        ("next element", base[:-1], base[1:]),
        ("element 2**31 apart", mask(derive(seed, 0, 1), 2**31), base),
        ("element 2**32 apart", mask(derive(seed, 0, 1), 2**32), base),
    ]


def test_masks_are_independent_across_layers_steps_and_elements():
    """Each pair's joint keep count is Binomial(n, (1-p)^2) and the counts of (kept, dropped) are Binomial(n,
    (1-p)p), as for independent masks."""
    p, cases = pairs()
    for what, a, b in cases:
        n = a.numel()
        assert_binomial(int((a & b).sum()), n, (1 - p) ** 2, f"{what}: both kept")
        assert_binomial(int((a & ~b).sum()), n, (1 - p) * p, f"{what}: first kept only")
        assert not torch.equal(a, b), what


def test_dropout_scales_what_it_keeps_and_is_the_identity_without_a_key():
    x = torch.randn(64, 512, dtype=torch.float64)
    out = dropout(x, 0.25, key=7)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / 0.75, rtol=0, atol=1e-15)
    assert torch.equal(kept, keep_mask(x.shape, 7, 0.25, x.device))
    assert dropout(x, 0.25, None) is x and dropout(x, 0.0, 7) is x


def model(**config):
    torch.manual_seed(0)
    return ReformerForMaskedLM(ReformerConfig(vocab_size=8, dim=32, depth=2, heads=2, bucket_size=8, **config))


def test_same_rng_state_same_masks_another_step_other_masks_eval_none():
    """The model draws its dropout seed from the CPU generator: the same state gives the same output, the next
    pass other masks; eval mode drops nothing (the output of the same weights without dropout)."""
    dropped, undropped = model(dropout=0.2).train(), model().train()
    ids = torch.randint(0, 8, (2, 40), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    first = dropped(ids, seed=1)
    torch.manual_seed(5)
    assert torch.equal(dropped(ids, seed=1), first)
    assert not torch.allclose(dropped(ids, seed=1), first)  # the generator has moved on: the next step's masks
    assert not torch.allclose(undropped(ids, seed=1), first)
    assert torch.equal(dropped.eval()(ids, seed=1), undropped.eval()(ids, seed=1))


def test_only_hidden_dropout_leaves_the_attention_kernel_undropped():
    """``dropout`` alone never reaches the attention kernel (which then stays the fast one); ``attention_dropout``
    does."""
    hidden, both = model(dropout=0.2).train(), model(dropout=0.2, attention_dropout=0.3).train()
    assert all(block.f.attention.dropout == 0.0 for block in hidden.reformer.blocks)
    assert all(block.f.attention.dropout == 0.3 for block in both.reformer.blocks)
    ids = torch.randint(0, 8, (2, 40), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    want = hidden(ids, seed=1)
    torch.manual_seed(5)
    assert not torch.allclose(both(ids, seed=1), want)
