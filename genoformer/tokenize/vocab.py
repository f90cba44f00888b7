"""The k-mer vocabulary: five special tokens, then every k-mer over ACGT in lexicographic order.

Ids: ``PAD=0, MASK=1, CLS=2, SEP=3, UNK=4`` (UNK is any k-mer that touches an N), then the 4**k k-mers from
id 5, ordered by their base codes (A<C<G<T), so k-mer id = 5 + sum(code_j * 4**(k-1-j)). The vocabulary is a
pure function of k: storing ``to_json()`` with the data is enough to rebuild it and to check a model against it.
"""

from __future__ import annotations

import itertools

import numpy as np

from genoformer.errors import ConfigError, MismatchError

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")
PAD, MASK, CLS, SEP, UNK = range(len(SPECIAL_TOKENS))
N_SPECIAL = len(SPECIAL_TOKENS)
MIN_K, MAX_K = 1, 8


class KmerVocab:
    """Token ids for k-mers of length ``k`` (1 to 8): ``size = 5 + 4**k``; ``dtype`` is the smallest
    unsigned numpy dtype that holds every id (``uint16``, or ``uint32`` when size > 65535, i.e. k = 8)."""

    PAD, MASK, CLS, SEP, UNK = PAD, MASK, CLS, SEP, UNK

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not MIN_K <= k <= MAX_K:
            raise ConfigError(f"k-mer length k={k!r} is out of range: k must be an integer from {MIN_K} to {MAX_K}")
        self.k = int(k)
        self.n_kmers = 4 ** self.k
        self.size = N_SPECIAL + self.n_kmers
        self.dtype = np.dtype(np.uint16 if self.size <= np.iinfo(np.uint16).max else np.uint32)

    def token_string(self, token_id: int) -> str:
        """The text of a token: ``[PAD]`` ... ``[UNK]`` for specials, else the k-mer (e.g. ``ACGTAC``)."""
        token_id = int(token_id)
        if not 0 <= token_id < self.size:
            raise ValueError(f"token id {token_id} is outside vocabulary of size {self.size} (k={self.k})")
        if token_id < N_SPECIAL:
            return SPECIAL_TOKENS[token_id]
        index = token_id - N_SPECIAL
        return "".join("ACGT"[(index >> (2 * (self.k - 1 - j))) & 3] for j in range(self.k))

    def token_id(self, token: str) -> int:
        """The id of a special token (``[MASK]``) or of a k-mer over ACGT (any case); ``UNK`` for one with N."""
        if token in SPECIAL_TOKENS:
            return SPECIAL_TOKENS.index(token)
        if len(token) != self.k:
            raise ValueError(f"token {token!r} is not a {self.k}-mer")
        index = 0
        for base in token.upper():
            if base not in "ACGT":
                return UNK
            index = index * 4 + "ACGT".index(base)
        return N_SPECIAL + index

    def tokens(self) -> list[str]:
        """Every token string in id order (specials, then k-mers)."""
        kmers = ("".join(bases) for bases in itertools.product("ACGT", repeat=self.k))
        return list(SPECIAL_TOKENS) + list(kmers)

    def to_json(self) -> dict:
        """A JSON-ready description from which ``from_json`` rebuilds (and checks) the same vocabulary."""
        return {
            "type": "kmer",
            "k": self.k,
            "size": self.size,
            "dtype": self.dtype.name,
            "special_tokens": {name: i for i, name in enumerate(SPECIAL_TOKENS)},
            "first_kmer_id": N_SPECIAL,
            "kmer_order": "lexicographic over base codes A<C<G<T",
        }

    @classmethod
    def from_json(cls, data: dict) -> "KmerVocab":
        """Rebuild a vocabulary from ``to_json()`` output; ``MismatchError`` if it describes another layout."""
        if not isinstance(data, dict) or data.get("type") != "kmer" or "k" not in data:
            raise MismatchError(f"not a k-mer vocabulary description: {data!r:.200}")
        vocab = cls(data["k"])
        if data != vocab.to_json():
            raise MismatchError(f"vocabulary description {data!r:.300} does not match genoformer's k-mer "
                                f"vocabulary for k={vocab.k} {vocab.to_json()!r}")
        return vocab

    def __eq__(self, other) -> bool:
        return isinstance(other, KmerVocab) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("KmerVocab", self.k))

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"KmerVocab(k={self.k}, size={self.size}, dtype={self.dtype.name})"
