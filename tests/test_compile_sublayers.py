"""compile_sublayers (what the trainer does on CUDA) changes neither outputs nor gradients: checked on CPU,
where torch.compile runs the same sublayers through Inductor's C++ backend with the reference kernel."""

import torch

from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.model.fast import compile_sublayers


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


def test_training_steps_compile_without_graph_breaks_or_recompiles():
    """Each sublayer compiles to whole graphs (the hash rotations are one opaque operator, not a generator made
    mid-graph), and the hashing seed, new at every step, stops causing recompilation after the second step."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    config = ReformerConfig(vocab_size=8, dim=32, depth=1, heads=2, n_hashes=2, bucket_size=8)
    model = compile_sublayers(ReformerForMaskedLM(config)).train()
    ids = torch.randint(0, 8, (2, 64))
    graphs = []
    for _ in range(4):
        model(ids).square().mean().backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0
    assert dict(counters["graph_break"]) == {}
    assert graphs[3] == graphs[2] == graphs[1]
