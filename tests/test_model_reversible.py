"""The reversible stack against the ordinary residual stack with the same weights (and dropout masks, eager and
compiled); chunked feed-forward; DDP."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.model.fast import compile_sublayers
from genoformer.model.feedforward import FeedForward
from genoformer.model.reformer import AttentionSublayer
from genoformer.model.reversible import Block, plain_stack, reversible_stack

DOUBLE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the CI machine has 2 cores shared by 2 test workers (more threads only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_blocks(depth, dropout=0.1, ff_chunks=3, seed=0, attention_dropout=0.0):
    torch.manual_seed(seed)
    config = ReformerConfig(vocab_size=8, dim=16, heads=2, bucket_size=4, n_hashes=2, dropout=dropout,
                            attention_dropout=attention_dropout, ff_chunks=ff_chunks)
    blocks = nn.ModuleList(Block(AttentionSublayer(config), FeedForward(16, 4, dropout, ff_chunks))
                           for _ in range(depth))
    return blocks.to(DOUBLE).train()


def inputs(length=23, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, length, 16, generator=generator, dtype=DOUBLE, requires_grad=True)
    mask = torch.zeros(2, length, dtype=torch.bool)
    mask[1, length - 5:] = True
    return x, mask


def outputs_and_grads(stack, blocks, x, mask, rng_seed=7, dropout_seed=11):
    """Outputs and gradients of a stack; attention dropout draws from ``rng_seed``, hidden dropout from
    ``dropout_seed``."""
    torch.manual_seed(rng_seed)
    seeds = [3 * i + 1 for i in range(len(blocks))]
    y1, y2 = stack(blocks, x, x, mask, seeds, dropout_seed)
    generator = torch.Generator().manual_seed(0)
    loss = (y1 * torch.randn(y1.shape, generator=generator, dtype=DOUBLE)).sum() + (y2 ** 2).sum()
    params = [p for p in blocks.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [x, *params])
    return (y1.detach(), y2.detach()), grads


@pytest.mark.parametrize("hidden,attention", [(0.1, 0.0), (0.0, 0.1), (0.1, 0.2)])
def test_reversible_equals_plain_stack_with_dropout_on(hidden, attention):
    """Hidden dropout's masks come from keys, attention dropout's from the replayed random number generator."""
    blocks = make_blocks(depth=3, dropout=hidden, attention_dropout=attention)
    x, mask = inputs()
    outs, grads = outputs_and_grads(reversible_stack, blocks, x, mask)
    plain_outs, plain_grads = outputs_and_grads(plain_stack, blocks, x, mask)
    other_outs, _ = outputs_and_grads(plain_stack, blocks, x, mask, rng_seed=8, dropout_seed=12)
    assert not torch.allclose(outs[0], other_outs[0]), "dropout must be active for this test to mean much"
    for got, want in zip(outs, plain_outs):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert len(grads) == 1 + len(list(blocks.parameters()))
    for got, want in zip(grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_reversible_model_equals_plain_model_with_dropout_on():
    torch.manual_seed(0)
    config = dict(vocab_size=12, dim=16, depth=2, heads=2, bucket_size=4, dropout=0.2, attention_dropout=0.1,
                  ff_chunks=2)
    reversible = ReformerForMaskedLM(ReformerConfig(**config, reversible=True)).to(DOUBLE).train()
    plain = ReformerForMaskedLM(ReformerConfig(**config, reversible=False)).to(DOUBLE).train()
    plain.load_state_dict(reversible.state_dict())
    tokens = torch.randint(0, 12, (2, 19), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones(2, 19, dtype=torch.bool)
    attention_mask[0, 15:] = False
    results = []
    for model in (reversible, plain):
        torch.manual_seed(5)
        logits = model(tokens, attention_mask, seed=2)
        logits.log_softmax(-1)[..., 0].sum().backward()
        results.append((logits.detach(), {name: p.grad for name, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    for name, grad in results[1][1].items():
        torch.testing.assert_close(results[0][1][name], grad, rtol=0, atol=1e-6, msg=name)


def test_compiled_reversible_model_with_dropout_equals_the_plain_model_eager():
    """Hidden dropout in compiled sublayers (CPU Inductor): the reversible model's outputs and gradients equal the
    eager plain stack's, the same masks drawn in the forward, in its recomputation and in the plain stack (the
    generator-replayed dropout it replaces does not hold compiled). Two feed-forward chunks: two keys, so the
    compiled feed-forward also runs with its key a symbolic integer."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    config = dict(vocab_size=12, dim=32, depth=1, heads=2, bucket_size=8, n_hashes=2, dropout=0.1, ff_chunks=2)
    compiled = compile_sublayers(ReformerForMaskedLM(ReformerConfig(**config, reversible=True))).train()
    plain = ReformerForMaskedLM(ReformerConfig(**config, reversible=False)).train()
    plain.load_state_dict(compiled.state_dict())
    tokens = torch.randint(0, 12, (2, 48), generator=torch.Generator().manual_seed(1))
    results = []
    for model in (compiled, plain):
        torch.manual_seed(100)  # the pass's dropout seed
        logits = model(tokens, seed=3)
        logits.log_softmax(-1)[..., 0].sum().backward()
        results.append((logits.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (got, got_grads), (want, want_grads) = results
    torch.manual_seed(101)
    assert (plain(tokens, seed=3) - want).abs().max() > 1e-2, "dropout must change the outputs"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    torch._dynamo.reset()


def saved_for_backward(stack, depth):
    """Number and total bytes of the tensors autograd saves for backward in one pass of the stack."""
    blocks = make_blocks(depth, dropout=0.1)
    x, mask = inputs(length=32)
    saved = []
    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y1, y2 = stack(blocks, x, x, mask, list(range(depth)))
    (y1 + y2).sum().backward()
    return len(saved), sum(saved)


def test_saved_activations_do_not_grow_with_depth_in_the_reversible_stack():
    reversible = [saved_for_backward(reversible_stack, depth) for depth in (1, 2, 4)]
    plain = [saved_for_backward(plain_stack, depth) for depth in (1, 2, 4)]
    assert reversible[0] == reversible[1] == reversible[2]
    assert plain[0][0] < plain[1][0] < plain[2][0]
    assert plain[2][1] > 3 * plain[0][1] and plain[0][1] > reversible[0][1]


def test_backward_leaves_the_callers_rng_stream_alone():
    blocks = make_blocks(depth=2)
    x, mask = inputs()
    y1, y2 = reversible_stack(blocks, x, x, mask, [0, 1])
    state = torch.get_rng_state()
    (y1.sum() + y2.sum()).backward()
    assert torch.equal(torch.get_rng_state(), state)


def test_frozen_parameters_get_no_gradient_and_the_rest_stay_exact():
    blocks = make_blocks(depth=2, dropout=0.0)
    for p in blocks[0].f.parameters():
        p.requires_grad_(False)
    x, mask = inputs()
    _, grads = outputs_and_grads(reversible_stack, blocks, x, mask)
    _, plain_grads = outputs_and_grads(plain_stack, blocks, x, mask)
    for got, want in zip(grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("length", [1, 17, 64])
def test_chunked_feedforward_equals_unchunked(length):
    torch.manual_seed(0)
    whole = FeedForward(16, 4, dropout=0.0, chunks=1).to(DOUBLE)
    chunked = FeedForward(16, 4, dropout=0.0, chunks=5).to(DOUBLE)
    chunked.load_state_dict(whole.state_dict())
    x = torch.randn(2, length, 16, dtype=DOUBLE, requires_grad=True)
    torch.testing.assert_close(chunked(x), whole(x), rtol=0, atol=1e-12)
    grad_chunked = torch.autograd.grad(chunked(x).pow(2).sum(), [x, *chunked.parameters()])
    grad_whole = torch.autograd.grad(whole(x).pow(2).sum(), [x, *whole.parameters()])
    for got, want in zip(grad_chunked, grad_whole):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_ff_chunks_do_not_change_the_reversible_model():
    torch.manual_seed(0)
    config = dict(vocab_size=12, dim=16, depth=2, heads=2, bucket_size=4)
    one = ReformerForMaskedLM(ReformerConfig(**config, ff_chunks=1)).to(DOUBLE).train()
    many = ReformerForMaskedLM(ReformerConfig(**config, ff_chunks=4)).to(DOUBLE).train()
    many.load_state_dict(one.state_dict())
    tokens = torch.randint(0, 12, (2, 29), generator=torch.Generator().manual_seed(1))
    results = []
    for model in (one, many):
        logits = model(tokens, seed=0)
        logits.pow(2).mean().backward()
        results.append((logits.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-10)
    for got, want in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


DDP_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch, torch.distributed as dist, torch.multiprocessing as mp
    from torch.nn.parallel import DistributedDataParallel
    from genoformer.model import ReformerConfig, ReformerForMaskedLM

    def build():
        torch.manual_seed(0)
        config = ReformerConfig(vocab_size=12, dim=16, depth=3, heads=2, bucket_size=4, ff_chunks=2)
        return ReformerForMaskedLM(config).double().train()

    def batch():
        return torch.randint(0, 12, (4, 21), generator=torch.Generator().manual_seed(1))

    def loss_of(model, tokens, step):
        return model(tokens, seed=step).log_softmax(-1)[..., 3].mean()

    def worker(rank, init_file):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=2)
        model = DistributedDataParallel(build())
        for step in range(2):  # two backward passes: a parameter marked ready twice fails on the first
            model.zero_grad()
            loss_of(model, batch()[2 * rank: 2 * rank + 2], step).backward()
        dist.destroy_process_group()
        return model.module

    if __name__ == "__main__":  # this process is rank 0, a spawned one rank 1
        init_file = sys.argv[1]
        other = mp.get_context("spawn").Process(target=worker, args=(1, init_file))
        other.start()
        ddp = worker(0, init_file)
        other.join()
        model = build()
        loss_of(model, batch(), 1).backward()
        diff = max((p.grad - q.grad).abs().max().item()
                   for p, q in zip(model.parameters(), ddp.parameters()))
        print(json.dumps({"max_grad_diff": diff, "n_params": len(list(ddp.parameters())),
                          "rank1_exit": other.exitcode}))
""")


@pytest.mark.slow
def test_reversible_model_trains_under_ddp_with_gloo(tmp_path):
    """Both existing Reformers fail here with 'Expected to mark a variable ready only once'."""
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "init")], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n_params"] == len(list(ReformerForMaskedLM(ReformerConfig(vocab_size=12, dim=16, depth=3,
                                                                             heads=2)).parameters()))
    assert report["rank1_exit"] == 0
    assert report["max_grad_diff"] < 1e-10
