"""The Reformer model: config validation, seeds, padding, causality, any length, heads, save/load."""

import json

import pyfaidx
import pytest
import torch

from genoformer.errors import ConfigError, InputError, MismatchError, MissingFileError
from genoformer.model import (
    Reformer,
    ReformerConfig,
    ReformerForMaskedLM,
    ReformerForSequenceClassification,
    ReformerForTokenClassification,
    load_pretrained,
    save_pretrained,
)

DOUBLE = torch.float64
SMALL = dict(vocab_size=20, dim=16, depth=2, heads=2, bucket_size=4, n_hashes=2)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the CI machine has 2 cores shared by 2 test workers (more threads only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(cls=ReformerForMaskedLM, seed=0, **overrides):
    torch.manual_seed(seed)
    config = ReformerConfig(**{**SMALL, **overrides})
    heads = (ReformerForSequenceClassification, ReformerForTokenClassification)
    model = cls(config, 3) if cls in heads else cls(config)
    return model.to(DOUBLE).eval()


def tokens(batch, length, seed=0, vocab=20):
    return torch.randint(5, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- config


def test_config_round_trips_and_validates():
    config = ReformerConfig(**SMALL, dropout=0.1)
    assert ReformerConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["max_seq_len"] == 1_048_576 and config.reversible is True
    with pytest.raises(ConfigError, match="'dim'"):
        ReformerConfig(vocab_size=20, dim=30, heads=4)
    with pytest.raises(ConfigError, match="'dim'"):
        ReformerConfig(vocab_size=20, dim=12, heads=4)  # head size 3 is odd: rotary needs pairs
    with pytest.raises(ConfigError, match="'bucket_sise'"):
        ReformerConfig.from_dict({**SMALL, "bucket_sise": 8}, source="run.yaml")
    with pytest.raises(ConfigError, match="run.yaml.*'causal' must be true or false"):
        ReformerConfig.from_dict({**SMALL, "causal": "yes"}, source="run.yaml")
    with pytest.raises(ConfigError, match="'depth' must be an integer"):
        ReformerConfig.from_dict({**SMALL, "depth": 2.5})
    with pytest.raises(ConfigError, match="'dropout'"):
        ReformerConfig(**SMALL, dropout=1.0)
    with pytest.raises(ConfigError, match="'attention_dropout' must be in"):
        ReformerConfig(**SMALL, attention_dropout=-0.1)
    assert ReformerConfig.from_dict({**SMALL, "dropout": 0.1}).attention_dropout == 0.0, "a new config's default"
    with pytest.raises(ConfigError, match="'vocab_size' is missing"):
        ReformerConfig.from_dict({"dim": 16})
    with pytest.raises(ConfigError, match="'pad_token_id'"):
        ReformerConfig(**SMALL, pad_token_id=20)
    assert ReformerConfig(**SMALL, dropout=0).dropout == 0.0


# ---------------------------------------------------------------- forward


def test_same_seed_same_output_and_training_steps_hash_differently():
    model = small_model()
    ids = tokens(2, 40)
    assert torch.equal(model(ids, seed=3), model(ids, seed=3))
    assert not torch.allclose(model(ids, seed=3), model(ids, seed=4))
    assert torch.equal(model(ids), model(ids)), "eval mode must be deterministic"
    model.train()
    first, second = model(ids), model(ids)
    assert int(model.reformer.hash_step) == 2
    assert not torch.allclose(first, second)
    model.reformer.hash_step.zero_()
    assert torch.equal(model(ids), first), "replaying from the same step gives the same output"


def test_one_chunk_lsh_model_equals_full_attention_model():
    lsh = small_model(bucket_size=64, n_hashes=3)
    full = small_model(bucket_size=64, full_attention=True)
    full.load_state_dict(lsh.state_dict())
    ids = tokens(2, 37)
    torch.testing.assert_close(lsh(ids, seed=9), full(ids), rtol=0, atol=1e-10)


@pytest.mark.parametrize("full_attention", [False, True])
def test_padding_tokens_never_change_unpadded_outputs(full_attention):
    model = small_model(full_attention=full_attention)
    ids = tokens(2, 41)
    mask = torch.ones(2, 41, dtype=torch.bool)
    mask[1, 29:] = False
    out = model(ids, mask, seed=1)
    changed = ids.clone()
    changed[1, 29:] = tokens(1, 12, seed=5)
    out_changed = model(changed, mask, seed=1)
    torch.testing.assert_close(out_changed[1, :29], out[1, :29], rtol=0, atol=1e-12)
    torch.testing.assert_close(out_changed[0], out[0], rtol=0, atol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_a_sequence_gives_the_same_output_alone_or_padded_into_another_bucket_band(causal):
    """60 tokens in chunks of 8 hash into 8 buckets alone; padded to 140 in a batch (a length that alone
    gives 32 buckets) they still do, since each row's bucket count comes from its own real tokens."""
    model = small_model(bucket_size=8, causal=causal)
    short, long = tokens(1, 60, seed=1), tokens(1, 140, seed=2)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 80, dtype=torch.long)], dim=1), long])
    mask = torch.ones(2, 140, dtype=torch.bool)
    mask[0, 60:] = False
    together = model(batch, mask, seed=5)
    torch.testing.assert_close(together[0, :60], model(short, seed=5)[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(together[1], model(long, seed=5)[0], rtol=0, atol=1e-10)


def test_a_padded_batch_reads_its_lengths_from_the_device_once_per_pass(monkeypatch):
    """Each layer's hashing read the rows' real lengths back (on CUDA a host sync per layer, forward and
    reversible backward: 1 + 2 · depth reads); now the model reads them once and every layer reuses them,
    with the same outputs and gradients as each layer reading them itself."""
    model = small_model(depth=3, bucket_size=4).train()
    ids = tokens(3, 30)
    mask = torch.ones(3, 30, dtype=torch.bool)
    mask[1, 20:], mask[2, 3:] = False, False  # three bucket counts: 8, 8 and 2
    reads = []
    for name in ("tolist", "item", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *args, _f=original: reads.append(1) or _f(self, *args))
    logits = model(ids, mask, seed=2, check_ids=False)
    logits[mask].square().mean().backward()
    monkeypatch.undo()
    assert len(reads) == 1
    grads = [p.grad.clone() for p in model.parameters()]

    per_layer = small_model(depth=3, bucket_size=4).train()  # the same weights, every layer given the mask tensor
    for block in per_layer.reformer.blocks:
        block.f.forward = lambda x, padding, seed, key, _f=block.f.forward: _f(x, None if padding is None else
                                                                                padding.mask, seed, key)
    want = per_layer(ids, mask, seed=2)
    want[mask].square().mean().backward()
    torch.testing.assert_close(logits[mask], want[mask], rtol=0, atol=1e-12)
    for got, expected in zip(grads, (p.grad for p in per_layer.parameters())):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("full_attention", [False, True])
def test_causal_model_earlier_outputs_ignore_later_tokens(full_attention):
    """Strictly causal with many chunks and layers: changing the tokens after position p (which moves the
    later tokens anywhere in each round's sorted order) leaves every output at p and before unchanged."""
    model = small_model(causal=True, depth=3, bucket_size=16, n_hashes=2, full_attention=full_attention)
    assert model.config.reversible
    ids = tokens(2, 300)
    out = model(ids, seed=2)
    for p in (0, 15, 16, 97, 203, 298):
        changed = ids.clone()
        changed[:, p + 1:] = tokens(2, 299 - p, seed=p + 1)
        out_changed = model(changed, seed=2)
        torch.testing.assert_close(out_changed[:, :p + 1], out[:, :p + 1], rtol=0, atol=1e-12)
        assert not torch.allclose(out_changed[:, p + 1:], out[:, p + 1:])


@pytest.mark.parametrize("length", [1, 2, 3, 5, 127, 257])
def test_prime_lengths_work(length):
    model = small_model()
    logits = model(tokens(2, length), seed=0)
    assert logits.shape == (2, length, 20) and torch.isfinite(logits).all()


def test_heads_give_the_documented_shapes_and_masked_mean_pooling():
    ids = tokens(2, 23)
    mask = torch.ones(2, 23, dtype=torch.bool)
    mask[1, 15:] = False
    assert small_model(Reformer)(ids, mask).shape == (2, 23, 16)
    assert small_model(ReformerForTokenClassification)(ids, mask).shape == (2, 23, 3)
    classifier = small_model(ReformerForSequenceClassification)
    logits = classifier(ids, mask)
    hidden = classifier.reformer(ids, mask)
    expected = classifier.classifier(torch.stack([hidden[0].mean(0), hidden[1, :15].mean(0)]))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-12)


def test_masked_lm_output_layer_is_tied_to_the_embedding():
    model = small_model()
    assert "lm_bias" in dict(model.named_parameters())
    assert not any(name.startswith("decoder") for name, _ in model.named_parameters())
    hidden = torch.randn(3, 16, dtype=DOUBLE)
    torch.testing.assert_close(model.lm_head(hidden), hidden @ model.reformer.embedding.weight.T + model.lm_bias)


def test_bad_inputs_raise_one_line_input_errors():
    model = small_model(max_seq_len=50)
    with pytest.raises(InputError, match="51 tokens is longer than the model's max_seq_len 50"):
        model(tokens(1, 51))
    with pytest.raises(InputError, match="token id 20 is outside"):
        model(torch.full((1, 5), 20))
    with pytest.raises(InputError, match="attention_mask shape"):
        model(tokens(1, 5), torch.ones(1, 6, dtype=torch.bool))


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = small_model(ReformerForSequenceClassification).float()
    (tmp_path / "run" / "vocab.json").parent.mkdir()
    (tmp_path / "run" / "vocab.json").write_text("{}")
    save_pretrained(model, tmp_path / "run")
    assert (tmp_path / "run" / "vocab.json").exists(), "other files in a run directory are kept"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model_class"] == "ReformerForSequenceClassification" and saved["num_labels"] == 3
    loaded = load_pretrained(tmp_path / "run")
    assert type(loaded) is ReformerForSequenceClassification and not loaded.training
    ids = tokens(2, 30)
    assert torch.equal(loaded(ids, seed=1), model(ids, seed=1))
    assert not list(tmp_path.joinpath("run").glob(".*tmp*")), "no temporary files left behind"


def test_masked_lm_checkpoint_loads_into_a_classifier(tmp_path):
    mlm = small_model().float()
    save_pretrained(mlm, tmp_path)
    classifier = load_pretrained(tmp_path, ReformerForSequenceClassification, num_labels=2)
    for name, tensor in mlm.reformer.state_dict().items():
        assert torch.equal(classifier.reformer.state_dict()[name], tensor)
    encoder = load_pretrained(tmp_path, Reformer)
    ids = tokens(1, 12)
    assert torch.equal(encoder(ids), mlm.reformer(ids))
    with pytest.raises(ConfigError, match="num_labels"):
        load_pretrained(tmp_path, ReformerForTokenClassification)


def test_a_checkpoint_from_before_attention_dropout_loads_with_its_dropout_on_attention_weights(tmp_path):
    """Earlier versions had one ``dropout``, on attention weights too, and no ``attention_dropout`` key: such a
    config.json loads with ``attention_dropout`` = its ``dropout``, and the feed-forward weights keep the names
    of its nn.Sequential (net.0, net.3)."""
    model = small_model(dropout=0.1).float()
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["attention_dropout"] == 0.0
    del config["attention_dropout"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_pretrained(tmp_path)
    assert loaded.config.dropout == loaded.config.attention_dropout == 0.1
    assert {"reformer.blocks.0.g.net.0.weight", "reformer.blocks.1.g.net.3.bias"} <= set(loaded.state_dict())
    ids = tokens(2, 30)
    assert torch.equal(loaded(ids, seed=1), model(ids, seed=1))


def test_load_refuses_mismatches_and_broken_files(tmp_path):
    model = small_model().float()
    save_pretrained(model, tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())

    shape_error = r"tensor '[\w.]+' has shape \[20.*\] but the config in .*config.json needs"
    with pytest.raises(MismatchError, match=shape_error):
        load_pretrained(tmp_path, config_overrides={"vocab_size": 21})
    config_path.write_text(json.dumps({**config, "depth": 3}))
    with pytest.raises(MismatchError, match="'reformer.blocks.2.*is missing from"):
        load_pretrained(tmp_path)
    config_path.write_text(json.dumps({**config, "n_hashes": 4}))
    assert load_pretrained(tmp_path).config.n_hashes == 4, "shape-free changes load"
    config_path.write_text(json.dumps({**config, "colour": "red"}))
    with pytest.raises(ConfigError, match="config.json: unknown model config key 'colour'"):
        load_pretrained(tmp_path)
    config_path.write_text("{not json")
    with pytest.raises(InputError, match="config.json: not valid JSON"):
        load_pretrained(tmp_path)
    config_path.write_text(json.dumps(config))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match="model.safetensors: cannot read weights"):
        load_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(MissingFileError, match="model.safetensors: no such file"):
        load_pretrained(tmp_path)
    with pytest.raises(MissingFileError, match="config.json: no such file"):
        load_pretrained(tmp_path / "elsewhere")


# ---------------------------------------------------------------- real data


@pytest.mark.slow
def test_masked_lm_learns_real_chloroplast_dna(chloroplast_fasta):
    """A tiny model trained for a few dozen steps on real DNA (one token per base) beats its starting loss."""
    sequence = str(pyfaidx.Fasta(str(chloroplast_fasta))["NC_000932.1"][:1024]).upper()
    ids = torch.tensor(["ACGT".index(base) + 5 if base in "ACGT" else 4 for base in sequence]).view(8, 128)
    torch.manual_seed(0)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=9, dim=32, depth=2, heads=2, bucket_size=16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        masked = torch.rand(ids.shape, generator=generator) < 0.15
        logits = model(ids.masked_fill(masked, 1))
        loss = torch.nn.functional.cross_entropy(logits[masked], ids[masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 2.0  # about log(9) at initialization
    assert sum(losses[-5:]) / 5 < 1.40  # about log(4) = 1.386: it has learned at least the base frequencies
