"""LSH hashing and LSH attention against simple references written here (dense softmax, per-query loops)."""

import logging
import math
import sys

import pytest
import torch
import torch.nn.functional as F

import genoformer.model

from genoformer.model import chunked_lsh
from genoformer.model.hashing import bucket_factors, hash_buckets, random_rotations
from genoformer.model.positional import apply_rotary
from genoformer.model.lsh_attention import (
    SELF_LOGIT,
    LSHSelfAttention,
    cuda_kernel,
    full_attention,
    key_padding,
    lsh_attention,
    lsh_buckets,
    n_buckets_for,
    select_kernel,
)

DOUBLE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the CI machine has 2 cores shared by 2 test workers (more threads only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_inputs(batch=2, heads=2, length=13, dim=8, seed=0, dtype=DOUBLE):
    generator = torch.Generator().manual_seed(seed)
    qk = torch.randn(batch, heads, length, dim, generator=generator, dtype=dtype)
    v = torch.randn(batch, heads, length, dim, generator=generator, dtype=dtype)
    return qk, v


def padding(batch, length, real_lengths):
    mask = torch.zeros(batch, length, dtype=torch.bool)
    for row, real in enumerate(real_lengths):
        mask[row, real:] = True
    return mask


def dense_reference(qk, v, key_padding_mask, causal):
    """Exact softmax attention with the rules: normalized keys, dh**-0.5, padding/causal masks, self = -1e5."""
    length, dim = qk.shape[-2:]
    logits = qk @ F.normalize(qk, dim=-1).transpose(-1, -2) * dim**-0.5
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    excluded = key_padding_mask[:, None, None, :] | ((j > i) & causal)
    logits = logits.masked_fill(excluded, float("-inf")).masked_fill(i == j, SELF_LOGIT)
    return torch.softmax(logits, dim=-1) @ v


def loop_reference(qk, v, buckets, bucket_size, key_padding_mask, causal):
    """LSH attention one query at a time: sort, find the query's chunk and the one before, attend, combine.

    Causal: only keys of the query's bucket at sorted indices s - bucket_size < j <= s (padding has a
    bucket of its own)."""
    batch, heads, length, dim = qk.shape
    n_hashes = buckets.shape[2]
    n_chunks = math.ceil(length / bucket_size)
    rows = []
    for b in range(batch):
        pad = key_padding_mask[b].tolist()
        heads_out = []
        for h in range(heads):
            round_outputs, round_lses = [], []
            for r in range(n_hashes):
                real = sorted((i for i in range(length) if not pad[i]), key=lambda i: (int(buckets[b, h, r, i]), i))
                order = real + [i for i in range(length) if pad[i]]
                index_of = {position: index for index, position in enumerate(order)}
                chunk_of = {position: index // bucket_size for position, index in index_of.items()}
                bucket_of = {position: None if pad[position] else int(buckets[b, h, r, position])
                             for position in order}
                assert max(chunk_of.values()) < n_chunks
                outputs, lses = [], []
                for i in range(length):
                    logits, values = [], []
                    for j in range(length):
                        if chunk_of[j] not in (chunk_of[i], chunk_of[i] - 1):
                            continue
                        if j == i:
                            logits.append(torch.tensor(SELF_LOGIT, dtype=qk.dtype))
                        elif pad[j]:
                            continue
                        elif causal and not (bucket_of[j] == bucket_of[i]
                                             and 0 <= index_of[i] - index_of[j] < bucket_size):
                            continue
                        else:
                            logits.append(qk[b, h, i] @ F.normalize(qk[b, h, j], dim=0) / math.sqrt(dim))
                        values.append(v[b, h, j])
                    logits = torch.stack(logits)
                    outputs.append(torch.softmax(logits, dim=0) @ torch.stack(values))
                    lses.append(torch.logsumexp(logits, dim=0))
                round_outputs.append(torch.stack(outputs))
                round_lses.append(torch.stack(lses))
            weights = torch.softmax(torch.stack(round_lses), dim=0)  # [R, N]
            heads_out.append((weights[..., None] * torch.stack(round_outputs)).sum(0))
        rows.append(torch.stack(heads_out))
    return torch.stack(rows)


# ---------------------------------------------------------------- hashing


def test_hash_buckets_shape_range_and_seed():
    qk, _ = random_inputs(length=50, dtype=torch.float32)
    buckets = hash_buckets(qk, 8, 3, seed=1)
    assert buckets.shape == (2, 2, 3, 50) and buckets.dtype == torch.long
    assert buckets.min() >= 0 and buckets.max() < 8
    assert torch.equal(buckets, hash_buckets(qk, 8, 3, seed=1))
    assert not torch.equal(buckets, hash_buckets(qk, 8, 3, seed=2))
    assert not torch.equal(buckets[:, :, 0], buckets[:, :, 1]), "rounds must use different rotations"


def test_hash_is_angular_and_independent_of_the_rest_of_the_batch():
    qk, _ = random_inputs(length=40, dtype=torch.float32)
    buckets = hash_buckets(qk, 16, 2, seed=3)
    assert torch.equal(hash_buckets(qk * 7.5, 16, 2, seed=3), buckets), "scaling a vector must not move it"
    assert torch.equal(hash_buckets(qk[1:], 16, 2, seed=3), buckets[1:]), "a sequence hashes the same alone"


def test_hash_matches_explicit_rotation_argmax():
    """The unfactorized hash is argmax([xR; -xR]) with the documented rotations."""
    qk, _ = random_inputs(length=20, dtype=torch.float32)
    (rotation,) = random_rotations(2, 8, 2, (16,), 5, qk.device, torch.float32)
    rotated = torch.einsum("bhnd,hdrk->bhrnk", qk, rotation)
    expected = torch.cat([rotated, -rotated], dim=-1).argmax(-1)
    assert torch.equal(hash_buckets(qk, 16, 2, seed=5), expected)


def test_factorized_buckets_combine_two_rotations():
    assert bucket_factors(16) == (16,)
    assert bucket_factors(16_384) == (128, 128)
    assert bucket_factors(2 * 97 * 2) == (2, 194)
    assert bucket_factors(2 * 101) == (202,)  # no even factor pair: one rotation
    with pytest.raises(ValueError):
        bucket_factors(7)
    qk, _ = random_inputs(batch=1, length=3000, dtype=torch.float32)
    buckets = hash_buckets(qk, 256, 1, seed=9)
    first, second = random_rotations(2, 8, 1, (16, 16), 9, qk.device, torch.float32)
    parts = [torch.cat([r, -r], -1).argmax(-1) for r in
             (torch.einsum("bhnd,hdrk->bhrnk", qk, rot) for rot in (first, second))]
    assert torch.equal(buckets, parts[0] * 16 + parts[1])
    assert buckets.unique().numel() > 200, "factorized buckets should use most of the 256 ids"


def test_similar_vectors_share_buckets_more_often_than_unrelated_ones():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(1, 1, 2000, 16, generator=generator)
    near = base + 0.1 * torch.randn(base.shape, generator=generator)
    far = torch.randn(base.shape, generator=generator)
    def collision(other):
        both = hash_buckets(torch.cat([base, other], dim=2), 16, 1, seed=0)
        return (both[..., :2000] == both[..., 2000:]).float().mean().item()
    assert collision(near) > 0.7 > 0.2 > collision(far)


def test_n_buckets_for_lengths():
    assert n_buckets_for(1, 64) == 2
    assert n_buckets_for(64 * 16, 64) == 16
    assert n_buckets_for(64 * 16 + 1, 64) == 32
    assert n_buckets_for(1_048_576, 64) == 16_384


def test_lsh_buckets_give_each_row_the_bucket_count_of_its_own_real_tokens():
    qk, _ = random_inputs(batch=3, length=140)
    mask = padding(3, 140, [60, 140, 7])
    buckets = lsh_buckets(qk, mask, bucket_size=8, n_hashes=2, seed=4)
    for row, real in enumerate([60, 140, 7]):
        alone = hash_buckets(qk[row:row + 1, :, :real], n_buckets_for(real, 8), 2, seed=4)
        assert torch.equal(buckets[row:row + 1, ..., :real], alone)
    assert buckets[0].max() < 8 <= buckets[1].max() < 32 and buckets[2].max() < 2
    no_padding = padding(3, 140, [140] * 3)
    assert torch.equal(lsh_buckets(qk, no_padding, 8, 2, seed=4), lsh_buckets(qk, None, 8, 2, seed=4))
    assert key_padding(no_padding, 8) is None
    read_once = key_padding(mask, 8)
    assert read_once.bucket_counts == (2, 8, 32)
    assert torch.equal(lsh_buckets(qk, read_once, 8, 2, seed=4), buckets)
    with pytest.raises(ValueError, match="bucket_size 8, used with 4"):
        lsh_buckets(qk, read_once, 4, 2, seed=4)


# ---------------------------------------------------------------- LSH attention


@pytest.mark.parametrize("causal", [False, True])
def test_one_bucket_one_chunk_equals_exact_attention_forward_and_grad(causal):
    qk, v = random_inputs(length=29)
    qk.requires_grad_(), v.requires_grad_()
    mask = padding(2, 29, [29, 21])
    buckets = torch.zeros(2, 2, 1, 29, dtype=torch.long)
    out = lsh_attention(qk, v, buckets, bucket_size=32, key_padding_mask=mask, causal=causal)
    expected = dense_reference(qk, v, mask, causal)
    real = ~mask[:, None, :, None]  # outputs at padded positions are meaningless
    torch.testing.assert_close(out * real, expected * real, rtol=0, atol=1e-6)
    cotangent = torch.randn_like(out) * real
    grads = torch.autograd.grad(out, (qk, v), cotangent)
    expected_grads = torch.autograd.grad(expected, (qk, v), cotangent)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(full_attention(qk, v, key_padding_mask=mask, causal=causal), expected,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [13, 16])  # 13: prime, padded internally to 16
def test_lsh_attention_matches_per_query_loop_reference(causal, length):
    qk, v = random_inputs(length=length, seed=length)
    qk.requires_grad_(), v.requires_grad_()
    mask = padding(2, length, [length, length - 4])
    buckets = hash_buckets(qk, 4, 3, seed=11)
    out = lsh_attention(qk, v, buckets, bucket_size=4, key_padding_mask=mask, causal=causal)
    expected = loop_reference(qk, v, buckets, 4, mask, causal)
    real = ~mask[:, None, :, None]
    torch.testing.assert_close(out * real, expected * real, rtol=0, atol=1e-10)
    cotangent = torch.randn_like(out) * real
    grads = torch.autograd.grad(out, (qk, v), cotangent)
    expected_grads = torch.autograd.grad(expected, (qk, v), cotangent)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def rounds_met(buckets, bucket_size, key_padding_mask, causal):
    """``[B, H, N, N]``: in how many rounds query i meets key j (its chunk or the one before in the round's
    (bucket, position) order, padding last; if causal, the same bucket fewer than bucket_size places back)."""
    batch, heads, n_hashes, length = buckets.shape
    met = torch.zeros(batch, heads, length, length)
    for b in range(batch):
        for h in range(heads):
            for r in range(n_hashes):
                bucket = buckets[b, h, r]
                order = torch.where(key_padding_mask[b], bucket.max() + 1, bucket) * length + torch.arange(length)
                index = order.argsort().argsort()  # each position's sorted index
                chunk = index // bucket_size
                seen = (chunk[None, :] == chunk[:, None]) | (chunk[None, :] == chunk[:, None] - 1)
                if causal:
                    back = index[:, None] - index[None, :]
                    seen &= (bucket[None, :] == bucket[:, None]) & (back >= 0) & (back < bucket_size)
                met[b, h] += seen & ~key_padding_mask[b][None, :] | torch.eye(length, dtype=torch.bool)
    return met


@pytest.mark.parametrize("causal", [False, True])
def test_a_key_met_in_several_rounds_counts_once_per_round(causal):
    """Combining the rounds' softmaxes by their log-sum-exps is one dense softmax in which key j weighs as many
    times as the rounds in which query i meets it (docs/model.md: no duplicate correction): checked against that
    dense N x N softmax, padding, a lone token and chunks that are not full included."""
    length, bucket_size = 23, 4
    qk, v = random_inputs(batch=2, heads=2, length=length, seed=6)
    qk.requires_grad_(), v.requires_grad_()
    mask = padding(2, length, [length, 1])  # the second row: one real token, alone in every round
    buckets = hash_buckets(qk, 4, 3, seed=2)
    met = rounds_met(buckets, bucket_size, mask, causal).to(DOUBLE)
    logits = (qk @ F.normalize(qk, dim=-1).transpose(-1, -2) * 8**-0.5).diagonal_scatter(
        torch.full((2, 2, length), SELF_LOGIT, dtype=DOUBLE), dim1=-2, dim2=-1)
    expected = torch.softmax(logits + met.log(), dim=-1) @ v
    real = ~mask[:, None, :, None]
    cotangent = torch.randn(expected.shape, generator=torch.Generator().manual_seed(0), dtype=DOUBLE) * real
    want_grads = torch.autograd.grad(expected, (qk, v), cotangent)
    assert (met > 1).any() and (met[0, :, :-1, :-1] == 0).any()  # duplicates met, and keys never met
    for kernel in (lsh_attention, chunked_lsh.lsh_attention):
        out = kernel(qk, v, buckets, bucket_size=bucket_size, key_padding_mask=mask, causal=causal)
        torch.testing.assert_close(out * real, expected * real, rtol=0, atol=1e-12)
        for got, want in zip(torch.autograd.grad(out, (qk, v), cotangent), want_grads):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_several_rounds_give_a_convex_combination_of_allowed_values():
    """With v = identity the output rows are the attention weights: non-negative, summing to one, and zero on
    padding and outside every round's causal band (same bucket, the bucket_size - 1 sorted predecessors)."""
    length, bucket_size = 24, 4
    qk, _ = random_inputs(batch=1, heads=1, length=length, dim=length, seed=4)
    v = torch.eye(length, dtype=DOUBLE)[None, None]
    mask = padding(1, length, [20])
    buckets = hash_buckets(qk, 8, 4, seed=0)
    weights = lsh_attention(qk, v, buckets, bucket_size=bucket_size, key_padding_mask=mask, causal=True)[0, 0]
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(length, dtype=DOUBLE), rtol=0, atol=1e-12)
    allowed = torch.zeros(length, length, dtype=torch.bool)
    for r in range(4):
        order = sorted(range(20), key=lambda i: (int(buckets[0, 0, r, i]), i)) + list(range(20, 24))
        index = torch.empty(length, dtype=torch.long)
        index[order] = torch.arange(length)
        offset = index[:, None] - index[None, :]
        same_bucket = buckets[0, 0, r][:, None] == buckets[0, 0, r][None, :]
        allowed |= same_bucket & (offset >= 0) & (offset < bucket_size)
    i, j = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    allowed &= ((j <= i) & ~mask[0][None, :]) | (i == j)
    assert weights[~allowed].abs().max() == 0
    assert (weights[:20][allowed[:20]] > 0).float().mean() > 0.5


def test_a_token_attends_to_itself_only_when_alone():
    """With v = identity the output rows are the weights: zero on self while another target exists."""
    length = 6
    qk, _ = random_inputs(batch=1, heads=1, length=length, dim=length)
    v = torch.eye(length, dtype=DOUBLE)[None, None]
    weights = full_attention(qk, v, causal=True)[0, 0]
    assert weights[0, 0] == 1  # position 0 has no earlier key
    assert weights.diagonal()[1:].abs().max() == 0
    weights = full_attention(qk, v, causal=False)[0, 0]
    assert weights.diagonal().abs().max() == 0
    alone = padding(1, length, [1])
    assert full_attention(qk, v, key_padding_mask=alone)[0, 0, 0, 0] == 1
    buckets = torch.zeros(1, 1, 1, length, dtype=torch.long)
    lsh = lsh_attention(qk, v, buckets, bucket_size=2, key_padding_mask=alone, causal=False)[0, 0]
    assert lsh[0, 0] == 1
    lsh = lsh_attention(qk, v, buckets, bucket_size=2, key_padding_mask=None, causal=False)[0, 0]
    assert lsh.diagonal().abs().max() == 0


def test_padded_keys_never_change_real_outputs():
    qk, v = random_inputs(length=37)
    mask = padding(2, 37, [37, 25])
    buckets = hash_buckets(qk, 8, 2, seed=0)
    out = lsh_attention(qk, v, buckets, bucket_size=8, key_padding_mask=mask, causal=False)
    qk2, v2 = qk.clone(), v.clone()
    qk2[1, :, 25:] = torch.randn_like(qk2[1, :, 25:]) * 10
    v2[1, :, 25:] = 1e3
    buckets2 = buckets.clone()
    buckets2[1, :, :, 25:] = torch.randint(0, 8, buckets2[1, :, :, 25:].shape)
    out2 = lsh_attention(qk2, v2, buckets2, bucket_size=8, key_padding_mask=mask, causal=False)
    torch.testing.assert_close(out2[1, :, :25], out[1, :, :25], rtol=0, atol=1e-12)
    torch.testing.assert_close(out2[0], out[0], rtol=0, atol=0)


def test_more_padding_after_a_sequence_changes_nothing_for_the_same_buckets():
    """A prime-length input equals the same input padded further with masked tokens (padding sorts last)."""
    qk, v = random_inputs(batch=1, length=31)
    buckets = hash_buckets(qk, 4, 2, seed=0)
    out = lsh_attention(qk, v, buckets, bucket_size=8, key_padding_mask=None, causal=False)
    extra = 9
    qk_padded = torch.cat([qk, torch.randn(1, 2, extra, 8, dtype=DOUBLE)], dim=2)
    v_padded = torch.cat([v, torch.randn(1, 2, extra, 8, dtype=DOUBLE)], dim=2)
    buckets_padded = torch.cat([buckets, torch.zeros(1, 2, 2, extra, dtype=torch.long)], dim=3)
    padded = lsh_attention(qk_padded, v_padded, buckets_padded, bucket_size=8,
                           key_padding_mask=padding(1, 40, [31]), causal=False)
    torch.testing.assert_close(padded[:, :, :31], out, rtol=0, atol=1e-12)


def test_causal_kernel_never_sees_later_content_for_fixed_buckets():
    qk, v = random_inputs(length=23)
    buckets = hash_buckets(qk, 4, 3, seed=2)
    out = lsh_attention(qk, v, buckets, bucket_size=4, key_padding_mask=None, causal=True)
    cut = 11
    qk2, v2 = qk.clone(), v.clone()
    qk2[:, :, cut:] = torch.randn_like(qk2[:, :, cut:])
    v2[:, :, cut:] = torch.randn_like(v2[:, :, cut:])
    out2 = lsh_attention(qk2, v2, buckets, bucket_size=4, key_padding_mask=None, causal=True)
    torch.testing.assert_close(out2[:, :, :cut], out[:, :, :cut], rtol=0, atol=1e-12)


def test_causal_lsh_attention_is_strictly_causal_with_many_chunks():
    """New qk, v and buckets after position p move the later tokens anywhere in each round's sorted order
    (and so move chunk boundaries), yet outputs at p and before do not change."""
    length = 200
    qk, v = random_inputs(length=length, seed=1)
    out = lsh_attention(qk, v, hash_buckets(qk, 4, 3, seed=0), bucket_size=8, causal=True)
    for p in (0, 7, 8, 61, 150, 198):
        qk2, v2 = random_inputs(length=length, seed=p + 100)
        qk2[:, :, :p + 1], v2[:, :, :p + 1] = qk[:, :, :p + 1], v[:, :, :p + 1]
        out2 = lsh_attention(qk2, v2, hash_buckets(qk2, 4, 3, seed=0), bucket_size=8, causal=True)
        torch.testing.assert_close(out2[:, :, :p + 1], out[:, :, :p + 1], rtol=0, atol=1e-12)
        assert not torch.allclose(out2[:, :, p + 1:], out[:, :, p + 1:])


def test_attention_dropout_uses_the_generator_and_keeps_the_mean():
    qk, v = random_inputs(batch=1, heads=1, length=64)
    buckets = torch.zeros(1, 1, 1, 64, dtype=torch.long)
    run = lambda seed: lsh_attention(qk, v, buckets, bucket_size=64, key_padding_mask=None, causal=False,  # noqa
                                     dropout_p=0.5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    qk, _ = random_inputs(batch=64, heads=1, length=64)
    buckets = torch.zeros(64, 1, 1, 64, dtype=torch.long)
    mean = lsh_attention(qk, torch.ones_like(qk), buckets, bucket_size=64, key_padding_mask=None, causal=False,
                         dropout_p=0.5, generator=torch.Generator().manual_seed(0)).mean()
    assert abs(mean.item() - 1.0) < 0.01


def test_gradcheck_tiny_lsh_attention():
    qk, v = random_inputs(batch=1, heads=1, length=7, dim=4, seed=3)
    qk.requires_grad_(), v.requires_grad_()
    buckets = hash_buckets(qk, 2, 2, seed=1)
    mask = padding(1, 7, [6])
    fn = lambda a, b: lsh_attention(a, b, buckets, bucket_size=3, key_padding_mask=mask, causal=False)  # noqa
    assert torch.autograd.gradcheck(fn, (qk, v))


@pytest.mark.parametrize("length", [1, 2, 7, 61, 127])
def test_self_attention_module_any_length(length):
    torch.manual_seed(0)
    layer = LSHSelfAttention(16, 2, n_hashes=2, bucket_size=8).double()
    x = torch.randn(2, length, 16, dtype=DOUBLE)
    out = layer(x, seed=1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(out, layer(x, seed=1))


def test_self_attention_one_chunk_equals_full_attention_module():
    torch.manual_seed(0)
    lsh = LSHSelfAttention(16, 2, n_hashes=3, bucket_size=64).double()
    full = LSHSelfAttention(16, 2, bucket_size=64, full_attention=True).double()
    full.load_state_dict(lsh.state_dict())
    x = torch.randn(2, 41, 16, dtype=DOUBLE)
    mask = padding(2, 41, [41, 30])
    torch.testing.assert_close(lsh(x, mask, seed=4)[1, :30], full(x, mask)[1, :30], rtol=0, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_module_output_alone_equals_padded_into_another_bucket_band(causal):
    """60 tokens (8 buckets of chunk 8) padded to 140 (32 buckets for the batch length) hash as if alone."""
    torch.manual_seed(0)
    layer = LSHSelfAttention(16, 2, n_hashes=2, bucket_size=8, causal=causal).double()
    x = torch.randn(2, 140, 16, dtype=DOUBLE)
    together = layer(x, padding(2, 140, [60, 140]), seed=3)
    torch.testing.assert_close(together[0, :60], layer(x[:1, :60], seed=3)[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(together[1], layer(x[1:], seed=3)[0], rtol=0, atol=1e-10)


def test_select_kernel_is_the_chunked_kernel_on_cpu():
    assert select_kernel("cpu") is chunked_lsh.lsh_attention
    assert select_kernel(torch.device("cpu")) is chunked_lsh.lsh_attention


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback where no GPU can run the fast path")
@pytest.mark.parametrize("broken", [False, True])
def test_select_kernel_falls_back_to_the_chunked_kernel_with_one_warning(broken, monkeypatch, caplog):
    if broken:
        monkeypatch.setitem(sys.modules, "genoformer.model.fast", None)  # import fails
        monkeypatch.delattr(genoformer.model, "fast", raising=False)
    cuda_kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="genoformer.model.lsh_attention"):
            assert select_kernel("cuda") is chunked_lsh.lsh_attention
            assert select_kernel("cuda") is chunked_lsh.lsh_attention
    finally:
        cuda_kernel.cache_clear()
    warnings = [record for record in caplog.records if "fast path not used" in record.getMessage()]
    assert len(warnings) == 1
    if broken:
        assert "ModuleNotFoundError" in warnings[0].getMessage()


# ---------------------------------------------------------------- rotary


def test_rotary_logits_depend_only_on_relative_position():
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 8, generator=generator, dtype=DOUBLE)
    def logit(i, j):  # the same q at position i and k at position j of a 40-token sequence
        x = torch.zeros(1, 1, 40, 8, dtype=DOUBLE)
        x[0, 0, i], x[0, 0, j] = q, k
        rotated = apply_rotary(x)[0, 0]
        return rotated[i] @ rotated[j]
    torch.testing.assert_close(logit(3, 10), logit(25, 32), rtol=0, atol=1e-12)
    assert abs(logit(3, 10) - logit(3, 11)) > 1e-3
    x = torch.randn(1, 2, 40, 8, dtype=DOUBLE)
    torch.testing.assert_close(apply_rotary(x).norm(dim=-1), x.norm(dim=-1), rtol=0, atol=1e-12)


def test_rotary_table_made_in_inference_mode_serves_training():
    with torch.inference_mode():
        apply_rotary(torch.randn(1, 1, 9, 4))
    x = torch.randn(1, 1, 9, 4, requires_grad=True)
    apply_rotary(x).sum().backward()
    assert x.grad is not None
