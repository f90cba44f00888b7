"""genoformer.io.bam on the bundled real reads (NA12878 on human q, SARS-CoV-2) and broken copies of them."""

import gzip
import shutil
import subprocess
import sys

import numpy as np
import pysam
import pytest

import genoformer.io.bam as bam_module
from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.bam import AlignmentFile, ReadFilter
from genoformer.io.fasta import Reference
from io_helpers import consensus, cut_at_block, open_and_report, run_without_write_permission

NA12878_BAM = "NA12878.chr22.tiny.bam"
SKIP_ALL = "0xF04"  # unmapped, secondary, QC-fail, duplicate, supplementary: ReadFilter's default


@pytest.fixture(scope="module")
def q_reference(human_q):
    with Reference(human_q / "q.fa") as reference:
        yield reference


@pytest.fixture(scope="module")
def q_consensus(human_q, q_reference):
    return consensus(human_q / NA12878_BAM, q_reference, "q")


@pytest.fixture(scope="module")
def cov_reference(sarscov2):
    with Reference(sarscov2 / "NC_045512.2.fasta") as reference:
        yield reference


def pileup_consensus(path, contig, start, end, min_depth=3, min_mapq=20, min_base_quality=13):
    """Simple reference: walk samtools' pileup column by column, count bases and deletions, call majority."""
    counts = np.zeros((5, end - start), dtype=int)
    with pysam.AlignmentFile(str(path)) as alignments:
        for column in alignments.pileup(contig, start, end, truncate=True, stepper="nofilter", max_depth=10**6,
                                        ignore_overlaps=False, ignore_orphans=False, min_base_quality=0):
            for entry in column.pileups:
                read = entry.alignment
                if read.flag & int(SKIP_ALL, 16) or read.mapping_quality < min_mapq or entry.is_refskip:
                    continue
                if entry.is_del:
                    counts[4, column.reference_pos - start] += 1
                    continue
                base = read.query_sequence[entry.query_position]
                if base in "ACGT" and read.query_qualities[entry.query_position] >= min_base_quality:
                    counts["ACGT".index(base), column.reference_pos - start] += 1
    calls = []
    for bases, deletions in zip(counts[:4].T, counts[4]):
        best = bases.max()
        single_winner = (bases == best).sum() == 1 and best > deletions
        calls.append("ACGT"[bases.argmax()] if bases.sum() + deletions >= min_depth and single_winner else "N")
    return "".join(calls)


def samtools_count(path, *args, region=None):
    return int(pysam.view("-c", *args, str(path), *([region] if region else [])))


def one_line(err):
    assert "\n" not in str(err.value)
    return str(err.value)


def test_consensus_agrees_with_reference(q_reference, q_consensus):
    reference = q_reference.fetch("q").upper()
    assert len(q_consensus) == len(reference)
    covered = [i for i, base in enumerate(q_consensus) if base != "N"]
    assert len(covered) > 0.95 * len(reference)
    agreement = sum(q_consensus[i] == reference[i] for i in covered) / len(covered)
    assert agreement >= 0.99


def test_consensus_carries_the_majority_allele_of_freebayes_calls(human_q, q_consensus):
    """At each freebayes het call with a clear majority in its AD counts, the consensus shows that allele;
    where most reads carry a called deletion, the deleted bases are N."""
    checked = 0
    for record in pysam.VariantFile(str(human_q / "q.vcf.gz")):
        ref_reads, alt_reads = record.samples[0]["AD"]
        if abs(ref_reads - alt_reads) < 3:
            continue
        ref, alt = record.ref, record.alts[0]
        at = q_consensus[record.pos - 1:record.pos - 1 + len(ref)]
        if len(ref) == len(alt) == 1:
            assert at == (alt if alt_reads > ref_reads else ref), record.pos
        elif len(alt) == 1 and alt_reads > ref_reads:  # a deletion most reads carry
            assert at == ref[0] + "N" * (len(ref) - 1), record.pos
        checked += 1
    assert checked >= 10


def test_consensus_at_giab_het_sites(human_q, q_consensus):
    """GIAB's NA12878 truth calls on q are all heterozygous: both alleles in the reads, either in the consensus."""
    with pysam.AlignmentFile(str(human_q / NA12878_BAM)) as alignments:
        for record in pysam.VariantFile(str(human_q / "NA12878.chr22.tiny.giab.vcf")):
            assert record.samples[0]["GT"] == (0, 1)
            depth = dict(zip("ACGT", (int(n[0]) for n in alignments.count_coverage("q", record.pos - 1, record.pos))))
            total = sum(depth.values())
            assert depth[record.ref] >= 0.2 * total and depth[record.alts[0]] >= 0.2 * total
            assert q_consensus[record.pos - 1] in (record.ref, record.alts[0])


def test_consensus_carries_hom_alt_base(sarscov2, cov_reference):
    """SARS-CoV-2 is haploid: where samtools mpileup shows every read with C over reference G (13082), so does
    the consensus."""
    pileup = pysam.mpileup("-r", "NC_045512.2:13082-13082", "-f", str(sarscov2 / "NC_045512.2.fasta"),
                           str(sarscov2 / "SRR11728627.sorted.bam")).split("\t")
    assert pileup[2] == "G" and set(pileup[4].upper()) == {"C"} and int(pileup[3]) >= 20
    sample = consensus(sarscov2 / "SRR11728627.sorted.bam", cov_reference, "NC_045512.2")
    assert cov_reference.fetch("NC_045512.2", 13081, 13082) == "G"
    assert sample[13081] == "C"


@pytest.mark.parametrize("dataset, fasta, bam, contig, start, end", [
    ("sarscov2", "NC_045512.2.fasta", "SRR11728627.sorted.bam", "NC_045512.2", 0, 29903),
    ("human_q", "q.fa", NA12878_BAM, "q", 5000, 10000),  # includes the deletions at 5638 and 9251
])
def test_consensus_equals_pileup_reference(request, dataset, fasta, bam, contig, start, end, monkeypatch):
    folder = request.getfixturevalue(dataset)
    bam = folder / bam
    with Reference(folder / fasta) as reference:
        monkeypatch.setattr(bam_module, "CONSENSUS_CHUNK", 777)  # exercise the chunk seams
        fast = consensus(bam, reference, contig, start, end)
    assert fast == pileup_consensus(bam, contig, start, end)


def test_consensus_parameters_change_the_calls(human_q, q_reference, q_consensus):
    deep = consensus(human_q / NA12878_BAM, q_reference, "q", min_depth=40)
    assert deep.count("N") > q_consensus.count("N")
    assert all(d == "N" or d == c for d, c in zip(deep, q_consensus))
    everything = consensus(human_q / NA12878_BAM, q_reference, "q", read_filter=ReadFilter(min_mapq=0, skip_flags=0))
    assert everything.count("N") <= q_consensus.count("N")
    assert consensus(human_q / NA12878_BAM, q_reference, "q", 1000, 1100) == q_consensus[1000:1100]


def test_reads_stored_without_base_qualities_count(human_q, q_reference, tmp_path):
    """The real reads with QUAL `*` (as a FASTA imported to BAM, or a pipeline that drops qualities, writes them):
    samtools mpileup counts their bases, and so does the consensus, as if each base passed the quality filter;
    pysam's count_coverage dropped them all, leaving the consensus all N."""
    stripped = tmp_path / "no_qualities.bam"
    with pysam.AlignmentFile(str(human_q / NA12878_BAM)) as original, \
            pysam.AlignmentFile(str(stripped), "wb", template=original) as out:
        for read in original:
            read.query_sequence = read.query_sequence  # setting the sequence clears the qualities
            out.write(read)
    pysam.index(str(stripped))
    with pysam.AlignmentFile(str(stripped)) as reads:
        assert all(read.query_qualities is None for read in reads)
    depth = pysam.mpileup("-Q", "13", "-r", "q:6001-6001", "-f", str(human_q / "q.fa"), str(stripped)).split("\t")[3]
    assert int(depth) > 30
    expected = consensus(human_q / NA12878_BAM, q_reference, "q", min_base_quality=0)
    assert consensus(stripped, q_reference, "q") == expected and expected.count("N") < 100


def test_cram_consensus_equals_bam(human_q, q_reference, q_consensus, tmp_path):
    cram = shutil.copy(human_q / "NA12878.chr22.tiny.cram", tmp_path)  # ships without .crai: built here
    assert consensus(cram, q_reference, "q") == q_consensus
    assert (tmp_path / "NA12878.chr22.tiny.cram.crai").exists()
    with pytest.raises(InputError, match="CRAM"):
        AlignmentFile(cram)


def test_read_filters_count_like_samtools(human_q):
    bam = human_q / NA12878_BAM

    def passing(read_filter=ReadFilter(), *region):
        with pysam.AlignmentFile(str(bam)) as reads:
            return sum(read_filter.passes(read) for read in reads.fetch(*region))

    assert passing() == samtools_count(bam, "-q", "20", "-F", SKIP_ALL)
    assert passing(ReadFilter(), "q", 5000, 6000) == \
        samtools_count(bam, "-q", "20", "-F", SKIP_ALL, region="q:5001-6000")
    assert passing(ReadFilter(min_mapq=0, skip_flags=0)) == samtools_count(bam)
    assert samtools_count(bam, "-q", "20", "-F", SKIP_ALL) < samtools_count(bam)


def test_missing_index_is_built(human_q, q_reference, q_consensus, tmp_path):
    bam = shutil.copy(human_q / NA12878_BAM, tmp_path)
    assert consensus(bam, q_reference, "q") == q_consensus
    assert (tmp_path / f"{NA12878_BAM}.bai").exists()


def test_missing_index_in_read_only_folder(human_q, tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    shutil.copy(human_q / NA12878_BAM, folder)
    folder.chmod(0o555)
    try:
        result = run_without_write_permission(open_and_report(
            f"__import__('genoformer.io.bam').io.bam.AlignmentFile({str(folder / NA12878_BAM)!r})"))
    finally:
        folder.chmod(0o755)
    assert result.stdout.startswith("MissingFileError"), result.stdout + result.stderr
    assert f"{folder / NA12878_BAM}.bai" in result.stdout and "samtools index" in result.stdout


def test_sam_text_and_damaged_bam_without_index_are_not_called_unsorted(human_q, q_reference, tmp_path):
    """A SAM text file (here the real reads as `samtools view -h`) cannot be indexed: say so and how to convert
    it; a BAM with a damaged block says it is damaged; neither gets the 'is it coordinate-sorted?' hint."""
    sam = tmp_path / "reads.sam"
    pysam.view("-h", "-o", str(sam), str(human_q / NA12878_BAM), catch_stdout=False)
    with pytest.raises(InputError) as err:
        AlignmentFile(sam, q_reference)
    message = one_line(err)
    assert f"{sam}: a SAM text file" in message and "samtools sort -o" in message and "sorted?" not in message
    data = bytearray((human_q / NA12878_BAM).read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.bam"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        AlignmentFile(damaged, q_reference)
    message = one_line(err)
    assert f"{damaged}: cannot index (the file is damaged" in message and "sorted?" not in message
    assert not (tmp_path / "damaged.bam.bai").exists() and not (tmp_path / "reads.sam.bai").exists()


def write_sam(bam, out):
    pysam.view("-h", "-O", "SAM", "-o", str(out), str(bam), catch_stdout=False)


def write_bgzipped_sam(bam, out):
    write_sam(bam, f"{out}.txt")
    pysam.tabix_compress(f"{out}.txt", str(out))


@pytest.mark.parametrize("make, problem", [
    (write_sam, "a SAM text file"),
    (write_bgzipped_sam, "a SAM text file"),
    (lambda bam, out: pysam.sort("-n", "-o", str(out), str(bam)), "grouped by read name (@HD SO:queryname)"),
    (lambda bam, out: pysam.collate("-o", str(out), str(bam)), "grouped by read name (@HD GO:query)"),
], ids=["sam", "bgzipped-sam", "name-sorted", "collated"])
def test_files_that_cannot_be_indexed_fail_on_open(human_q, q_reference, tmp_path, make, problem):
    """The real reads as SAM (plain or bgzipped) or grouped by name: an error on open, also where no index is
    built (the workflow's check before any job runs), naming the file, the problem and the `samtools sort` that
    fixes it; a bgzipped SAM used to open and then fail in pysam's count_coverage with a ValueError."""
    made = tmp_path / "reads.bam"  # what each holds, whatever its name
    make(human_q / NA12878_BAM, made)
    for build_index in (False, True):
        with pytest.raises(InputError) as err:
            AlignmentFile(made, q_reference, build_index=build_index)
        message = one_line(err)
        assert message.startswith(f"{made}: ") and problem in message, message
        assert f"samtools sort -o {tmp_path / 'reads.sorted.bam'} {made}" in message
    with pytest.raises(InputError) as err:
        consensus(made, q_reference, "q")
    assert problem in one_line(err)
    assert list(tmp_path.glob("*.bai")) == []


@pytest.mark.parametrize("keep_eof_marker", [False, True])
def test_truncated_bam_is_an_error(human_q, q_reference, tmp_path, keep_eof_marker):
    data = (human_q / NA12878_BAM).read_bytes()
    cut = data[: len(data) // 2] + (data[-28:] if keep_eof_marker else b"")  # 28 bytes: the BGZF EOF block
    bam = tmp_path / "cut.bam"
    bam.write_bytes(cut)
    shutil.copy(human_q / f"{NA12878_BAM}.bai", tmp_path / "cut.bam.bai")  # the old index still there
    for run in (lambda: consensus(bam, q_reference, "q"), lambda: consensus(bam, q_reference, "q", 10999, 12356)):
        with pytest.raises(InputError) as err:
            run()
        assert str(bam) in one_line(err) and "truncated" in one_line(err)
    (tmp_path / "cut.bam.bai").unlink()  # without it, indexing finds the cut (or the EOF check before it)
    with pytest.raises(InputError) as err:
        AlignmentFile(bam, q_reference)
    assert one_line(err).startswith(f"{bam}: ") and "file is truncated" in one_line(err)  # the path says truncated
    assert not (tmp_path / "cut.bam.bai").exists()


def test_bam_cut_at_a_block_boundary_is_an_error(human_q, q_reference, q_consensus, tmp_path, monkeypatch):
    """The NA12878 BAM indexed, then cut where a BGZF block starts and closed with an end-of-file block, its index
    kept: htslib reads the reads before the cut as the whole file, so the consensus silently lost the rest. Once a
    whole contig is read, the reads met are now compared with the index's count (mapped and unmapped reads placed on
    the contig: 3,326 and 7), also when it is read in ranges that overlap as the tokenizer's k-mers do, each split
    into 1,000 bp chunks here: a read fetched twice counts once, and the whole file passes."""
    monkeypatch.setattr(bam_module, "CONSENSUS_CHUNK", 1000)
    whole = shutil.copy(human_q / NA12878_BAM, tmp_path / "whole.bam")
    pysam.index(str(whole))
    cut = tmp_path / "cut.bam"
    cut_at_block(whole, cut)
    with pysam.AlignmentFile(str(cut)) as reads:
        kept = sum(1 for _ in reads.fetch("q"))
    message = (f"{cut}: contig q: {kept} reads in the file but 3333 in its index: cut short (copy it again) or "
               f"replaced after indexing (then re-index it: `samtools index {cut}`)")
    with pytest.raises(InputError) as err:
        consensus(cut, q_reference, "q")
    assert one_line(err) == message
    with AlignmentFile(cut, q_reference) as alignments:
        alignments.consensus("q", 0, 6005)
        with pytest.raises(InputError) as err:
            alignments.consensus("q", 6000, 12356)
    assert one_line(err) == message
    with AlignmentFile(whole, q_reference) as alignments:
        pieces = [alignments.consensus("q", start, min(start + 2505, 12356)) for start in range(0, 12356, 2500)]
        assert alignments.reads_met == {"q": 3333}
    assert "".join(piece[:2500] for piece in pieces) == q_consensus


def test_cram_cut_between_containers_is_an_error(human_q, q_reference, tmp_path):
    """The real reads as a CRAM of 100-read slices, cut where a container starts (its .crai still there):
    htslib reads the containers before the cut without complaint, so without the check the consensus would
    silently lose the reads after it."""
    cram = tmp_path / "small.cram"
    pysam.view("-C", "-T", str(human_q / "q.fa"), "--output-fmt-option", "seqs_per_slice=100", "-o", str(cram),
               str(human_q / NA12878_BAM), catch_stdout=False)
    pysam.index(str(cram))
    with gzip.open(f"{cram}.crai", "rt") as index:
        containers = sorted({int(line.split("\t")[3]) for line in index})
    cut = tmp_path / "cut.cram"
    cut.write_bytes(cram.read_bytes()[:containers[len(containers) // 2]])
    shutil.copy(f"{cram}.crai", f"{cut}.crai")
    with pytest.raises(InputError) as err:
        consensus(cut, q_reference, "q")
    assert one_line(err) == f"{cut}: file is truncated (no CRAM end-of-file container); copy or create it again"


def test_cram_against_a_changed_reference_is_an_md5_mismatch(human_q, q_reference, tmp_path):
    """Same contig name and length, one base changed: the CRAM header's @SQ M5 says so before any decoding."""
    sequence = q_reference.fetch("q")
    changed = tmp_path / "q_changed.fa"
    changed.write_text(">q\n" + sequence[:5000] + ("A" if sequence[5000] != "A" else "C") + sequence[5001:] + "\n")
    cram = shutil.copy(human_q / "NA12878.chr22.tiny.cram", tmp_path)
    with Reference(changed) as reference:
        for run in (lambda: consensus(cram, reference, "q"), lambda: consensus(cram, reference, "q", 99, 200)):
            with pytest.raises(MismatchError) as err:
                run()
            assert one_line(err).startswith(f"{cram}: contig q: MD5 ee5a2decc990ba0220728d924ddd4dba in the CRAM "
                                            f"header (@SQ M5) but ")
            assert f"in reference {changed}" in one_line(err)


def test_index_of_another_bam(human_q, sarscov2, q_reference, tmp_path):
    bam = shutil.copy(human_q / NA12878_BAM, tmp_path)
    shutil.copy(sarscov2 / "SRR11728627.sorted.bam.bai", tmp_path / f"{NA12878_BAM}.bai")
    with pytest.raises(InputError) as err:
        consensus(bam, q_reference, "q")
    assert one_line(err) == (f"{bam}: read error: Invalid BGZF header at offset 223; if {bam}.bai is another file's "
                             "index, delete it to have it rebuilt")


def test_cli_reads_a_cram_without_index_quietly(human_q, tmp_path):
    """htslib's complaint that the .crai is missing (genoformer then builds it) is a debug message, not stderr."""
    cram = shutil.copy(human_q / "NA12878.chr22.tiny.cram", tmp_path)
    result = subprocess.run([sys.executable, "-m", "genoformer", "-q", "tokenize", "--fasta", str(human_q / "q.fa"),
                             "--bam", str(cram), "--window", "512", "--out", str(tmp_path / "ds")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(("[W::", "[E::"))], result.stderr
    assert (tmp_path / "NA12878.chr22.tiny.cram.crai").exists() and (tmp_path / "ds" / "manifest.json").exists()


def test_contigs_checked_against_reference(sarscov2, q_reference):
    with pytest.raises(MismatchError) as err:
        consensus(sarscov2 / "SRR11728627.sorted.bam", q_reference, "q")
    assert "NC_045512.2 (absent)" in one_line(err)


def test_contig_length_mismatch(human_q, tmp_path):
    shorter = tmp_path / "q_short.fa"
    shorter.write_text(">q\n" + "ACGT" * 100 + "\n")
    with Reference(shorter) as reference, pytest.raises(MismatchError, match="q \\(length 12356 in the BAM, 400"):
        AlignmentFile(human_q / NA12878_BAM, reference)


def test_a_reference_contig_the_bam_lacks_has_an_all_n_consensus(human_q, sarscov2, q_consensus, tmp_path):
    """The NA12878 reads align to q only; on a reference holding q and SARS-CoV-2, the virus has no reads: N."""
    both = tmp_path / "q_and_virus.fa"
    both.write_text((human_q / "q.fa").read_text() + (sarscov2 / "NC_045512.2.fasta").read_text())
    with Reference(both) as reference:
        assert consensus(human_q / NA12878_BAM, reference, "NC_045512.2", 100, 2100) == "N" * 2000
        assert consensus(human_q / NA12878_BAM, reference, "q") == q_consensus


def test_not_a_bam_missing_and_empty(human_q, tmp_path, q_reference):
    with pytest.raises(InputError, match="not a valid BAM"):
        AlignmentFile(human_q / "q.fa")
    with pytest.raises(MissingFileError):
        consensus(tmp_path / "absent.bam", q_reference, "q")
    (tmp_path / "empty.bam").touch()
    with pytest.raises(InputError, match="empty"):
        AlignmentFile(tmp_path / "empty.bam")
    with pytest.raises(InputError, match="outside"):
        consensus(human_q / NA12878_BAM, q_reference, "q", 12000, 13000)
