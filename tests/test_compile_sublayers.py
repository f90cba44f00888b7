"""compile_sublayers (what the trainer does on CUDA) changes neither outputs nor gradients, and the trainer falls
back to eager sublayers where torch.compile cannot build: checked on CPU,
where torch.compile runs the same sublayers through Inductor's C++ backend with the reference kernel."""

import functools
import os
import subprocess
import sys

import pytest
import torch

from genoformer.errors import ConfigError
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.model.fast import compile_sublayers
from genoformer.train.compiling import compile_for_training


def test_compiled_sublayers_match_eager_outputs_and_gradients():
    torch.manual_seed(0)
    config = ReformerConfig(vocab_size=8, dim=32, depth=2, heads=2, n_hashes=2, bucket_size=8)
    eager = ReformerForMaskedLM(config)
    compiled = ReformerForMaskedLM(config)
    compiled.load_state_dict(eager.state_dict())
    assert compile_sublayers(compiled) is compiled
    ids = torch.randint(0, 8, (2, 50))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 41:] = False
    results = []
    for model in (eager, compiled):
        logits = model(ids, mask, seed=1)
        logits[mask].square().mean().backward()
        results.append((logits.detach(), [p.grad for p in model.parameters()]))
    (want, want_grads), (got, got_grads) = results
    assert torch.allclose(got[mask], want[mask], atol=1e-5, rtol=0)
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, atol=1e-6, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in got_grads)


def compiled_with_fresh_counters(config: ReformerConfig):
    """A training-mode model (seed 0) with its sublayers compiled, and dynamo's counters, reset just before."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    return compile_sublayers(ReformerForMaskedLM(config)).train(), counters


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_training_steps_compile_without_graph_breaks_or_recompiles(dropout, monkeypatch):
    """Each sublayer compiles to whole graphs (the hash rotations are one opaque operator, not a generator made
    mid-graph; hidden dropout's masks are integer arithmetic on the element indices), and the hashing seed and the
    dropout keys, new at every step, stop causing recompilation after the second step. With dropout, Dynamo's
    capture alone (its eager backend: Inductor's build of the same graphs is tested in
    test_compile_for_training_compiles_and_leaves_no_trace and tests/test_model_reversible.py)."""
    if dropout:
        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    model, counters = compiled_with_fresh_counters(
        ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=2, bucket_size=8, dropout=dropout))
    ids = torch.randint(0, 8, (2, 64))
    graphs = []
    for _ in range(4):
        model(ids).square().mean().backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0
    assert dict(counters["graph_break"]) == {}
    assert graphs[3] == graphs[2] == graphs[1]


def test_padded_batches_trace_without_graph_breaks(monkeypatch):
    """Each layer read the rows' real lengths back from the device inside the compiled attention sublayer (a
    graph break on every padded batch, a host sync per layer on CUDA); the model now reads them once per pass,
    before the stack. Dynamo's capture is what is checked (its eager backend: no kernels are built)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    model, counters = compiled_with_fresh_counters(
        ReformerConfig(vocab_size=8, dim=16, depth=2, heads=2, n_hashes=2, bucket_size=8, dropout=0.1))
    ids = torch.randint(0, 8, (3, 40))
    for real in ((40, 25, 40), (40, 40, 7)):  # rows in one bucket count, then in two
        mask = torch.arange(40) < torch.tensor(real)[:, None]
        model(ids, mask, seed=1).square().mean().backward()
    assert counters["stats"]["unique_graphs"] > 0
    assert dict(counters["graph_break"]) == {}
    torch._dynamo.reset()


def tiny_model(dropout=0.0):
    torch.manual_seed(0)
    return ReformerForMaskedLM(ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=1, bucket_size=16,
                                              dropout=dropout))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_compile_for_training_compiles_and_leaves_no_trace(dropout):
    """The trainer's compile step (run on CUDA; the same code compiles C++ here) proves the compiled model on one
    pass without leaving gradients or moving the random number generator (dropout draws its seed from it). Hidden
    dropout compiles too."""
    model, eager = tiny_model(dropout), tiny_model(dropout)
    rng_before = torch.get_rng_state()
    assert compile_for_training(model, 2, 32, "fp32") is True
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(p.grad is None for p in model.parameters())
    block = model.reformer.blocks[0]
    assert "forward" in vars(block.f) and "position_wise" in vars(block.g)  # the compiled wrappers
    ids = torch.randint(0, 8, (2, 32))
    outputs = []
    for each in (model, eager):
        torch.manual_seed(5)  # the same dropout seed
        outputs.append(each(ids, seed=3))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5, rtol=0)


def test_compile_for_training_falls_back_to_eager_where_it_cannot_build(tmp_path):
    """No C++ compiler (``$CXX`` names one that does not exist; a fresh process with an empty compiled-code
    cache, so that it must be called): one warning naming the cause, the eager sublayers back, and training
    works."""
    script = """
import logging, torch
from genoformer.errors import ConfigError
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.train.compiling import compile_for_training
logging.basicConfig(format="%(levelname)s %(message)s")
torch.manual_seed(0)
model = ReformerForMaskedLM(ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=1, bucket_size=16))
compiled = compile_for_training(model, 2, 32, "fp32")
block = model.reformer.blocks[0]
untouched = all(p.grad is None for p in model.parameters())
model(torch.randint(0, 8, (2, 32)), seed=1).square().mean().backward()
print(compiled, "forward" in vars(block.f) or "position_wise" in vars(block.g), untouched,
      all(p.grad is not None for p in model.parameters()))
"""
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "True", "True"]  # not compiled, eager again, clean, trains
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, done.stderr[-2000:]
    assert "torch.compile could not build the model on cpu" in warnings[0] and "/nonexistent/g++" in warnings[0]


def test_a_bad_kernel_environment_variable_is_its_one_line_error_not_a_failure_to_build(monkeypatch, caplog):
    """GENOFORMER_LSH_KERNEL=chunked (only 'reference' is a value) raised in the proving pass: it was caught as
    'torch.compile could not build the model' and training went on eagerly, to fail there on the same error."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    monkeypatch.setenv("GENOFORMER_LSH_KERNEL", "chunked")
    torch._dynamo.reset()
    model = tiny_model()
    with pytest.raises(ConfigError, match="GENOFORMER_LSH_KERNEL='chunked': the only value it takes is"):
        compile_for_training(model, 2, 32, "fp32")
    assert "could not build" not in caplog.text
    assert "forward" not in vars(model.reformer.blocks[0].f)  # eager again
    torch._dynamo.reset()


def test_compiled_dropout_runs_at_a_second_length():
    """Attention dropout drew its mask with torch.rand(weights.shape), which fails to trace once torch.compile makes
    the length symbolic (the second length a compiled sublayer sees)."""
    torch.manual_seed(0)
    config = ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=2, bucket_size=8, attention_dropout=0.2)
    model = compile_sublayers(ReformerForMaskedLM(config)).train()
    for length in (48, 56, 64):
        model(torch.randint(0, 8, (2, length)), seed=1).square().mean().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())


def test_a_model_with_attention_dropout_trains_eagerly(caplog):
    """The reversible backward replays the forward's attention dropout masks through the random number generator,
    which a compiled graph does not promise to honour: with attention dropout the trainer keeps the sublayers
    eager."""
    torch.manual_seed(0)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=1, bucket_size=16,
                                               attention_dropout=0.1))
    with caplog.at_level("INFO", logger="genoformer.train.compiling"):
        assert compile_for_training(model, batch_size=2, window=32, precision="fp32") is False
    assert "attention_dropout 0.1: training with eager sublayers" in caplog.text
    assert all("forward" not in vars(block.f) for block in model.reformer.blocks)
