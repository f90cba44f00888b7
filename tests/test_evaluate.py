"""Evaluation: per-base scoring of k-mer predictions against plain loops, the CLI's JSON, bad input."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
import yaml

from genoformer.cli import main
from genoformer.io.fasta import Reference, encode_bases
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.tokenize.dataset import Manifest, TokenDataset
from genoformer.tokenize.encode import decode
from genoformer.tokenize.vocab import N_SPECIAL
from genoformer.train.evaluate import base_log_probs, masked_lm_scores, split_sequences
from genoformer.train.markov import MarkovModel
from genoformer.train.masking import SpanMasker, seeded_generator

TINY = {
    "model": {"dim": 32, "depth": 2, "heads": 2, "bucket_size": 32, "n_hashes": 1, "max_seq_len": 256},
    "optim": {"lr": 3e-3, "warmup_steps": 2},
    "data": {"batch_size": 4},
    "run": {"steps": 3, "log_every": 1, "eval_windows": 2, "checkpoint_every": 3},
}


def tokenize(fasta, out, k, stride=1, window=256):
    assert main(["-q", "tokenize", "--fasta", str(fasta), "--k", str(k), "--stride", str(stride),
                 "--window", str(window), "--block", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, chloroplast_fasta):
    """Chloroplast token datasets: k=1, k=3 stride 1, k=3 stride 3, and k=1 with 512-token windows."""
    root = tmp_path_factory.mktemp("eval_tokens")
    return {"k1": tokenize(chloroplast_fasta, root / "k1", 1), "k3": tokenize(chloroplast_fasta, root / "k3", 3),
            "k3s3": tokenize(chloroplast_fasta, root / "k3s3", 3, stride=3),
            "k1w512": tokenize(chloroplast_fasta, root / "k1w512", 1, window=512)}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokens):
    """A 3-step run on the k=1 chloroplast tokens."""
    root = tmp_path_factory.mktemp("eval_run")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["-q", "pretrain", "--data", str(tokens["k1"]), "--config", str(config),
                 "--out", str(root / "run")]) == 0
    return root / "run"


def test_base_marginals_match_loops_over_kmers():
    k = 3
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(6, 4 ** k, generator=generator, dtype=torch.float64), dim=1)
    offsets = torch.tensor([0, 1, 2, 2, 1, 0])
    fast = base_log_probs(log_probs, offsets, k)
    kmers = list(itertools.product(range(4), repeat=k))  # index order = lexicographic over base codes
    for row, offset in enumerate(offsets.tolist()):
        for base in range(4):
            total = sum(math.exp(log_probs[row, i]) for i, kmer in enumerate(kmers) if kmer[offset] == base)
            assert math.isclose(math.exp(fast[row, base]), total, rel_tol=1e-12)


def reference_scores(model, dataset, masker, seed, markov):
    """Plain loops per window: which bases are hidden, which k-mer scores each, its marginal, Markov bits."""
    k, stride = dataset.vocab.k, dataset.manifest["stride"]
    kmers = list(itertools.product(range(4), repeat=k))
    bits, markov_bits, two_sided_bits, scored, correct_tokens, masked_tokens = 0.0, 0.0, 0.0, 0, 0, 0
    for index in range(len(dataset)):
        item = dataset[index]
        ids, present = item["input_ids"][None], item["attention_mask"][None]
        batch = masker(ids, present, seeded_generator("cpu", seed, index))
        with torch.no_grad():
            log_probs = torch.log_softmax(model(batch.input_ids, present, seed=0)[0, :, N_SPECIAL:].double(), -1)
        masked = batch.masked[0].tolist()
        n_tokens = len(masked)
        true = encode_bases(decode(ids[0].numpy(), dataset.vocab, stride))
        markov_window = markov.bits(true)
        hidden = np.zeros(true.size, dtype=bool)
        for token in range(n_tokens):
            if masked[token]:
                masked_tokens += 1
                correct_tokens += int(log_probs[token].argmax()) == int(ids[0, token]) - N_SPECIAL
        for base in range((n_tokens - 1) * stride + k):
            covering = [t for t in range(n_tokens) if t * stride <= base < t * stride + k and present[0, t]]
            if not covering or not all(masked[t] for t in covering):
                continue
            scorer = min(covering, key=lambda t: (abs(base - t * stride - k // 2), t))
            offset = base - scorer * stride
            p = sum(math.exp(log_probs[scorer, i]) for i, kmer in enumerate(kmers) if kmer[offset] == true[base])
            bits -= math.log2(p)
            markov_bits += markov_window[base]
            hidden[base] = True
            scored += 1
        two_sided_bits += markov.two_sided_bits(true, hidden)[hidden].sum()
    return {"bits_per_base": bits / scored, "scored_bases": scored, "markov_bits_per_base": markov_bits / scored,
            "markov_two_sided_bits_per_base": two_sided_bits / scored,
            "masked_token_accuracy": correct_tokens / masked_tokens}


@pytest.mark.parametrize("name,span_bases", [("k1", 1), ("k3", 2), ("k3s3", 1)])
def test_scores_match_plain_loops(tokens, name, span_bases):
    dataset = TokenDataset(tokens[name], "test")
    sequence, start, _ = dataset.windows[0]
    # two real windows, and one of 200 tokens (padded to 256, as at the end of a contig)
    dataset.windows = np.concatenate([dataset.windows[1:3], [[sequence, start, 200]]])
    k, stride = dataset.vocab.k, dataset.manifest["stride"]
    torch.manual_seed(0)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=dataset.vocab.size, dim=16, depth=1, heads=2,
                                               bucket_size=32, n_hashes=1, max_seq_len=256)).eval()
    masker = SpanMasker(k, stride, dataset.vocab.size, span_bases=span_bases, p_mask=1.0, p_random=0.0)
    manifest = dataset.manifest
    markov = MarkovModel.select(split_sequences(manifest, "train"), split_sequences(manifest, "val"), max_order=3)
    fast = masked_lm_scores(model, dataset, masker, "cpu", batch_size=2, seed=7, markov=markov)
    slow = reference_scores(model, dataset, masker, 7, markov)
    assert fast["scored_bases"] == slow["scored_bases"] > 0
    assert fast["bits_per_base"] == pytest.approx(slow["bits_per_base"], rel=1e-5)
    assert fast["markov_bits_per_base"] == pytest.approx(slow["markov_bits_per_base"], rel=1e-9)
    assert fast["markov_two_sided_bits_per_base"] == pytest.approx(slow["markov_two_sided_bits_per_base"], rel=1e-9)
    assert fast["markov_two_sided_bits_per_base"] != fast["markov_bits_per_base"]
    assert fast["masked_token_accuracy"] == pytest.approx(slow["masked_token_accuracy"])
    assert fast["markov_bits_per_base_by_order"][str(markov.order)] == fast["markov_bits_per_base"]


def test_k1_bits_are_the_masked_cross_entropy(tokens):
    dataset = TokenDataset(tokens["k1"], "val")
    torch.manual_seed(1)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=dataset.vocab.size, dim=16, depth=1, heads=2,
                                               bucket_size=32, max_seq_len=256)).eval()
    masker = SpanMasker(1, 1, dataset.vocab.size, span_bases=3, p_mask=1.0, p_random=0.0)
    scores = masked_lm_scores(model, dataset, masker, "cpu", max_windows=4, batch_size=4, seed=3)
    total, count = 0.0, 0
    for index in scores_windows(dataset, 4):
        item = dataset[index]
        batch = masker(item["input_ids"][None], item["attention_mask"][None], seeded_generator("cpu", 3, index))
        with torch.no_grad():
            logits = model(batch.input_ids, item["attention_mask"][None], seed=0)[0, :, N_SPECIAL:]
        labels = item["input_ids"][batch.masked[0]] - N_SPECIAL
        total += torch.nn.functional.cross_entropy(logits[batch.masked[0]], labels, reduction="sum").item()
        count += len(labels)
    assert scores["scored_bases"] == count
    assert scores["bits_per_base"] == pytest.approx(total / count / math.log(2), rel=1e-5)


def scores_windows(dataset, n):
    return np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))


def test_evaluate_cli_writes_model_and_markov_side_by_side(run, tokens, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tokens["k1"]), "--out", str(out),
                 "--max-windows", "6", "--max-markov-order", "4"]) == 0
    result = json.loads(out.read_text())
    assert set(result["splits"]) == {"val", "test"}
    assert result["k"] == 1 and result["masking"]["span_bases"] == 1
    assert set(result["markov"]["validation_bits_per_base_by_order"]) == {"0", "1", "2", "3", "4"}
    for scores in result["splits"].values():
        assert scores["windows"] == 6 and scores["scored_bases"] > 0
        assert 1.0 < scores["bits_per_base"] < 3.0 and 1.0 < scores["markov_bits_per_base"] < 2.1
        assert 1.0 < scores["markov_two_sided_bits_per_base"] < 2.1
        assert 0.0 <= scores["masked_token_accuracy"] <= 1.0
    # a step-N folder is a checkpoint too, with the same weights here (the last step)
    again = tmp_path / "again.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run / "checkpoints" / "step-3"), "--data",
                 str(tokens["k1"]), "--out", str(again), "--max-windows", "6", "--max-markov-order", "4"]) == 0
    assert json.loads(again.read_text())["splits"] == result["splits"]


def test_overlapping_training_windows_are_scored_side_by_side(run, chloroplast_fasta, tmp_path):
    """A dataset cut with --window-stride below the window (overlapping training windows) is scored on windows
    side by side, so no hidden base is scored twice."""
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "1", "--window", "256",
                 "--window-stride", "64", "--block", "4", "--out", str(tmp_path / "ds")]) == 0
    out = tmp_path / "eval.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tmp_path / "ds"), "--out", str(out),
                 "--splits", "test", "--max-markov-order", "2"]) == 0
    scores = json.loads(out.read_text())["splits"]["test"]
    side_by_side = TokenDataset(tmp_path / "ds", "test", window=256, window_stride=256)
    assert len(TokenDataset(tmp_path / "ds", "test")) > 3 * len(side_by_side)
    assert scores["windows"] == len(side_by_side)
    regions = sorted(side_by_side.region(i) for i in range(len(side_by_side)))
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in zip(regions, regions[1:]))


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genoformer evaluate: error: "), err
    return err[0]


def test_a_split_of_all_n_windows_is_an_error_not_zero_bits(run, tmp_path, capsys, chloroplast_fasta):
    """Windows that are all N (kept by --max-n-fraction 1) hold no base to hide: the split is refused by name, not
    reported as 0 bits/base."""
    with Reference(chloroplast_fasta) as reference:
        sequence = reference.fetch("NC_000932.1", 0, 140_000).upper()
    contigs = {"a": sequence[:100_000], "b": sequence[100_000:], "gap": "N" * 40_000}
    (tmp_path / "gap.fa").write_text("".join(f">{name}\n{bases}\n" for name, bases in contigs.items()))
    assert main(["-q", "tokenize", "--fasta", str(tmp_path / "gap.fa"), "--k", "1", "--window", "256",
                 "--split-by", "contig", "--max-n-fraction", "1", "--out", str(tmp_path / "ds")]) == 0
    split = next(iv["split"] for iv in Manifest.load(tmp_path / "ds")["intervals"] if iv["contig"] == "gap")
    assert split in ("val", "test")
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tmp_path / "ds"),
                 "--out", str(tmp_path / "eval.json"), "--max-windows", "4", "--max-markov-order", "2"]) == 2
    assert f"the {split} split's 4 windows hold no base to score (all N)" in one_line_error(capsys)
    assert not (tmp_path / "eval.json").exists()


def test_dataset_with_another_k_exits_2(run, tokens, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tokens["k3"]),
                 "--out", str(tmp_path / "x.json")]) == 2
    line = one_line_error(capsys)
    assert "token dataset has k=3" in line and "trained on k=1" in line
    assert not (tmp_path / "x.json").exists()


def test_windows_longer_than_the_model_exit_2(run, tokens, tmp_path, capsys):
    # by default the run's training window (256) is cut from a dataset of 512-token windows: fine
    out = tmp_path / "x.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tokens["k1w512"]), "--out", str(out),
                 "--splits", "test", "--max-windows", "2", "--max-markov-order", "2"]) == 0
    assert json.loads(out.read_text())["window"] == 256
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tokens["k1w512"]), "--window", "512",
                 "--out", str(tmp_path / "y.json")]) == 2
    assert "windows of 512 tokens are longer than the model's max_seq_len 256" in one_line_error(capsys)


def test_missing_and_damaged_checkpoints_exit_2(run, tokens, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nowhere"), "--data", str(tokens["k1"]),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "checkpoint not found" in one_line_error(capsys)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "vocab.json", "model.safetensors"):
        (damaged / name).write_bytes((run / name).read_bytes())
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    assert main(["evaluate", "--checkpoint", str(damaged), "--data", str(tokens["k1"]),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "model.safetensors" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_gpu_exits_2(run, tokens, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tokens["k1"]), "--device", "cuda",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "device 'cuda' asked for, but torch sees no CUDA GPU" in one_line_error(capsys)


@pytest.mark.parametrize("vocab", [[], {"type": "kmer", "k": 1}, {"type": "kmer", "k": 99}])
def test_damaged_vocab_json_exits_2(run, tokens, tmp_path, capsys, vocab):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "model.safetensors"):
        (damaged / name).write_bytes((run / name).read_bytes())
    (damaged / "vocab.json").write_text(json.dumps(vocab))
    assert main(["evaluate", "--checkpoint", str(damaged), "--data", str(tokens["k1"]),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert f"{damaged / 'vocab.json'}: not a genoformer vocabulary: " in one_line_error(capsys)


def test_dataset_without_a_val_split_exits_2(run, chloroplast_fasta, tmp_path, capsys):
    """`tokenize --split-fractions 1,0,0` makes a dataset with no val split: evaluate, which picks the Markov
    order on val, says so instead of a numpy traceback (for --splits train too)."""
    data = tmp_path / "train_only"
    assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "1", "--window", "256",
                 "--block", "4", "--split-fractions", "1,0,0", "--out", str(data)]) == 0
    for splits in (["val", "test"], ["train"]):
        out = tmp_path / "x.json"
        assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--out", str(out),
                     "--splits", *splits, "--max-windows", "2", "--max-markov-order", "2"]) == 2
        assert f"{data}: split 'val' is empty" in one_line_error(capsys)
        assert not out.exists()


def test_checkpoint_with_nan_weights_exits_2(run, tokens, tmp_path, capsys):
    """NaN weights (a run that diverged) would make every score NaN: loading them is an error naming the tensor."""
    from safetensors.torch import load_file, save_file

    damaged = tmp_path / "nan"
    damaged.mkdir()
    for name in ("config.json", "vocab.json", "trainer_state.json"):
        (damaged / name).write_bytes((run / name).read_bytes())
    tensors = load_file(str(run / "model.safetensors"))
    tensors["reformer.embedding.weight"][3, 0] = float("nan")
    save_file(tensors, str(damaged / "model.safetensors"))
    out = tmp_path / "x.json"
    assert main(["evaluate", "--checkpoint", str(damaged), "--data", str(tokens["k1"]), "--out", str(out)]) == 2
    assert f"{damaged / 'model.safetensors'}: tensor 'reformer.embedding.weight' holds NaN" in one_line_error(capsys)
    assert not out.exists()
