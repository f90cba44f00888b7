"""genoformer.io.vcf on the bundled freebayes and GIAB calls, and on edited copies of their records."""

import gzip
import itertools
import re
import struct
import subprocess
import sys

import pysam
import pytest

from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference
from genoformer.io.vcf import alt_info, is_symbolic, read_variants
from genoformer.io.vcf_text import _keys, _valid_line
from genoformer.tasks.variant_labels import variant_labels
from genoformer.vcf_shards import merge_vcfs


@pytest.fixture(scope="module")
def q_reference(human_q):
    with Reference(human_q / "q.fa") as reference:
        yield reference


@pytest.fixture(scope="module")
def calls_text(human_q):
    """q.vcf.gz as text: (header lines, record lines)."""
    lines = gzip.decompress((human_q / "q.vcf.gz").read_bytes()).decode().splitlines()
    return [line for line in lines if line.startswith("#")], [line for line in lines if not line.startswith("#")]


def text_records(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        return [line.split("\t") for line in handle if not line.startswith("#")]


def edited_vcf(tmp_path, calls_text, edit):
    """A plain VCF of q.vcf.gz's header and records after ``edit(records)`` (a list of column lists)."""
    header, records = calls_text
    fields = [line.split("\t") for line in records]
    edit(fields)
    path = tmp_path / "edited.vcf"
    path.write_text("\n".join(header + ["\t".join(f) for f in fields]) + "\n")
    return path


def one_line(err):
    assert "\n" not in str(err.value)
    return str(err.value)


def corrupt_records_block(human_q, tmp_path):
    """q.vcf.gz as pysam writes it (header and records in separate BGZF blocks) with a byte of the records'
    block flipped: the header reads, the first record does not."""
    path = tmp_path / "shard.vcf.gz"
    with pysam.VariantFile(str(human_q / "q.vcf.gz")) as source, \
            pysam.VariantFile(str(path), "wz", header=source.header) as sink:
        for record in source:
            sink.write(record)
    data = bytearray(path.read_bytes())
    records_block = struct.unpack("<H", data[16:18])[0] + 1  # BSIZE - 1 of the first (header) block
    data[records_block + 500] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def cli(*args):
    """``python -m genoformer -q ARGS``: the exit code and the stderr lines."""
    result = subprocess.run([sys.executable, "-m", "genoformer", "-q", *map(str, args)], capture_output=True,
                            text=True, timeout=300)
    return result.returncode, result.stderr.splitlines()


def raw_htslib(lines):
    return [line for line in lines if line.startswith(("[W::", "[E::"))]


GIAB_ALLALTS_INTEGER = '##INFO=<ID=allalts,Number=1,Type=Integer,'


@pytest.fixture(scope="module")
def giab(human_q, tmp_path_factory):
    """The GIAB calls with their header's one wrong Type corrected: allalts holds alleles (C), not an Integer."""
    text = (human_q / "NA12878.chr22.tiny.giab.vcf").read_text()
    assert GIAB_ALLALTS_INTEGER in text
    path = tmp_path_factory.mktemp("giab") / "giab.vcf"
    path.write_text(text.replace(GIAB_ALLALTS_INTEGER, '##INFO=<ID=allalts,Number=.,Type=String,'))
    return path


@pytest.mark.parametrize("name", ["q.vcf.gz", "NA12878.chr22.tiny.giab.vcf"])
def test_real_vcfs_match_their_text(human_q, q_reference, name):
    path = human_q / name
    result = read_variants(path, q_reference)
    truth = text_records(path)
    assert [(v.contig, v.pos, v.ref, v.alt) for v in result.variants] == \
        [(r[0], int(r[1]), r[3], r[4]) for r in truth]
    assert [v.record for v in result.variants] == list(range(1, len(truth) + 1))
    assert (result.skipped_symbolic, result.skipped_ref_mismatch, result.skipped_no_alt) == (0, 0, 0)
    for variant in result.variants:
        assert q_reference.fetch("q", variant.pos - 1, variant.pos - 1 + len(variant.ref)) == variant.ref


def test_fields_of_a_record(human_q, q_reference, giab):
    first = read_variants(giab, q_reference).variants[0]
    assert (first.pos, first.ref, first.alt, first.qual, first.filter) == (186, "T", "C", 11488.0, ("PASS",))
    assert first.info["DPSum"] == 824 and first.info["allalts"] == ("C",)
    freebayes = read_variants(human_q / "q.vcf.gz", q_reference).variants[7]
    assert (freebayes.pos, freebayes.ref, freebayes.alt, freebayes.id) == (5638, "CAT", "C", None)
    assert freebayes.info["TYPE"] == "del" and freebayes.info["AO"] == 17


def test_bcf_reads_like_vcf(human_q, q_reference, tmp_path):
    bcf = tmp_path / "q.bcf"
    with pysam.VariantFile(str(human_q / "q.vcf.gz")) as source, \
            pysam.VariantFile(str(bcf), "wb", header=source.header) as sink:
        for record in source:
            sink.write(record)
    from_bcf = read_variants(bcf, q_reference).variants
    from_vcf = read_variants(human_q / "q.vcf.gz", q_reference).variants
    assert [(v.pos, v.ref, v.alt, v.record) for v in from_bcf] == [(v.pos, v.ref, v.alt, v.record) for v in from_vcf]


def test_ref_mismatch_error_names_everything(q_reference, tmp_path, calls_text):
    def change_ref(records):
        records[3][3] = "A"  # real REF at q:1820 is C
    path = edited_vcf(tmp_path, calls_text, change_ref)
    with pytest.raises(MismatchError) as err:
        read_variants(path, q_reference)
    message = one_line(err)
    assert f"{path} record 4 (q:1820)" in message
    assert "VCF REF A" in message and "bases C" in message and "q.fa" in message

    skipped = read_variants(path, q_reference, on_ref_mismatch="skip")
    assert skipped.skipped_ref_mismatch == 1
    assert len(skipped.variants) == len(calls_text[1]) - 1
    assert 1820 not in [v.pos for v in skipped.variants]


def test_contigs_not_in_reference_are_listed(q_reference, tmp_path, calls_text):
    def rename(records):
        records[2][0] = "chr22"
        records[5][0] = "chrX"
        records[6][0] = "chr22"
    path = edited_vcf(tmp_path, calls_text, rename)
    with pytest.raises(MismatchError) as err:
        read_variants(path, q_reference)
    assert f"VCF contigs not in reference {q_reference.path}: chr22, chrX" in one_line(err)
    assert str(path) in one_line(err)


def test_multiallelic_split_and_symbolic_skipped(q_reference, tmp_path, calls_text):
    def edit(records):
        first = records[0]  # q:186 T>C with AO=16 (Number=A) and AD=25,16 in the sample
        first[4] = "C,A"
        first[7] = first[7].replace("AO=16;", "AO=16,3;").replace("AF=0.5;", "AF=0.5,0.1;")
        records[1][4] = "<DEL>"  # q:1008
        records[2][4] = "A,*"  # q:1817 G>A plus a spanning deletion
        records[3][4] = "C[q:5000["  # q:1820 breakend
        records[4][4] = "<*>,G"  # q:1917 A>G plus gVCF non-ref allele
        records[5][4] = "."  # q:4449 no ALT
    path = edited_vcf(tmp_path, calls_text, edit)
    result = read_variants(path, q_reference)
    by_record = {}
    for variant in result.variants:
        by_record.setdefault(variant.record, []).append(variant)
    assert [(v.pos, v.ref, v.alt) for v in by_record[1]] == [(186, "T", "C"), (186, "T", "A")]
    assert [v.info["AO"] for v in by_record[1]] == [16, 3]
    assert [round(v.info["AF"], 3) for v in by_record[1]] == [0.5, 0.1]
    assert by_record[1][0].info["DP"] == by_record[1][1].info["DP"] == 41  # Number=1 kept whole
    assert 2 not in by_record and 4 not in by_record and 6 not in by_record
    assert [(v.pos, v.alt) for v in by_record[3]] == [(1817, "A")]
    assert [(v.pos, v.alt) for v in by_record[5]] == [(1917, "G")]
    assert result.skipped_symbolic == 4
    assert result.skipped_no_alt == 1
    assert len(result.variants) == (len(calls_text[1]) - 6) + 2 + 1 + 1  # untouched + records 1, 3, 5


def test_is_symbolic():
    assert all(is_symbolic(a) for a in ["<DEL>", "<*>", "<NON_REF>", "*", "G]q:10]", "]q:10]G", "C[q:5[", ".G", "G."])
    assert not any(is_symbolic(a) for a in ["A", "CAT", "N"])


def test_bad_alt_allele(q_reference, tmp_path, calls_text):
    def edit(records):
        records[0][4] = "CX"
    with pytest.raises(InputError, match="record 1 \\(q:186\\): ALT 'CX'"):
        read_variants(edited_vcf(tmp_path, calls_text, edit), q_reference)


def test_ref_past_contig_end(q_reference, tmp_path, calls_text):
    def edit(records):
        records[0][1] = "12356"
        records[0][3] = "TT"
    with pytest.raises(InputError, match="runs past the end of contig q"):
        read_variants(edited_vcf(tmp_path, calls_text, edit), q_reference)


@pytest.mark.parametrize("edit, reason", [
    (lambda records: records[2].__setitem__(1, "abc"), "Could not parse the position 'abc'"),  # POS not a number
    (lambda records: records[2].__delitem__(7), "FORMAT column with no sample columns"),  # INFO column missing
])
def test_malformed_vcf_names_the_file(q_reference, tmp_path, calls_text, edit, reason):
    path = edited_vcf(tmp_path, calls_text, edit)
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    assert f"{path}: malformed VCF at record 3: {reason}" in one_line(err)


@pytest.mark.parametrize("edit, problem", [
    # htslib: "truncated file"
    (lambda records: records[2].__delitem__(slice(3, None)), "3 columns, a VCF data line needs at least 8 columns "
     "(CHROM POS ID REF ALT QUAL FILTER INFO)"),
    (lambda records: records[2].__setitem__(slice(None), [" ".join(records[2])]), "1 column, a VCF data line needs "
     "at least 8 columns (CHROM POS ID REF ALT QUAL FILTER INFO); are the columns separated by spaces instead of tabs?"),
    (lambda records: records[2].__setitem__(slice(None), [""]), "empty line; a VCF data line needs at least 8 "
     "columns (CHROM POS ID REF ALT QUAL FILTER INFO)"),
])
def test_line_without_its_columns_says_so(q_reference, tmp_path, calls_text, edit, problem):
    path = edited_vcf(tmp_path, calls_text, edit)
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    header_lines = len(calls_text[0])
    assert one_line(err) == f"{path} record 3 (line {header_lines + 3}): {problem}"


def bad_qual(records):
    records[4][5] = "abc"  # htslib: QUAL 0


def bad_integer(records):
    records[4][7] = records[4][7].replace(";DP=37;", ";DP=abc;")  # htslib: no DP


def decimal_integer(records):
    records[4][7] = records[4][7].replace(";DP=37;", ";DP=37.5;")  # htslib: DP 37


def bad_float_in_list(records):
    records[4][4] = "G,T"
    records[4][7] = records[4][7].replace(";AF=0.5;", ";AF=0.5,1e-3x;")  # htslib: AF (0.5, 0.001)


def test_a_qual_htslib_would_misread_is_refused(human_q, q_reference, tmp_path, calls_text):
    """QUAL abc, which htslib reads as 0 without a word (the VCF written with it would carry 0): plain and
    bgzipped, one line naming the record, its line and the value."""
    path = edited_vcf(tmp_path, calls_text, bad_qual)
    bgzipped = tmp_path / "edited.vcf.gz"
    pysam.tabix_compress(str(path), str(bgzipped))
    problem = "QUAL 'abc' is not a number"
    for vcf in (path, bgzipped):
        with pytest.raises(InputError) as err:
            read_variants(vcf, q_reference)
        assert one_line(err) == f"{vcf} record 5 (line {len(calls_text[0]) + 5}, q:1917): {problem}"
    code, lines = cli("score-variants", "--reference", human_q / "q.fa", "--vcf", path,
                      "--checkpoint", tmp_path / "absent", "--out", tmp_path / "out.vcf.gz")
    assert code == 2 and lines[-1] == f"genoformer score-variants: error: {path} record 5 (line " \
        f"{len(calls_text[0]) + 5}, q:1917): {problem}", lines


@pytest.mark.parametrize("edit, key, problem", [
    (bad_integer, "DP", "INFO DP='abc' is not an Integer as its header declares"),
    (decimal_integer, "DP", "INFO DP='37.5' is not an Integer as its header declares"),
    (bad_float_in_list, "AF", "INFO AF='0.5,1e-3x' is not a Float as its header declares"),
])
def test_info_values_htslib_would_misread_are_warned_about_once(q_reference, tmp_path, calls_text, caplog, edit,
                                                                 key, problem):
    """Numeric INFO values that htslib drops or cuts without a word: the file is read (its header most likely
    misdeclares the field), with one warning per field naming the first record, plain and bgzipped."""
    def edit_twice(records):
        edit(records)
        assert f";{key}=" in records[6][7]
        records[6][7] = records[6][7].replace(f";{key}=", f";{key}=x")  # the same field wrong again
    path = edited_vcf(tmp_path, calls_text, edit_twice)
    bgzipped = tmp_path / "edited.vcf.gz"
    pysam.tabix_compress(str(path), str(bgzipped))
    for vcf in (path, bgzipped):
        caplog.clear()
        with caplog.at_level("WARNING", logger="genoformer.io.vcf_text"):
            variants = read_variants(vcf, q_reference).variants
        assert {v.record for v in variants} == set(range(1, len(calls_text[1]) + 1))
        warnings = [r.getMessage() for r in caplog.records if r.name == "genoformer.io.vcf_text"]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"{vcf} record 5 (line {len(calls_text[0]) + 5}, q:1917): {problem}: htslib")


def test_info_field_declared_per_genotype_is_left_out_with_one_warning(q_reference, tmp_path, calls_text, caplog):
    """An INFO field declared Number=G (valid VCF; pysam raises ValueError reading it in INFO, so the whole run
    ended in a traceback): the variants are read without it, and one warning names it."""
    header, records = calls_text
    text = "\n".join(header[:-1] + ['##INFO=<ID=GLI,Number=G,Type=Float,Description="genotype likelihoods">',
                                    header[-1]] + [line.replace("\tAB=", "\tGLI=-1,-2,-3;AB=", 1) for line in records])
    path = tmp_path / "per_genotype.vcf"
    path.write_text(text + "\n")
    assert text.count("GLI=-1,-2,-3") == len(records)
    with caplog.at_level("WARNING", logger="genoformer.io.vcf"):
        variants = read_variants(path, q_reference).variants
    assert len(variants) == len(records) and all("GLI" not in v.info and "DP" in v.info for v in variants)
    assert [r.getMessage() for r in caplog.records if "Number=G" in r.getMessage()] == [
        f"{path}: INFO GLI declared Number=G (a value per genotype), which pysam reads in FORMAT only: not carried "
        "over to the outputs"]
    # as a label field (the workflow's DAG-time check, classify-variants): one line, not a traceback or "no value"
    with pytest.raises(InputError) as err:
        alt_info(path, ("GLI",))
    assert one_line(err) == f"{path}: INFO field 'GLI' is declared Number=G (a value per genotype), which pysam " \
        "reads in FORMAT only"
    with pytest.raises(InputError) as err:
        variant_labels(read_variants(path, q_reference), "GLI")
    assert one_line(err) == f"{path}: INFO field 'GLI' is declared Number=G (a value per genotype), which pysam " \
        "reads in FORMAT only: it cannot hold a variant's label"


def test_bundled_giab_header_declaring_alleles_an_integer_is_warned_about(human_q, q_reference, caplog):
    """GIAB's allalts holds the alleles (C) but its header says Type=Integer: htslib drops every value, so the
    scored VCF declares allalts and carries none. The release is read as it is, with one warning saying so."""
    path = human_q / "NA12878.chr22.tiny.giab.vcf"
    with caplog.at_level("WARNING", logger="genoformer.io.vcf_text"):
        assert len(read_variants(path, q_reference).variants) == 14
    assert [r.getMessage() for r in caplog.records if r.name == "genoformer.io.vcf_text"] == [
        f"{path} record 1 (line 76, q:186): INFO allalts='C' is not an Integer as its header declares: htslib drops "
        "or cuts such values, so genoformer's outputs carry allalts wrong or not at all (warned once per field)"]


def test_numbers_htslib_reads_right_pass(q_reference, tmp_path, calls_text):
    """Missing values, signs, exponents, NaN, a last line without a newline and CRLF line ends are read as they
    are; a BCF is typed and not looked at."""
    def edit(records):
        records[0][5] = "."
        records[1][5] = "5E+2"
        records[1][7] = records[1][7].replace(";DP=39;", ";DP=+39;").replace(";AF=0.5;", ";AF=.;")
        records[2][7] = records[2][7].replace(";AF=0.5;", ";AF=nan;").replace("ODDS=", "ODDS=-1.5e-3;X=")
    header, records = calls_text
    path = edited_vcf(tmp_path, calls_text, edit)
    variants = read_variants(path, q_reference).variants
    assert [v.qual for v in variants[:2]] == [None, 500.0] and variants[1].info["DP"] == 39
    crlf = tmp_path / "crlf.vcf"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n").rstrip(b"\r\n"))
    assert len(read_variants(crlf, q_reference).variants) == len(records)


def test_blank_lines_among_header_lines_are_skipped_as_htslib_does(q_reference, tmp_path, calls_text):
    """htslib skips blank lines among the ## lines; the text check does too, so it stays on the same records: a
    bad QUAL there is named at its own record and line, and a file htslib reads is not refused."""
    header, records = calls_text
    fields = [line.split("\t") for line in records]
    path = tmp_path / "blank.vcf"
    path.write_text("\n".join(header[:2] + ["", "\r"] + header[2:-1] + [""] + header[-1:] +
                              ["\t".join(f) for f in fields]) + "\n")
    assert len(read_variants(path, q_reference).variants) == len(records)
    fields[4][5] = "abc"
    path.write_text("\n".join(header[:2] + [""] + header[2:] + ["\t".join(f) for f in fields]) + "\n")
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    assert one_line(err) == f"{path} record 5 (line {len(header) + 1 + 5}, q:1917): QUAL 'abc' is not a number"


def test_info_keys_pattern_matches_exactly_the_declared_keys_of_a_type(human_q):
    """The keys of a Type as a tree of their bytes (hundreds of gnomAD-like fields tried one by one made a read
    2.6 times as long): every declared Integer key of q.vcf.gz and no other key, nor a prefix or extension of one
    (DP of DPB, DPRA; AN, AC of A; SRF of SRR, tolerated), nor a key of regex characters."""
    header = pysam.VariantFile(str(human_q / "q.vcf.gz")).header
    header.info.add("A.B|C", 1, "Integer", "regex characters")
    header.info.add("A", 1, "Integer", "prefix of many")
    integers = {key for key in header.info if header.info[key].type == "Integer"}
    assert {"DP", "AN", "AC", "SRF", "SRR", "A.B|C", "A"} <= integers and "DPB" not in integers
    pattern = re.compile(_keys(header, "Integer", frozenset({"SRR"})))
    candidates = set(header.info) | {"".join(pair) for pair in itertools.product(sorted(integers), ("", "X", "B"))}
    candidates |= {key[:cut] for key in integers for cut in range(len(key))} | {"AxB|C", "A.B", "C"}
    assert {key for key in candidates if pattern.fullmatch(key.encode())} == integers - {"SRR"}
    assert re.fullmatch(_keys(header, "Flag", frozenset(header.info)), b"") is None  # no key: matches nothing


def test_empty_info_fields_htslib_skips_take_the_one_match(human_q, calls_text):
    """A last ';' or ';;' in INFO, which htslib skips, fully matches the line pattern: failing it cost each line
    a backtracking match and a split (30 times as long: q.vcf.gz's records with a last ';', 400 us a line); a
    value of the wrong Type next to them still fails it."""
    header = pysam.VariantFile(str(human_q / "q.vcf.gz")).header
    valid = _valid_line(header).fullmatch
    line = calls_text[1][0]
    columns = line.split("\t")
    for info in (columns[7] + ";", columns[7].replace(";", ";;", 1), ";" + columns[7], ".", ""):
        assert valid("\t".join(columns[:7] + [info] + columns[8:]).encode() + b"\n"), info
    assert not valid("\t".join(columns[:7] + [columns[7].replace(";DP=", ";;DP=x") + ";"] + columns[8:]).encode())


def pos_zero(records):
    records[1][1] = "0"


def bad_pos_after_many(records):
    records[:] = [list(fields) for fields in records * 20]
    records[299][1] = "abc"


@pytest.mark.parametrize("edit,expected", [
    (pos_zero, "{path} record 2 (q:0): POS 0 is not a position on contig q (VCF positions start at 1)"),
    # the record number stays right past the first few hundred records (pysam reads them in batches)
    (bad_pos_after_many, "{path}: malformed VCF at record 300: Could not parse the position 'abc'"),
])
def test_bad_positions_are_named_with_their_record(q_reference, tmp_path, calls_text, edit, expected):
    path = edited_vcf(tmp_path, calls_text, edit)
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    assert one_line(err) == expected.format(path=path)


def test_corrupt_bgzf_block(human_q, q_reference, tmp_path):
    path = corrupt_records_block(human_q, tmp_path)
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    assert one_line(err) == f"{path}: malformed VCF at record 1: Inflate operation failed: invalid distance too " \
        "far back"


def test_merge_names_the_corrupt_shard(human_q, tmp_path):
    shard = corrupt_records_block(human_q, tmp_path)
    with pytest.raises(InputError) as err:
        merge_vcfs([shard], tmp_path / "merged.vcf.gz")
    assert one_line(err) == f"{shard}: cannot read record 1: Inflate operation failed: invalid distance too far back"
    code, lines = cli("merge-vcf", "--vcfs", shard, "--out", tmp_path / "merged.vcf.gz")
    assert code == 2 and not raw_htslib(lines), lines
    assert lines[-1] == f"genoformer merge-vcf: error: {one_line(err)}"
    assert not (tmp_path / "merged.vcf.gz").exists()


def test_htslib_messages_are_logged_not_printed(human_q, tmp_path, calls_text):
    """q.vcf.gz declares GQ as a Float: htslib's warning is logged; a missing column's dozen htslib lines before
    the error are not shown at all. The absent checkpoint stops score-variants after the VCF is read."""
    code, lines = cli("score-variants", "--reference", human_q / "q.fa", "--vcf", human_q / "q.vcf.gz",
                      "--checkpoint", tmp_path / "absent", "--out", tmp_path / "out.vcf.gz")
    assert code == 2 and not raw_htslib(lines), lines
    assert len(lines) == 2 and lines[0].endswith(f"WARNING genoformer.io.vcf: {human_q / 'q.vcf.gz'}: htslib: GQ "
                                                 "should be declared as Type=Integer")
    assert "checkpoint not found" in lines[1]

    path = edited_vcf(tmp_path, calls_text, lambda records: records[2].__delitem__(7))
    code, lines = cli("score-variants", "--reference", human_q / "q.fa", "--vcf", path,
                      "--checkpoint", tmp_path / "absent", "--out", tmp_path / "out.vcf.gz")
    assert code == 2 and not raw_htslib(lines), lines
    assert lines[-1].startswith(f"genoformer score-variants: error: {path}: malformed VCF at record 3: ")


def test_not_a_vcf_missing_and_empty(human_q, q_reference, tmp_path):
    with pytest.raises(InputError, match="not a readable VCF"):
        read_variants(human_q / "q.fa", q_reference)
    with pytest.raises(MissingFileError):
        read_variants(tmp_path / "absent.vcf", q_reference)
    (tmp_path / "empty.vcf").touch()
    with pytest.raises(InputError, match="empty"):
        read_variants(tmp_path / "empty.vcf", q_reference)


def test_plain_gzip_vcf_says_recompress_with_bgzip(human_q, q_reference, tmp_path):
    path = tmp_path / "giab.vcf.gz"
    path.write_bytes(gzip.compress((human_q / "NA12878.chr22.tiny.giab.vcf").read_bytes()))
    with pytest.raises(InputError) as err:
        read_variants(path, q_reference)
    message = one_line(err)
    assert message.startswith(f"{path}: plain gzip, not bgzip; recompress it with bgzip: `zcat {path} | bgzip > ")


def test_an_alt_equal_to_its_ref_is_no_variant(tmp_path, calls_text, q_reference):
    """freebayes' first call (T>C at 186) given a second ALT equal to REF (T, as some callers write a reference
    call), and its second call's ALT replaced by its REF in lower case: neither is scored, both are counted with
    the records without an ALT; the C stays the record's first allele, with its own AO."""
    def edit(fields):
        fields[0][4] = "C,T"
        fields[0][7] = fields[0][7].replace("AO=16;", "AO=16,0;")
        fields[1][4] = fields[1][3].lower()
    result = read_variants(edited_vcf(tmp_path, calls_text, edit), q_reference)
    first = [v for v in result.variants if v.record == 1]
    assert [(v.alt, v.allele, v.info["AO"]) for v in first] == [("C", 1, 16)]
    assert not any(v.record == 2 for v in result.variants) and result.skipped_no_alt == 2
    assert len(result.variants) == len(calls_text[1]) - 1
