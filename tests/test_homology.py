"""Repeat families: near-identical copies at other loci never sit on both sides of a split (real repeats of the
bundled genomes; the sparse k-mer sharing against a brute-force reference on random genomes)."""

import itertools

import numpy as np
import pytest
from Bio.Seq import Seq

from genoformer.io.fasta import Reference, encode_bases
from genoformer.tasks import homology
from genoformer.tasks.homology import NO_KMER, canonical_kmers, example_kmers, homologous_pairs, repeat_families
from genoformer.tasks.linear import _group_folds
from genoformer.tasks.splits import (assign_split, has_copy_in, joined, overlap_clusters, split_groups, split_names,
                                     split_summary)

CONTIG_CP = "NC_000932.1"
CDIPH_CONTIG = "NZ_LN831026.1"


def _kmer_value(kmer: str) -> int:
    return int("".join(str("ACGT".index(base)) for base in kmer), 4)


def _canonical(kmer: str) -> str:
    return min(kmer, str(Seq(kmer).reverse_complement()))


def test_canonical_kmers_match_a_string_reference_on_random_sequences():
    """Per position, min(k-mer, reverse complement), NO_KMER over an N, computed with strings on random
    sequences; a sequence and its reverse complement hold the same k-mers, in reverse order."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        k = int(rng.integers(1, 9))
        text = "".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=int(rng.integers(0, 60))))
        expected = [NO_KMER if "N" in text[i:i + k] else _kmer_value(_canonical(text[i:i + k]))
                    for i in range(len(text) - k + 1)]
        got = canonical_kmers(encode_bases(text), k)
        assert got.tolist() == expected
        reverse = canonical_kmers(encode_bases(str(Seq(text).reverse_complement())), k)
        assert reverse.tolist() == got[::-1].tolist()


def _brute_force_families(genome: dict[str, str], intervals: list[tuple[str, int, int]], k: int,
                          max_copies: int) -> list[set[int]]:
    """Families the obvious way: k-mer positions in the union of the intervals, then every pair of
    non-overlapping intervals, then transitive closure."""
    covered = {name: np.zeros(len(sequence) + 1, dtype=bool) for name, sequence in genome.items()}
    for contig, start, end in intervals:
        covered[contig][start:end] = True
    copies: dict[str, int] = {}
    for name, sequence in genome.items():
        for i in range(len(sequence) - k + 1):
            kmer = sequence[i:i + k]
            if covered[name][i:i + k].all() and "N" not in kmer:
                copies[_canonical(kmer)] = copies.get(_canonical(kmer), 0) + 1
    kmers = [{_canonical(genome[c][i:i + k]) for i in range(s, e - k + 1) if "N" not in genome[c][i:i + k]}
             for c, s, e in intervals]
    family = list(range(len(intervals)))

    def root(i):
        while family[i] != i:
            i = family[i]
        return i
    for i, j in itertools.combinations(range(len(intervals)), 2):
        (ci, si, ei), (cj, sj, ej) = intervals[i], intervals[j]
        if intervals[i] == intervals[j]:  # the same interval twice is one example
            family[root(i)] = root(j)
        if ci == cj and si < ej and sj < ei:
            continue
        shared = sum(copies[kmer] <= max_copies for kmer in kmers[i] & kmers[j])
        if shared and shared >= homology.MIN_SHARED * min(len(kmers[i]), len(kmers[j])):
            family[root(i)] = root(j)
    groups: dict[int, set[int]] = {}
    for i in range(len(intervals)):
        groups.setdefault(root(i), set()).add(i)
    return sorted(groups.values(), key=min)


@pytest.mark.parametrize("seed", range(4))
def test_families_match_brute_force_on_random_genomes_with_planted_copies(seed, monkeypatch, tmp_path):
    """Random contigs with Ns, copies of random stretches planted on either strand with a few substitutions
    (one planted 8 times, over the copy cap), random intervals, many of them overlapping: the same families as
    pairwise set intersections."""
    monkeypatch.setattr(homology, "K", 8)
    monkeypatch.setattr(homology, "MAX_COPIES", 4)
    rng = np.random.default_rng(seed)
    genome = {f"c{i}": list(rng.choice(list("ACGTN"), p=[0.245] * 4 + [0.02], size=int(rng.integers(300, 900))))
              for i in range(3)}
    for _ in range(6):
        source = genome[str(rng.choice(list(genome)))]
        start = int(rng.integers(0, len(source) - 40))
        stretch = "".join(source[start:start + int(rng.integers(15, 40))])
        for _ in range(int(rng.integers(1, 7))):
            copy = list(stretch if rng.random() < 0.5 else str(Seq(stretch).reverse_complement()))
            for i in rng.choice(len(copy), int(rng.integers(0, 3)), replace=False):
                copy[i] = str(rng.choice(list("ACGT")))
            target = genome[str(rng.choice(list(genome)))]
            at = int(rng.integers(0, len(target) - len(copy)))
            target[at:at + len(copy)] = copy
    high_copy, planted = "".join(rng.choice(list("ACGT"), 30)), []
    for _ in range(8):  # a high-copy repeat: over the cap, its k-mers join nothing
        contig = str(rng.choice(list(genome)))
        at = int(rng.integers(0, len(genome[contig]) - 30))
        genome[contig][at:at + 30] = high_copy
        planted.append((contig, at, at + 30))
    genome = {name: "".join(bases) for name, bases in genome.items()}
    (tmp_path / "g.fa").write_text("".join(f">{name}\n{sequence}\n" for name, sequence in genome.items()))
    intervals = []
    for _ in range(60):
        contig = str(rng.choice(list(genome)))
        start = int(rng.integers(0, len(genome[contig]) - 5))
        intervals.append((contig, start, min(len(genome[contig]), start + int(rng.integers(5, 60)))))
    intervals += intervals[:5] + planted  # the same interval twice: one example each, one family
    with Reference(tmp_path / "g.fa") as reference:
        family = repeat_families(reference, *map(np.array, zip(*intervals)))
    got = sorted(({i for i in range(len(intervals)) if family[i] == f} for f in set(family.tolist())), key=min)
    assert any(len(group) > 1 for group in got)
    assert got == _brute_force_families(genome, intervals, 8, 4)


def _write_fasta(path, name, sequence):
    path.write_text(f">{name}\n" + "\n".join(sequence[i:i + 80] for i in range(0, len(sequence), 80)) + "\n")


def test_a_mutated_copy_of_a_region_is_one_family_and_neighbours_are_not(chloroplast_fasta, tmp_path):
    """A 300 bp chloroplast stretch pasted, reverse-complemented with 2% of its bases changed, 40 kbp away: the
    original and the copy form a family; a region overlapping the original by 50 bp and unrelated regions stay
    alone."""
    with Reference(chloroplast_fasta) as reference:
        genome = reference.fetch(CONTIG_CP, 0, reference.contigs[CONTIG_CP]).upper()
    original = genome[10_000:10_300]
    copy = list(str(Seq(original).reverse_complement()))
    for i in range(5, 300, 50):  # 6 substitutions, spread out
        copy[i] = "ACGT"[("ACGT".index(copy[i]) + 1) % 4]
    _write_fasta(tmp_path / "edited.fa", CONTIG_CP, genome[:50_000] + "".join(copy) + genome[50_300:])
    with Reference(tmp_path / "edited.fa") as reference:
        starts = np.array([10_000, 50_000, 10_250, 70_000, 90_000])  # 10,250: 50 bp of the copy, too few
        family = repeat_families(reference, np.array([CONTIG_CP] * 5), starts, starts + 300)
    assert family[0] == family[1]
    assert len({family[0], family[2], family[3], family[4]}) == 4


def test_the_chloroplast_inverted_repeat_copies_are_one_family(chloroplast_fasta):
    """IRa and IRb (reverse complements of each other, ~26 kbp apart) are found without being told, with an
    interval that is not aligned to the copy; no interval at all gives no family."""
    with Reference(chloroplast_fasta) as reference:
        genome = reference.fetch(CONTIG_CP, 0, reference.contigs[CONTIG_CP]).upper()
        window = genome[90_000:90_200]
        twin = genome.find(str(Seq(window).reverse_complement()))
        assert twin > 120_000  # IRb
        starts = np.array([90_000, twin + 37, 5_000, 40_000], dtype=np.int32)
        family = repeat_families(reference, np.array([CONTIG_CP] * 4), starts, starts + 200)
        assert repeat_families(reference, np.array([], dtype=str), np.array([], int), np.array([], int)).size == 0
    assert family[0] == family[1] and len(set(family.tolist())) == 3


@pytest.fixture(scope="module")
def cdiph_tiles(cdiph_fasta):
    """200 bp tiles of the first 1.2 Mbp of C. diphtheriae, every 200 bp, and their homologous pairs."""
    with Reference(cdiph_fasta) as reference:
        starts = np.arange(0, 1_200_000, 200)
        contigs = np.array([CDIPH_CONTIG] * starts.size)
        family = repeat_families(reference, contigs, starts, starts + 200)
        pairs = homologous_pairs(*example_kmers(reference, contigs, starts, starts + 200), contigs, starts,
                                 starts + 200)
    return contigs, starts, family, pairs


def test_copies_are_found_however_densely_the_examples_overlap(cdiph_fasta, cdiph_tiles):
    """The same stretch tiled every 100 bp (each tile overlapping two others, so all of it is one run of
    overlapping intervals) finds the copies it finds tiled every 200 bp: every tile in a family there is in a
    family here."""
    _, starts, family, _ = cdiph_tiles
    with Reference(cdiph_fasta) as reference:
        dense_starts = np.arange(0, 1_200_000, 100)
        dense = repeat_families(reference, np.array([CDIPH_CONTIG] * dense_starts.size), dense_starts,
                                dense_starts + 200)
    in_family = np.bincount(family)[family] > 1
    dense_in_family = np.bincount(dense)[dense] > 1
    assert in_family.sum() > 20 and dense_in_family[::2][in_family].all()


def test_no_test_tile_has_a_copy_in_training_and_no_block_is_on_both_sides(cdiph_tiles, caplog):
    """30% of the tiles held out in 100 kbp blocks: by position, some test tiles have copies (rRNA operons,
    insertion sequences) in training blocks; with families those are left out of both sides, so no test tile has
    a copy in training, no block is on both sides, and the held-out fraction stays within 10 points."""
    contigs, starts, family, pairs = cdiph_tiles
    groups = split_groups(contigs, starts + 100, method="blocks", block=100_000)
    labels = np.arange(starts.size) % 2
    by_position = assign_split(groups, labels, test_fraction=0.3, seed=0)[1]
    with caplog.at_level("INFO", logger="genoformer.tasks.splits"):
        train, test = assign_split(groups, labels, test_fraction=0.3, seed=0, families=family)

    def leaks(train, test):
        return int((train[pairs[:, 0]] & test[pairs[:, 1]]).sum() + (test[pairs[:, 0]] & train[pairs[:, 1]]).sum())
    assert leaks(~by_position, by_position) > 0 and leaks(train, test) == 0
    assert (train == ~by_position).all()  # training is untouched
    left_out = by_position & ~test
    assert left_out.any() and not (test & ~by_position).any()
    assert f"{left_out.sum()} test examples left out" in caplog.text
    assert not set(groups[train]) & set(groups[test])
    assert abs(test.mean() - 0.3) <= 0.1
    assert (split_names(train, test)[left_out] == "left_out").all()
    summary = split_summary("blocks", 100_000, 0.3, 0, groups, train, test, family)
    assert (summary["n_train"], summary["n_test"], summary["n_left_out_copies"]) == (
        train.sum(), test.sum(), left_out.sum())
    assert summary["with_repeat_copy"] == np.unique(pairs).size  # every tile with a copy, none without


def test_has_copy_in_and_the_messages_that_name_the_copies(caplog):
    families = np.array([0, 0, 1, 2, 2, 2])
    side = np.array([True, False, True, False, False, True])
    assert has_copy_in(side, families).tolist() == [False, True, False, True, True, False]
    # every test example of class "b" has a copy in training: the error says so
    groups, labels = np.array(["x", "x", "y", "y"]), np.array(["a", "b", "a", "b"])
    with pytest.raises(Exception, match=r"1 test examples left out for a near-identical copy \(or an overlapping example\) in training"):
        assign_split(groups, labels, test_fraction=0.5, seed=0, families=np.array([0, 1, 2, 1]))


def test_cross_validation_folds_keep_copies_out_of_validation():
    """The folds that choose C: no validation example has a family member in that fold's training part."""
    rng = np.random.default_rng(0)
    labels, groups = rng.integers(0, 2, 300), rng.integers(0, 12, 300).astype(str)
    families = np.arange(300)
    families[100:160] = rng.integers(0, 20, 60)  # copies of examples 0-19, scattered over groups
    folds = _group_folds(labels, groups, 0, families)
    assert folds is not None
    for train, test in folds:
        assert not np.isin(families[test], families[train]).any()
    unfiltered = _group_folds(labels, groups, 0, None)
    assert sum(len(test) for _, test in unfiltered) > sum(len(test) for _, test in folds)


def test_overlap_clusters_join_overlapping_intervals_only():
    contigs = np.array(["a", "a", "a", "a", "b", "a"])
    starts = np.array([0, 5, 10, 30, 2, 12])
    ends = np.array([6, 8, 20, 40, 9, 35])
    # [0,6) and [5,8) overlap; [10,20) touches neither; [12,35) joins [10,20) and [30,40); b is on its own
    clusters = overlap_clusters(contigs, starts, ends)
    assert clusters[0] == clusters[1] and clusters[2] == clusters[3] == clusters[5]
    assert len({clusters[0], clusters[2], clusters[4]}) == 3
    assert overlap_clusters(np.array(["a", "a"]), np.array([0, 5]), np.array([5, 9])).tolist() == [0, 1]  # touching
    assert joined(np.array([0, 0, 1, 2]), np.array([5, 6, 6, 7])).tolist() == [0, 0, 0, 1]


def test_no_held_out_region_overlaps_a_training_one(cdiph_fasta):
    """The bundled genome's CDS as regions, split into blocks by their midpoints: genes overlapping across a block
    border land on both sides unless overlaps are linked; linked, every held-out CDS that overlaps a training one
    is left out, and the summary counts them apart from repeat copies."""
    gff = cdiph_fasta.parent / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"
    rows = [line.split("\t") for line in gff.read_text().splitlines()
            if not line.startswith("#") and line.count("\t") == 8 and line.split("\t")[2] == "CDS"]
    contigs = np.array([row[0] for row in rows])
    starts, ends = np.array([int(row[3]) - 1 for row in rows]), np.array([int(row[4]) for row in rows])
    groups = split_groups(contigs, (starts + ends) // 2, method="blocks", block=100_000)
    labels = np.arange(starts.size) % 2
    unlinked = np.arange(starts.size)
    overlaps = overlap_clusters(contigs, starts, ends)

    def crossing(train, test):
        return sum(bool(((starts[train] < ends[i]) & (ends[train] > starts[i])).any()) for i in np.flatnonzero(test))

    crossings = []
    for seed in range(3):
        train, test = assign_split(groups, labels, test_fraction=0.3, seed=seed, families=unlinked)
        crossings.append(crossing(train, test))
        train, test = assign_split(groups, labels, test_fraction=0.3, seed=seed, families=joined(unlinked, overlaps))
        assert crossing(train, test) == 0
        summary = split_summary("blocks", 100_000, 0.3, seed, groups, train, test, unlinked, overlaps=overlaps)
        assert summary["n_left_out_overlapping"] == int((~train & ~test).sum()) and summary["n_left_out_copies"] == 0
    assert sum(crossings) > 0, "no CDS overlaps across a block border in these splits: the test proves nothing"
