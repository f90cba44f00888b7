"""Span masking: hidden bases stay hidden on real k-mer tokens, ratios, determinism, the vectorized helpers."""

import numpy as np
import pytest
import torch

from genoformer.io.fasta import Reference, encode_bases
from genoformer.tokenize.encode import decode, encode
from genoformer.tokenize.vocab import MASK, N_SPECIAL, PAD, UNK, KmerVocab
from genoformer.train.masking import IGNORE_INDEX, SpanMasker, hidden_bases, scoring_tokens, span_tokens

WINDOW = 256


@pytest.fixture(scope="module")
def chloroplast_codes(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        codes, _ = reference.codes("NC_000932.1")
    return codes


def windows(codes, k, stride, batch=16, window=WINDOW):
    vocab = KmerVocab(k)
    tokens = encode(codes, vocab, stride).astype(np.int64)
    usable = tokens[: batch * window].reshape(batch, window)
    return vocab, torch.from_numpy(usable)


def runs(row):
    """Start and end (exclusive) of each run of True in a bool row."""
    padded = torch.cat([torch.tensor([False]), row, torch.tensor([False])]).int()
    edges = torch.nonzero(padded.diff()).flatten()
    return edges[0::2], edges[1::2]


def hidden_bases_reference(masked, k, stride):
    """Plain loops: a base is hidden when every token of the window that covers it is masked."""
    n_tokens = len(masked)
    n_bases = (n_tokens - 1) * stride + k
    hidden = []
    for base in range(n_bases):
        covering = [i for i in range(n_tokens) if i * stride <= base < i * stride + k]
        hidden.append(all(masked[i] for i in covering))
    return hidden


@pytest.mark.parametrize("k,stride,span_bases", [(6, 1, 1), (6, 1, 3), (4, 2, 2), (3, 3, 1), (1, 1, 2)])
def test_no_hidden_base_is_visible_in_any_unmasked_kmer(chloroplast_codes, k, stride, span_bases):
    vocab, tokens = windows(chloroplast_codes, k, stride)
    masker = SpanMasker(k, stride, vocab.size, mask_ratio=0.1, span_bases=span_bases, p_mask=1.0, p_random=0.0)
    batch = masker(tokens, None, torch.Generator().manual_seed(1))
    hidden = hidden_bases(batch.masked, k, stride)
    for row in range(tokens.shape[0]):
        true_bases = decode(tokens[row].numpy(), vocab, stride)
        seen_bases = decode(batch.input_ids[row].numpy(), vocab, stride)  # what the model can read
        for base in torch.nonzero(hidden[row]).flatten().tolist():
            assert true_bases[base] in "ACGT"
            assert seen_bases[base] == "N", f"hidden base {base} readable from an unmasked k-mer"
        # every masked token holds at least one hidden base, so no masked token is a free copy of its neighbours
        for token in torch.nonzero(batch.masked[row]).flatten().tolist():
            assert hidden[row, token * stride: token * stride + k].any()


def test_about_fifteen_percent_of_bases_hidden_in_spans(chloroplast_codes):
    k, stride = 6, 1
    vocab, tokens = windows(chloroplast_codes, k, stride, batch=32)
    masker = SpanMasker(k, stride, vocab.size, mask_ratio=0.15, span_bases=2)
    batch = masker(tokens, None, torch.Generator().manual_seed(0))
    hidden = hidden_bases(batch.masked, k, stride)
    assert 0.13 <= hidden.float().mean().item() <= 0.18
    # masked tokens come in separate spans of span_bases + k - 1 = 7 tokens
    assert span_tokens(k, stride, 2) == 7
    for row in batch.masked:
        starts, ends = runs(row)
        assert ((ends - starts) == 7).all()
    assert torch.equal(batch.labels[batch.masked], tokens[batch.masked])
    assert (batch.labels[~batch.masked] == IGNORE_INDEX).all()
    assert torch.equal(batch.input_ids[~batch.masked], tokens[~batch.masked])


def test_single_bases_k1_masks_exactly_the_ratio(chloroplast_codes):
    vocab, tokens = windows(chloroplast_codes, 1, 1, batch=4, window=1000)
    batch = SpanMasker(1, 1, vocab.size, mask_ratio=0.15)(tokens, None, torch.Generator().manual_seed(3))
    assert batch.masked.sum(dim=1).tolist() == [150] * 4
    assert torch.equal(hidden_bases(batch.masked, 1, 1), batch.masked)


def test_replacement_is_80_10_10_per_span(chloroplast_codes):
    k = 3
    vocab, tokens = windows(chloroplast_codes, k, 1, batch=64)
    batch = SpanMasker(k, 1, vocab.size, span_bases=2)(tokens, None, torch.Generator().manual_seed(5))
    masked_inputs = batch.input_ids[batch.masked]
    originals = tokens[batch.masked]
    share_mask = (masked_inputs == MASK).float().mean().item()
    share_kept = (masked_inputs == originals).float().mean().item()
    share_random = 1 - share_mask - share_kept
    assert 0.74 <= share_mask <= 0.86
    assert 0.06 <= share_kept <= 0.15  # includes random k-mers that hit the original (1 in 64)
    assert 0.06 <= share_random <= 0.14
    assert (masked_inputs[masked_inputs != MASK] >= N_SPECIAL).all()
    # a span is replaced as a whole: all its tokens are MASK or none is
    for row in range(tokens.shape[0]):
        is_mask = batch.input_ids[row] == MASK
        for start, end in zip(*runs(batch.masked[row])):
            assert is_mask[start:end].all() or not is_mask[start:end].any()


def test_padding_and_unknown_tokens_are_never_masked():
    vocab = KmerVocab(2)
    tokens = torch.randint(N_SPECIAL, vocab.size, (8, 100), generator=torch.Generator().manual_seed(0))
    tokens[:, 40:50] = UNK
    tokens[:, 80:] = PAD
    attention_mask = tokens != PAD
    batch = SpanMasker(2, 1, vocab.size, mask_ratio=0.3)(tokens, attention_mask, torch.Generator().manual_seed(0))
    assert not batch.masked[:, 40:50].any()
    assert not batch.masked[:, 80:].any()
    assert torch.equal(batch.input_ids[:, 80:], tokens[:, 80:])
    assert batch.masked.any()


def test_same_seed_same_mask_other_seed_other_mask():
    vocab = KmerVocab(3)
    tokens = torch.randint(N_SPECIAL, vocab.size, (4, 300), generator=torch.Generator().manual_seed(0))
    masker = SpanMasker(3, 1, vocab.size, span_bases=2)
    first = masker(tokens, None, torch.Generator().manual_seed(11))
    again = masker(tokens, None, torch.Generator().manual_seed(11))
    other = masker(tokens, None, torch.Generator().manual_seed(12))
    assert torch.equal(first.input_ids, again.input_ids) and torch.equal(first.masked, again.masked)
    assert not torch.equal(first.masked, other.masked)


@pytest.mark.parametrize("k,stride", [(1, 1), (5, 1), (4, 2), (6, 3), (3, 3)])
def test_hidden_bases_match_loops_on_random_masks(k, stride):
    generator = torch.Generator().manual_seed(k * 10 + stride)
    masked = torch.rand(3, 40, generator=generator) < 0.6
    fast = hidden_bases(masked, k, stride)
    for row in range(3):
        assert fast[row].tolist() == hidden_bases_reference(masked[row].tolist(), k, stride)


@pytest.mark.parametrize("k,stride", [(1, 1), (6, 1), (5, 1), (4, 2), (3, 3)])
def test_scoring_token_covers_its_base_nearest_the_centre(k, stride):
    n_tokens = 30
    bases = torch.arange((n_tokens - 1) * stride + k)
    token, offset = scoring_tokens(bases, k, stride, n_tokens - 1)
    assert ((token >= 0) & (token < n_tokens)).all()
    assert torch.equal(token * stride + offset, bases)
    assert ((offset >= 0) & (offset < k)).all()
    if stride == 1:  # interior bases are the central base of their scoring k-mer
        interior = (bases >= k) & (bases < n_tokens - k)
        assert (offset[interior] == k // 2).all()
    # with only 20 real tokens (padding after), no base is scored by a padding token
    token, offset = scoring_tokens(bases[bases < 19 * stride + k], k, stride, 19)
    assert token.max().item() == 19 and (offset < k).all()


def test_bad_masking_settings_are_config_errors():
    from genoformer.errors import ConfigError

    with pytest.raises(ConfigError, match="mask_ratio"):
        SpanMasker(3, 1, 69, mask_ratio=1.5)
    with pytest.raises(ConfigError, match="stride"):
        SpanMasker(3, 4, 69)
    # 15% of the bases with 6-mers, one base a span: 6 tokens + a gap per hidden base would need 105% of a window
    with pytest.raises(ConfigError, match=r"mask_ratio 0.15 cannot be reached .* over 105% of every window; raise "
                                          r"data.span_bases \(to 2 or more\)"):
        SpanMasker(6, 1, KmerVocab(6).size, span_bases=1)
    with pytest.raises(ConfigError, match="shorter than one masked span"):
        SpanMasker(6, 1, KmerVocab(6).size, span_bases=8)(torch.full((1, 10), 7), None, torch.Generator())


def test_real_sequence_round_trip_is_unchanged_where_unmasked(chloroplast_codes):
    vocab, tokens = windows(chloroplast_codes, 4, 1, batch=2)
    batch = SpanMasker(4, 1, vocab.size, p_mask=1.0, p_random=0.0)(tokens, None, torch.Generator().manual_seed(2))
    hidden = hidden_bases(batch.masked, 4, 1)
    true = encode_bases(decode(tokens[0].numpy(), vocab, 1))
    seen = encode_bases(decode(batch.input_ids[0].numpy(), vocab, 1))
    assert np.array_equal(seen[~hidden[0].numpy()], true[~hidden[0].numpy()])
