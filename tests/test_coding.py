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
from genoformer.io.text import text_lines
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
    assert len(read_cds(resources / CDIPH_GFF)) == 2343


def test_trans_spliced_rps12_is_skipped_not_spliced_out_of_order(resources, caplog):
    """Plastid rps12: exon 1 (69611-69724, -) is joined to exons 2-3 of either inverted-repeat copy, listed 5' to 3'.
    Copy 2 has parts on both strands; copy 1's parts are all on - but listed out of genome order (sorted, they
    would splice exon 1 last: 'ACT' first codon). Both are skipped and logged, not translated wrongly."""
    with caplog.at_level("INFO", logger="genoformer.tasks.coding"):
        names = [c.name for c in read_cds(resources / "athal_cp" / "NC_000932.1.gff3")]
    assert len(names) == 83 and "rps12" not in names and "clpP" in names  # clpP: 3 exons on -, listed descending
    assert "skipped 2 trans-spliced CDS" in caplog.text


def test_rps12_counts_as_coverage_in_the_overlap_exclusion(chloroplast, resources, tmp_path):
    """rps12's exons 2-3 of the second copy, also annotated on their own (as older plastid records do: 3'-rps12,
    5'-partial): every base is then covered twice, by the trans-spliced rps12 and by 3'-rps12, so it gets no SNV.
    Without rps12's lines the same 3'-rps12 gets an SNV at each of its bases."""
    lines = (resources / "athal_cp" / "NC_000932.1.gff3").read_text().splitlines()
    rps12 = [line for line in lines if "Name=rps12" in line]
    assert len(rps12) == 10 and {line.split("\t")[2] for line in rps12} == {"gene", "CDS"}
    three_prime = [f"NC_000932.1\tGenBank\tCDS\t{start}\t{end}\t.\t+\t0\tID=cds-rps12_3end;Name=rps12_3end;"
                   "partial=true;start_range=.,139856" for start, end in ((139856, 140087), (140625, 140650))]
    with_rps12, without = tmp_path / "with.gff3", tmp_path / "without.gff3"
    with_rps12.write_text("\n".join(rps12 + three_prime) + "\n")
    without.write_text("\n".join(three_prime) + "\n")
    alone = coding_snvs(chloroplast, without)
    assert {s.gene for s in alone} == {"rps12_3end"} and len({s.pos for s in alone}) == 232 + 26
    assert coding_snvs(chloroplast, with_rps12) == []


def origin_crossing_lines(resources, length):
    """GFF3 lines on cdiph's contig (``length`` bp): its region line declaring it circular, a CDS from its last 99
    bases across the origin to base 300, and the real gene NZ_LN831026.1_1 (1-1659)."""
    gene_1 = next(line for line in (resources / CDIPH_GFF).read_text().splitlines() if "ID=NZ_LN831026.1_1;" in line)
    region = f"NZ_LN831026.1\tRefSeq\tregion\t1\t{length}\t.\t+\t.\tID=NZ_LN831026.1:1..{length};Is_circular=true"
    across = f"NZ_LN831026.1\tRefSeq\tCDS\t{length - 98}\t{length + 300}\t.\t+\t0\tID=cds-across"
    return region, across, gene_1



def test_a_cds_across_the_origin_of_a_circular_contig_is_skipped_and_counts_as_coverage(cdiph_fasta, resources,
                                                                                          tmp_path, caplog):
    """GFF3 lets a feature of a contig declared circular (Is_circular=true on its region line) end past the contig's
    length: it crosses the origin. Such a CDS (here the last 99 bases and the first 300) is not spliced, and it
    covers the first 300 bases of the real gene NZ_LN831026.1_1 (1-1659), which lose their SNVs to the overlap
    exclusion. Without the declaration the same line is an error that says what is missing."""
    with Reference(cdiph_fasta) as reference:
        length = reference.contigs["NZ_LN831026.1"]
        region, across, gene_1 = origin_crossing_lines(resources, length)
        circular, linear, gene_only = (tmp_path / f"{name}.gff3" for name in ("circular", "linear", "gene_only"))
        circular.write_text("\n".join([region, across, gene_1]) + "\n")
        linear.write_text("\n".join([across, gene_1]) + "\n")
        gene_only.write_text(gene_1 + "\n")
        alone = {s.pos for s in coding_snvs(reference, gene_only)}
        with caplog.at_level("INFO", logger="genoformer.tasks.coding"):
            snvs = coding_snvs(reference, circular)
        assert {s.gene for s in snvs} == {"NZ_LN831026.1_1"}
        assert {s.pos for s in snvs} == {pos for pos in alone if pos > 300} and min(alone) == 1
        assert "skipped 1 CDS crossing the origin of a circular contig" in caplog.text
        with pytest.raises(InputError, match=rf"linear.gff3: line 1: CDS end {length + 300} is past the end of contig "
                                             r"NZ_LN831026.1 \(length \d+\) \(a feature crossing the origin needs its "
                                             r"contig declared Is_circular=true"):
            coding_snvs(reference, linear)


def test_the_annotation_is_read_once_even_when_the_circular_declaration_comes_last(cdiph_fasta, resources, tmp_path,
                                                                                   monkeypatch):
    """The origin-crossing CDS of the test above, its contig declared circular on the file's last line: the CDS is
    skipped as when declared first (the declaration is known only once the whole file is read), and the SNVs and
    the coding sequences each open the annotation once (they read it twice, a first pass looking for Is_circular
    only); undeclared, the error still names the CDS's line."""
    from genoformer.io import gff3

    opened = []
    monkeypatch.setattr(gff3, "text_lines", lambda path, kind: opened.append(path) or text_lines(path, kind))
    with Reference(cdiph_fasta) as reference:
        length = reference.contigs["NZ_LN831026.1"]
        region, across, gene_1 = origin_crossing_lines(resources, length)
        first, last, linear = (tmp_path / f"{name}.gff3" for name in ("first", "last", "linear"))
        first.write_text("\n".join([region, across, gene_1]) + "\n")
        last.write_text("\n".join([across, gene_1, region]) + "\n")
        linear.write_text("\n".join([across, gene_1]) + "\n")
        snvs = coding_snvs(reference, last)
        assert opened == [last] and snvs == coding_snvs(reference, first)
        assert min(s.pos for s in snvs) == 301 and max(s.pos for s in snvs) == 1659
        opened.clear()
        assert [cds.name for cds in read_cds(last, reference.contigs)] == ["NZ_LN831026.1_1"] and opened == [last]
        with pytest.raises(InputError, match=rf"linear.gff3: line 1: CDS end {length + 300} is past the end"):
            coding_snvs(reference, linear)


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


# ---- partial CDS ---------------------------------------------------------------------------------------------


def whole_codons(cds, bases: str) -> str:
    """The whole codons of a CDS's spliced ``bases``: after its ``leading`` bases, to the last whole codon."""
    usable = bases[cds.leading:]
    return usable[:len(usable) - len(usable) % 3]


def assert_agrees_with_translation(reference, cds, snvs) -> None:
    """Every SNV of ``cds`` against Biopython's plain translation of its whole codons before and after the change
    (no start codon read as Met): the changed amino acid, its position and the consequence agree, and start/stop
    classes come only from an end the CDS has."""
    bases = cds.sequence(reference)
    offset_of = {int(pos): offset for offset, pos in enumerate(cds.positions())}
    before = str(Seq(whole_codons(cds, bases)).translate(table=11))
    last = len(before) - 1
    complement = str.maketrans("ACGT", "TGCA")
    assert snvs and all(s.gene == cds.name for s in snvs)
    for snv in snvs:
        offset = offset_of[snv.pos - 1]
        alt = snv.alt if cds.strand == "+" else snv.alt.translate(complement)
        after = str(Seq(whole_codons(cds, bases[:offset] + alt + bases[offset + 1:])).translate(table=11))
        index = (offset - cds.leading) // 3
        changed = [j for j in range(len(before)) if before[j] != after[j]]
        assert snv.cds_pos == offset + 1 and changed in ([], [index])
        if snv.consequence.startswith("start_"):
            assert index == 0 and not cds.five_prime_partial
            continue
        assert snv.aa_ref == before[index] and snv.aa_alt == after[index]
        if snv.consequence.startswith("stop_") and snv.consequence != "stop_gained":
            assert index == last and not cds.three_prime_partial and before[index] == "*"
        else:
            expected = "synonymous" if not changed else "stop_gained" if after[index] == "*" else "missense"
            assert snv.consequence == expected


def one_gene_gff(source, path, gene: str, cut5: int = 0, cut3: int = 0, style: str = "prodigal"):
    """Write the CDS lines of ``gene`` (its ID or Name) in ``source`` to ``path``, its 5' end cut by ``cut5``
    bases and its 3' end by ``cut3`` as an assembly ending inside the gene would, marked partial the way Prodigal
    (``partial=LR``, left and right end in genome order) or NCBI (``partial=true``, ``start_range``/``end_range`` in
    genome order, the 5'-most line's phase) marks it."""
    lines = [line.split("\t") for line in source.read_text().splitlines()
             if "\tCDS\t" in line and re.search(rf"(ID|Name)={re.escape(gene)};", line)]
    plus = lines[0][6] == "+"
    left, right = min(lines, key=lambda f: int(f[3])), max(lines, key=lambda f: int(f[4]))
    five, three = (left, right) if plus else (right, left)
    if cut5:
        five[3 if plus else 4] = str(int(five[3 if plus else 4]) + (cut5 if plus else -cut5))
    if cut3:
        three[4 if plus else 3] = str(int(three[4 if plus else 3]) + (-cut3 if plus else cut3))
    cut_left, cut_right = (cut5, cut3) if plus else (cut3, cut5)
    if style == "prodigal" and (cut5 or cut3):
        assert len(lines) == 1 and "partial=00;" in lines[0][8]
        lines[0][8] = lines[0][8].replace("partial=00;", f"partial={int(cut_left > 0)}{int(cut_right > 0)};")
    elif style == "ncbi":
        five[7] = str((3 - cut5 % 3) % 3)
        if cut_left:
            left[8] += f";partial=true;start_range=.,{left[3]}"
        if cut_right:
            right[8] += f";partial=true;end_range={right[4]},."
    path.write_text("##gff-version 3\n" + "".join("\t".join(fields) + "\n" for fields in lines))
    return path


def test_a_real_5_prime_partial_gene_has_no_start_codon(resources, tmp_path):
    """pyrodigal's gene 1 of C. diphtheriae runs off the left end of the contig (partial=10, start_type=Edge) on
    the + strand: its first codon, GTG, is Val, not a start, so an SNV there is missense or synonymous."""
    path = one_gene_gff(resources / CDIPH_GFF, tmp_path / "gene1.gff3", "NZ_LN831026.1_1")
    assert "\tCDS\t1\t1659\t" in path.read_text() and "partial=10;start_type=Edge;" in path.read_text()
    [cds] = read_cds(path)
    assert (cds.five_prime_partial, cds.three_prime_partial, cds.leading) == (True, False, 0)
    with Reference(resources / "cdiph" / "NZ_LN831026.1.fa.gz") as reference:
        assert cds.sequence(reference).startswith("GTG")
        snvs = coding_snvs(reference, path)
        assert_agrees_with_translation(reference, cds, snvs)
    first = [s for s in snvs if s.cds_pos <= 3]
    assert len(first) == 9 and {s.aa_ref for s in first} == {"V"}
    assert {s.consequence for s in first} == {"missense", "synonymous"}
    assert {"stop_lost", "stop_retained"} <= {s.consequence for s in snvs}  # its 3' end is whole


@pytest.mark.parametrize("source, gene, cut5, cut3, style", [
    (CDIPH_GFF, "NZ_LN831026.1_2", 3, 0, "prodigal"),  # + strand, partial=10: the left end is the 5' end
    (CDIPH_GFF, "NZ_LN831026.1_6", 3, 0, "prodigal"),  # - strand, partial=01: the right end is the 5' end
    (CDIPH_GFF, "NZ_LN831026.1_2", 0, 4, "prodigal"),  # + strand, partial=01, an incomplete last codon
    (CDIPH_GFF, "NZ_LN831026.1_6", 0, 4, "prodigal"),  # - strand, partial=10
    ("athal_cp/NC_000932.1.gff3", "rbcL", 4, 5, "ncbi"),  # + strand, phase 2, both ranges
    ("athal_cp/NC_000932.1.gff3", "atpF", 4, 0, "ncbi"),  # - strand, two exons: end_range and phase on exon 1
    ("athal_cp/NC_000932.1.gff3", "atpF", 0, 7, "ncbi"),  # start_range on exon 2 (the 3' end)
])
def test_partial_cds_lack_the_end_the_annotation_cuts(resources, tmp_path, source, gene, cut5, cut3, style):
    """Real genes cut at one end or both as an assembly would cut them, marked as Prodigal or NCBI mark them:
    the cut end gives no start or stop class, the bases of an incomplete codon no SNV, and every consequence
    agrees with Biopython's translation of the whole codons."""
    fasta = resources / ("cdiph/NZ_LN831026.1.fa.gz" if source == CDIPH_GFF else "athal_cp/NC_000932.1.fa")
    path = one_gene_gff(resources / source, tmp_path / "cut.gff3", gene, cut5, cut3, style)
    [cds] = read_cds(path)
    assert (cds.five_prime_partial, cds.three_prime_partial) == (cut5 > 0, cut3 > 0)
    assert cds.leading == (3 - cut5 % 3) % 3
    with Reference(fasta) as reference:
        snvs = coding_snvs(reference, path)
        assert_agrees_with_translation(reference, cds, snvs)
        n_bases = len(cds.sequence(reference))
    n_whole = (n_bases - cds.leading) // 3 * 3
    assert {s.cds_pos for s in snvs} == set(range(cds.leading + 1, cds.leading + n_whole + 1))
    assert n_bases - cds.leading - n_whole == (3 - cut3 % 3) % 3  # the cut 3' codon's bases get no SNV
    found = {s.consequence for s in snvs}
    assert bool(found & {"start_lost", "start_retained"}) == (cut5 == 0)
    assert bool(found & {"stop_lost", "stop_retained"}) == (cut3 == 0)


def test_partial_cds_that_cannot_be_read_are_left_out_and_counted(resources, tmp_path, caplog):
    """partial=true with neither range does not say which end is cut, and a gene marked 3'-partial that still ends
    in a stop codon contradicts its mark: both are left out and counted; the complete gene next to them is used."""
    lines = [line.split("\t") for line in (resources / CDIPH_GFF).read_text().splitlines()
             if re.search(r"\tID=NZ_LN831026\.1_[267];", line)]
    lines[0][8] = lines[0][8].replace("partial=00;", "partial=true;")
    lines[1][8] = lines[1][8].replace("partial=00;", "partial=10;")  # - strand: the 3' end, uncut
    path = tmp_path / "unclear.gff3"
    path.write_text("".join("\t".join(fields) + "\n" for fields in lines))
    assert [c.ends_unknown for c in read_cds(path)] == [True, False, False]
    with Reference(resources / "cdiph" / "NZ_LN831026.1.fa.gz") as reference, \
            caplog.at_level("INFO", logger="genoformer.tasks.coding"):
        snvs = coding_snvs(reference, path)
    assert {s.gene for s in snvs} == {"NZ_LN831026.1_7"}
    assert "2 CDS left out as they do not translate cleanly" in caplog.text
    assert "NZ_LN831026.1_2 (marked partial=true without start_range/end_range" in caplog.text
    assert "NZ_LN831026.1_6 (stop codon 'TAA' at codon 146 of a CDS marked 3'-partial (no stop))" in caplog.text


@pytest.mark.parametrize("value", ["1", "yes", "012"])
def test_a_partial_value_of_no_known_kind_names_the_line(resources, tmp_path, value):
    gff = edited_gff(resources / CDIPH_GFF, tmp_path / "partial.gff3",
                     lambda f: f[:8] + [f[8].replace("partial=00;", f"partial={value};")])
    with pytest.raises(InputError, match=rf"partial.gff3: line 5: partial='{value}' is neither Prodigal's 00, 01, "
                                         "10 or 11"):
        read_cds(gff)


def test_a_cds_past_even_one_more_turn_stops_the_pass_at_its_line(tmp_path, chloroplast, resources):
    """A CDS ending more than a contig's length past its end cannot cross the origin even of a circular contig: it
    is reported at once, before a malformed line further down (one within a turn waits for the whole file, where a
    later line may declare the contig circular)."""
    lines = (resources / "athal_cp" / "NC_000932.1.gff3").read_text().splitlines()
    fields = lines[4].split("\t")
    assert fields[2] == "CDS"
    lines[4] = "\t".join(fields[:4] + [str(2 * 154478 + 1)] + fields[5:])
    lines.append("NC_000932.1\tbroken")
    gff = tmp_path / "far.gff3"
    gff.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"far.gff3: line 5: CDS end {2 * 154478 + 1} is past the end of contig "):
        coding_snvs(chloroplast, gff, n_genes=2)
    lines[4] = "\t".join(fields[:4] + ["154600"] + fields[5:])
    gff.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"far.gff3: line {len(lines)}: "):
        coding_snvs(chloroplast, gff, n_genes=2)
