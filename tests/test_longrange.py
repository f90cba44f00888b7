"""The long-range motif-order task: what the generator guarantees, and that a bag of k-mers cannot solve it."""

import numpy as np
import pytest

from genoformer.io.bed import read_bed
from genoformer.io.fasta import Reference, decode_bases, encode_bases, reverse_complement_codes
from genoformer.tasks.baselines import spectra
from genoformer.tasks.linear import fit_linear
from genoformer.tasks.longrange import CLASSES, motif_order_task, write_motif_order_task
from genoformer.tasks.metrics import classification_metrics

CONTIG = "NC_000932.1"


@pytest.fixture(scope="module")
def task(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        yield motif_order_task(reference, 160, window=6000, min_distance=3000, motif_length=12, seed=0), reference


def occurrences(sequence: str, motif: str) -> list[int]:
    reverse = decode_bases(reverse_complement_codes(encode_bases(motif)))
    return [i for i in range(len(sequence) - len(motif) + 1) if sequence[i:i + len(motif)] in (motif, reverse)]


def test_each_window_holds_each_motif_once_in_the_labelled_order(task):
    task, reference = task
    assert np.bincount(task.labels).tolist() == [80, 80]
    for codes, label, (start_a, start_b), (contig, start) in zip(task.sequences, task.labels, task.starts,
                                                                  task.sources):
        text = decode_bases(codes)
        assert occurrences(text, task.motif_a) == [start_a] and occurrences(text, task.motif_b) == [start_b]
        assert abs(start_b - start_a) >= 3000 and (start_a < start_b) == bool(label)
        background = reference.fetch(contig, start, start + 6000).upper()
        changed = [i for i in range(6000) if text[i] != background[i]]
        planted = set(range(start_a, start_a + 12)) | set(range(start_b, start_b + 12))
        assert set(changed) <= planted  # real sequence everywhere else


@pytest.mark.slow
def test_bag_of_kmers_baseline_is_at_chance(task):
    task, _ = task
    features = spectra(task.sequences, 4)
    train = np.arange(len(task.labels)) < 110
    model = fit_linear(features[train], task.labels[train], np.arange(train.sum()) // 10, list(CLASSES), seed=0)
    result = classification_metrics(task.labels[~train], model.predict_proba(features[~train]), n_bootstrap=500)
    low, high = result["auroc"]["ci95"]
    assert low < 0.5 < high, result["auroc"]


def test_written_task_reads_back_as_fasta_and_labelled_bed(task, tmp_path):
    task, _ = task
    write_motif_order_task(task, tmp_path / "task.fa", tmp_path / "task.bed")
    with Reference(tmp_path / "task.fa") as written:
        assert len(written.contigs) == 160 and set(written.contigs.values()) == {6000}
        bed = read_bed(tmp_path / "task.bed", written)
        first = next(iter(written.contigs))
        assert written.fetch(first, 0, 6000) == decode_bases(task.sequences[0])
    assert bed["label"].tolist() == [CLASSES[label] for label in task.labels]
    assert (bed["end"] - bed["start"]).unique().tolist() == [6000]
