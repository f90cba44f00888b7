"""classify-regions and the pieces every classifier shares: metrics, the linear model, splits, k-mer features."""

import itertools
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from genoformer.cli import main
from genoformer.errors import ConfigError, InputError
from genoformer.io.bed import read_bed
from genoformer.io.fasta import Reference
from genoformer.model import ReformerForSequenceClassification, load_pretrained
from genoformer.region_labels import coding_intergenic_regions, write_bed
from genoformer.tasks.baselines import kmer_counts
from genoformer.tasks.linear import LinearModel, fit_linear
from genoformer.tasks.metrics import auprc, auroc, classification_metrics
from genoformer.tasks.regions import read_region_labels, region_windows
from genoformer.tasks.splits import assign_split, default_block, split_groups
from tiny_pretrained import CDIPH, pretrain_tiny, save_run, tiny_run  # noqa: F401  (tiny_run is a fixture)

CDIPH_GFF = CDIPH.parent / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"
ATHAL_GFF = CDIPH.parents[1] / "athal_cp" / "NC_000932.1.gff3"


def test_auroc_and_auprc_match_scikit_learn_on_random_and_tied_scores():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        scores = rng.integers(0, 5, n) if trial % 2 else rng.normal(size=n)  # half with many ties
        assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
        assert auprc(labels, scores) == pytest.approx(average_precision_score(labels, scores))


def test_bootstrap_intervals_bracket_the_value_and_shrink_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (60, 2000):
        labels = rng.integers(0, 2, n)
        scores = labels + rng.normal(scale=1.5, size=n)
        probabilities = 1 / (1 + np.exp(-np.stack([-scores, scores], axis=1)))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        report = classification_metrics(labels, probabilities, n_bootstrap=300, seed=0)
        for name in ("auroc", "auprc", "accuracy"):
            low, high = report[name]["ci95"]
            assert low <= report[name]["value"] <= high
        widths.append(np.diff(report["auroc"]["ci95"])[0])
        assert report["n"] == n and sum(report["n_per_class"]) == n
    assert widths[1] < widths[0] / 3
    three = classification_metrics(np.arange(30) % 3, np.eye(3)[np.arange(30) % 3], n_bootstrap=50)
    assert three["auroc"]["value"] == 1 and three["accuracy"]["value"] == 1


def test_the_bootstrap_resamples_whole_groups_of_dependent_examples():
    """Ten identical copies of each of 80 examples, each set of copies a group: resampling groups gives exactly
    the intervals of the 80 examples alone (the same draws, and AUROC/AUPRC do not change when every example is
    repeated alike), while resampling the 800 copies as if independent gives intervals about sqrt(10) narrower."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 80)
    scores = labels + rng.normal(scale=1.2, size=80)
    alone = classification_metrics(labels, scores, n_bootstrap=400, seed=5)
    copies, groups = np.repeat(labels, 10), np.repeat(np.arange(80) * 7 + 3, 10)  # ids in example order
    order = rng.permutation(800)  # group members need not be adjacent
    by_group = classification_metrics(copies[order], np.repeat(scores, 10)[order], groups=groups[order],
                                      n_bootstrap=400, seed=5)
    as_independent = classification_metrics(copies, np.repeat(scores, 10), n_bootstrap=400, seed=5)
    assert by_group["bootstrap"] == {"unit": "group", "units": 80}
    assert as_independent["bootstrap"] == {"unit": "example", "units": 800}
    for name in ("auroc", "auprc"):
        assert by_group[name]["value"] == pytest.approx(alone[name]["value"])
        assert by_group[name]["ci95"] == pytest.approx(alone[name]["ci95"])
    width = {name: np.diff(result["auroc"]["ci95"])[0] for name, result in
             (("group", by_group), ("independent", as_independent))}
    assert width["independent"] < width["group"] / 2
    few = classification_metrics(copies, np.repeat(scores, 10), groups=np.arange(800) % 4, n_bootstrap=50)
    assert few["bootstrap"] == {"unit": "example", "units": 800}  # four groups: too few to resample


def test_linear_model_matches_scikit_learn_and_survives_json():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(120, 5)) * [1, 10, 0.1, 1, 1]
    for n_classes in (2, 3):
        labels = rng.integers(0, n_classes, 120)
        features[:, 0] += labels
        groups = np.arange(120) // 10
        model = fit_linear(features, labels, groups, [f"c{i}" for i in range(n_classes)], seed=0)
        scaled = (features - features.mean(0)) / features.std(0)
        reference = LogisticRegression(C=model.C, max_iter=2000).fit(scaled, labels)
        np.testing.assert_allclose(model.predict_proba(features), reference.predict_proba(scaled), atol=1e-6)
        again = LinearModel.from_json(json.loads(json.dumps(model.to_json())))
        np.testing.assert_allclose(again.predict_proba(features), model.predict_proba(features))


def test_splits_keep_blocks_whole_and_need_both_classes():
    rng = np.random.default_rng(3)
    positions = rng.integers(0, 1_000_000, 500)
    labels = rng.integers(0, 2, 500)
    groups = split_groups(np.array(["chr1"] * 500), positions, method="blocks", block=50_000)
    train, is_test = assign_split(groups, labels, test_fraction=0.3, seed=0)
    assert (train == ~is_test).all() and 0.25 <= is_test.mean() <= 0.35
    for group in np.unique(groups):
        assert len(set(is_test[groups == group])) == 1
    assert not set(positions[is_test] // 50_000) & set(positions[~is_test] // 50_000)
    by_contig = split_groups(np.array(["a", "b", "c", "d"] * 25), positions[:100], method="contig", block=1)
    assert set(by_contig) == {"a", "b", "c", "d"}
    with pytest.raises(ConfigError, match="split has no example of class"):
        assign_split(np.array(["x"] * 5 + ["y"] * 5), np.array([0] * 5 + [1] * 5), test_fraction=0.5, seed=0)


def test_default_blocks_cut_a_small_genome_into_ten_and_one_group_is_no_split(caplog):
    """The chloroplast (154 kbp) in ten blocks, not two; big genomes in 100 kbp; never under four windows. All
    examples in one group is refused, naming the fix; a side made of one group is warned about."""
    assert default_block(512, 154_478) == 15_447 and default_block(512, 2_463_666) == 100_000
    assert default_block(131_072, 2_463_666) == 4 * 131_072
    with pytest.raises(ConfigError, match=r"all 4 examples lie in one split group \(chr1:0\).*more contigs, or --split blocks with a smaller --block"):
        assign_split(np.array(["chr1:0"] * 4), np.array([0, 1, 0, 1]), test_fraction=0.3, seed=0)
    with caplog.at_level("WARNING", logger="genoformer.tasks.splits"):
        assign_split(np.array(["a"] * 3 + ["b"] * 7), np.array([0, 1] * 5), test_fraction=0.3, seed=0)
    assert "the test side is one split group (a)" in caplog.text


@pytest.mark.parametrize("seed", range(6))
def test_one_big_group_never_makes_the_test_side_most_of_the_data(seed, caplog):
    """Groups of 70, 10, 10, 10 examples (a genome a few blocks long): whichever comes first in the shuffle, the
    test side ends up as close to 30% as whole groups allow (20 or 30 of 100), never the 70-example group; a
    split that cannot get near the fraction says so."""
    groups = np.array(["big"] * 70 + ["a"] * 10 + ["b"] * 10 + ["c"] * 10)
    labels = np.arange(100) % 2
    is_test = assign_split(groups, labels, test_fraction=0.3, seed=seed)[1]
    assert is_test.sum() in (20, 30) and not is_test[:70].any()
    with caplog.at_level("WARNING", logger="genoformer.tasks.splits"):
        assign_split(np.array(["x"] * 60 + ["y"] * 40), labels, test_fraction=0.1, seed=seed)
    assert "test side: 40% of the examples instead of 10%" in caplog.text


@pytest.mark.parametrize("command", ["classify-regions", "classify-variants"])
def test_blocks_not_longer_than_the_window_are_refused_before_any_work(command, tmp_path, capsys):
    """A test window longer than a block holds whole training examples: refused, naming both lengths (the inputs
    named here do not exist: the flags are checked first)."""
    inputs = ["--bed", str(tmp_path / "x.bed")] if command == "classify-regions" else [
        "--vcf", str(tmp_path / "x.vcf.gz"), "--label-field", "CLASS"]
    assert main([command, *inputs, "--reference", str(tmp_path / "ref.fa"), "--checkpoint", str(tmp_path / "run"),
                 "--out", str(tmp_path / "out"), "--window", "131072", "--block", "100000"]) == 2
    assert "--block 100000: split blocks must be longer than the 131072 bp windows" in capsys.readouterr().err


def test_kmer_counts_match_a_plain_counter():
    rng = np.random.default_rng(4)
    for k in (1, 2, 3, 4):
        codes = rng.choice(5, size=300, p=[0.24, 0.24, 0.24, 0.24, 0.04]).astype(np.uint8)
        expected = Counter(tuple(codes[i:i + k]) for i in range(len(codes) - k + 1) if 4 not in codes[i:i + k])
        counts = kmer_counts(codes, k)
        for index, kmer in enumerate(itertools.product(range(4), repeat=k)):
            assert counts[index] == expected.get(kmer, 0)


def test_region_labels_from_column_or_one_bed_per_class(tmp_path, chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        labelled = tmp_path / "labelled.bed"
        labelled.write_text("NC_000932.1\t100\t200\ta\t0\t+\t1\nNC_000932.1\t5000\t5100\tb\t0\t-\t0\n"
                            "NC_000932.1\t9000\t9100\tc\t0\t+\t1\n")
        regions = read_region_labels(reference, bed=labelled)
        assert regions.classes == ["0", "1"] and regions.labels.tolist() == [1, 0, 1]
        (tmp_path / "x.bed").write_text("NC_000932.1\t10\t20\n")
        (tmp_path / "y.bed").write_text("NC_000932.1\t30\t40\nNC_000932.1\t50\t60\n")
        per_class = read_region_labels(reference, class_beds={"yes": tmp_path / "y.bed", "no": tmp_path / "x.bed"})
        assert per_class.classes == ["no", "yes"] and per_class.labels.tolist() == [1, 1, 0]
        with pytest.raises(InputError, match="no label column 7"):
            read_region_labels(reference, bed=tmp_path / "x.bed")
        with pytest.raises(InputError, match="at least 2 classes"):
            read_region_labels(reference, class_beds={"only": tmp_path / "y.bed"})
        starts, ends = region_windows(regions.table, reference.contigs, window=1000, stride=3)
        assert starts.tolist() == [0, 4548, 8550] and (ends - starts).tolist() == [1000] * 3


@pytest.mark.parametrize("k, stride", [(4, 1), (4, 3), (3, 2)])
def test_region_features_match_a_plain_one_region_reference(tmp_path, k, stride):
    """The batched features (padded windows, both strands in one run) equal a plain computation one region and
    one strand at a time on a random-weight model: the mean hidden state over the window and over the tokens
    that overlap the region (the nearest one for a region in the bases after the window's last whole k-mer),
    the two strands averaged. Regions at both contig ends, longer than the window, shorter than k, over Ns, on
    a contig shorter than the window. Every window holds its region (or lies inside it), starts on the stride
    phase and stays inside the contig: a 1 bp region at the contig's end once fell outside its window (the
    start rounded down to the phase) and silently got the window mean as its region feature."""
    from genoformer.model import ReformerConfig, ReformerForMaskedLM
    from genoformer.tasks.encoder import Encoder
    from genoformer.tasks.regions import frozen_features, window_sequences
    from genoformer.tokenize.encode import encode
    from genoformer.tokenize.vocab import KmerVocab

    rng = np.random.default_rng(k * 10 + stride)
    contigs = {"long": "".join(rng.choice(list("ACGT"), 3001)), "short": "".join(rng.choice(list("ACGT"), 150))}
    contigs["long"] = contigs["long"][:1000] + "N" * 10 + contigs["long"][1010:]
    (tmp_path / "random.fa").write_text("".join(f">{name}\n{bases}\n" for name, bases in contigs.items()))
    rows = [("long", 0, 5), ("long", 1, 2), ("long", 2990, 3001), ("long", 3000, 3001), ("long", 2999, 3000),
            ("long", 995, 1015), ("long", 100, 1500), ("long", 1500, 1502), ("short", 0, 150), ("short", 148, 150),
            ("short", 149, 150), ("short", 70, 72)]
    table = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    window = 200
    with Reference(tmp_path / "random.fa") as reference:
        starts, ends = region_windows(table, reference.contigs, window, stride)
        sequences = window_sequences(reference, table, starts, ends)
    lengths = table["chrom"].map({name: len(bases) for name, bases in contigs.items()}).to_numpy()
    assert (starts % stride == 0).all() and (starts >= 0).all() and (ends <= lengths).all()
    holds = (starts <= table["start"]) & (table["end"] <= ends)
    inside = (table["start"] <= starts) & (ends <= table["end"])  # a region longer than the window
    assert (holds | inside).all(), table[~holds & ~inside]
    assert ((ends - starts > window - stride) | (ends - starts == lengths)).all()

    vocab = KmerVocab(k)
    torch.manual_seed(0)
    model = ReformerForMaskedLM(ReformerConfig(vocab_size=vocab.size, dim=16, depth=2, heads=2, n_hashes=2,
                                               bucket_size=16, max_seq_len=1024)).eval()
    encoder = Encoder(model, vocab, stride, torch.device("cpu"), batch_size=5)
    got = frozen_features(encoder, sequences, list(zip(table["start"] - starts, table["end"] - starts)),
                          progress=False)
    complement = str.maketrans("ACGTN", "TGCAN")
    for index, (chrom, start, end) in enumerate(rows):
        bases = contigs[chrom][starts[index]:ends[index]]
        first, last = start - starts[index], end - starts[index]
        expected = 0
        for strand, (low, high) in ((bases, (first, last)), (bases[::-1].translate(complement),
                                                             (len(bases) - last, len(bases) - first))):
            codes = np.array(["ACGTN".index(base) for base in strand], dtype=np.uint8)
            with torch.no_grad():
                hidden = model.reformer(torch.from_numpy(encode(codes, vocab, stride).astype(np.int64))[None])[0]
            own = [i for i in range(len(hidden)) if i * stride < high and i * stride + k > low] or [len(hidden) - 1]
            expected = expected + 0.5 * torch.cat([hidden.mean(0), hidden[own].mean(0)]).numpy()
        np.testing.assert_allclose(got[index], expected, atol=1e-5, err_msg=f"{chrom}:{start}-{end}")


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_cli_probe_finetune_and_baseline_on_coding_vs_intergenic(tiny_run, tmp_path):
    with Reference(CDIPH) as reference:
        regions = coding_intergenic_regions(reference, CDIPH_GFF, length=96, per_class=40, seed=0)
    write_bed(tmp_path / "regions.bed", regions)
    write_bed(tmp_path / "new.bed", regions.iloc[::10].assign(label="?"))
    out = tmp_path / "out"
    assert main(["classify-regions", "--reference", str(CDIPH), "--bed", str(tmp_path / "regions.bed"),
                 "--checkpoint", str(tiny_run), "--out", str(out), "--window", "128", "--finetune-epochs", "1",
                 "--lr", "1e-3", "--bootstrap", "200", "--batch-size", "16", "--block", "200000",
                 "--predict", str(tmp_path / "new.bed")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["coding", "intergenic"] and metrics["split"]["method"] == "blocks"
    assert set(metrics["test"]) == {"probe", "finetune", "kmer"}
    selection = metrics["finetune_selection"]  # 1 epoch: the start and the epoch, scored on held-back regions
    assert selection["validation_examples"] > 0 and len(selection["validation_loss"]) == 2
    assert selection["epoch_kept"] == int(np.argmin(selection["validation_loss"]))
    for result in metrics["test"].values():
        for name in ("auroc", "auprc", "accuracy"):
            assert result[name]["ci95"][0] <= result[name]["value"] <= result[name]["ci95"][1]
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert len(predictions) == 80 and set(predictions["split"]) == {"train", "test"}
    assert {"score_probe", "score_finetune", "score_kmer"} <= set(predictions.columns)
    # the model's frozen features separate coding from intergenic sequence better than chance
    assert metrics["test"]["probe"]["auroc"]["value"] > 0.6
    finetuned = load_pretrained(out / "model", ReformerForSequenceClassification)
    assert finetuned.num_labels == 2
    assert json.loads((out / "model" / "labels.json").read_text())["classes"] == ["coding", "intergenic"]
    bed = [line.split("\t") for line in (out / "predict.bed").read_text().splitlines()]
    assert len(bed) == 8 and all(row[6] in ("coding", "intergenic") and 500 <= int(row[4]) <= 1000 for row in bed)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_repeat_copies_are_left_out_of_the_test_side_unless_kept(tiny_run, tmp_path, chloroplast_fasta):
    """200 bp tiles end to end along the chloroplast, labels alternating: the tiles of one inverted-repeat copy
    have their twins in the other, 26 kbp away. By default a held-out tile whose twin is in training is left out
    (predictions say "left_out"); --keep-repeat-copies keeps it in the test side, and both say what they did."""
    with Reference(chloroplast_fasta) as reference:
        length = reference.contigs["NC_000932.1"]
    starts = np.arange(0, length - 200, 200)
    bed = tmp_path / "tiles.bed"
    bed.write_text("".join(f"NC_000932.1\t{start}\t{start + 200}\t.\t0\t+\t{'ab'[i % 2]}\n"
                           for i, start in enumerate(starts)))
    splits = {}
    for extra in ([], ["--keep-repeat-copies"]):
        out = tmp_path / f"out{len(extra)}"
        assert main(["-q", "classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(bed),
                     "--checkpoint", str(tiny_run), "--out", str(out), "--window", "128", "--finetune-epochs", "0",
                     "--bootstrap", "50", *extra]) == 0
        splits[len(extra)] = json.loads((out / "metrics.json").read_text())["split"]
        splits[len(extra)]["names"] = pd.read_csv(out / "predictions.tsv", sep="\t")["split"]
    left_out, kept = splits[0], splits[1]
    assert left_out["repeat_copies"] == "left out" and kept["repeat_copies"] == "kept"
    assert left_out["with_repeat_copy"] == kept["with_repeat_copy"] > 200  # the two IR copies hold about 260 tiles
    assert left_out["n_left_out_copies"] == (left_out["names"] == "left_out").sum() > 0
    assert kept["n_left_out_copies"] == 0 and "left_out" not in set(kept["names"])
    # the same blocks are held out: the kept run's test side is the other's plus the copies it left out
    assert ((kept["names"] == "test") == (left_out["names"] != "train")).all()


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_finetuning_starts_from_the_probe_on_real_windows(tiny_run):
    """Before its first step, the fine-tuned classifier predicts what the probe on its own feature (the window's
    mean hidden state, averaged over both strands) predicts, on real windows: fine-tuning can only start from
    what the probe found. (It once pooled one strand at a time under a head fit on the strand average, and
    started, and stayed, far below the probe.)"""
    from genoformer.tasks.encoder import load_encoder
    from genoformer.tasks.regions import finetune, finetuned_probabilities, frozen_features, window_sequences

    with Reference(CDIPH) as reference:
        regions = coding_intergenic_regions(reference, CDIPH_GFF, length=96, per_class=20, seed=1)
        starts, ends = region_windows(regions, reference.contigs, 128, 1)
        sequences = window_sequences(reference, regions, starts, ends)
    spans = list(zip(regions["start"].to_numpy() - starts, regions["end"].to_numpy() - starts))
    labels = (regions["label"] == "intergenic").to_numpy(np.int64)
    encoder, _ = load_encoder(tiny_run, device="cpu", batch_size=16, stride=None)
    window_mean = frozen_features(encoder, sequences, spans, progress=False)[:, :encoder.model.config.dim]
    probe = fit_linear(window_mean, labels, np.arange(labels.size) % 4, ["coding", "intergenic"], seed=0)
    tuned = finetune(tiny_run, encoder, sequences, labels, 2, epochs=0, lr=1e-3, batch_size=16, seed=0, head=probe)
    got = finetuned_probabilities(tuned.model, encoder, sequences, batch_size=16)
    expected = probe.predict_proba(window_mean)
    assert np.allclose(got, expected, atol=1e-4), np.abs(got - expected).max()
    assert expected[:, 1].std() > 0.01  # the probe's probabilities vary: the check is not between constants

    # Epochs that only make things worse (a learning rate far too high) are not kept: the validation loss
    # chooses the starting point, so the classifier still predicts what the probe does.
    wrecked = finetune(tiny_run, encoder, sequences, labels, 2, epochs=2, lr=0.5, batch_size=16, seed=0, head=probe,
                       validation=(sequences, labels))
    assert len(wrecked.validation_loss) == 3 and wrecked.epoch == 0
    assert min(wrecked.validation_loss[1:]) > wrecked.validation_loss[0]
    got = finetuned_probabilities(wrecked.model, encoder, sequences, batch_size=16)
    assert np.allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_bed_errors_are_one_line_exit_2(tmp_path, chloroplast_fasta):
    bad = tmp_path / "bad.bed"
    bad.write_text("NC_000932.1\t500\t400\tx\t0\t+\tA\n")
    result = subprocess.run([sys.executable, "-m", "genoformer", "-q", "classify-regions", "--reference",
                             str(chloroplast_fasta), "--bed", str(bad), "--checkpoint", str(tmp_path), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "bad.bed line 1: start 500 is not before end 400" in result.stderr


@pytest.mark.parametrize("n_classes", [2, 3])
def test_head_from_probe_gives_the_probe_probabilities(n_classes):
    """Fine-tuning starts from the probe: the head's softmax equals the probe's predict_proba."""
    from genoformer.tasks.linear import fit_linear
    from genoformer.tasks.regions import set_head_from_probe

    rng = np.random.default_rng(n_classes)
    features = rng.normal(size=(90, 6)) * rng.uniform(0.5, 3, size=6) + rng.normal(size=6)
    labels = np.arange(90) % n_classes
    features[:, 0] += labels  # something to learn
    probe = fit_linear(features, labels, np.arange(90) % 5, [f"c{i}" for i in range(n_classes)], seed=0)
    head = torch.nn.Linear(6, n_classes)
    set_head_from_probe(head, probe)
    got = torch.softmax(head(torch.as_tensor(features, dtype=torch.float32)), dim=-1).detach().numpy()
    assert np.allclose(got, probe.predict_proba(features), atol=1e-5)
    assert got[:, -1].std() > 0.01


@pytest.mark.parametrize("flag, value, allowed", [
    ("--kmer", "20", "from 1 to 8"),
    ("--kmer", "0", "from 1 to 8"),
    ("--lr", "-1", "greater than 0"),
    ("--finetune-epochs", "-1", "at least 0"),
    ("--bootstrap", "0", "at least 1"),
    ("--test-fraction", "1", "greater than 0 and less than 1"),
    ("--label-column", "2", "expected a column number (>= 4) or 'name'"),
    ("--label-column", "x", "expected a column number (>= 4) or 'name'"),
])
def test_flags_out_of_range_are_one_line_exit_2(tmp_path, capsys, chloroplast_fasta, flag, value, allowed):
    """Checked before any file is read or model loaded: nothing is trained, no output folder appears."""
    code = main(["classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--checkpoint", str(tmp_path), "--out", str(tmp_path / "out"), flag, value])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert error.startswith(f"genoformer classify-regions: error: {flag} {value}") and allowed in error
    assert not (tmp_path / "out").exists()


def test_one_interval_with_two_classes_names_both_lines(tmp_path, capsys, chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        regions = coding_intergenic_regions(reference, ATHAL_GFF, length=96, per_class=10, seed=0)
    doubled = pd.concat([regions, regions.iloc[[3]].assign(label="intergenic")])
    write_bed(tmp_path / "labels.bed", doubled)
    first = regions.iloc[3]
    where = f"{first.chrom}:{first.start + 1}-{first.end}"
    with Reference(chloroplast_fasta) as reference:
        with pytest.raises(InputError, match=rf"labels.bed line 4 and \S*labels.bed line 21: region {where} is "
                                             "labelled both 'coding' and 'intergenic'"):
            read_region_labels(reference, bed=tmp_path / "labels.bed")
        write_bed(tmp_path / "plain.bed", regions.iloc[:, :6])
        with pytest.raises(InputError, match=r"plain.bed line 1 and \S*plain.bed line 1: .* both 'a' and 'b'"):
            read_region_labels(reference, class_beds={"a": tmp_path / "plain.bed", "b": tmp_path / "plain.bed"})
    code = main(["classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "labels.bed line 21" in error and not (tmp_path / "out").exists()


def test_one_interval_given_twice_names_both_lines(tmp_path, chloroplast_fasta):
    """The same region twice with the same class would count twice in training or in the held-out metrics."""
    with Reference(chloroplast_fasta) as reference:
        regions = coding_intergenic_regions(reference, ATHAL_GFF, length=96, per_class=10, seed=0)
        write_bed(tmp_path / "labels.bed", pd.concat([regions, regions.iloc[[3]]]))
        first = regions.iloc[3]
        with pytest.raises(InputError, match=rf"labels.bed line 4 and \S*labels.bed line 21: region "
                                             rf"{first.chrom}:{first.start + 1}-{first.end} \({first.label}\) is "
                                             "given twice; give each region once"):
            read_region_labels(reference, bed=tmp_path / "labels.bed")
        write_bed(tmp_path / "a.bed", regions.iloc[:3, :6])
        write_bed(tmp_path / "b.bed", regions.iloc[[5, 6, 5], :6])
        with pytest.raises(InputError, match=r"b.bed line 1 and \S*b.bed line 3: .* \(b\) is given twice"):
            read_region_labels(reference, class_beds={"a": tmp_path / "a.bed", "b": tmp_path / "b.bed"})


def test_a_class_too_rare_to_split_names_the_file_and_the_counts(tmp_path, capsys, chloroplast_fasta):
    """A label typo ('Coding' once among 'coding') cannot be on both sides of the split; the error says why."""
    with Reference(chloroplast_fasta) as reference:
        regions = coding_intergenic_regions(reference, ATHAL_GFF, length=96, per_class=20, seed=0)
    regions.loc[regions.index[5], "label"] = "Coding"
    write_bed(tmp_path / "labels.bed", regions)
    run = save_run(pretrain_tiny(steps=0), tmp_path / "untrained")  # the split comes before any embedding
    code = main(["classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--checkpoint", str(run), "--out", str(tmp_path / "out"), "--window", "128", "--block", "10000",
                 "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and not (tmp_path / "out").exists()
    assert "labels.bed: the" in error and "split has no example of class 'Coding'" in error
    assert "regions per class: 'Coding' 1, 'coding' 19, 'intergenic' 20" in error


def test_predict_bed_is_checked_before_the_model_is_loaded(chloroplast_fasta, resources, tmp_path, capsys):
    """A --predict BED with a line past the contig end fails before the checkpoint is even loaded (here it does
    not exist), not after the probe and fine-tuning."""
    with Reference(chloroplast_fasta) as reference:
        write_bed(tmp_path / "labels.bed", coding_intergenic_regions(
            reference, resources / "athal_cp" / "NC_000932.1.gff3", length=200, per_class=10))
    new = tmp_path / "new.bed"
    new.write_text("NC_000932.1\t100\t300\nNC_000932.1\t154000\t154479\n")
    assert main(["-q", "classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--predict", str(new), "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"genoformer classify-regions: error: {new} line 2: end 154479 is past the end") and \
        "\n" not in err
    assert not (tmp_path / "out").exists()


def test_predict_bed_labels_are_optional_and_in_the_label_column(chloroplast_fasta, tmp_path, capsys):
    """The --predict regions need no label: with --label-column 8, an empty column 7 (not the label) or an empty
    label (unknown) in the --predict BED is no error; the run goes on to load the checkpoint (absent here)."""
    rows = [f"NC_000932.1\t{1000 + 3000 * i}\t{1200 + 3000 * i}\tr{i}\t0\t+\t\t{'ab'[i % 2]}" for i in range(40)]
    (tmp_path / "labels.bed").write_text("\n".join(rows) + "\n")
    new = tmp_path / "new.bed"
    new.write_text("NC_000932.1\t2000\t2200\tp0\t0\t+\t\t\nNC_000932.1\t5000\t5200\tp1\t0\t+\t\ta\n")
    assert main(["-q", "classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--label-column", "8", "--predict", str(new), "--checkpoint", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "nowhere: checkpoint not found" in capsys.readouterr().err
    table = read_bed(new, None, 8, optional_label=True)
    assert table["label"].tolist() == ["", "a"]
    assert "label" not in read_bed(new, None, 9, optional_label=True)
    with pytest.raises(InputError, match="line 1: label column 8 is empty"):
        read_bed(new, None, 8)


def test_a_label_column_of_one_name_per_region_is_one_clear_error(tmp_path, capsys, chloroplast_fasta):
    """--label-column name on region-labels' BED, whose names are all different: 120 classes of one region each
    cannot be split; the error says so in a few words, not a list of 120 class counts after loading the model."""
    with Reference(chloroplast_fasta) as reference:
        write_bed(tmp_path / "labels.bed", coding_intergenic_regions(reference, ATHAL_GFF, length=96, per_class=60))
        with pytest.raises(InputError, match=r"labels.bed: 120 classes among 120 regions in the name column \(e.g. "
                                             r"'coding_NC_000932.1:\d+', .*does this column name each region"):
            read_region_labels(reference, bed=tmp_path / "labels.bed", label_column="name")
    code = main(["classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--label-column", "name", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "120 classes among 120 regions" in error
    assert len(error.replace(str(tmp_path), "")) < 350  # a few words, whatever the temporary folder's name


def test_a_split_error_lists_ten_classes_at_most(tmp_path, capsys, chloroplast_fasta):
    """Twelve classes, one of them with a single region: the split error counts ten classes and says how many more."""
    with Reference(chloroplast_fasta) as reference:
        regions = coding_intergenic_regions(reference, ATHAL_GFF, length=96, per_class=60)
    regions["label"] = [f"c{i % 11:02d}" for i in range(len(regions) - 1)] + ["c11"]
    write_bed(tmp_path / "labels.bed", regions)
    run = save_run(pretrain_tiny(steps=0), tmp_path / "untrained")  # the split comes before any embedding
    code = main(["classify-regions", "--reference", str(chloroplast_fasta), "--bed", str(tmp_path / "labels.bed"),
                 "--checkpoint", str(run), "--out", str(tmp_path / "out"), "--window", "128", "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "split has no example of class 'c11'" in error
    assert error.endswith("regions per class: 'c00' 11, 'c01' 11, 'c02' 11, 'c03' 11, 'c04' 11, 'c05' 11, 'c06' 11, "
                          "'c07' 11, 'c08' 11, 'c09' 10 and 2 more classes")


def test_regions_longer_than_the_window_are_counted_in_a_warning(chloroplast_fasta, caplog):
    """The chloroplast's genes against 1000 bp windows: every gene longer than 1000 bp is read only in the window
    centred on it, and the warning counts them and names the longest (ycf2, 6,885 bp)."""
    lines = [line.split("\t") for line in ATHAL_GFF.read_text().splitlines() if "\tgene\t" in line]
    table = pd.DataFrame({"chrom": [f[0] for f in lines], "start": [int(f[3]) - 1 for f in lines],
                          "end": [int(f[4]) for f in lines], "name": [f[8].split(";")[0][5:] for f in lines]})
    longer = int((table["end"] - table["start"] > 1000).sum())
    assert 10 < longer < len(table)
    with Reference(chloroplast_fasta) as reference, caplog.at_level("WARNING", logger="genoformer.tasks.regions"):
        starts, ends = region_windows(table, reference.contigs, window=1000, stride=1)
    assert f"{longer} of {len(table)} regions are longer than the 1000 bp window (the longest 6885 bp, ycf2)" \
        in caplog.text
    assert (ends - starts == 1000).all()
