"""Vectorized k-mer encoding of base codes, and decoding back to bases.

Token ``i`` is the k-mer that starts at base ``i * stride`` (1 <= stride <= k: 1 is overlapping, k is
non-overlapping), so a sequence of ``L`` bases gives ``n_tokens(L, k, stride) = (L - k) // stride + 1`` tokens
(none when L < k). Bases after the last whole k-mer (only when ``(L - k) % stride != 0``) are not encoded.
A k-mer that touches an N (base code 4; any code >= 4 counts as N) is ``UNK``.

Speed: the sequence is processed in cache-sized chunks (``CHUNK_BASES``) through scratch buffers allocated
once per call; in each chunk the k-mer values are built by doubling (2-mers from bases, 4-mers from 2-mers,
... then joined to length k) with shift/or in the token dtype, and the N test (the same doubling with or over
N flags) runs only in chunks that contain an N.
"""

from __future__ import annotations

import numpy as np

from genoformer.io.fasta import N_CODE, decode_bases
from genoformer.tokenize.vocab import N_SPECIAL, UNK, KmerVocab

CHUNK_BASES = 1 << 20


def check_stride(stride: int, vocab: KmerVocab) -> int:
    """``stride`` as an int; ``ValueError`` unless 1 <= stride <= k (larger strides would skip bases)."""
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= vocab.k:
        raise ValueError(f"stride must be an integer from 1 to k={vocab.k}, got {stride!r}")
    return int(stride)


def n_tokens(length_bp: int, k: int, stride: int) -> int:
    """Number of tokens ``encode`` gives for ``length_bp`` bases: whole k-mers starting every ``stride`` bases."""
    return 0 if length_bp < k else (length_bp - k) // stride + 1


def span_bp(n: int, k: int, stride: int) -> int:
    """Number of bases covered by ``n`` consecutive tokens (0 for none)."""
    return 0 if n == 0 else (n - 1) * stride + k


def encode(codes: np.ndarray, vocab: KmerVocab, stride: int = 1) -> np.ndarray:
    """Token ids (``vocab.dtype``) of base codes (uint8, A=0 C=1 G=2 T=3 N=4): token i = k-mer at i*stride."""
    codes = np.asarray(codes, dtype=np.uint8)
    stride = check_stride(stride, vocab)
    out = np.empty(n_tokens(codes.size, vocab.k, stride), dtype=vocab.dtype)
    encode_into(codes, vocab, stride, out)
    return out


def encode_into(codes: np.ndarray, vocab: KmerVocab, stride: int, out: np.ndarray) -> None:
    """``encode`` writing into ``out`` (e.g. a reused buffer) of exactly the right length."""
    k = vocab.k
    if out.size != n_tokens(codes.size, k, stride):
        raise ValueError(f"out has {out.size} tokens, {codes.size} bases give {n_tokens(codes.size, k, stride)}")
    tokens_per_chunk = max(1, CHUNK_BASES // stride)
    # One set of scratch buffers for every chunk: no allocation (and no page faults) in the loop.
    buffers = _scratch(min(codes.size, span_bp(tokens_per_chunk, k, stride)), k, out.dtype)
    for first in range(0, out.size, tokens_per_chunk):
        last = min(out.size, first + tokens_per_chunk)
        bases = codes[first * stride:(last - 1) * stride + k]
        _encode_chunk(bases, k, stride, out[first:last], buffers)


def _scratch(size: int, k: int, dtype: np.dtype) -> list[np.ndarray]:
    """Buffers for ``_sliding``: the first items, then one per doubling and one per join."""
    return [np.empty(size, dtype=dtype) for _ in range(k.bit_length() + bin(k).count("1") - 1)]


def _encode_chunk(bases: np.ndarray, k: int, stride: int, out: np.ndarray, buffers: list[np.ndarray]) -> None:
    """Encode one chunk of bases (its tokens fill ``out`` exactly), using the scratch ``buffers``."""
    has_n = int(bases.max()) >= N_CODE
    digits = buffers[0][:bases.size]
    np.copyto(digits, bases)
    if has_n:
        digits &= 3  # any value for N; those k-mers become UNK below
    np.add(_sliding(digits, k, _join_kmers, buffers[1:])[::stride], N_SPECIAL, out=out)
    if has_n:
        out[kmer_any(bases >= N_CODE, k, stride)] = UNK


def _join_kmers(left: np.ndarray, right: np.ndarray, right_length: int, out: np.ndarray) -> None:
    """k-mer values of a left part followed by a right part: left shifted by the right part's digits, or right."""
    np.left_shift(left, 2 * right_length, out=out)
    out |= right


def _join_any(left: np.ndarray, right: np.ndarray, right_length: int, out: np.ndarray) -> None:
    np.bitwise_or(left, right, out=out)


def _sliding(first: np.ndarray, k: int, join, buffers: list[np.ndarray]) -> np.ndarray:
    """result[i] = ``first[i:i+k]`` joined into one value (k-mer value, or any-set), by doubling the length.

    Joins items into pairs, pairs into fours, ..., then joins the power-of-two lengths that make up k: about
    log2(k) whole-array steps instead of k. ``join(left, right, right_length, out)`` combines a run with the
    run that follows it; each step writes into the next of ``buffers``.
    """
    free = iter(buffers)
    run_of_length = {1: first}
    length = 1
    while 2 * length <= k:
        shorter = run_of_length[length]
        count = shorter.size - length
        doubled = next(free)[:count]
        join(shorter[:count], shorter[length:], length, doubled)
        run_of_length[2 * length] = doubled
        length *= 2
    result, have = None, 0
    for length in sorted(run_of_length, reverse=True):
        if have + length > k:
            continue
        if result is None:
            result = run_of_length[length]
        else:
            count = first.size - (have + length) + 1
            joined = next(free)[:count]
            join(result[:count], run_of_length[length][have:have + count], length, joined)
            result = joined
        have += length
    return result


def kmer_any(flags: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Bool per token: is any of the k flags under the token's k-mer (starting at i*stride) set?

    Used for N (UNK) and for the soft-mask track.
    """
    flags = np.asarray(flags, dtype=bool)
    if flags.size < k:
        return np.zeros(0, dtype=bool)
    return _sliding(flags, k, _join_any, _scratch(flags.size, k, np.dtype(bool))[1:])[::stride]


def decode(tokens: np.ndarray, vocab: KmerVocab, stride: int = 1) -> str:
    """The bases covered by ``tokens`` (``span_bp(len(tokens), k, stride)`` of them) as an ACGTN string.

    Each base is read from any k-mer token that covers it. A base that no k-mer token covers (every token over
    it is UNK, PAD, MASK, CLS or SEP) is ``N``. So ``decode(encode(s)) == s`` for s over ACGT whose length fits
    the stride (``(len(s) - k) % stride == 0``); an ACGT base next to an N comes back as itself when some N-free
    k-mer covers it (always for k = 1 and stride 1), otherwise as N. Where tokens disagree on a shared base
    (only possible for tokens not produced by ``encode``), the later token wins.
    """
    tokens = np.asarray(tokens)
    stride = check_stride(stride, vocab)
    if tokens.size == 0:
        return ""
    if int(tokens.min()) < 0 or int(tokens.max()) >= vocab.size:
        raise ValueError(f"token ids must be 0..{vocab.size - 1} for k={vocab.k}")
    k = vocab.k
    is_kmer = tokens >= N_SPECIAL
    kmer_index = tokens.astype(np.int64) - N_SPECIAL
    bases = np.full(span_bp(tokens.size, k, stride), N_CODE, dtype=np.uint8)
    for offset in range(k):
        covered = bases[offset:offset + (tokens.size - 1) * stride + 1:stride]  # base offset of every token
        digit = (kmer_index >> (2 * (k - 1 - offset))) & 3
        np.copyto(covered, digit, where=is_kmer, casting="unsafe")
    return decode_bases(bases)
