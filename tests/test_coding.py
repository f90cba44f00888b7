"""Coding-variant enumeration on the bundled annotations, checked against whole-protein translation."""

import gzip
import re
import subprocess
import sys

import numpy as np
import pysam
import pytest
from Bio.Seq import Seq

from genoformer.cli import main
from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference
from genoformer.region_labels import coding_intergenic_regions
from genoformer.tasks.coding import at_most_per_consequence, coding_snvs, read_cds, write_coding_vcf

CDIPH_GFF = "cdiph/NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"


@pytest.fixture(scope="module")
def chloroplast(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        yield reference


def protein_after(reference, cds, genome_pos: int, alt: str) -> str:
    """Protein of ``cds`` after writing ``alt`` at 1-based forward-strand ``genome_pos``: the slow, obvious way."""
    forward = {p: reference.fetch(cds.contig, p, p + 1).upper() for p in cds.positions()}
    forward[genome_pos - 1] = alt
    complement = str.maketrans("ACGT", "TGCA")
    bases = "".join(forward[p] if cds.strand == "+" else forward[p].translate(complement) for p in cds.positions())
    return str(Seq(bases).translate(table=11))


def test_read_cds_joins_segments_and_keeps_repeat_copies_apart(resources):
    cds = {}
    for item in read_cds(resources / "athal_cp" / "NC_000932.1.gff3"):
        cds.setdefault(item.name, []).append(item)
    assert [c.segments for c in cds["atpF"]] == [((11528, 11938), (12653, 12798))]  # two exons, one CDS
    assert len(cds["ndhB"]) == 2 and cds["ndhB"][0].strand != cds["ndhB"][1].strand  # inverted-repeat copies
    assert "rps12" in cds and all(len({c.strand}) == 1 for c in cds["rps12"])
    assert len(read_cds(resources / CDIPH_GFF)) == 2343


def test_a_repeated_cds_line_is_counted_once_with_a_warning(resources, tmp_path, caplog):
    """atpF's second exon line given twice: the CDS keeps its two exons (spliced in twice it would not
    translate), and the repeat is named."""
    lines = (resources / "athal_cp" / "NC_000932.1.gff3").read_text().splitlines(keepends=True)
    number, line = next((n, text) for n, text in enumerate(lines, start=1)
                        if "\tCDS\t" in text and "\t12654\t12798\t" in text)
    path = tmp_path / "twice.gff3"
    path.write_text("".join(lines[:number] + [line] + lines[number:]))
    with caplog.at_level("WARNING", logger="genoformer.tasks.coding"):
        atpf = [c for c in read_cds(path) if c.name == "atpF"]
    assert [c.segments for c in atpf] == [((11528, 11938), (12653, 12798))]
    assert f"line {number + 1} repeats the CDS segment NC_000932.1:12654-12798 of line {number}" in caplog.text


def test_consequences_agree_with_translating_the_mutated_gene(chloroplast, resources):
    gff = resources / "athal_cp" / "NC_000932.1.gff3"
    all_cds = read_cds(gff)
    snvs = coding_snvs(chloroplast, gff, n_genes=3, seed=1)
    assert len({s.gene for s in snvs}) == 3 and {s.strand for s in snvs} == {"+", "-"}
    rng = np.random.default_rng(0)
    for i in rng.choice(len(snvs), 150, replace=False):
        snv = snvs[i]
        cds = next(c for c in all_cds if c.name == snv.gene and snv.pos - 1 in c.positions())
        before = str(Seq(cds.sequence(chloroplast)).translate(table=11))
        after = protein_after(chloroplast, cds, snv.pos, snv.alt)
        assert chloroplast.fetch(snv.contig, snv.pos - 1, snv.pos).upper() == snv.ref
        changed = [j for j in range(len(before)) if before[j] != after[j]]
        if snv.consequence == "synonymous":
            assert changed == []
        elif snv.consequence == "missense":
            assert len(changed) == 1 and after[changed[0]] != "*" and 0 < changed[0] < len(before) - 1
        elif snv.consequence == "stop_gained":
            assert len(changed) == 1 and after[changed[0]] == "*" and changed[0] < len(before) - 1
        elif snv.consequence == "stop_lost":
            assert changed == [len(before) - 1]
        elif snv.consequence in ("start_lost", "start_retained"):
            assert snv.cds_pos <= 3


@pytest.mark.slow
def test_minus_strand_gene_reads_complement(chloroplast, resources):
    gff = resources / "athal_cp" / "NC_000932.1.gff3"
    psba = next(c for c in read_cds(gff) if c.name == "psbA")
    assert psba.strand == "-" and psba.sequence(chloroplast).startswith("ATG")
    start = [s for s in coding_snvs(chloroplast, gff) if s.gene == "psbA" and s.cds_pos <= 2]
    # the first coding base of a minus-strand gene is the last base of its span, complemented
    assert {s.pos for s in start if s.cds_pos == 1} == {psba.segments[-1][1]}
    assert {s.ref for s in start if s.cds_pos == 1} == {"T"}
    # ATG -> CTG/GTG/TTG are still start codons in table 11; ATG -> AAG/ACG/AGG are not
    assert {s.consequence for s in start if s.cds_pos == 1} == {"start_retained"}
    assert {s.consequence for s in start if s.cds_pos == 2} == {"start_lost"}


def test_a_start_codon_is_methionine_whatever_it_is(resources):
    """C. diphtheriae genes starting with GTG or TTG: the AA field reads their start codon as Met (as the
    consequence classes do), not as Val/Leu, and a start_retained SNV keeps Met."""
    with Reference(resources / "cdiph" / "NZ_LN831026.1.fa.gz") as reference:
        snvs = coding_snvs(reference, resources / CDIPH_GFF, n_genes=30, seed=0)
    start = [s for s in snvs if s.cds_pos <= 3]
    assert {s.codon_ref for s in start} >= {"ATG", "GTG", "TTG"}
    assert {s.aa_ref for s in start} == {"M"}
    assert all((s.aa_alt == "M") == (s.consequence == "start_retained") for s in start)
    gtg_to_gcg = next(s for s in start if s.codon_ref == "GTG" and s.codon_alt == "GCG")
    assert (gtg_to_gcg.consequence, gtg_to_gcg.aa_alt) == ("start_lost", "A")


def test_overlapping_genes_are_left_out(resources):
    with Reference(resources / "cdiph" / "NZ_LN831026.1.fa.gz") as reference:
        snvs = coding_snvs(reference, resources / CDIPH_GFF, n_genes=40, seed=3)
    positions = {s.pos for s in snvs}
    overlapped = set()
    cds = read_cds(resources / CDIPH_GFF)
    for a, b in zip(cds, cds[1:]):
        overlapped.update(range(b.segments[0][0] + 1, a.segments[-1][1] + 1))  # 1-based positions in both
    assert overlapped and not positions & overlapped
    assert len({s.gene for s in snvs}) >= 35  # 40 sampled, a few may be fully overlapped or untranslatable


def test_vcf_is_indexed_and_matches_reference(chloroplast, resources, tmp_path):
    snvs = coding_snvs(chloroplast, resources / "athal_cp" / "NC_000932.1.gff3", n_genes=2, seed=0)
    out = tmp_path / "coding.vcf.gz"
    write_coding_vcf(out, snvs, chloroplast, source="test")
    assert (tmp_path / "coding.vcf.gz.tbi").exists()
    with pysam.VariantFile(str(out)) as vcf:
        records = list(vcf)
        middle = records[len(records) // 2]
        region = list(vcf.fetch(middle.contig, middle.pos - 1, middle.pos))
    assert len(records) == len(snvs)
    assert [r.pos for r in records] == sorted(r.pos for r in records)
    assert all(r.ref == chloroplast.fetch(r.contig, r.pos - 1, r.pos).upper() for r in records)
    assert {r.info["CONSEQUENCE"] for r in region} <= {"synonymous", "missense", "stop_gained", "stop_lost",
                                                       "stop_retained", "start_lost", "start_retained"}
    assert len(region) == 3 and middle.info["AA"].count(">") == 1


def test_bad_annotation_is_one_line_error(chloroplast, tmp_path, resources):
    bad = tmp_path / "bad.gff3"
    bad.write_text("##gff-version 3\nNC_000932.1\tx\tCDS\t10\t5\t.\t+\t0\tID=a\n")
    with pytest.raises(InputError, match=r"bad.gff3: line 2: CDS start 10 and end 5"):
        read_cds(bad)
    bad.write_text("##gff-version 3\nNC_000932.1 x CDS 1 9 . + 0 ID=a\n")
    with pytest.raises(InputError, match=r"line 2: expected 9 tab-separated"):
        read_cds(bad)
    other = tmp_path / "other.gff3"
    other.write_text("chrZ\tx\tCDS\t1\t9\t.\t+\t0\tID=a\n")
    with pytest.raises(MismatchError, match="contig 'chrZ' is not in reference"):
        coding_snvs(chloroplast, other)
    with pytest.raises(MissingFileError):
        read_cds(tmp_path / "absent.gff3")


def test_at_most_per_consequence_keeps_order_and_caps_each_class(chloroplast, resources):
    snvs = coding_snvs(chloroplast, resources / "athal_cp" / "NC_000932.1.gff3", n_genes=4, seed=2)
    capped = at_most_per_consequence(snvs, 5, seed=0)
    counts = {c: sum(s.consequence == c for s in snvs) for c in {s.consequence for s in snvs}}
    assert {c: sum(s.consequence == c for s in capped) for c in counts} == {c: min(5, n) for c, n in counts.items()}
    assert [snvs.index(s) for s in capped] == sorted(snvs.index(s) for s in capped)


def edited_gff(source, path, edit):
    """Write ``source`` to ``path`` with ``edit(fields)`` applied to the fields of each CDS line."""
    lines = []
    for line in source.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 9 and fields[2] == "CDS":
            fields = edit(fields)
        lines.append("\t".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unknown_codon_table_is_one_line_exit_2(tmp_path, capsys, chloroplast_fasta, resources):
    code = main(["coding-variants", "--reference", str(chloroplast_fasta), "--gff",
                 str(resources / "athal_cp" / "NC_000932.1.gff3"), "--table", "99",
                 "--out", str(tmp_path / "x.vcf.gz")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and not (tmp_path / "x.vcf.gz").exists()
    assert "--table 99: not an NCBI genetic code; known codes: 1, 2, 3" in error and ", 11, " in error


def test_annotation_where_nothing_translates_is_an_error(tmp_path, capsys, chloroplast, chloroplast_fasta, resources):
    """GTF as GFF3: each CDS line stands alone and leaves out the stop codon, so no CDS translates cleanly."""
    def as_gtf(fields):
        start, end = int(fields[3]), int(fields[4])
        start, end = (start, end - 3) if fields[6] == "+" else (start + 3, end)
        return fields[:3] + [str(start), str(end)] + fields[5:8] + ['gene_id "g"; transcript_id "t";']

    gtf = edited_gff(resources / "athal_cp" / "NC_000932.1.gff3", tmp_path / "genes.gtf", as_gtf)
    with pytest.raises(InputError, match=r"genes.gtf: none of its 104 CDS translates cleanly with codon table 11, "
                                         r"e.g. .*is not a stop codon"):
        coding_snvs(chloroplast, gtf)
    code = main(["coding-variants", "--reference", str(chloroplast_fasta), "--gff", str(gtf), "--out",
                 str(tmp_path / "x.vcf.gz")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "genes.gtf: none of its 104 CDS" in error
    assert not (tmp_path / "x.vcf.gz").exists()


def test_cds_past_the_contig_end_names_the_gff_line(tmp_path, chloroplast, resources):
    """coding-variants and region-labels both name the GFF line, not a FASTA region or too few regions."""
    lines = (resources / "athal_cp" / "NC_000932.1.gff3").read_text().splitlines()
    fields = lines[4].split("\t")
    assert fields[2] == "CDS" and fields[4] == "69724"
    lines[4] = "\t".join(fields[:4] + ["154600"] + fields[5:])
    gff = tmp_path / "past.gff3"
    gff.write_text("\n".join(lines) + "\n")
    problem = r"past.gff3: line 5: CDS end 154600 is past the end of contig NC_000932.1 \(length 154478\)"
    with pytest.raises(InputError, match=problem):
        coding_snvs(chloroplast, gff, n_genes=2)
    with pytest.raises(InputError, match=problem):
        coding_intergenic_regions(chloroplast, gff, length=200, per_class=200)


@pytest.mark.parametrize("start", ["1_000", "+100", " 5", "1e3", "-4", "\u0661\u0662"])
def test_cds_coordinates_must_be_plain_digits(tmp_path, resources, start):
    gff = edited_gff(resources / CDIPH_GFF, tmp_path / "coords.gff3", lambda f: f[:3] + [start] + f[4:])
    with pytest.raises(InputError, match=r"coords.gff3: line 4: start/end .* are not integers"):
        read_cds(gff)


@pytest.mark.parametrize("phase", ["7", "-1", "x"])
def test_cds_phase_must_be_0_1_2_or_dot(tmp_path, resources, phase):
    gff = edited_gff(resources / CDIPH_GFF, tmp_path / "phase.gff3", lambda f: f[:7] + [phase] + f[8:])
    with pytest.raises(InputError, match=rf"phase.gff3: line 4: CDS phase '{phase}' is not 0, 1, 2 or \."):
        read_cds(gff)


@pytest.mark.parametrize("compress", ["gzip", "bgzip"])
def test_compressed_annotation_reads_like_the_plain_one(tmp_path, resources, compress):
    plain = resources / CDIPH_GFF
    packed = tmp_path / "cds.gff3.gz"
    if compress == "gzip":
        packed.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        pysam.tabix_compress(str(plain), str(packed))
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    cds = read_cds(packed)
    assert len(cds) == 2343 and cds == read_cds(plain)


def test_unreadable_annotation_names_the_file(tmp_path, resources):
    text = (resources / CDIPH_GFF).read_bytes()
    truncated = tmp_path / "truncated.gff3.gz"
    truncated.write_bytes(gzip.compress(text)[:-5000])
    with pytest.raises(InputError, match=re.escape(f"{truncated}: cannot read GFF3 after line ")
                       + r"\d+: Compressed file ended before the end-of-stream marker"):
        read_cds(truncated)
    lines = text.split(b"\n")
    assert b"\tCDS\t" in lines[9]
    lines[9] = lines[9].replace(b"ID=", b"ID=\xe9", 1)  # Latin-1 e-acute: not UTF-8
    latin1 = tmp_path / "latin1.gff3"
    latin1.write_bytes(b"\n".join(lines))
    latin1_gz = tmp_path / "latin1.gff3.gz"
    latin1_gz.write_bytes(gzip.compress(latin1.read_bytes()))
    column = lines[9].index(b"\xe9") + 1
    for path in (latin1, latin1_gz):
        with pytest.raises(InputError) as err:
            read_cds(path)
        assert str(err.value) == f"{path}: GFF3 line 10 is not UTF-8 text (byte 0xe9 at column {column})"


@pytest.mark.parametrize("command", ["coding-variants", "region-labels"])
def test_bad_annotation_on_the_command_line_is_one_line_exit_2(tmp_path, resources, command):
    gff = tmp_path / "cds.gff3.gz"
    gff.write_bytes(gzip.compress((resources / CDIPH_GFF).read_bytes())[:-5000])
    out = tmp_path / ("out.vcf.gz" if command == "coding-variants" else "out.bed")
    result = subprocess.run([sys.executable, "-m", "genoformer", "-q", command, "--reference",
                             str(resources / "cdiph" / "NZ_LN831026.1.fa.gz"), "--gff", str(gff), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and f"{gff}: cannot read GFF3 after line " in result.stderr
    assert not out.exists()
