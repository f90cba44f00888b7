"""The per-round permutation of the fast path: same values and gradients as a plain gather, on CPU."""

import torch

from genoformer.model.permute import gather_rows, permute_rounds


def random_permutations(shape, generator):
    """``[B, H, R, N]`` rows that are each a permutation of 0..N-1, and their inverses."""
    order = torch.rand(shape, generator=generator, dtype=torch.float64).argsort(dim=-1)
    inverse = torch.empty_like(order).scatter_(-1, order, torch.arange(shape[-1]).expand(shape))
    return order, inverse


def test_values_and_gradients_equal_a_plain_gather_with_broadcast_rounds():
    generator = torch.Generator().manual_seed(0)
    order, inverse = random_permutations((2, 3, 4, 37), generator)
    x = torch.randn(2, 3, 37, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    out_grad = torch.randn(2, 3, 4, 37, 5, generator=generator, dtype=torch.float64)

    got = permute_rounds(x[:, :, None].expand(-1, -1, 4, -1, -1), order, inverse)
    (got_grad,) = torch.autograd.grad((got * out_grad).sum(), x)
    want = gather_rows(x[:, :, None].expand(-1, -1, 4, -1, -1), order)
    (want_grad,) = torch.autograd.grad((want * out_grad).sum(), x)
    assert torch.equal(got, want)
    assert torch.allclose(got_grad, want_grad, atol=1e-12, rtol=0)
    assert not torch.equal(got[:, :, 0], x.detach())  # the permutation moved something


def test_gradcheck():
    generator = torch.Generator().manual_seed(1)
    order, inverse = random_permutations((1, 2, 3, 11), generator)
    x = torch.randn(1, 2, 3, 11, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: permute_rounds(t, order, inverse), (x,))
