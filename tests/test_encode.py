"""encode / decode against a plain pure-Python reference, on random and real sequences."""

import numpy as np
import pytest

from genoformer.io.fasta import Reference, encode_bases
from genoformer.tokenize import encode as encode_module
from genoformer.tokenize.encode import decode, encode, kmer_any, n_tokens, span_bp
from genoformer.tokenize.vocab import KmerVocab


def reference_encode(seq: str, k: int, stride: int) -> list[int]:
    """Token ids the slow, obvious way: one k-mer at a time."""
    tokens = []
    for start in range(0, len(seq) - k + 1, stride):
        kmer = seq[start:start + k]
        if set(kmer) <= set("ACGT"):
            tokens.append(5 + sum("ACGT".index(base) * 4 ** (k - 1 - j) for j, base in enumerate(kmer)))
        else:
            tokens.append(4)
    return tokens


def expected_decode(seq: str, k: int, stride: int) -> str:
    """What decode(encode(seq)) must give: each covered base, or N where no N-free k-mer covers it."""
    covered = span_bp(n_tokens(len(seq), k, stride), k, stride)
    bases = ["N"] * covered
    for start in range(0, len(seq) - k + 1, stride):
        kmer = seq[start:start + k]
        if "N" not in kmer:
            bases[start:start + k] = kmer
    return "".join(bases)


def random_sequence(rng: np.random.Generator, length: int, n_fraction: float) -> str:
    probabilities = [(1 - n_fraction) / 4] * 4 + [n_fraction]
    return "".join(rng.choice(list("ACGTN"), size=length, p=probabilities))


def strides_for(k: int) -> list[int]:
    return sorted({1, k, (k + 1) // 2})


LENGTHS = [0, 1, 2, 3, 5, 7, 8, 9, 16, 31, 64, 257, 1000]


@pytest.mark.parametrize("k", range(1, 9))
@pytest.mark.parametrize("n_fraction", [0.0, 0.02, 0.3])
def test_encode_matches_reference_on_random_sequences(k, n_fraction):
    rng = np.random.default_rng(1000 * k + int(100 * n_fraction))
    vocab = KmerVocab(k)
    for stride in strides_for(k):
        for length in LENGTHS:
            seq = random_sequence(rng, length, n_fraction)
            tokens = encode(encode_bases(seq), vocab, stride)
            assert tokens.dtype == vocab.dtype
            assert tokens.tolist() == reference_encode(seq, k, stride), (seq, stride)
            assert tokens.size == n_tokens(length, k, stride)


@pytest.mark.parametrize("k", range(1, 9))
def test_decode_inverts_encode(k):
    rng = np.random.default_rng(k)
    vocab = KmerVocab(k)
    for stride in strides_for(k):
        for length in LENGTHS:
            for n_fraction in (0.0, 0.05, 0.5):
                seq = random_sequence(rng, length, n_fraction)
                decoded = decode(encode(encode_bases(seq), vocab, stride), vocab, stride)
                assert decoded == expected_decode(seq, k, stride)
                if "N" not in seq and length >= k and (length - k) % stride == 0:
                    assert decoded == seq  # whole sequence back when the tokens cover it


def test_decode_keeps_every_base_for_single_nucleotides_and_isolated_n():
    rng = np.random.default_rng(7)
    seq = random_sequence(rng, 500, 0.2)
    assert decode(encode(encode_bases(seq), KmerVocab(1)), KmerVocab(1)) == seq
    # N runs separated by at least k clean bases: every base comes back, N included
    k = 4
    seq = "ACGTTN" + "GATTACA" + "NN" + "CCGGA" + "N" + "TTGCA"
    assert decode(encode(encode_bases(seq), KmerVocab(k)), KmerVocab(k)) == seq


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_chunk_boundaries(monkeypatch, chunk):
    """Tiny chunks put a chunk boundary inside nearly every k-mer and N window."""
    monkeypatch.setattr(encode_module, "CHUNK_BASES", chunk)
    rng = np.random.default_rng(chunk)
    for k in (1, 3, 6, 8):
        vocab = KmerVocab(k)
        for stride in strides_for(k):
            seq = random_sequence(rng, 300, 0.05)
            assert encode(encode_bases(seq), vocab, stride).tolist() == reference_encode(seq, k, stride)


def test_codes_above_n_count_as_n():
    vocab = KmerVocab(2)
    assert encode(np.array([0, 1, 255, 2, 3], dtype=np.uint8), vocab).tolist() == [6, 4, 4, 16]


def test_special_tokens_decode_as_n():
    vocab = KmerVocab(3)
    tokens = np.array([vocab.token_id("ACG"), vocab.MASK, vocab.MASK, vocab.MASK, vocab.PAD])
    assert decode(tokens, vocab, 1) == "ACGNNNN"
    with pytest.raises(ValueError):
        decode(np.array([vocab.size]), vocab, 1)


@pytest.mark.parametrize("stride", [0, 4, -1, 1.5])
def test_stride_out_of_range(stride):
    with pytest.raises(ValueError, match="stride"):
        encode(encode_bases("ACGTACGT"), KmerVocab(3), stride)


def test_real_chloroplast_matches_reference(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        codes, _ = reference.codes("NC_000932.1", 0, 40_000)
        seq = reference.fetch("NC_000932.1", 0, 40_000).upper()
    for k, stride in [(6, 1), (6, 6), (3, 2)]:
        vocab = KmerVocab(k)
        tokens = encode(codes, vocab, stride)
        assert tokens.tolist() == reference_encode(seq, k, stride)
        assert decode(tokens, vocab, stride) == expected_decode(seq, k, stride)


def test_kmer_any_matches_brute_force():
    rng = np.random.default_rng(2)
    flags = rng.random(300) < 0.05
    for k in (1, 4, 8):
        for stride in range(1, k + 1):
            expected = [flags[i:i + k].any() for i in range(0, 300 - k + 1, stride)]
            assert kmer_any(flags, k, stride).tolist() == expected
