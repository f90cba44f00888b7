"""Token datasets: shards, streaming, windows, N filter, splits and TokenDataset, on the bundled real genomes."""

import json
import pickle

import numpy as np
import pytest

from genoformer.errors import ConfigError, InputError, MissingFileError
from genoformer.io.fasta import Reference, encode_bases
from genoformer.tokenize import dataset as dataset_module
from genoformer.tokenize.dataset import (SPLITS, Manifest, ShardFile, Stretch, TokenDataset, TokenizeOptions,
                                         _assign_by_contig, _block_targets, _interleave, _unk_counts,
                                         interval_windows, write_token_dataset)
from genoformer.tokenize.encode import decode, encode, span_bp
from genoformer.tokenize.vocab import UNK, KmerVocab
from io_helpers import consensus

CONTRACT_KEYS = {"format_version", "source", "k", "stride", "vocab", "dtype", "contigs", "window", "window_stride",
                 "edge", "max_n_fraction", "split", "intervals", "windows"}


def tokenize(out, fasta, stretches=None, read_bases=None, split_by_reference=False, **options):
    """write_token_dataset over whole contigs of ``fasta`` (or ``stretches``), bases from the FASTA by default;
    ``split_by_reference``: split as the FASTA is, as `genoformer tokenize --bam` does."""
    with Reference(fasta) as reference:
        if stretches is None:
            stretches = [Stretch(name, name, 0, length) for name, length in reference.contigs.items()]
        source = {"path": str(fasta), "sha256": reference.sha256(), "kind": "fasta"}
        return write_token_dataset(out, stretches, read_bases or reference.codes, TokenizeOptions(**options),
                                   source, split_bases=reference.codes if split_by_reference else None)


def sarscov2_consensus_reader(sarscov2):
    """Bases of the real SARS-CoV-2 sample consensus: 82% N (low coverage), so many windows are mostly N."""
    reference = Reference(sarscov2 / "NC_045512.2.fasta")
    bam = sarscov2 / "SRR11728627.sorted.bam"

    def read_bases(contig, start, end):
        return encode_bases(consensus(bam, reference, contig, start, end)), reference.codes(contig, start, end)[1]
    return read_bases


def multi_contig_fasta(tmp_path, resources):
    """A 4-contig FASTA of real sequences: human chr22 piece, SARS-CoV-2, A. thaliana chloroplast, 200 kb of
    C. diphtheriae."""
    records = []
    for path, name, end in [(resources / "human_chr22_q" / "q.fa", "q", None),
                            (resources / "sarscov2" / "NC_045512.2.fasta", "NC_045512.2", None),
                            (resources / "athal_cp" / "NC_000932.1.fa", "NC_000932.1", None),
                            (resources / "cdiph" / "NZ_LN831026.1.fa.gz", "NZ_LN831026.1", 200_000)]:
        with Reference(path) as reference:
            records.append(f">{name}\n{reference.fetch(name, 0, end)}\n")
    fasta = tmp_path / "four.fa"
    fasta.write_text("".join(records))
    return fasta


# --------------------------------------------------------------------------------------------- shards


@pytest.mark.parametrize("k,stride", [(6, 1), (4, 4), (3, 2), (8, 1)])
def test_shards_decode_to_the_reference_and_chunks_overlap_correctly(tmp_path, monkeypatch, chloroplast_fasta,
                                                                     k, stride):
    monkeypatch.setattr(dataset_module, "CHUNK_TOKENS", 7919)  # many chunk edges, each needing k-1 overlap
    manifest = tokenize(tmp_path / "ds", chloroplast_fasta, k=k, stride=stride, window=1024)
    with Reference(chloroplast_fasta) as reference:
        sequence = reference.fetch("NC_000932.1").upper()
        codes, _ = reference.codes("NC_000932.1")
    entry = manifest["contigs"][0]
    shard = np.load(tmp_path / "ds" / entry["shard"], mmap_mode="r")
    assert shard.dtype == KmerVocab(k).dtype and shard.shape == (entry["n_tokens"],)
    assert entry["length_bp"] == len(sequence) == 154_478
    assert np.array_equal(shard, encode(codes, KmerVocab(k), stride))
    covered = span_bp(len(shard), k, stride)
    assert decode(shard, KmerVocab(k), stride) == sequence[:covered]


def test_manifest_has_the_contract_keys(tmp_path, chloroplast_fasta):
    manifest = tokenize(tmp_path / "ds", chloroplast_fasta, window=1024)
    on_disk = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert on_disk == manifest
    assert CONTRACT_KEYS <= set(on_disk)
    assert set(on_disk["source"]) >= {"path", "sha256", "kind"}
    assert set(on_disk["split"]) >= {"method", "block", "gap", "fractions"}
    assert all(set(iv) >= {"contig", "start", "end", "split"} for iv in on_disk["intervals"])
    assert set(on_disk["windows"]) == set(SPLITS)
    assert KmerVocab.from_json(on_disk["vocab"]) == KmerVocab(6) and on_disk["dtype"] == "uint16"


def test_softmask_track_marks_kmers_touching_lowercase(tmp_path, resources):
    with Reference(resources / "sarscov2" / "NC_045512.2.fasta") as reference:
        sequence = reference.fetch("NC_045512.2")
    lowered = list(sequence)
    for start, end in [(0, 54), (1000, 1300), (29_800, 29_903)]:  # e.g. the UTRs masked, as a masker would
        lowered[start:end] = sequence[start:end].lower()
    fasta = tmp_path / "masked.fa"
    fasta.write_text(">NC_045512.2\n" + "".join(lowered) + "\n")
    manifest = tokenize(tmp_path / "ds", fasta, k=5, stride=2, window=512, softmask=True)
    track = np.load(tmp_path / "ds" / manifest["contigs"][0]["softmask"])
    is_lower = np.array([base.islower() for base in lowered])
    expected = [is_lower[i:i + 5].any() for i in range(0, len(lowered) - 4, 2)]
    assert track.dtype == bool and track.tolist() == expected
    assert Manifest.load(tmp_path / "ds").softmask(0).sum() == sum(expected)


def test_short_sequence_gets_an_empty_shard(tmp_path, resources):
    fasta = multi_contig_fasta(tmp_path, resources)
    stretches = [Stretch("q:1-4", "q", 0, 4), Stretch("NC_000932.1", "NC_000932.1", 0, 154_478)]
    manifest = tokenize(tmp_path / "ds", fasta, stretches=stretches, k=6, window=1024)
    assert manifest["contigs"][0]["n_tokens"] == 0
    assert np.load(tmp_path / "ds" / "shards" / "0.npy").shape == (0,)


# --------------------------------------------------------------------------------------------- windows


def reference_windows(tokens, start, end, window, window_stride, pad_tail, max_n_fraction):
    """Windows one at a time: full windows on the grid, then (pad) the first overhanging one if it adds tokens."""
    found, covered_to, position = [], start, start
    while position < end:
        if position + window <= end:
            found.append((position, window))
            covered_to = position + window
        elif pad_tail and covered_to < end:
            found.append((position, end - position))
            break
        else:
            break
        position += window_stride
    return [(s, n) for s, n in found if np.count_nonzero(tokens[s:s + n] == UNK) / n <= max_n_fraction]


def test_windows_match_the_simple_reference_on_random_tokens(monkeypatch):
    monkeypatch.setattr(dataset_module, "CHUNK_TOKENS", 37)
    rng = np.random.default_rng(3)
    for _ in range(300):
        size = int(rng.integers(0, 400))
        tokens = rng.integers(5, 100, size=size).astype(np.uint16)
        tokens[rng.random(size) < rng.choice([0.0, 0.05, 0.5])] = UNK
        start = int(rng.integers(0, size + 1))
        end = int(rng.integers(start, size + 1))
        window, window_stride = int(rng.integers(1, 60)), int(rng.integers(1, 80))
        pad_tail, max_n = bool(rng.integers(0, 2)), float(rng.choice([0.0, 0.1, 0.5, 1.0]))
        got = interval_windows(tokens, start, end, window=window, window_stride=window_stride, pad_tail=pad_tail,
                               max_n_fraction=max_n)
        expected = reference_windows(tokens, start, end, window, window_stride, pad_tail, max_n)
        assert [tuple(row) for row in got.tolist()] == expected


def test_padded_windows_cover_every_token():
    tokens = np.full(1000, 7, dtype=np.uint16)
    for window, window_stride in [(100, 100), (64, 50), (300, 100), (1000, 1), (2000, 2000)]:
        found = interval_windows(tokens, 0, 1000, window=window, window_stride=window_stride, pad_tail=True,
                                 max_n_fraction=0.0)
        covered = np.zeros(1000, dtype=bool)
        for start, length in found:
            covered[start:start + length] = True
            assert length == window or start + length == 1000  # only the last window is short
        assert covered.all()


def test_n_filter_keeps_a_window_whose_n_fraction_equals_the_limit(human_q):
    """29 N tokens in a window of 100 is a fraction of 0.29, which does not exceed --max-n-fraction 0.29 (though
    0.29 * 100 is 28.999999999999996 in floating point); 30 do."""
    vocab = KmerVocab(1)
    with Reference(human_q / "q.fa") as reference:
        codes = reference.codes("q", 0, 200)[0]
    for n_count, kept in [(29, [[0, 100], [100, 100]]), (30, [[100, 100]])]:
        tokens = encode(codes, vocab)
        tokens[:n_count] = UNK
        found = interval_windows(tokens, 0, 200, window=100, window_stride=100, pad_tail=False, max_n_fraction=0.29)
        assert found.tolist() == kept


def test_unk_counts_against_brute_force(monkeypatch):
    monkeypatch.setattr(dataset_module, "CHUNK_TOKENS", 16)
    rng = np.random.default_rng(11)
    tokens = np.where(rng.random(500) < 0.3, UNK, 9).astype(np.uint16)
    starts = rng.integers(0, 500, size=200)
    ends = starts + rng.integers(0, 100, size=200).clip(max=500 - starts)
    expected = [np.count_nonzero(tokens[s:e] == UNK) for s, e in zip(starts, ends)]
    assert _unk_counts(tokens, starts, ends).tolist() == expected


def test_n_filter_on_a_real_low_coverage_consensus(tmp_path, sarscov2):
    """The SARS-CoV-2 sample consensus is mostly N: the filter keeps exactly the windows under the threshold."""
    read_bases = sarscov2_consensus_reader(sarscov2)
    stretches = [Stretch("NC_045512.2", "NC_045512.2", 0, 29_903)]
    kept = {}
    for max_n in (0.0, 0.5, 1.0):
        manifest = tokenize(tmp_path / f"ds{max_n}", sarscov2 / "NC_045512.2.fasta", stretches, read_bases,
                            window=256, max_n_fraction=max_n, split_by="blocks", block=4)
        shard = np.load(tmp_path / f"ds{max_n}" / "shards" / "0.npy")
        kept[max_n] = sum(manifest["windows"].values())
        for split in SPLITS:
            for _, start, length in Manifest.load(tmp_path / f"ds{max_n}").windows(split):
                assert np.count_nonzero(shard[start:start + length] == UNK) <= max_n * length
    assert 0 < kept[0.0] < kept[0.5] < kept[1.0]


def test_a_sample_consensus_gets_its_references_split(tmp_path, sarscov2):
    """The SARS-CoV-2 sample's consensus (82% N) split on the reference's windows gets the reference's
    train/val/test blocks, so a model pretrained on the reference's training blocks is never scored on them as
    the sample's test split. Split on its own windows (blocks dealt over those that pass the N filter), its test
    blocks lie in the reference's training blocks."""
    fasta = sarscov2 / "NC_045512.2.fasta"
    stretches = [Stretch("NC_045512.2", "NC_045512.2", 0, 29_903)]
    options = dict(window=256, split_by="blocks", block=4)
    reference = tokenize(tmp_path / "reference", fasta, stretches, **options)
    sample = tokenize(tmp_path / "sample", fasta, stretches, sarscov2_consensus_reader(sarscov2),
                      split_by_reference=True, **options)
    own = tokenize(tmp_path / "own", fasta, stretches, sarscov2_consensus_reader(sarscov2), **options)
    assert sum(sample["windows"].values()) < sum(reference["windows"].values()) / 5  # mostly N: few windows left
    assert not (tmp_path / "sample" / "split-reference").exists()  # the scratch tokens are gone

    def split_of_bases(manifest):
        split = np.full(29_903, "", dtype=object)
        for interval in manifest["intervals"]:
            split[interval["start"]:interval["end"]] = interval["split"]
        return split

    reference_split, sample_split, own_split = split_of_bases(reference), split_of_bases(sample), split_of_bases(own)
    for name in ("val", "test"):
        assert sample["windows"][name] >= 1
        assert not np.any((sample_split == name) & (reference_split == "train"))
    assert np.any((own_split == "test") & (reference_split == "train"))  # the leak split_bases prevents
    assert [(iv["start"], iv["end"], iv["split"]) for iv in sample["intervals"]] == \
        [(iv["start"], iv["end"], iv["split"]) for iv in reference["intervals"]]


def test_a_reference_with_an_n_gap_keeps_its_blocks_with_windows(tmp_path, chloroplast_fasta):
    """16.6 kbp of N in the chloroplast: the blocks inside the gap have no window and stay "train", so each
    split still gets a block with windows (dealing blocks by length alone left the test split empty)."""
    with Reference(chloroplast_fasta) as reference:
        sequence = reference.fetch("NC_000932.1", 0, reference.contigs["NC_000932.1"]).upper()
    gapped = sequence[:101_300] + "N" * 16_600 + sequence[117_900:]
    (tmp_path / "gap.fa").write_text(">gap\n" + "\n".join(gapped[i:i + 80] for i in range(0, len(gapped), 80)) + "\n")
    manifest = tokenize(tmp_path / "ds", tmp_path / "gap.fa", window=512, block=32, split_by="blocks")
    assert all(manifest["windows"][name] > 0 for name in SPLITS)
    in_gap = [iv for iv in manifest["intervals"] if iv["start"] >= 101_300 and iv["end"] <= 117_900]
    assert in_gap and all(iv["windows"] == 0 and iv["split"] == "train" for iv in in_gap)


# --------------------------------------------------------------------------------------------- splits


def test_interleave_gives_exact_counts_spread_out():
    for n in range(3, 60):
        targets = _block_targets(n, {"train": 0.8, "val": 0.1, "test": 0.1})
        order = _interleave(targets)
        assert {name: order.count(name) for name in SPLITS} == targets
        assert targets["val"] >= 1 and targets["test"] >= 1 and targets["train"] >= 1
        if targets["val"] > 1:  # val blocks are not bunched together
            positions = [i for i, name in enumerate(order) if name == "val"]
            assert min(np.diff(positions)) >= n // targets["val"] - 1
    assert _block_targets(2, {"train": 0.8, "val": 0.1, "test": 0.1}) is None
    assert _block_targets(1, {"train": 1.0, "val": 0.0, "test": 0.0}) == {"train": 1, "val": 0, "test": 0}


def test_assign_by_contig_fills_every_split():
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    assert sorted(_assign_by_contig([10, 10, 10], fractions)) == ["test", "train", "val"]
    assert _assign_by_contig([100, 1, 1, 0], fractions) == ["train", "val", "test", "val"]
    big = _assign_by_contig([50] * 20, fractions)
    assert big.count("train") == 16 and big.count("val") == 2 and big.count("test") == 2


def check_blocks_disjoint_with_gap(manifest):
    """Intervals of each contig are in order, none overlap, and consecutive ones are >= gap >= window apart."""
    by_contig = {}
    for interval in manifest["intervals"]:
        by_contig.setdefault(interval["contig"], []).append(interval)
    for intervals in by_contig.values():
        for before, after in zip(intervals, intervals[1:]):
            assert after["start"] - before["end"] >= manifest["split"]["gap"] >= manifest["window"]


def window_regions(root, split):
    data = TokenDataset(root, split)
    return [data.region(i) for i in range(len(data))]


def test_block_split_on_the_chloroplast(tmp_path, chloroplast_fasta):
    manifest = tokenize(tmp_path / "ds", chloroplast_fasta, window=1024)
    assert manifest["split"]["method"] == "blocks"
    assert all(manifest["windows"][name] >= 1 for name in SPLITS)
    check_blocks_disjoint_with_gap(manifest)
    regions = {split: window_regions(tmp_path / "ds", split) for split in SPLITS}
    assert {split: len(found) for split, found in regions.items()} == manifest["windows"]
    train_bases = np.zeros(154_478, dtype=bool)
    for _, start, end in regions["train"]:
        train_bases[start:end] = True
    for split in ("val", "test"):  # not one base of a val/test window is in a train window
        assert not any(train_bases[start:end].any() for _, start, end in regions[split])
    again = tokenize(tmp_path / "again", chloroplast_fasta, window=1024)
    assert again == manifest  # deterministic


def test_contig_split_with_several_contigs(tmp_path, resources):
    fasta = multi_contig_fasta(tmp_path, resources)
    manifest = tokenize(tmp_path / "ds", fasta, window=1024)
    assert manifest["split"]["method"] == "contig"
    split_of = {iv["contig"]: iv["split"] for iv in manifest["intervals"]}
    assert split_of == {"NZ_LN831026.1": "train", "NC_000932.1": "train", "NC_045512.2": "val", "q": "test"}
    assert manifest["windows"] == {"train": 196 + 151, "val": 30, "test": 13}  # ceil(n_tokens / 1024), padded
    blocks = tokenize(tmp_path / "blocks", fasta, window=1024, split_by="blocks")
    assert blocks["split"]["method"] == "blocks"
    check_blocks_disjoint_with_gap(blocks)


def test_impossible_splits_are_clear_errors(tmp_path, resources, chloroplast_fasta):
    with pytest.raises(ConfigError, match=r"NC_045512.2.fasta: only 1 block\(s\).*lower --block or --window"):
        tokenize(tmp_path / "a", resources / "sarscov2" / "NC_045512.2.fasta", window=4096)
    with pytest.raises(ConfigError, match="only 1 sequence.*--split-by blocks"):
        tokenize(tmp_path / "b", chloroplast_fasta, window=1024, split_by="contig")
    with pytest.raises(ConfigError, match="no window of 200000 tokens"):
        tokenize(tmp_path / "c", chloroplast_fasta, window=200_000, edge="drop")
    assert not any(tmp_path.iterdir())  # nothing left behind, not even a temp folder


@pytest.mark.parametrize("options, match", [
    (dict(k=9), "k=9"), (dict(k=3, stride=4), "--stride 4"), (dict(window=0), "--window 0"),
    (dict(window=(1 << 20) + 1), "--window"), (dict(window_stride=0), "--window-stride 0"),
    (dict(edge="wrap"), "--edge"), (dict(max_n_fraction=1.5), "--max-n-fraction"), (dict(block=0), "--block"),
    (dict(fractions=(0.5, 0.5)), "--split-fractions"), (dict(fractions=(0.0, 0.5, 0.5)), "--split-fractions"),
    (dict(split_by="random"), "--split-by"),
])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        TokenizeOptions(**options)


# --------------------------------------------------------------------------------------------- reading


@pytest.fixture(scope="module")
def chloroplast_dataset(tmp_path_factory, chloroplast_fasta):
    root = tmp_path_factory.mktemp("cp") / "ds"
    tokenize(root, chloroplast_fasta, window=1000, edge="pad", split_by="blocks", block=5)
    return root


def test_items_are_windows_of_the_reference(chloroplast_dataset, chloroplast_fasta):
    import torch

    data = TokenDataset(chloroplast_dataset, "test")
    vocab = data.vocab
    with Reference(chloroplast_fasta) as reference:
        for i in range(len(data)):
            item = data[i]
            assert item["input_ids"].dtype == torch.long and item["attention_mask"].dtype == torch.bool
            assert item["input_ids"].shape == item["attention_mask"].shape == (1000,)
            valid = int(item["attention_mask"].sum())
            assert not item["attention_mask"][valid:].any() and (item["input_ids"][valid:] == vocab.PAD).all()
            contig, start, end = data.region(i)
            tokens = item["input_ids"][:valid].numpy()
            assert decode(tokens, vocab, 1) == reference.fetch(contig, start, end).upper()


def test_padded_tail_window(chloroplast_dataset):
    manifest = Manifest.load(chloroplast_dataset)
    n = manifest["contigs"][0]["n_tokens"]
    last = max((row for split in SPLITS for row in manifest.windows(split)), key=lambda row: row[1])
    assert last[1] + last[2] == n and last[2] < 1000  # the contig's last tokens, in a short (padded) window
    split = next(s for s in SPLITS if any((manifest.windows(s)[:, 1] == last[1])))
    data = TokenDataset(chloroplast_dataset, split)
    item = data[int(np.flatnonzero(data.windows[:, 1] == last[1])[0])]
    assert int(item["attention_mask"].sum()) == last[2]


def test_epoch_order_is_seeded(chloroplast_dataset):
    data = TokenDataset(chloroplast_dataset, "train", seed=5)
    first = data.epoch_order(0)
    assert sorted(first.tolist()) == list(range(len(data)))
    assert np.array_equal(first, TokenDataset(chloroplast_dataset, "train", seed=5).epoch_order(0))
    assert not np.array_equal(first, data.epoch_order(1))
    assert not np.array_equal(first, TokenDataset(chloroplast_dataset, "train", seed=6).epoch_order(0))


def test_other_window_and_data_loader(chloroplast_dataset):
    import torch

    data = TokenDataset(chloroplast_dataset, "val", window=128)
    assert len(data) > len(TokenDataset(chloroplast_dataset, "val"))
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch["input_ids"].shape == (4, 128) and batch["attention_mask"].all()
    data[0]  # opens a memory map
    assert len(pickle.dumps(data)) < 20_000  # memory maps are not pickled into workers
    with pytest.raises(InputError, match="no windows of 500000 tokens"):
        TokenDataset(chloroplast_dataset, "val", window=500_000)
    with pytest.raises(ConfigError, match="split 'dev'"):
        TokenDataset(chloroplast_dataset, "dev")


def test_broken_datasets_are_reported(tmp_path, chloroplast_dataset):
    import shutil

    with pytest.raises(MissingFileError, match="manifest.json: not found"):
        Manifest.load(tmp_path)
    root = tmp_path / "ds"
    shutil.copytree(chloroplast_dataset, root)
    manifest_path = root / "manifest.json"
    good = json.loads(manifest_path.read_text())

    def load_with(data):
        manifest_path.write_text(data if isinstance(data, str) else json.dumps(data))
        return Manifest.load(root)

    with pytest.raises(InputError, match="not valid JSON"):
        load_with("{")
    with pytest.raises(InputError, match="missing keys intervals"):
        load_with({key: value for key, value in good.items() if key != "intervals"})
    with pytest.raises(InputError, match="format_version"):
        load_with({**good, "format_version": 99})
    with pytest.raises(InputError, match="n_tokens"):
        load_with({**good, "contigs": [{**good["contigs"][0], "n_tokens": 5}]})
    with pytest.raises(InputError, match="k 5"):
        load_with({**good, "k": 5})
    with pytest.raises(InputError, match="interval"):
        load_with({**good, "intervals": [{**good["intervals"][0], "end": 10**9}]})
    load_with(good)
    np.save(root / "shards" / "0.npy", np.zeros(10, dtype=np.uint16))
    with pytest.raises(InputError, match=r"0.npy: holds uint16\[10\]"):
        Manifest.load(root)
    (root / "shards" / "0.npy").unlink()
    with pytest.raises(MissingFileError, match="0.npy: missing"):
        Manifest.load(root)



def test_token_ids_outside_the_vocabulary_are_reported(tmp_path, chloroplast_dataset):
    """A damaged shard (here: one token set past the vocabulary) is an InputError naming the shard and the token,
    for a training window and for the Markov baseline's decoding, not an IndexError in the model's embedding."""
    import shutil

    from genoformer.train.evaluate import split_sequences

    root = tmp_path / "ds"
    shutil.copytree(chloroplast_dataset, root)
    data = TokenDataset(root, "train")
    index, start, _ = (int(value) for value in data.windows[0])
    shard_path = root / "shards" / "0.npy"
    shard = np.load(shard_path)
    shard[start + 3] = data.vocab.size + 7
    np.save(shard_path, shard)
    message = rf"0.npy: token {start + 3} of sequence \S+ is id {data.vocab.size + 7}, not in the vocabulary"
    with pytest.raises(InputError, match=message):
        TokenDataset(root, "train")[0]
    with pytest.raises(InputError, match=message):
        split_sequences(Manifest.load(root), "train")


def test_shard_file_reads_the_same_slices_as_a_memory_map(chloroplast_dataset):
    path = chloroplast_dataset / "shards" / "0.npy"
    mapped, shard = np.load(path, mmap_mode="r"), ShardFile(path)
    assert len(shard) == len(mapped)
    for part in [slice(0, 10), slice(1000, 5000), slice(len(mapped) - 3, None), slice(-7, -2), slice(5, 5)]:
        assert np.array_equal(shard[part], mapped[part])
