"""genoformer.io.fasta on the bundled real FASTAs and on broken copies of them."""

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pysam
import pytest
from Bio import SeqIO
from Bio.Seq import Seq

from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import BASES, Reference, decode_bases, encode_bases, reverse_complement_codes
from io_helpers import open_and_report, run_without_write_permission

AMBIGUOUS = "RYSWKMBDHVN"


def biopython_records(path):
    """Name -> sequence of a (possibly bgzipped) FASTA, parsed by Biopython."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        return {record.id: str(record.seq) for record in SeqIO.parse(handle, "fasta")}


def fai_lengths(path):
    with open(f"{path}.fai") as handle:
        return {line.split("\t")[0]: int(line.split("\t")[1]) for line in handle}


def reference_codes(sequence):
    """Per-base reference implementation of the base codes and soft-mask."""
    code = {base: i for i, base in enumerate("ACGT")} | {"U": 3} | {base: 4 for base in AMBIGUOUS}
    return (np.array([code[c.upper()] for c in sequence], dtype=np.uint8),
            np.array([c.islower() for c in sequence], dtype=bool))


def write_fasta(path, records, width=60):
    with open(path, "w") as handle:
        for name, sequence in records.items():
            handle.write(f">{name}\n")
            for i in range(0, len(sequence), width):
                handle.write(sequence[i:i + width] + "\n")
    return path


@pytest.fixture
def chloroplast_copy(chloroplast_fasta, tmp_path):
    """The chloroplast FASTA copied to tmp_path (it ships without .fai, and opening writes one)."""
    return shutil.copy(chloroplast_fasta, tmp_path / "cp.fa")


@pytest.fixture
def q_copy(human_q, tmp_path):
    return shutil.copy(human_q / "q.fa", tmp_path / "q.fa")


def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


def test_contigs_match_samtools_fai(cdiph_fasta, human_q, sarscov2):
    for path in (cdiph_fasta, human_q / "q.fa", sarscov2 / "NC_045512.2.fasta"):
        with Reference(path) as reference:
            assert reference.contigs == fai_lengths(path)


@pytest.mark.parametrize("name", ["cdiph", "q", "sarscov2", "chloroplast"])
def test_fetch_matches_biopython(name, cdiph_fasta, human_q, sarscov2, chloroplast_copy):
    path = {"cdiph": cdiph_fasta, "q": human_q / "q.fa", "sarscov2": sarscov2 / "NC_045512.2.fasta",
            "chloroplast": chloroplast_copy}[name]
    truth = biopython_records(path)
    rng = np.random.default_rng(0)
    with Reference(path) as reference:
        assert list(reference.contigs) == list(truth)
        for contig, sequence in truth.items():
            assert reference.contigs[contig] == len(sequence)
            assert reference.fetch(contig) == sequence
            for start, length in zip(rng.integers(0, len(sequence), 20), rng.integers(0, 5000, 20)):
                end = min(len(sequence), int(start + length))
                assert reference.fetch(contig, int(start), end) == sequence[start:end]


def test_codes_of_real_genome_match_per_base_reference(sarscov2):
    with Reference(sarscov2 / "NC_045512.2.fasta") as reference:
        codes, softmask = reference.codes("NC_045512.2")
        sequence = reference.fetch("NC_045512.2")
    expected_codes, expected_mask = reference_codes(sequence)
    assert codes.dtype == np.uint8 and softmask.dtype == bool
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(softmask, expected_mask)
    assert decode_bases(codes) == sequence.upper()


@pytest.mark.parametrize("seed", range(3))
def test_codes_match_per_base_reference_on_random_fasta(tmp_path, seed):
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ACGTacgt" + AMBIGUOUS + AMBIGUOUS.lower() + "Uu"))
    records = {f"contig{i}": "".join(rng.choice(alphabet, int(n), p=None))
               for i, n in enumerate(rng.integers(1, 3000, 4))}
    path = write_fasta(tmp_path / "random.fa", records, width=int(rng.integers(5, 100)))
    with Reference(path) as reference:
        assert reference.contigs == {name: len(seq) for name, seq in records.items()}
        for name, sequence in records.items():
            for _ in range(10):
                start = int(rng.integers(0, len(sequence)))
                end = int(rng.integers(start, len(sequence) + 1))
                codes, softmask = reference.codes(name, start, end)
                expected_codes, expected_mask = reference_codes(sequence[start:end])
                np.testing.assert_array_equal(codes, expected_codes)
                np.testing.assert_array_equal(softmask, expected_mask)


def test_soft_masked_region_is_the_mask_track(q_copy, tmp_path):
    sequence = biopython_records(q_copy)["q"]
    masked = sequence[:1000] + sequence[1000:1500].lower() + sequence[1500:]
    path = write_fasta(tmp_path / "masked.fa", {"q": masked})
    with Reference(path) as reference:
        codes, softmask = reference.codes("q")
        assert reference.fetch("q", 995, 1005) == masked[995:1005]
    assert np.flatnonzero(softmask).tolist() == list(range(1000, 1500))
    np.testing.assert_array_equal(codes, encode_bases(sequence))


def test_bgzip_fasta_equals_plain(chloroplast_copy, tmp_path):
    bgzipped = tmp_path / "cp.fa.gz"
    pysam.tabix_compress(str(chloroplast_copy), str(bgzipped))
    with Reference(chloroplast_copy) as plain, Reference(bgzipped) as compressed:
        assert compressed.contigs == plain.contigs
        contig = next(iter(plain.contigs))
        assert compressed.fetch(contig, 100_000, 120_000) == plain.fetch(contig, 100_000, 120_000)
        np.testing.assert_array_equal(compressed.codes(contig)[0], plain.codes(contig)[0])
    assert (tmp_path / "cp.fa.gz.fai").exists() and (tmp_path / "cp.fa.gz.gzi").exists()


def test_stale_index_is_rebuilt(q_copy, human_q):
    shutil.copy(human_q / "q.fa.fai", f"{q_copy}.fai")
    os.utime(f"{q_copy}.fai", (1, 1))  # the index predates the FASTA
    with open(q_copy, "a") as handle:
        handle.write(">extra\nACGTACGTNN\n")
    with Reference(q_copy) as reference:
        assert reference.contigs == {"q": 12356, "extra": 10}
        assert reference.fetch("extra") == "ACGTACGTNN"


def test_malformed_index(q_copy):
    with open(f"{q_copy}.fai", "w") as handle:
        handle.write("q 12356 3 60 61\n")  # spaces, not tabs
    with pytest.raises(InputError, match="q.fa.fai line 1: not a FASTA index line"):
        Reference(q_copy)


def test_base_code_helpers_against_biopython():
    rng = np.random.default_rng(1)
    for _ in range(20):
        sequence = "".join(rng.choice(list("ACGTN"), int(rng.integers(0, 200))))
        codes = encode_bases(sequence)
        assert decode_bases(codes) == sequence
        assert decode_bases(reverse_complement_codes(codes)) == str(Seq(sequence).reverse_complement())
    assert BASES == "ACGTN"
    assert encode_bases("ACGTacgtRYNnu").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 3]
    with pytest.raises(InputError, match="position 3"):
        encode_bases("AC!T")
    with pytest.raises(ValueError):
        decode_bases(np.array([0, 5], dtype=np.uint8))


def test_sha256_is_the_file_digest(human_q):
    with Reference(human_q / "q.fa") as reference:
        assert reference.sha256() == hashlib.sha256((human_q / "q.fa").read_bytes()).hexdigest()


def test_unknown_contig_and_region_outside(human_q):
    with Reference(human_q / "q.fa") as reference:
        with pytest.raises(MismatchError) as err:
            reference.check_contig("chr22", "calls.vcf")
        assert "chr22" in one_line(err) and "calls.vcf" in one_line(err) and "q.fa" in one_line(err)
        with pytest.raises(InputError, match="outside"):
            reference.fetch("q", 12000, 12357)
        with pytest.raises(MismatchError):
            reference.codes("chr22", 0, 10)


def test_plain_gzip_fasta_is_refused_with_the_bgzip_command(human_q, tmp_path):
    path = tmp_path / "q.fa.gz"
    path.write_bytes(gzip.compress((human_q / "q.fa").read_bytes()))
    with pytest.raises(InputError) as err:
        Reference(path)
    assert f"zcat {path} | bgzip > " in one_line(err)
    assert "pysam.tabix_compress" in one_line(err)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fa"
    path.touch()
    with pytest.raises(InputError, match="empty"):
        Reference(path)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="not found"):
        Reference(tmp_path / "absent.fa")


def test_duplicate_contig_names(human_q, tmp_path):
    path = tmp_path / "dup.fa"
    q = (human_q / "q.fa").read_text()
    path.write_text(q + q.replace(">q", ">q second copy", 1))
    with pytest.raises(InputError) as err:
        Reference(path)
    assert "duplicate contig name 'q'" in one_line(err) and "records 1 and 2" in one_line(err)
    assert str(path) in one_line(err)


@pytest.mark.parametrize("character", ["!", "J"])
def test_non_iupac_character_names_file_contig_and_position(human_q, tmp_path, character):
    sequence = biopython_records(human_q / "q.fa")["q"]
    position = 7001  # 1-based
    broken = sequence[:position - 1] + character + sequence[position:]
    path = write_fasta(tmp_path / "broken.fa", {"other": "ACGT", "q": broken})
    with Reference(path) as reference:
        assert reference.codes("q", 0, 7000)[0].size == 7000  # the part before it reads fine
        with pytest.raises(InputError) as err:
            reference.codes("q")
        message = one_line(err)
        assert str(path) in message and "contig q" in message and f"position {position}" in message
        assert repr(character) in message
        with pytest.raises(InputError, match=f"position {position}"):
            reference.codes("q", 6000, 8000)


def test_text_before_first_header(human_q, tmp_path):
    path = tmp_path / "headless.fa"
    path.write_text("ACGT\n" + (human_q / "q.fa").read_text())
    with pytest.raises(InputError, match="not a valid FASTA"):
        Reference(path)


def test_non_ascii_byte_names_line(tmp_path):
    path = tmp_path / "latin.fa"
    path.write_bytes(b">a\nACGT\nAC\xe9T\n")
    with pytest.raises(InputError, match="line 3 column 3"):
        Reference(path)


def test_multi_byte_character_is_named_not_an_inconsistent_line_length(human_q, tmp_path):
    """A UTF-8 'é' in the middle of q.fa's sequence: pyfaidx sees a line one byte too long; the error names the
    non-ASCII byte and its line instead of 'line length not consistent'."""
    lines = (human_q / "q.fa").read_text().splitlines(keepends=True)
    lines[10] = lines[10][:20] + "\u00e9" + lines[10][21:]
    path = tmp_path / "utf8.fa"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as err:
        Reference(path)
    assert f"{path}: not a valid FASTA: line 11 column 21: non-ASCII byte 0xc3" in one_line(err)


def test_cr_only_line_endings_and_a_nameless_header_are_named(human_q, tmp_path):
    """q.fa with classic-Mac line endings reads as one header line: the error says why; a '>' alone on the third
    line is named by its 1-based line (pyfaidx counts from 0)."""
    text = (human_q / "q.fa").read_text()
    path = tmp_path / "cr.fa"
    path.write_bytes(text.replace("\n", "\r").encode())
    with pytest.raises(InputError) as err:
        Reference(path)
    assert one_line(err) == f"{path}: FASTA has no sequence (its lines end in a carriage return alone: convert " \
        "them with `tr '\\r' '\\n'`)"
    path = tmp_path / "nameless.fa"
    path.write_text(">a\nACGT\n>\nACGTACGT\n")
    with pytest.raises(InputError) as err:
        Reference(path)
    assert one_line(err) == f"{path}: not a valid FASTA: line 3: header '>' has no sequence name"


def test_inconsistent_line_length_is_named_despite_a_utf8_header(tmp_path):
    """A UTF-8 header is read without complaint; a sequence line of another length in the same file is named
    as such, not blamed on the header's non-ASCII byte ('FASTA must be ASCII text')."""
    path = tmp_path / "header.fa"
    path.write_text(">chr1 caf\u00e9\nACGTACGT\nACGTACGT\nACG\n", encoding="utf-8")
    with Reference(path) as reference:
        assert reference.contigs == {"chr1": 19}
    path.write_text(">chr1 caf\u00e9\nACGTACGT\nACGTAC\nACGTACGT\n", encoding="utf-8")
    Path(f"{path}.fai").unlink()
    with pytest.raises(InputError) as err:
        Reference(path)
    message = one_line(err)
    assert "not consistent" in message and "non-ASCII" not in message, message


def test_header_only_fasta_has_no_sequence(tmp_path):
    path = tmp_path / "headers.fa"
    path.write_text(">a\n>b\n")
    with pytest.raises(InputError, match="no sequence"):
        Reference(path)


@pytest.mark.parametrize("with_index", [False, True])
def test_read_only_folder(q_copy, tmp_path, with_index):
    folder = tmp_path / "readonly"
    folder.mkdir()
    shutil.copy(q_copy, folder / "q.fa")
    if with_index:
        Reference(folder / "q.fa").close()
    folder.chmod(0o555)
    try:
        result = run_without_write_permission(open_and_report(f"__import__('genoformer.io.fasta').io.fasta."
                                                              f"Reference({str(folder / 'q.fa')!r})"))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    if with_index:
        assert result.stdout.strip() == "OK"
    else:
        assert result.stdout.startswith("MissingFileError")
        assert f"{folder / 'q.fa'}.fai" in result.stdout and "not writable" in result.stdout
        assert "samtools faidx" in result.stdout


# ---------------------------------------------------------------------------------------------- damaged bgzip


@pytest.fixture
def cdiph_copy(cdiph_fasta, tmp_path):
    """The bgzipped C. diphtheriae FASTA copied to tmp_path, without its index."""
    return shutil.copy(cdiph_fasta, tmp_path / "cd.fa.gz")


def test_truncated_bgzip_fasta(cdiph_copy):
    with open(cdiph_copy, "r+b") as handle:
        handle.truncate(300_000)
    with pytest.raises(InputError) as err:
        Reference(cdiph_copy)
    assert one_line(err) == f"{cdiph_copy}: not a valid bgzip FASTA (truncated or corrupt block)"


@pytest.mark.parametrize("with_index", [False, True])
def test_corrupt_bgzip_block(cdiph_copy, cdiph_fasta, with_index):
    data = bytearray(cdiph_copy.read_bytes())
    data[100_000:100_040] = bytes(b ^ 0x55 for b in data[100_000:100_040])  # inside the 5th block's deflate data
    cdiph_copy.write_bytes(data)
    if with_index:  # the index of the intact file, newer than the FASTA: opening reads only the ends
        shutil.copy(f"{cdiph_fasta}.fai", f"{cdiph_copy}.fai")
        shutil.copy(f"{cdiph_fasta}.gzi", f"{cdiph_copy}.gzi")
        with Reference(cdiph_copy) as reference, pytest.raises(InputError) as err:
            reference.fetch("NZ_LN831026.1")
    else:
        with pytest.raises(InputError) as err:
            Reference(cdiph_copy)
    assert one_line(err) == f"{cdiph_copy}: not a valid bgzip FASTA (truncated or corrupt block)"


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_damaged_gzi_names_it_and_rebuilds_once_deleted(cdiph_copy, cdiph_fasta, damage):
    with open(f"{cdiph_fasta}.gzi", "rb") as handle:
        gzi = handle.read()
    shutil.copy(f"{cdiph_fasta}.fai", f"{cdiph_copy}.fai")
    with open(f"{cdiph_copy}.gzi", "wb") as handle:  # written after the FASTA: not stale
        handle.write(gzi[:100] if damage == "truncated" else gzi[:20] + b"\xff" * 20 + gzi[40:])
    with pytest.raises(InputError) as err:
        Reference(cdiph_copy)
    assert one_line(err) == f"{cdiph_copy}.gzi: index is damaged; delete it to rebuild"
    os.remove(f"{cdiph_copy}.gzi")
    with Reference(cdiph_copy) as reference:
        assert reference.contigs == {"NZ_LN831026.1": 2463666}


# ---------------------------------------------------------------------------------------------- foreign index


@pytest.mark.parametrize("case", ["other fasta", "other width", "other bgzip fasta"])
def test_index_of_another_fasta_is_refused(q_copy, chloroplast_copy, sarscov2, tmp_path, case):
    path = q_copy
    if case == "other bgzip fasta":
        path = tmp_path / "cp.fa.gz"
        pysam.tabix_compress(str(chloroplast_copy), str(path))
        Reference(path).close()  # builds its own .fai and .gzi
    index = f"{path}.fai"
    if case == "other width":
        with open(index, "w") as handle:
            handle.write("q\t12356\t3\t70\t71\n")  # q.fa has 60 bases a line
    else:
        shutil.copy(sarscov2 / "NC_045512.2.fasta.fai", index)  # newer than the FASTA: not rebuilt
    with pytest.raises(MismatchError) as err:
        Reference(path)
    message = one_line(err)
    assert message.startswith(f"{index} does not match {path} (record ")
    assert message.endswith("; delete it to rebuild")
    os.remove(index)
    with Reference(path) as reference:
        assert reference.contigs == fai_lengths(path)


def test_index_check_accepts_empty_records_crlf_and_no_final_newline(tmp_path):
    path = tmp_path / "odd.fa"
    path.write_bytes(b">a\nACGT\nAC\n>empty\n>b desc\r\nACGTA\r\nA")
    Reference(path).close()
    with Reference(path) as reference:  # the second open checks the index built by the first
        assert reference.contigs == {"a": 6, "empty": 0, "b": 6}
        assert reference.fetch("b") == "ACGTAA"


@pytest.mark.parametrize("ending", [b"", b"\r"])
def test_an_empty_last_record_without_a_final_line_end_is_indexed_and_read(tmp_path, ending):
    path = tmp_path / "empty_last.fa"
    path.write_bytes(b">a\nACGT\n>b desc" + ending)
    Reference(path).close()
    with Reference(path) as reference:  # the second open checks the index built by the first
        assert reference.contigs == {"a": 4, "b": 0}
        assert reference.fetch("a") == "ACGT"


@pytest.mark.parametrize("seed", range(3))
def test_base_counts_are_the_acgt_codes_counted_on_random_fasta(tmp_path, monkeypatch, seed):
    """Raw-byte counts equal the ACGT codes counted, for every case, U, ambiguity code, line width and line end,
    plain and bgzipped, read in one chunk or in chunks that split lines anywhere."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ACGTacgt" + AMBIGUOUS + AMBIGUOUS.lower() + "Uu"))
    records = {"empty": ""} | {f"contig{i}": "".join(rng.choice(alphabet, int(n)))
                               for i, n in enumerate(rng.integers(1, 3000, 4))}
    path = write_fasta(tmp_path / "random.fa", records, width=int(rng.integers(5, 100)))
    if seed == 1:
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n")[:-2])  # CRLF, no final line end
    bgzipped = tmp_path / "random.fa.gz"
    pysam.tabix_compress(str(path), str(bgzipped))
    for chunk in (1 << 22, int(rng.integers(1, 200))):
        monkeypatch.setattr("genoformer.io.fasta._COUNT_CHUNK", chunk)
        for fasta in (path, bgzipped):
            with Reference(fasta) as reference:
                for name, sequence in records.items():
                    expected = np.bincount(reference_codes(sequence)[0], minlength=5)[:4]
                    got = reference.base_counts(name)
                    assert got.dtype == np.int64 and got.tolist() == expected.tolist()


def test_base_counts_of_real_genomes_match_their_codes(cdiph_fasta, sarscov2, chloroplast_copy):
    for path in (cdiph_fasta, sarscov2 / "NC_045512.2.fasta", chloroplast_copy):
        with Reference(path) as reference:
            for contig in reference.contigs:
                codes = reference.codes(contig)[0]
                assert reference.base_counts(contig).tolist() == np.bincount(codes, minlength=5)[:4].tolist()


def test_base_counts_name_a_non_iupac_character_as_codes_does(human_q, tmp_path, monkeypatch):
    sequence = biopython_records(human_q / "q.fa")["q"]
    path = write_fasta(tmp_path / "broken.fa", {"q": sequence[:7000] + "!" + sequence[7001:]})
    monkeypatch.setattr("genoformer.io.fasta._COUNT_CHUNK", 5000)  # the bad byte is in the second chunk
    with Reference(path) as reference, pytest.raises(InputError) as err:
        reference.base_counts("q")
    assert one_line(err) == f"{path}: contig q position 7001: character '!' is not an IUPAC nucleotide code"
