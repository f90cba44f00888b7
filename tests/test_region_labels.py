"""Coding vs intergenic region labels on the curated A. thaliana chloroplast annotation (genes, CDS, tRNA, rRNA),
checked base by base against the GFF3 lines themselves."""

import numpy as np
import pytest

from genoformer.cli import main
from genoformer.errors import InputError
from genoformer.io.fasta import Reference
from genoformer.region_labels import coding_intergenic_regions, region_candidates

CONTIG = "NC_000932.1"
LENGTH = 100
RPS12_IRA_EXONS = ((139855, 140087), (140624, 140650))  # rps12's 2nd copy: exons 2 and 3 (+), exon 1 on - strand


@pytest.fixture(scope="module")
def chloroplast(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        yield reference


@pytest.fixture(scope="module")
def gff(resources):
    return resources / "athal_cp" / "NC_000932.1.gff3"


@pytest.fixture(scope="module")
def per_base(gff, chloroplast):
    """Per base, the lines covering it, the plain way: (CDS mask, any-gene-feature mask, tRNA/rRNA mask)."""
    size = chloroplast.contigs[CONTIG]
    masks = {kind: np.zeros(size, dtype=bool) for kind in ("CDS", "any", "RNA")}
    types = set()
    for line in gff.read_text().splitlines():
        if line.startswith("#"):
            continue
        contig, _, kind, start, end = line.split("\t")[:5]
        assert contig == CONTIG
        types.add(kind)
        for name in (kind, "any", "RNA" if kind in ("tRNA", "rRNA") else None):
            if name in masks:
                masks[name][int(start) - 1:int(end)] = True
    assert types == {"gene", "CDS", "tRNA", "rRNA"}  # every line is gene-level: "any" is the gene mask
    return masks


def slots(mask, wanted):
    """Grid starts whose LENGTH bases are all (wanted=True) or none (False) set in ``mask``."""
    starts = range(0, len(mask) - LENGTH + 1, LENGTH)
    return [(CONTIG, s) for s in starts if (mask[s:s + LENGTH].all() if wanted else not mask[s:s + LENGTH].any())]


def test_candidates_are_the_per_base_reference_of_the_gff3_lines(chloroplast, gff, per_base):
    """Coding: every base in a CDS line, the trans-spliced rps12 copy included; intergenic: no base in a gene,
    tRNA, rRNA or CDS line (the old rule, outside every grouped CDS, took in tRNA/rRNA genes and rps12 exons)."""
    candidates = region_candidates(chloroplast, gff, LENGTH)
    assert candidates["coding"] == slots(per_base["CDS"], True)
    assert candidates["intergenic"] == slots(per_base["any"], False)
    assert (len(candidates["coding"]), len(candidates["intergenic"])) == (697, 333)
    in_rps12 = [s for s in candidates["coding"] if RPS12_IRA_EXONS[0][0] <= s[1] < RPS12_IRA_EXONS[0][1] - LENGTH]
    assert in_rps12 == [(CONTIG, 139900)]
    assert len(slots(per_base["RNA"] & ~per_base["CDS"], True)) > 40  # tRNA/rRNA stretches: neither class


@pytest.mark.parametrize("seed", [0, 1])
def test_drawn_regions_lie_in_cds_or_between_genes(chloroplast, gff, per_base, seed):
    """Every drawn coding region lies wholly inside CDS lines; no intergenic region touches a gene, tRNA or rRNA
    (all 333 intergenic slots are drawn, so any mislabelled slot would show)."""
    regions = coding_intergenic_regions(chloroplast, gff, length=LENGTH, per_class=333, seed=seed)
    assert regions["label"].value_counts().to_dict() == {"coding": 333, "intergenic": 333}
    for row in regions.itertuples():
        bases = slice(row.start, row.end)
        if row.label == "coding":
            assert per_base["CDS"][bases].all(), row
        else:
            assert not per_base["any"][bases].any() and not per_base["RNA"][bases].any(), row
    with pytest.raises(InputError, match="only 333 intergenic regions of 100 bp, 334 asked for"):
        coding_intergenic_regions(chloroplast, gff, length=LENGTH, per_class=334, seed=seed)


def test_the_command_writes_the_same_regions(tmp_path, chloroplast_fasta, chloroplast, gff):
    out = tmp_path / "labels.bed"
    assert main(["region-labels", "--reference", str(chloroplast_fasta), "--gff", str(gff), "--length", "100",
                 "--per-class", "150", "--out", str(out)]) == 0
    expected = coding_intergenic_regions(chloroplast, gff, length=LENGTH, per_class=150, seed=0)
    assert out.read_text().splitlines() == ["\t".join(map(str, row)) for row in expected.itertuples(index=False)]


def test_a_gene_past_the_contig_end_names_the_line(tmp_path, chloroplast, gff):
    lines = gff.read_text().splitlines()
    assert lines[7].split("\t")[2:5] == ["gene", "4", "76"]  # trnH
    lines[7] = lines[7].replace("\t76\t", "\t154500\t")
    past = tmp_path / "past.gff3"
    past.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"past.gff3: line 8: gene end 154500 is past the end of contig "
                                         r"NC_000932.1 \(length 154478\)"):
        region_candidates(chloroplast, past, LENGTH)


def test_a_gene_across_the_origin_of_a_circular_contig_covers_both_ends(tmp_path, chloroplast, gff):
    """trnH's gene line moved to cross the origin (200 bases before it, 300 after), on the contig declared circular:
    both pieces are genic, so the intergenic slots at 100 and 200 bp are not any more; undeclared, it is an error."""
    size = chloroplast.contigs[CONTIG]
    lines = gff.read_text().splitlines()
    assert lines[7].split("\t")[2:5] == ["gene", "4", "76"]  # trnH
    lines[7] = lines[7].replace("\t4\t76\t", f"\t{size - 199}\t{size + 300}\t")
    region = f"{CONTIG}\tRefSeq\tregion\t1\t{size}\t.\t+\t.\tID={CONTIG}:1..{size};Is_circular=true"
    circular = tmp_path / "circular.gff3"
    circular.write_text("\n".join([lines[0], region] + lines[1:]) + "\n")
    starts = {start for _, start in region_candidates(chloroplast, circular, LENGTH)["intergenic"]}
    before = {start for _, start in region_candidates(chloroplast, gff, LENGTH)["intergenic"]}
    assert {100, 200} <= before and not {100, 200} & starts
    assert starts == before - {100, 200}
    undeclared = tmp_path / "undeclared.gff3"
    undeclared.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="needs its contig declared Is_circular=true"):
        region_candidates(chloroplast, undeclared, LENGTH)


def test_the_annotation_is_read_once_even_when_the_circular_declaration_comes_last(tmp_path, chloroplast, gff,
                                                                                   monkeypatch):
    """trnH across the origin as above, the contig declared circular on the file's last line: the same regions as
    when declared first, from one pass over the file (there were two, the first looking for Is_circular only)."""
    from genoformer.io import gff3
    from genoformer.io.text import text_lines

    opened = []
    monkeypatch.setattr(gff3, "text_lines", lambda path, kind: opened.append(path) or text_lines(path, kind))
    size = chloroplast.contigs[CONTIG]
    lines = gff.read_text().splitlines()
    lines[7] = lines[7].replace("\t4\t76\t", f"\t{size - 199}\t{size + 300}\t")
    region = f"{CONTIG}\tRefSeq\tregion\t1\t{size}\t.\t+\t.\tID={CONTIG}:1..{size};Is_circular=true"
    first, last = tmp_path / "first.gff3", tmp_path / "last.gff3"
    first.write_text("\n".join([lines[0], region] + lines[1:]) + "\n")
    last.write_text("\n".join(lines + [region]) + "\n")
    candidates = region_candidates(chloroplast, last, LENGTH)
    assert opened == [last]
    assert not {100, 200} & {start for _, start in candidates["intergenic"]}
    assert candidates == region_candidates(chloroplast, first, LENGTH)


def test_a_contig_the_annotation_leaves_out_gets_no_regions(tmp_path, resources, chloroplast_fasta, gff, caplog):
    """The chloroplast's curated GFF3 on a reference that also holds SARS-CoV-2 (29.9 kbp, almost all coding): the
    virus has no gene calls, not no genes, so none of its slots may be drawn as intergenic (138 of the 300 were:
    every slot of an unannotated contig counted as between genes); a warning names it."""
    both = tmp_path / "cp_and_virus.fa"
    both.write_text(chloroplast_fasta.read_text() + (resources / "sarscov2" / "NC_045512.2.fasta").read_text())
    with Reference(both) as reference, caplog.at_level("WARNING", logger="genoformer.region_labels"):
        regions = coding_intergenic_regions(reference, gff, length=LENGTH, per_class=300, seed=0)
    assert set(regions["chrom"]) == {CONTIG}
    assert "no feature line on 1 contig(s)" in caplog.text and "(NC_045512.2)" in caplog.text
    with Reference(chloroplast_fasta) as reference:
        alone = coding_intergenic_regions(reference, gff, length=LENGTH, per_class=300, seed=0)
    assert regions.equals(alone)
