"""KmerVocab: id layout, dtype, range checks and the JSON form stored with token datasets."""

import itertools
import json

import numpy as np
import pytest

from genoformer.errors import ConfigError, MismatchError
from genoformer.tokenize.vocab import KmerVocab


@pytest.mark.parametrize("k", range(1, 9))
def test_size_and_dtype(k):
    vocab = KmerVocab(k)
    assert vocab.size == len(vocab) == 5 + 4 ** k
    assert vocab.dtype == (np.uint32 if k == 8 else np.uint16)
    assert np.iinfo(vocab.dtype).max >= vocab.size - 1


@pytest.mark.parametrize("k", [0, 9, -1, 2.5, True, "6", None])
def test_k_out_of_range_is_a_config_error_naming_the_value(k):
    with pytest.raises(ConfigError, match=rf"k={k!r}".replace("(", r"\(").replace(".", r"\.")):
        KmerVocab(k)


def test_specials_come_first():
    vocab = KmerVocab(3)
    assert (vocab.PAD, vocab.MASK, vocab.CLS, vocab.SEP, vocab.UNK) == (0, 1, 2, 3, 4)
    assert [vocab.token_string(i) for i in range(5)] == ["[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]"]


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_kmers_in_lexicographic_order_from_id_5(k):
    vocab = KmerVocab(k)
    expected = ["".join(bases) for bases in itertools.product("ACGT", repeat=k)]
    assert vocab.tokens()[5:] == expected
    assert [vocab.token_string(i) for i in range(5, vocab.size)] == expected
    assert [vocab.token_id(kmer) for kmer in expected] == list(range(5, vocab.size))


def test_token_id_of_kmer_with_n_is_unk_and_lowercase_is_accepted():
    vocab = KmerVocab(4)
    assert vocab.token_id("ACNT") == vocab.UNK
    assert vocab.token_id("acgt") == vocab.token_id("ACGT")
    assert vocab.token_id("[MASK]") == vocab.MASK
    with pytest.raises(ValueError):
        vocab.token_id("ACG")


def test_k8_extremes():
    vocab = KmerVocab(8)
    assert vocab.token_id("AAAAAAAA") == 5
    assert vocab.token_id("TTTTTTTT") == 65540 == vocab.size - 1
    assert vocab.token_string(65540) == "TTTTTTTT"
    with pytest.raises(ValueError):
        vocab.token_string(vocab.size)


@pytest.mark.parametrize("k", range(1, 9))
def test_json_round_trip(k):
    vocab = KmerVocab(k)
    stored = json.loads(json.dumps(vocab.to_json()))
    assert KmerVocab.from_json(stored) == vocab
    assert stored["k"] == k and stored["size"] == vocab.size and stored["dtype"] == vocab.dtype.name


def test_json_that_describes_another_vocabulary_is_refused():
    stored = KmerVocab(6).to_json()
    with pytest.raises(MismatchError):
        KmerVocab.from_json({**stored, "size": 99})
    with pytest.raises(MismatchError):
        KmerVocab.from_json({**stored, "special_tokens": {"[PAD]": 1}})
    with pytest.raises(MismatchError):
        KmerVocab.from_json({"type": "bpe"})
    with pytest.raises(ConfigError):
        KmerVocab.from_json({**stored, "k": 12})
