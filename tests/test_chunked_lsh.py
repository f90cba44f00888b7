"""The CPU kernel (genoformer.model.chunked_lsh) against the reference LSH attention, on random inputs:
forward outputs and gradients, every rule (padding anywhere, causal band, several rounds, lengths that are not
a multiple of the bucket size, one chunk)."""

from __future__ import annotations

import pytest
import torch

from genoformer.errors import ConfigError
from genoformer.model import ReformerConfig, ReformerForMaskedLM, chunked_lsh
from lsh_cases import CASES, random_case, reference

# the kernels' shared cases, and one chunk per sequence, padding scattered through the rows, several buckets a chunk
KERNEL_CASES = [*CASES, (3, 2, 64, 8, 64, 1, False, False), (2, 2, 300, 8, 16, 1, False, True),
         (2, 1, 96, 8, 8, 2, True, True)]


def case_with_gradients(batch, heads, length, head_dim, bucket_size, n_hashes, padded, seed, dtype=torch.float64):
    """:func:`lsh_cases.random_case` with qk and v requiring gradients."""
    qk, v, buckets, mask = random_case(batch, heads, length, head_dim, bucket_size, n_hashes, padded=padded,
                                       seed=seed, dtype=dtype)
    return qk.requires_grad_(), v.requires_grad_(), buckets, mask


def outputs_and_gradients(kernel, qk, v, buckets, mask, bucket_size, causal):
    """The kernel's output at real positions and the gradients of a weighted sum of it (weights fixed by seed)."""
    qk.grad = v.grad = None
    out = kernel(qk, v, buckets, bucket_size=bucket_size, key_padding_mask=mask, causal=causal)
    real = torch.ones(1, 1, qk.shape[2], 1, dtype=torch.bool) if mask is None else ~mask[:, None, :, None]
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights * real).sum().backward()
    return out.detach() * real, qk.grad.clone(), v.grad.clone()


@pytest.mark.parametrize("batch,heads,length,head_dim,bucket_size,n_hashes,causal,padded", KERNEL_CASES)
def test_outputs_and_gradients_match_the_reference_in_float64(batch, heads, length, head_dim, bucket_size,
                                                              n_hashes, causal, padded):
    case = case_with_gradients(batch, heads, length, head_dim, bucket_size, n_hashes, padded, seed=length)
    expected = outputs_and_gradients(reference.lsh_attention, *case, bucket_size, causal)
    found = outputs_and_gradients(chunked_lsh.lsh_attention, *case, bucket_size, causal)
    for name, want, got in zip(("output", "qk gradient", "v gradient"), expected, found):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


def test_float32_matches_the_reference_within_float32_rounding():
    case = case_with_gradients(2, 2, 1000, 16, 32, 2, padded=True, seed=5, dtype=torch.float32)
    expected = outputs_and_gradients(reference.lsh_attention, *case, 32, False)
    found = outputs_and_gradients(chunked_lsh.lsh_attention, *case, 32, False)
    for want, got in zip(expected, found):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_bfloat16_inputs_keep_float32_logits_like_the_reference():
    qk, v, buckets, mask = case_with_gradients(1, 2, 256, 16, 32, 2, padded=False, seed=7, dtype=torch.bfloat16)
    with torch.no_grad():
        want = reference.lsh_attention(qk, v, buckets, bucket_size=32)
        got = chunked_lsh.lsh_attention(qk, v, buckets, bucket_size=32)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


def test_dropout_gives_the_reference_result_for_the_same_generator():
    qk, v, buckets, mask = case_with_gradients(1, 2, 100, 8, 16, 2, padded=True, seed=3)
    run = lambda kernel: kernel(qk, v, buckets, bucket_size=16, key_padding_mask=mask, dropout_p=0.3,  # noqa: E731
                                generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(run(chunked_lsh.lsh_attention), run(reference.lsh_attention), rtol=0, atol=0)


def test_the_cpu_uses_it_unless_the_reference_is_asked_for(monkeypatch):
    assert reference.select_kernel("cpu") is chunked_lsh.lsh_attention
    monkeypatch.setenv(reference.KERNEL_ENV, "reference")
    assert reference.select_kernel("cpu") is reference.lsh_attention
    for typo in ("Reference", "chunked"):  # used to run the default kernel without a word
        monkeypatch.setenv(reference.KERNEL_ENV, typo)
        with pytest.raises(ConfigError, match=f"GENOFORMER_LSH_KERNEL='{typo}': the only value it takes is"):
            reference.select_kernel("cpu")


@pytest.mark.parametrize("causal", [False, True])
def test_a_model_trains_the_same_on_either_kernel(monkeypatch, causal):
    """A reversible two-layer model in float64: loss and every parameter gradient, padded batch, equal."""
    config = ReformerConfig(vocab_size=9, dim=16, depth=2, heads=2, n_hashes=2, bucket_size=8, causal=causal,
                            max_seq_len=256)
    ids = torch.randint(5, 9, (2, 150), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 150, dtype=torch.bool)
    mask[1, 90:] = False

    def loss_and_gradients():
        torch.manual_seed(0)
        model = ReformerForMaskedLM(config).double()
        loss = torch.nn.functional.cross_entropy(model(ids, mask, seed=4)[mask], ids[mask])
        loss.backward()
        return loss.detach(), [p.grad for p in model.parameters()]

    loss, gradients = loss_and_gradients()
    monkeypatch.setenv(reference.KERNEL_ENV, "reference")
    want_loss, want_gradients = loss_and_gradients()
    torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=0)
    for got, want in zip(gradients, want_gradients):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: checks the kernel a GPU without the "
                    "FlexAttention fast path falls back to")
def test_on_cuda_it_matches_the_reference_too():
    """On a GPU the kernel runs the gather branch of the row permutations; float64 outputs and gradients."""
    case = [t.cuda() if t is not None else None for t in random_case(2, 2, 300, 8, 16, 2, padded=True, seed=9,
                                                                     dtype=torch.float64)]
    qk, v = case[0].requires_grad_(), case[1].requires_grad_()

    def run(kernel):
        qk.grad = v.grad = None
        out = kernel(qk, v, case[2], bucket_size=16, key_padding_mask=case[3], causal=False)
        (out * ~case[3][:, None, :, None]).square().sum().backward()
        return out.detach() * ~case[3][:, None, :, None], qk.grad.clone(), v.grad.clone()

    for got, want in zip(run(chunked_lsh.lsh_attention), run(reference.lsh_attention)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
