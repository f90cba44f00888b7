"""Repeat families: near-identical copies at other loci stay on one side of a split (real repeats of the bundled
genomes; the sparse k-mer sharing against a brute-force reference on random inputs)."""

import itertools

import numpy as np
import pytest
from Bio.Seq import Seq

from genoformer.io.fasta import Reference, encode_bases
from genoformer.tasks import homology
from genoformer.tasks.homology import canonical_kmers, homologous_pairs, loci, repeat_families
from genoformer.tasks.splits import assign_test, split_groups, split_summary

CONTIG_CP = "NC_000932.1"


def test_canonical_kmers_match_a_string_reference_on_random_sequences():
    """The set of min(k-mer, reverse complement) over windows without N, computed with strings, on random
    sequences with Ns; a sequence and its reverse complement give the same set."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        k = int(rng.integers(1, 9))
        text = "".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=int(rng.integers(0, 60))))
        expected = set()
        for i in range(len(text) - k + 1):
            kmer = text[i:i + k]
            if "N" not in kmer:
                canonical = min(kmer, str(Seq(kmer).reverse_complement()))
                expected.add(int("".join(str("ACGT".index(b)) for b in canonical), 4))
        got = canonical_kmers(encode_bases(text), k)
        assert got.tolist() == sorted(expected)
        assert canonical_kmers(encode_bases(str(Seq(text).reverse_complement())), k).tolist() == got.tolist()


def test_loci_chain_overlapping_intervals_per_contig():
    contigs = np.array(["a", "a", "a", "b", "a", "b"])
    starts = np.array([0, 50, 120, 0, 99, 100])
    ends = np.array([100, 110, 130, 100, 105, 150])
    locus = loci(contigs, starts, ends)
    assert locus[0] == locus[1] == locus[4] != locus[2]  # [0,100) [50,110) [99,105) overlap; [120,130) does not
    assert locus[3] != locus[5] and len({locus[3], locus[5], locus[0], locus[2]}) == 4  # touching is not overlap


@pytest.mark.parametrize("seed", range(5))
def test_homologous_pairs_match_brute_force_on_random_kmer_sets(seed, monkeypatch):
    """Every pair at different loci sharing >= MIN_SHARED of the smaller set, k-mers at more than MAX_LOCI loci
    ignored: the sparse product against set intersections over all pairs."""
    monkeypatch.setattr(homology, "MAX_LOCI", 5)
    rng = np.random.default_rng(seed)
    n = 40
    kmers = [np.unique(rng.integers(0, 120, int(rng.integers(0, 25))).astype(np.uint64)) for _ in range(n)]
    locus = rng.integers(0, 25, n)
    loci_of = {value: {int(locus[i]) for i in range(n) if value in kmers[i].tolist()}
               for value in set(np.concatenate(kmers).tolist())}
    usable = {value for value, places in loci_of.items() if 2 <= len(places) <= 5}
    assert any(len(places) > 5 for places in loci_of.values())  # the cap is exercised
    expected = set()
    for i, j in itertools.combinations(range(n), 2):
        shared = len(set(kmers[i].tolist()) & set(kmers[j].tolist()) & usable)
        if locus[i] != locus[j] and shared and shared >= homology.MIN_SHARED * min(len(kmers[i]), len(kmers[j])):
            expected.add((i, j))
    got = {tuple(pair) for pair in homologous_pairs(kmers, locus).tolist()}
    assert expected and got == expected


def _write_fasta(path, name, sequence):
    path.write_text(f">{name}\n" + "\n".join(sequence[i:i + 80] for i in range(0, len(sequence), 80)) + "\n")


def test_a_mutated_copy_of_a_region_is_one_family_and_neighbours_are_not(chloroplast_fasta, tmp_path):
    """A 300 bp chloroplast stretch pasted, reverse-complemented with 3% of its bases changed, 40 kbp away: the
    original and the copy form a family; a region overlapping the original (same locus) and unrelated regions
    stay alone."""
    with Reference(chloroplast_fasta) as reference:
        genome = reference.fetch(CONTIG_CP, 0, reference.contigs[CONTIG_CP]).upper()
    original = genome[10_000:10_300]
    copy = list(str(Seq(original).reverse_complement()))
    for i in range(5, 300, 33):  # 9 substitutions, spread out
        copy[i] = "ACGT"[("ACGT".index(copy[i]) + 1) % 4]
    edited = genome[:50_000] + "".join(copy) + genome[50_300:]
    _write_fasta(tmp_path / "edited.fa", CONTIG_CP, edited)
    with Reference(tmp_path / "edited.fa") as reference:
        starts = np.array([10_000, 50_000, 10_150, 70_000, 90_000])
        family = repeat_families(reference, np.array([CONTIG_CP] * 5), starts, starts + 300)
    assert family[0] == family[1]
    assert len({family[0], family[2], family[3], family[4]}) == 4


def test_the_chloroplast_inverted_repeat_copies_are_one_family(chloroplast_fasta):
    """IRa and IRb (reverse complements of each other, ~26 kbp apart) are found without being told."""
    with Reference(chloroplast_fasta) as reference:
        genome = reference.fetch(CONTIG_CP, 0, reference.contigs[CONTIG_CP]).upper()
        window = genome[90_000:90_200]
        twin = genome.find(str(Seq(window).reverse_complement()))
        assert twin > 120_000  # IRb
        starts = np.array([90_000, twin + 37, 5_000, 40_000])  # the copy's interval shifted: not aligned to it
        family = repeat_families(reference, np.array([CONTIG_CP] * 4), starts, starts + 200)
    assert family[0] == family[1] and len(set(family.tolist())) == 3


def test_no_test_region_has_a_near_identical_copy_in_training(cdiph_fasta, caplog):
    """Every 200 bp tile of the first 1.2 Mbp of C. diphtheriae in 100 kbp blocks, 30% held out: some test tiles
    have copies (rRNA operons, insertion sequences) in training blocks when split by position alone; with their
    families none does, and the held-out fraction stays within 10 points of the target."""
    contig = "NZ_LN831026.1"
    with Reference(cdiph_fasta) as reference:
        starts = np.arange(0, 1_200_000, 200)
        contigs = np.array([contig] * starts.size)
        kmers = [canonical_kmers(reference.codes(contig, int(s), int(s) + 200)[0]) for s in starts]
        family = repeat_families(reference, contigs, starts, starts + 200)
    pairs = homologous_pairs(kmers, loci(contigs, starts, starts + 200))
    groups = split_groups(contigs, starts + 100, method="blocks", block=100_000)
    labels = np.arange(starts.size) % 2
    by_position = assign_test(groups, labels, test_fraction=0.3, seed=0)
    with caplog.at_level("INFO", logger="genoformer.tasks.splits"):
        is_test = assign_test(groups, labels, test_fraction=0.3, seed=0, families=family)

    def leaks(test):
        return int((test[pairs[:, 0]] != test[pairs[:, 1]]).sum())
    assert leaks(by_position) > 0 and leaks(is_test) == 0
    moved = by_position & ~is_test
    assert moved.any() and not (is_test & ~by_position).any()
    assert f"{moved.sum()} test examples moved to training" in caplog.text
    assert abs(is_test.mean() - 0.3) <= 0.1
    summary = split_summary("blocks", 100_000, 0.3, 0, groups, is_test, family)
    assert summary["n_test"] == is_test.sum() and summary["n_train"] + summary["n_test"] == starts.size
    assert summary["with_repeat_copy"] == np.unique(pairs).size  # every tile with a copy, none without
