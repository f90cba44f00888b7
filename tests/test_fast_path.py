"""The CUDA fast path (genoformer.model.fast) against the reference LSH attention, on random inputs.

On CPU FlexAttention runs eagerly and forward-only, so the CPU tests compare forward outputs (float64 and
float32) and the block layout; gradients, bf16 and the compiled kernels need a CUDA GPU (PyTorch has no
FlexAttention backward on CPU) and are marked ``cuda``: they are skipped here and run on the GPU machine.
"""

from __future__ import annotations

import sys

import pytest
import torch

import genoformer.model.lsh_attention  # noqa: F401  (the module, not the function of the same name)
from genoformer.errors import ConfigError
from genoformer.model import fast
from genoformer.model.fast import flex_lsh
from genoformer.model.fast.flex_lsh import look_back_blocks, sort_rounds
from genoformer.model.hashing import hash_buckets
from lsh_cases import CASES, random_case

reference = sys.modules["genoformer.model.lsh_attention"]

# On CPU FlexAttention warns that it runs unfused; that is what these tests want.
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: FlexAttention has no backward on CPU and compiles to Triton only on CUDA",
)


def real_rows(mask, length):
    """Broadcastable selector of the real (unpadded) query positions; padded outputs are meaningless."""
    if mask is None:
        return torch.ones(1, 1, length, 1, dtype=torch.bool)
    return ~mask[:, None, :, None].cpu()




@pytest.mark.parametrize("batch,heads,length,head_dim,bucket_size,n_hashes,causal,padded", CASES)
def test_forward_matches_reference_float64(batch, heads, length, head_dim, bucket_size, n_hashes, causal, padded):
    qk, v, buckets, mask = random_case(batch, heads, length, head_dim, bucket_size, n_hashes,
                                       padded=padded, seed=length, dtype=torch.float64)
    kwargs = dict(bucket_size=bucket_size, key_padding_mask=mask, causal=causal)
    with torch.no_grad():
        out = fast.lsh_attention(qk, v, buckets, **kwargs)
        expected = reference.lsh_attention(qk, v, buckets, **kwargs)
    assert out.shape == expected.shape == qk.shape
    real = real_rows(mask, length)
    # FlexAttention's eager path keeps its softmax statistics in float32, hence not 1e-12.
    assert torch.allclose(out * real, expected * real, atol=1e-6, rtol=0)
    assert torch.isfinite(out).all()  # padded rows too: they must not poison gradients with NaN


def test_causal_band_matches_reference_when_buckets_overflow_their_chunk():
    """Two buckets of ~100 tokens in chunks of 8: causal queries see only their bucket's 7 sorted predecessors."""
    qk, v, _, mask = random_case(2, 2, 200, 8, 8, 3, padded=True, seed=2, dtype=torch.float64)
    buckets = hash_buckets(qk, 2, 3, seed=2)
    kwargs = dict(bucket_size=8, key_padding_mask=mask, causal=True)
    with torch.no_grad():
        out = fast.lsh_attention(qk, v, buckets, **kwargs)
        expected = reference.lsh_attention(qk, v, buckets, **kwargs)
    real = real_rows(mask, 200)
    assert torch.allclose(out * real, expected * real, atol=1e-6, rtol=0)


def test_forward_matches_reference_float32():
    qk, v, buckets, mask = random_case(2, 2, 300, 32, 32, 2, padded=True, seed=7, dtype=torch.float32)
    with torch.no_grad():
        out = fast.lsh_attention(qk, v, buckets, bucket_size=32, key_padding_mask=mask)
        expected = reference.lsh_attention(qk, v, buckets, bucket_size=32, key_padding_mask=mask)
    real = real_rows(mask, 300)
    assert torch.allclose(out * real, expected * real, atol=1e-5, rtol=0)


def test_lone_token_attends_to_itself():
    """Causal: the first token has no other target, so it copies its own value in every round."""
    qk, v, buckets, _ = random_case(1, 2, 50, 8, 8, 3, padded=False, seed=3, dtype=torch.float64)
    with torch.no_grad():
        out = fast.lsh_attention(qk, v, buckets, bucket_size=8, causal=True)
    assert torch.allclose(out[:, :, 0], v[:, :, 0], atol=1e-6)


def test_dropout_runs_the_reference_kernel():
    qk, v, buckets, mask = random_case(1, 2, 40, 8, 8, 2, padded=True, seed=5, dtype=torch.float64)
    kwargs = dict(bucket_size=8, key_padding_mask=mask, dropout_p=0.3)
    out = fast.lsh_attention(qk, v, buckets, generator=torch.Generator().manual_seed(1), **kwargs)
    expected = reference.lsh_attention(qk, v, buckets, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("length,bucket_size", [(8, 8), (384, 4), (1000, 8), (640, 64), (1024, 128),
                                                (2048, 256), (600, 200), (3 * 100, 100), (128 * 7, 128)])
def test_look_back_blocks_list_exactly_the_needed_tiles_both_ways(length, bucket_size):
    """Each 128-query tile lists the key tiles holding its chunks and the ones before (no wrap-around), and
    the key-side lists are their exact transpose (what FlexAttention's backward pass walks)."""
    kv_counts, kv_indices, q_counts, q_indices = look_back_blocks(length, bucket_size, torch.device("cpu"))
    n_tiles = -(-length // 128)
    needed = torch.zeros(n_tiles, n_tiles, dtype=torch.bool)
    for query in range(length):
        chunk = query // bucket_size
        first_key, last_key = max(chunk - 1, 0) * bucket_size, (chunk + 1) * bucket_size - 1
        needed[query // 128, first_key // 128: last_key // 128 + 1] = True
    for counts, indices, expected in ((kv_counts, kv_indices, needed), (q_counts, q_indices, needed.T)):
        assert counts.shape == (1, 1, n_tiles) and indices.shape == (1, 1, n_tiles, n_tiles)
        for tile in range(n_tiles):
            row = indices[0, 0, tile].tolist()
            assert sorted(row) == list(range(n_tiles))  # every row is an ordering of all tiles
            assert sorted(row[: counts[0, 0, tile]]) == expected[tile].nonzero().flatten().tolist()


def test_sort_rounds_orders_by_bucket_then_position_with_padding_last():
    buckets = torch.tensor([[[[2, 0, 2, 1, 0, 1]]]])
    valid = torch.tensor([[True, True, False, True, True, True]])
    assert sort_rounds(buckets, valid).tolist() == [[[[1, 4, 3, 5, 0, 2]]]]


@pytest.mark.parametrize("causal,padded", [(False, False), (True, False), (False, True)])
def test_attention_function_traces_as_one_graph(causal, padded):
    """torch.compile captures the whole sort/attend/unsort function (what runs on CUDA, and what
    compile_sublayers traces into each attention sublayer) without a graph break: a break would split it
    into separately compiled pieces and stop the permutations from fusing around the kernel. Dynamo's
    capture is device-independent, so CPU can check it (Inductor's CPU FlexAttention cannot run it)."""
    bucket_size = 16
    qk, v, buckets, mask = random_case(1, 2, 100, 8, bucket_size, 2, padded=padded, seed=11, dtype=torch.float32)
    layout = look_back_blocks(112, bucket_size, torch.device("cpu"))
    with torch.no_grad():
        explained = torch._dynamo.explain(flex_lsh.sorted_chunk_attention)(
            qk, v, buckets, mask, layout, bucket_size, causal)
        expected = reference.lsh_attention(qk, v, buckets, bucket_size=bucket_size, key_padding_mask=mask,
                                           causal=causal)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
    real = real_rows(mask, 100)
    out = flex_lsh.sorted_chunk_attention(qk, v, buckets, mask, layout, bucket_size, causal)
    assert torch.allclose(out * real, expected * real, atol=1e-5, rtol=0)


def test_not_available_on_cpu():
    assert not fast.is_available(torch.device("cpu"))


def test_an_unknown_compile_scope_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv(flex_lsh.COMPILE_ENV, "kernels")
    with pytest.raises(ConfigError, match="GENOFORMER_FAST_COMPILE must be 'function' or 'kernel', got 'kernels'"):
        flex_lsh.compile_scope()


# ----- CUDA: gradients, bf16, the compiled kernel, the whole model -----

def forward_and_grads(kernel, qk, v, buckets, mask, out_grad, **kwargs):
    """Output and the gradients of ``sum(out * out_grad)`` with respect to qk and v."""
    qk, v = qk.detach().requires_grad_(), v.detach().requires_grad_()
    out = kernel(qk, v, buckets, key_padding_mask=mask, **kwargs)
    grads = torch.autograd.grad((out.float() * out_grad).sum(), (qk, v))
    return out.detach(), *grads


def relative_error(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# The CUDA tests are ordered by importance: each new (dtype, padding, causal) variant costs a compilation.

@pytest.mark.cuda
@needs_cuda
def test_cuda_model_uses_fast_path_and_matches_reference_model(monkeypatch):
    from genoformer.model import ReformerConfig, ReformerForMaskedLM

    assert reference.select_kernel(torch.device("cuda")) is fast.lsh_attention
    config = ReformerConfig(vocab_size=16, dim=128, depth=2, heads=2, n_hashes=2, bucket_size=64)
    model = ReformerForMaskedLM(config).cuda()
    ids = torch.randint(0, 16, (2, 1500), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 1200:] = False

    def run():
        model.zero_grad()
        logits = model(ids, mask, seed=3)
        (logits.float()[mask] ** 2).mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    fast_logits, fast_grads = run()
    monkeypatch.setenv(reference.KERNEL_ENV, "reference")
    ref_logits, ref_grads = run()
    assert relative_error(fast_logits[mask], ref_logits[mask]) < 1e-4
    for got, want in zip(fast_grads, ref_grads):
        assert relative_error(got, want) < 1e-3


@pytest.mark.cuda
@needs_cuda
def test_cuda_bf16_matches_float32_reference_within_bf16_tolerance():
    qk, v, buckets, mask = random_case(1, 8, 8192, 64, 128, 4, padded=True, seed=11, dtype=torch.float32,
                                       device="cuda")
    real = real_rows(mask, 8192).cuda()
    out_grad = torch.randn(qk.shape, device="cuda") * real
    got = forward_and_grads(fast.lsh_attention, qk.bfloat16(), v.bfloat16(), buckets, mask, out_grad,
                            bucket_size=128)
    want = forward_and_grads(reference.lsh_attention, qk, v, buckets, mask, out_grad, bucket_size=128)
    assert relative_error(got[0] * real, want[0] * real) < 2e-2
    for g, w in zip(got[1:], want[1:]):
        assert relative_error(g, w) < 3e-2


@pytest.mark.cuda
@needs_cuda
def test_cuda_causal_forward_and_gradients_match_reference_float32():
    """Causal, padded, a length that is no multiple of the bucket or the tile (the non-causal float32
    kernel is covered by the model test above: each variant is a compilation of its own)."""
    qk, v, buckets, mask = random_case(2, 4, 4099, 64, 128, 3, padded=True, seed=1, dtype=torch.float32,
                                       device="cuda")
    real = real_rows(mask, 4099).cuda()
    out_grad = torch.randn(qk.shape, device="cuda") * real  # padded outputs carry no gradient
    kwargs = dict(bucket_size=128, causal=True)
    got = forward_and_grads(fast.lsh_attention, qk, v, buckets, mask, out_grad, **kwargs)
    want = forward_and_grads(reference.lsh_attention, qk, v, buckets, mask, out_grad, **kwargs)
    assert all(torch.isfinite(x).all() for x in got)
    assert relative_error(got[0] * real, want[0] * real) < 1e-4
    for g, w in zip(got[1:], want[1:]):
        assert relative_error(g, w) < 1e-4
