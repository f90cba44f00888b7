"""Evaluation: per-base scoring of k-mer predictions against plain loops (over several mask passes too), novel
bases (no 31-mer shared with train) against a plain set of the train split's 31-mers, bootstrap intervals against
a plain resampling loop, the CLI's JSON, bad input."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
import yaml

from genoformer.cli import main
from genoformer.io.fasta import N_CODE, Reference, encode_bases
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.tokenize.dataset import Manifest, TokenDataset
from genoformer.tokenize.encode import decode
from genoformer.tokenize.vocab import N_SPECIAL
from genoformer.train.config import PretrainConfig
from genoformer.tasks.metrics import CI_LEVEL, MIN_BOOTSTRAP_GROUPS, N_BOOTSTRAP, ratio_intervals
from genoformer.train.evaluate import (base_log_probs, bits_intervals, evaluation_windows, load_run_model,
                                       masked_lm_scores, pass_generator, shared_with_train, split_sequences,
                                       window_codes, window_intervals)
from genoformer.train.markov import MarkovModel
from genoformer.train.masking import SpanMasker, masker_for, seeded_generator
from genoformer.train.novel import REPEAT_K, kmers_found_in, repeat_bases, window_kmers

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


COMPLEMENT = str.maketrans("ACGT", "TGCA")


def canonical(kmer: str) -> str:
    return min(kmer, kmer.translate(COMPLEMENT)[::-1])


def train_kmer_set(manifest) -> set[str]:
    """Every canonical 31-mer of the train split's decoded sequence (per interval), as plain strings."""
    index_of = {entry["name"]: i for i, entry in enumerate(manifest["contigs"])}
    kmers = set()
    for interval in manifest["intervals"]:
        if interval["split"] == "train":
            tokens = manifest.tokens(index_of[interval["contig"]], interval["start"], interval["end"])
            sequence = decode(np.asarray(tokens), manifest.vocab, manifest["stride"])
            kmers.update(canonical(sequence[i:i + 31]) for i in range(len(sequence) - 30)
                         if "N" not in sequence[i:i + 31])
    return kmers


def is_repeat(window: str, base: int, train_kmers: set[str]) -> bool:
    """Whether a 31-mer inside ``window`` covering ``base`` is in the train split (plain string loop)."""
    return any(canonical(window[s:s + 31]) in train_kmers
               for s in range(max(0, base - 30), min(base, len(window) - 31) + 1) if "N" not in window[s:s + 31])


def reference_scores(model, dataset, masker, seed, markov, train_kmers=frozenset(), indices=None, passes=1):
    """Plain loops per pass and window: which bases are hidden, which k-mer scores each, its marginal, Markov
    bits; and the same over the hidden bases that no 31-mer of ``train_kmers`` covers. Pass 0 masks window i with
    the seed evaluation had before passes, (seed, i); pass p with (seed, i, p)."""
    k, stride = dataset.vocab.k, dataset.manifest["stride"]
    kmers = list(itertools.product(range(4), repeat=k))
    bits, markov_bits, two_sided_bits, scored, correct_tokens, masked_tokens = 0.0, 0.0, 0.0, 0, 0, 0
    novel_bits, markov_novel_bits, two_sided_novel_bits, novel = 0.0, 0.0, 0.0, 0
    ever_hidden = {}
    for pass_index, index in itertools.product(range(passes), range(len(dataset)) if indices is None else indices):
        item = dataset[index]
        ids, present = item["input_ids"][None], item["attention_mask"][None]
        batch = masker(ids, present, seeded_generator("cpu", *((seed, index) if pass_index == 0 else
                                                               (seed, index, pass_index))))
        with torch.no_grad():
            log_probs = torch.log_softmax(model(batch.input_ids, present, seed=0)[0, :, N_SPECIAL:].double(), -1)
        masked = batch.masked[0].tolist()
        n_tokens = len(masked)
        window = decode(ids[0].numpy(), dataset.vocab, stride)
        true = encode_bases(window)
        markov_window = markov.bits(true)
        hidden, novel_here = np.zeros(true.size, dtype=bool), np.zeros(true.size, dtype=bool)
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
            if not is_repeat(window, base, train_kmers):
                novel_bits -= math.log2(p)
                markov_novel_bits += markov_window[base]
                novel_here[base] = True
                novel += 1
        two_sided, approximate = markov.two_sided_bits(true, hidden)
        assert not approximate.any()
        two_sided_bits += two_sided[hidden].sum()
        two_sided_novel_bits += two_sided[novel_here].sum()
        ever_hidden[index] = ever_hidden.get(index, hidden) | hidden
    return {"bits_per_base": bits / scored, "scored_bases": scored, "markov_bits_per_base": markov_bits / scored,
            "distinct_scored_bases": sum(int(hidden.sum()) for hidden in ever_hidden.values()),
            "markov_two_sided_bits_per_base": two_sided_bits / scored,
            "masked_token_accuracy": correct_tokens / masked_tokens, "novel_bases": novel,
            "novel_bits_per_base": novel_bits / novel, "markov_novel_bits_per_base": markov_novel_bits / novel,
            "markov_two_sided_novel_bits_per_base": two_sided_novel_bits / novel}


def repeat_share(dataset, index, train_kmers):
    """Share of the bases of window ``index`` that a train 31-mer covers (plain string loop)."""
    window = decode(dataset[index]["input_ids"].numpy(), dataset.vocab, dataset.manifest["stride"])
    return np.mean([is_repeat(window, base, train_kmers) for base in range(len(window))])


@pytest.mark.parametrize("name,span_bases,passes", [("k1", 1, 1), ("k1", 1, 3), ("k3", 2, 2), ("k3s3", 1, 2)])
def test_scores_match_plain_loops(tokens, name, span_bases, passes):
    """All figures, and those over novel bases, against plain loops, over one mask pass or several (every
    (pass, hidden base) pair counted); the chloroplast's inverted repeat puts copies of training sequence in the
    test split."""
    dataset = TokenDataset(tokens[name], "test")
    train_kmers = train_kmer_set(dataset.manifest)
    shares = np.array([repeat_share(dataset, index, train_kmers) for index in range(len(dataset))])
    novel, mixed, copied = (int(np.flatnonzero(test)[0]) for test in (shares == 0, (shares > 0) & (shares < 1),
                                                                      shares == 1))
    sequence, start, _ = dataset.windows[copied]
    # a window without a copy in train, one partly copied, and one of 200 tokens (padded to 256, as at the end of
    # a contig) wholly copied
    dataset.windows = np.concatenate([dataset.windows[[novel, mixed]], [[sequence, start, 200]]])
    k, stride = dataset.vocab.k, dataset.manifest["stride"]
    torch.manual_seed(0)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=dataset.vocab.size, dim=16, depth=1, heads=2,
                                               bucket_size=32, n_hashes=1, max_seq_len=256)).eval()
    masker = SpanMasker(k, stride, dataset.vocab.size, span_bases=span_bases, p_mask=1.0, p_random=0.0)
    manifest = dataset.manifest
    markov = MarkovModel.select(split_sequences(manifest, "train"), split_sequences(manifest, "val"), max_order=3)
    repeat_kmers = shared_with_train(manifest, [dataset], None)
    fast = masked_lm_scores(model, dataset, masker, "cpu", batch_size=2, seed=7, passes=passes, markov=markov,
                            repeat_kmers=repeat_kmers)
    slow = reference_scores(model, dataset, masker, 7, markov, train_kmers, passes=passes)
    assert_same_scores(fast, slow)
    assert 0 < fast["novel_bases"] < fast["scored_bases"]
    assert fast["markov_bits_per_base_by_order"][str(markov.order)] == fast["markov_bits_per_base"]
    assert fast["distinct_scored_bases"] == slow["distinct_scored_bases"]
    assert (fast["distinct_scored_bases"] < fast["scored_bases"]) == (passes > 1)
    assert fast["markov_two_sided_approximate_bases"] == 0
    plain = masked_lm_scores(model, dataset, masker, "cpu", batch_size=2, seed=7, passes=passes, markov=markov)
    without_novel = {key: value for key, value in fast.items() if "novel" not in key}
    without_novel["ci95"] = {name: value for name, value in fast["ci95"].items() if "novel" not in name}
    assert plain == without_novel
    assert set(fast["ci95"]) == CI95_NAMES | NOVEL_CI95_NAMES
    for name, (low, high) in fast["ci95"].items():  # 3 windows: resampled one by one
        assert low <= point_estimate(fast, name) <= high, name
    assert fast["bootstrap"] == {"unit": "window", "units": 3}


DIFFERENCES = {"model_minus_markov": ("bits_per_base", "markov_bits_per_base"),
               "model_minus_markov_two_sided": ("bits_per_base", "markov_two_sided_bits_per_base"),
               "novel_model_minus_markov": ("novel_bits_per_base", "markov_novel_bits_per_base"),
               "novel_model_minus_markov_two_sided": ("novel_bits_per_base", "markov_two_sided_novel_bits_per_base")}
CI95_NAMES = {"bits_per_base", "markov_bits_per_base", "markov_two_sided_bits_per_base", "model_minus_markov",
              "model_minus_markov_two_sided"}
NOVEL_CI95_NAMES = {"novel_bits_per_base", "markov_novel_bits_per_base", "markov_two_sided_novel_bits_per_base",
                    "novel_model_minus_markov", "novel_model_minus_markov_two_sided"}


def point_estimate(scores, name):
    """The figure that the interval ``scores["ci95"][name]`` bounds (a difference: model minus chain)."""
    if name in DIFFERENCES:
        model, chain = DIFFERENCES[name]
        return scores[model] - scores[chain]
    return scores[name]


def assert_same_scores(fast, slow):
    assert fast["scored_bases"] == slow["scored_bases"] > 0
    assert fast["bits_per_base"] == pytest.approx(slow["bits_per_base"], rel=1e-5)
    assert fast["markov_bits_per_base"] == pytest.approx(slow["markov_bits_per_base"], rel=1e-9)
    assert fast["markov_two_sided_bits_per_base"] == pytest.approx(slow["markov_two_sided_bits_per_base"], rel=1e-9)
    assert fast["markov_two_sided_bits_per_base"] != fast["markov_bits_per_base"]
    assert fast["masked_token_accuracy"] == pytest.approx(slow["masked_token_accuracy"])
    assert fast["novel_bases"] == slow["novel_bases"]
    assert fast["novel_bits_per_base"] == pytest.approx(slow["novel_bits_per_base"], rel=1e-5)
    assert fast["markov_novel_bits_per_base"] == pytest.approx(slow["markov_novel_bits_per_base"], rel=1e-9)
    assert fast["markov_two_sided_novel_bits_per_base"] == \
        pytest.approx(slow["markov_two_sided_novel_bits_per_base"], rel=1e-9)


def test_k1_bits_are_the_masked_cross_entropy(tokens):
    dataset = TokenDataset(tokens["k1"], "val")
    torch.manual_seed(1)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=dataset.vocab.size, dim=16, depth=1, heads=2,
                                               bucket_size=32, max_seq_len=256)).eval()
    masker = SpanMasker(1, 1, dataset.vocab.size, span_bases=3, p_mask=1.0, p_random=0.0)
    scores = masked_lm_scores(model, dataset, masker, "cpu", max_windows=4, batch_size=4, seed=3)
    assert set(scores["ci95"]) == {"bits_per_base"}  # no Markov chain given: the model's interval only
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
    assert result["k"] == 1 and result["masking"]["span_bases"] == 1 and result["masking"]["passes"] == 8
    assert set(result["markov"]["validation_bits_per_base_by_order"]) == {"0", "1", "2", "3", "4"}
    assert result["markov"]["selection"]["method"] in ("validation", "cross-validation")
    for split, scores in result["splits"].items():
        assert scores["windows"] == 6 and scores["scored_bases"] > 0
        assert scores["split_windows"] == len(TokenDataset(tokens["k1"], split)) > 6
        assert 1.0 < scores["bits_per_base"] < 3.0 and 1.0 < scores["markov_bits_per_base"] < 2.1
        assert 1.0 < scores["markov_two_sided_bits_per_base"] < 2.1
        assert 0.0 <= scores["masked_token_accuracy"] <= 1.0
        assert scores["distinct_scored_bases"] < scores["scored_bases"]
        assert set(scores["ci95"]) == CI95_NAMES | NOVEL_CI95_NAMES and scores["novel_bases"] > 0
        assert scores["markov_two_sided_approximate_bases"] == 0
        low, high = scores["ci95"]["model_minus_markov_two_sided"]
        assert low < scores["bits_per_base"] - scores["markov_two_sided_bits_per_base"] < high
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
    assert scores["windows"] == scores["split_windows"] == len(side_by_side)
    regions = sorted(side_by_side.region(i) for i in range(len(side_by_side)))
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in zip(regions, regions[1:]))


@pytest.mark.parametrize("passes", [1, 3])
def test_evaluate_cli_novel_figures_match_plain_loops(run, tokens, tmp_path, passes):
    """The CLI's JSON, novel figures included, against plain loops over the windows it scores and a plain set
    of the train split's 31-mers; with one pass, masked with the seeds evaluation had before passes. Its
    intervals resample the split's blocks that the windows come from."""
    out = tmp_path / "eval.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tokens["k1"]), "--out", str(out),
                 "--splits", "test", "--max-windows", "8", "--max-markov-order", "4", "--mask-passes",
                 str(passes)]) == 0
    result = json.loads(out.read_text())
    model, _, trainer_state = load_run_model(run)
    dataset = TokenDataset(tokens["k1"], "test", window=result["window"], window_stride=result["window"])
    config = PretrainConfig.from_dict(trainer_state["config"], "trainer_state.json")
    masker = masker_for(config.data, dataset.vocab, 1, evaluation=True)
    manifest = dataset.manifest
    markov = MarkovModel.select(split_sequences(manifest, "train"), split_sequences(manifest, "val"), max_order=4)
    slow = reference_scores(model, dataset, masker, 0, markov, train_kmer_set(manifest),
                            evaluation_windows(dataset, 8), passes=passes)
    assert result["repeat_kmer"] == REPEAT_K and result["masking"]["passes"] == passes
    test = result["splits"]["test"]
    assert_same_scores(test, slow)
    assert test["distinct_scored_bases"] == slow["distinct_scored_bases"]
    assert 0 < test["novel_bases"] < test["scored_bases"]  # the windows spread over the split reach the repeat
    blocks = {(interval["contig"], interval["start"]) for interval in manifest["intervals"]
              for index in evaluation_windows(dataset, 8)
              if interval["split"] == "test" and interval["contig"] == dataset.region(index)[0]
              and interval["start"] <= dataset.windows[index, 1] < interval["end"]}
    assert len(blocks) >= MIN_BOOTSTRAP_GROUPS
    assert test["bootstrap"] == {"unit": "interval", "units": len(blocks)}


def test_too_few_held_out_blocks_are_named_with_the_tokenize_option_that_gives_more(run, chloroplast_fasta, tmp_path,
                                                                                    caplog):
    """The workflow's tokenize settings on the 154 kbp chloroplast (512-token windows, blocks of 8) hold out 3 test
    blocks: the intervals resample windows, with a warning naming --block; blocks of 2 hold out enough to resample
    blocks, without it."""
    for block, unit in (("8", "window"), ("2", "interval")):
        data, out = tmp_path / f"block{block}", tmp_path / f"block{block}.json"
        assert main(["-q", "tokenize", "--fasta", str(chloroplast_fasta), "--k", "1", "--window", "512", "--block",
                     block, "--out", str(data)]) == 0
        caplog.clear()
        assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--out", str(out), "--splits", "test",
                     "--mask-passes", "1", "--max-markov-order", "2"]) == 0
        assert json.loads(out.read_text())["splits"]["test"]["bootstrap"]["unit"] == unit
        err = caplog.text
        warned = "test: its windows lie in fewer than 5 held-out blocks or contigs, so the intervals resample " \
                 "windows, which share stretches of the genome: they are narrower than they should be; tokenize " \
                 "with a smaller --block to hold out more blocks (in the workflow: config tokenize.extra, and " \
                 "delete runs/<reference>/, as pretraining starts over)" in err
        assert warned == (unit == "window"), err


def test_copies_of_train_sequence_are_not_novel(run, chloroplast_fasta, tmp_path):
    """Train sequence pasted into two test windows, once as is and once reverse-complemented, makes exactly the
    pasted bases repeat; every other held-out base of the chloroplast's first 60 kbp (no copy of train there)
    stays novel."""
    with Reference(chloroplast_fasta) as reference:
        sequence = reference.fetch("NC_000932.1", 0, 60_000).upper()

    def tokenized(bases, name):
        (tmp_path / f"{name}.fa").write_text(f">piece\n{bases}\n")
        assert main(["-q", "tokenize", "--fasta", str(tmp_path / f"{name}.fa"), "--k", "1", "--window", "256",
                     "--block", "4", "--out", str(tmp_path / name)]) == 0
        return Manifest.load(tmp_path / name)

    plain = tokenized(sequence, "plain")
    train = next(interval for interval in plain["intervals"] if interval["split"] == "train")
    starts = TokenDataset(plain.root, "test").windows[:, 1]  # k = 1: token t is base t
    source = train["start"] + 300
    pasted = {1: sequence[source:source + 120],
              2: sequence[source + 300:source + 420].translate(COMPLEMENT)[::-1]}
    edited = sequence
    for window, piece in pasted.items():
        at = starts[window] + 60
        edited = edited[:at] + piece + edited[at + len(piece):]
    manifest = tokenized(edited, "pasted")
    assert manifest["intervals"] == plain["intervals"]
    datasets = [TokenDataset(manifest.root, split) for split in ("test", "val")]
    repeat_kmers = shared_with_train(manifest, datasets, None)
    for dataset in datasets:
        for index in range(len(dataset)):
            expected = np.zeros(256, dtype=bool)
            if dataset.split == "test" and index in pasted:
                expected[60:180] = True
            found = repeat_bases(window_codes(dataset[index]["input_ids"], dataset.vocab, 1)[None], repeat_kmers)[0]
            assert np.array_equal(found, expected), (dataset.split, index)

    out = tmp_path / "eval.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(manifest.root), "--out", str(out),
                 "--max-markov-order", "2"]) == 0
    val, test = (json.loads(out.read_text())["splits"][split] for split in ("val", "test"))
    assert val["novel_bases"] == val["scored_bases"]
    assert val["novel_bits_per_base"] == pytest.approx(val["bits_per_base"])
    assert val["markov_novel_bits_per_base"] == pytest.approx(val["markov_bits_per_base"])
    for name in NOVEL_CI95_NAMES:  # every base novel: the same sums over the same resamples
        overall = name.replace("novel_", "", 1) if name.startswith("novel_") else name.replace("_novel", "")
        assert val["ci95"][name] == pytest.approx(val["ci95"][overall], rel=1e-9), name
    assert 0 < test["novel_bases"] < test["scored_bases"]
    assert test["ci95"]["novel_bits_per_base"] != test["ci95"]["bits_per_base"]


def test_a_split_without_novel_bases_reports_none(run, tokens, tmp_path):
    """Scored on the train split itself every hidden base is a repeat: the novel figures are null, not 0/0."""
    out = tmp_path / "eval.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run), "--data", str(tokens["k1"]), "--out", str(out),
                 "--splits", "train", "--max-windows", "2", "--max-markov-order", "2"]) == 0
    train = json.loads(out.read_text())["splits"]["train"]
    assert train["novel_bases"] == 0 < train["scored_bases"]
    assert train["novel_bits_per_base"] is None and train["markov_novel_bits_per_base"] is None
    assert set(train["ci95"]) == CI95_NAMES  # no novel base: no novel interval
    assert train["novel_base_accuracy"] is None


def test_n_never_matches_and_a_window_shorter_than_k_has_no_repeat(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        codes = reference.codes("NC_000932.1", 0, 5_000)[0]
    n = np.full((1, 100), N_CODE, dtype=np.uint8)
    assert window_kmers([n]).size == 0
    short, stretch = codes[None, 1_000:1_030], codes[None, 2_000:2_100]
    found = kmers_found_in(window_kmers([short, stretch, n]), [np.concatenate([codes, n[0]])])
    assert not repeat_bases(short, found).any() and not repeat_bases(n, found).any()
    assert repeat_bases(stretch, found).all()
    # a batch: the 31-mers holding an N never match, every other base keeps one that does; rows never join
    batch = np.concatenate([stretch, stretch, codes[None, 2_050:2_150]])
    batch[1, 50] = N_CODE
    repeat = repeat_bases(batch, found)
    assert repeat[0].all() and np.flatnonzero(~repeat[1]).tolist() == [50]
    assert np.flatnonzero(repeat[2]).tolist() == list(range(50))  # its 2_050..2_100 overlap with stretch


def test_shared_kmers_are_gathered_a_bounded_number_of_bases_at_a_time(tokens):
    """The windows' 31-mers are gathered about ``batch_bases`` bases at a time whatever the window length (1,024
    windows at a time held 58 bytes per base: 3.9 GB for 64k-token windows), with the same result."""
    manifest = Manifest.load(tokens["k1w512"])
    datasets = [TokenDataset(manifest.root, split) for split in ("val", "test")]
    assert sum(len(dataset) for dataset in datasets) > 2
    shared = shared_with_train(manifest, datasets, None)
    assert shared.size > 0
    for batch_bases in (300, 600, 1_500):  # one window (512 bases) at a time, one, two
        assert np.array_equal(shared_with_train(manifest, datasets, None, batch_bases=batch_bases), shared)


def test_train_kmers_are_found_across_chunk_edges_and_strands(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        codes = reference.codes("NC_000932.1", 0, 20_000)[0]
    assert codes.max() < N_CODE
    query = window_kmers([codes[None]])
    for chunk_bp in (100, 1_000, 7_777, 1 << 22):
        assert np.array_equal(kmers_found_in(query, [codes], chunk_bp=chunk_bp), query)
    assert np.array_equal(kmers_found_in(query, [np.uint8(3) - codes[::-1]], chunk_bp=1_000), query)
    assert kmers_found_in(query, [codes[:5_000]]).size < query.size


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


def test_pass_zero_keeps_the_seeds_of_one_mask_per_window_and_no_two_passes_share_one():
    """Pass 0 masks window i exactly as evaluation did before passes (generator seeded with (seed, i)); no two
    (window, pass) pairs get the same seed, though ``mixed_seed`` reads trailing zeros as absent."""
    seeds = {}
    for window, pass_index in itertools.product(range(300), range(12)):
        seeds[window, pass_index] = pass_generator("cpu", 5, window, pass_index).initial_seed()
    assert len(set(seeds.values())) == len(seeds)
    assert seeded_generator("cpu", 5, 7).initial_seed() == seeded_generator("cpu", 5, 7, 0).initial_seed()
    masker = SpanMasker(1, 1, 9, mask_ratio=0.15, p_mask=1.0, p_random=0.0)
    ids = torch.randint(N_SPECIAL, 9, (1, 256), generator=torch.Generator().manual_seed(0))
    for window in (0, 1, 41):
        assert seeds[window, 0] == seeded_generator("cpu", 5, window).initial_seed()
        old = masker(ids, None, seeded_generator("cpu", 5, window)).masked
        assert torch.equal(masker(ids, None, pass_generator("cpu", 5, window, 0)).masked, old)
        assert not torch.equal(masker(ids, None, pass_generator("cpu", 5, window, 1)).masked, old)


def test_windows_are_grouped_by_the_split_interval_they_lie_in(tokens):
    manifest = Manifest.load(tokens["k1"])
    for split in ("val", "test"):
        dataset = TokenDataset(tokens["k1"], split, window=64, window_stride=64)
        intervals = window_intervals(dataset, np.arange(len(dataset)))
        assert np.array_equal(window_intervals(dataset, np.array([3, 1])), intervals[[3, 1]])
        assert np.unique(intervals).size >= MIN_BOOTSTRAP_GROUPS
        for (sequence, start, length), number in zip(dataset.windows, intervals):
            interval = manifest["intervals"][number]
            assert interval["split"] == split and interval["contig"] == manifest["contigs"][sequence]["name"]
            assert interval["start"] <= start and start + length <= interval["end"]


def plain_percentile_intervals(numerators, denominators, groups, seed):
    """Bootstrap by hand: the same draws as ``ratio_intervals`` (groups, one at a time), sums in loops, the
    ratios per resample and their percentiles."""
    ids = sorted(set(groups))
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in numerators}
    for _ in range(N_BOOTSTRAP):
        picks = rng.integers(0, len(ids), len(ids))
        chosen = [i for pick in picks for i in range(len(groups)) if groups[i] == ids[pick]]
        bases = sum(denominators[i] for i in chosen)
        for name, values in numerators.items():
            draws[name].append(sum(values[i] for i in chosen) / bases)
    tail = 100 * (1 - CI_LEVEL) / 2
    return {name: np.percentile(values, [tail, 100 - tail]).tolist() for name, values in draws.items()}, draws


def test_bits_intervals_resample_blocks_and_pair_the_difference():
    """Per-window sums of 40 windows in 8 blocks: the intervals equal a plain resampling loop's; the paired
    difference's interval is the percentiles of the per-resample differences (narrower than the two figures'
    intervals when they move together), and contains the point estimate."""
    rng = np.random.default_rng(3)
    bases = rng.integers(5, 20, 40).astype(float)
    level = np.repeat(rng.normal(1.9, 0.05, 8), 5)  # blocks that differ: both figures move with them
    per_window = {"bases": bases, "bits": bases * (level + rng.normal(0, 0.02, 40)),
                  "markov_bits": bases * (level + 0.01 + rng.normal(0, 0.02, 40)),
                  "markov_two_sided_bits": bases * (level - 0.03 + rng.normal(0, 0.02, 40))}
    groups = np.repeat(np.arange(8) * 3 + 1, 5)  # interval numbers as in a manifest: not 0..n-1
    intervals, unit = bits_intervals(per_window, groups, with_markov=True, seed=4)
    assert unit == {"unit": "interval", "units": 8}
    plain, draws = plain_percentile_intervals(
        {"bits_per_base": per_window["bits"], "markov_bits_per_base": per_window["markov_bits"],
         "markov_two_sided_bits_per_base": per_window["markov_two_sided_bits"]}, bases, list(groups), seed=4)
    for name in plain:
        assert intervals[name] == pytest.approx(plain[name], rel=1e-12)
    tail = 100 * (1 - CI_LEVEL) / 2
    for name, markov_name, markov_sums in (("model_minus_markov", "markov_bits_per_base", "markov_bits"),
                                           ("model_minus_markov_two_sided", "markov_two_sided_bits_per_base",
                                            "markov_two_sided_bits")):
        differences = np.subtract(draws["bits_per_base"], draws[markov_name])
        assert intervals[name] == pytest.approx(np.percentile(differences, [tail, 100 - tail]), abs=1e-12)
        point = (per_window["bits"].sum() - per_window[markov_sums].sum()) / bases.sum()
        assert intervals[name][0] < point < intervals[name][1]
        assert np.diff(intervals[name])[0] < np.diff(intervals["bits_per_base"])[0]


def test_novel_intervals_divide_by_the_novel_bases_over_the_same_resamples():
    """The novel figures' intervals: the novel bits over the novel bases (not all scored bases) in each resample,
    the resamples those of the other figures, the differences paired; a window may have no novel base."""
    rng = np.random.default_rng(6)
    bases = rng.integers(5, 20, 40).astype(float)
    novel = np.floor(bases * rng.uniform(0, 1, 40))
    novel[:5] = 0
    per_window = {"bases": bases, "novel_bases": novel}
    for name, level in (("bits", 1.95), ("markov_bits", 1.96), ("markov_two_sided_bits", 1.92)):
        per_window[name] = bases * rng.normal(level, 0.03, 40)
        per_window[name.replace("bits", "novel_bits")] = novel * rng.normal(level + 0.01, 0.03, 40)
    groups = np.repeat(np.arange(8), 5)
    intervals, _ = bits_intervals(per_window, groups, with_markov=True, with_novel=True, seed=2)
    assert set(intervals) == CI95_NAMES | NOVEL_CI95_NAMES
    plain, draws = plain_percentile_intervals(
        {"novel_bits_per_base": per_window["novel_bits"], "markov_novel_bits_per_base": per_window["markov_novel_bits"],
         "markov_two_sided_novel_bits_per_base": per_window["markov_two_sided_novel_bits"]}, novel, list(groups),
        seed=2)
    for name in plain:
        assert intervals[name] == pytest.approx(plain[name], rel=1e-12)
    tail = 100 * (1 - CI_LEVEL) / 2
    for name, (model, chain) in DIFFERENCES.items():
        if name.startswith("novel_"):
            differences = np.subtract(draws[model], draws[chain])
            assert intervals[name] == pytest.approx(np.percentile(differences, [tail, 100 - tail]), abs=1e-12)
    assert intervals["bits_per_base"] != pytest.approx(intervals["novel_bits_per_base"])
    without, _ = bits_intervals({**per_window, "novel_bases": np.zeros(40)}, groups, with_markov=True,
                                with_novel=True, seed=2)
    assert set(without) == CI95_NAMES and without["bits_per_base"] == intervals["bits_per_base"]


def test_too_few_blocks_resample_windows():
    rng = np.random.default_rng(5)
    bases = rng.integers(5, 20, 12).astype(float)
    bits = bases * rng.normal(1.9, 0.05, 12)
    for groups in (np.zeros(12, dtype=int), np.repeat(np.arange(MIN_BOOTSTRAP_GROUPS - 1), 3)):
        intervals, unit = ratio_intervals({"bits": bits}, bases, groups=groups, units=("interval", "window"))
        assert unit == {"unit": "window", "units": 12}
        plain, _ = plain_percentile_intervals({"bits": bits}, bases, list(range(12)), seed=0)
        assert intervals["bits"] == pytest.approx(plain["bits"], rel=1e-12)
        assert intervals["bits"][0] < bits.sum() / bases.sum() < intervals["bits"][1]
    intervals, unit = ratio_intervals({"bits": bits}, np.zeros(12))  # nothing scored: no interval, not 0/0
    assert np.isnan(intervals["bits"]).all() and unit == {"unit": "example", "units": 12}


def test_mask_passes_below_one_exit_2(run, tokens, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tokens["k1"]), "--mask-passes", "0",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert one_line_error(capsys) == "genoformer evaluate: error: --mask-passes must be at least 1, got 0"
    assert not (tmp_path / "x.json").exists()
