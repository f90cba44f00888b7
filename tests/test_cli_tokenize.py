"""`genoformer tokenize` end to end on the bundled real files: outputs and bad input.

Runs as a subprocess (``python -m genoformer``) where the process matters: outputs, a kill mid-run, and bad input
found mid-stream. The other bad-input cases call ``genoformer.cli.main`` in-process, the same entry point
without the few seconds each process spends importing every subcommand's libraries.
"""

import gzip
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pysam
import pytest

from genoformer.cli import main
from genoformer.io.fasta import Reference
from genoformer.tokenize.dataset import SPLITS, Manifest, TokenDataset
from genoformer.tokenize.encode import decode, span_bp
from genoformer.tokenize.vocab import KmerVocab
from io_helpers import consensus, cut_at_block


def genoformer(*args, cwd, quiet=False):
    """Run ``python -m genoformer [-q] tokenize ARGS``; the CompletedProcess (text stdout/stderr)."""
    return subprocess.run([sys.executable, "-m", "genoformer", *(["-q"] if quiet else []), "tokenize",
                           *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def genoformer_in_process(*args, cwd, capfd, monkeypatch):
    """``genoformer tokenize ARGS`` through ``genoformer.cli.main``: a CompletedProcess-like result whose stderr
    is everything written to file descriptor 2 (Python and C libraries alike)."""
    monkeypatch.chdir(cwd)
    capfd.readouterr()
    code = main(["tokenize", *map(str, args)])
    captured = capfd.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def expect_one_line_error(result, *must_name):
    """Exit code 2 and exactly one stderr line, the error, naming each of ``must_name``."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("genoformer tokenize: error: ")
    for name in must_name:
        assert str(name) in lines[0], lines[0]


@pytest.fixture
def cli(tmp_path, capfd, monkeypatch):
    """Run ``genoformer tokenize`` in-process in tmp_path."""
    return lambda *args: genoformer_in_process(*args, cwd=tmp_path, capfd=capfd, monkeypatch=monkeypatch)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fai_lengths(path):
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in path.read_text().splitlines()}


def expected_decode(sequence, k, stride):
    """Bases covered by the tokens of ``sequence``; N where no N-free k-mer covers a base."""
    bases = ["N"] * span_bp((len(sequence) - k) // stride + 1 if len(sequence) >= k else 0, k, stride)
    for start in range(0, len(sequence) - k + 1, stride):
        if "N" not in sequence[start:start + k]:
            bases[start:start + k] = sequence[start:start + k]
    return "".join(bases)


# --------------------------------------------------------------------------------------------- outputs


@pytest.mark.slow
def test_chloroplast_dataset_matches_the_reference(tmp_path, chloroplast_fasta):
    result = genoformer("--fasta", chloroplast_fasta, "--k", 6, "--stride", 1, "--window", 1024, "--out", "ds",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "ds"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["source"] == {"path": str(chloroplast_fasta.resolve()), "sha256": sha256(chloroplast_fasta),
                                  "kind": "fasta"}
    fai = fai_lengths(chloroplast_fasta.with_name(chloroplast_fasta.name + ".fai"))
    assert {entry["name"]: entry["length_bp"] for entry in manifest["contigs"]} == fai
    with Reference(chloroplast_fasta) as reference:
        for entry in manifest["contigs"]:
            shard = np.load(root / entry["shard"], mmap_mode="r")
            assert shard.dtype == np.uint16 and len(shard) == entry["n_tokens"] == entry["length_bp"] - 5
            assert decode(shard, KmerVocab(6), 1) == reference.fetch(entry["contig"]).upper()
    split = manifest["split"]
    assert split["method"] == "blocks" and split["gap"] >= manifest["window"]
    intervals = manifest["intervals"]
    for before, after in zip(intervals, intervals[1:]):
        assert after["start"] - before["end"] >= split["gap"]
    for name in SPLITS:
        assert manifest["windows"][name] == len(TokenDataset(root, name)) >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp folder left
    # snakemake deletes the declared manifest before rerunning the job, not the shards: the rerun replaces it all
    (root / "manifest.json").unlink()
    again = genoformer("--fasta", chloroplast_fasta, "--k", 6, "--stride", 1, "--window", 1024, "--out", "ds",
                       cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((root / "manifest.json").read_text()) == manifest


@pytest.mark.slow
def test_bam_consensus_over_merged_regions(tmp_path, human_q):
    bed = tmp_path / "regions.bed"
    bed.write_text("q\t100\t3000\tfirst\nq\t2500\t5000\tsecond\nq\t8000\t12356\tthird\n")
    fasta, bam = human_q / "q.fa", human_q / "NA12878.chr22.tiny.bam"
    result = genoformer("--fasta", fasta, "--bam", bam, "--regions", bed, "--k", 4, "--stride", 2, "--window",
                        256, "--edge", "drop", "--block", 2, "--out", "ds", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = Manifest.load(tmp_path / "ds")
    assert manifest["source"]["kind"] == "bam-consensus" and manifest["source"]["sha256"] == sha256(bam)
    assert manifest["source"]["reference"]["sha256"] == sha256(fasta)
    assert manifest["source"]["regions"]["sha256"] == sha256(bed)
    assert [(e["name"], e["start"], e["length_bp"]) for e in manifest["contigs"]] == [
        ("q:101-5000", 100, 4900), ("q:8001-12356", 8000, 4356)]
    with Reference(fasta) as reference:
        for index, entry in enumerate(manifest["contigs"]):
            sample = consensus(bam, reference, "q", entry["start"], entry["start"] + entry["length_bp"])
            assert decode(manifest.shard(index), manifest.vocab, 2) == expected_decode(sample, 4, 2)
    assert sum(manifest["windows"].values()) == sum(len(manifest.windows(name)) for name in SPLITS)


def test_contig_selection_on_a_multi_contig_fasta(tmp_path, cli, resources, caplog):
    caplog.set_level("INFO", logger="genoformer.tokenize.dataset")
    records = []
    for path in [resources / "human_chr22_q" / "q.fa", resources / "sarscov2" / "NC_045512.2.fasta",
                 resources / "athal_cp" / "NC_000932.1.fa"]:
        records.append(path.read_text())
    fasta = tmp_path / "three.fa"
    fasta.write_text("".join(records))
    result = cli("--fasta", fasta, "--window", 1024, "--contigs", "NC_000932.1,q", "--out", "ds")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [entry["name"] for entry in manifest["contigs"]] == ["q", "NC_000932.1"]  # reference order
    assert manifest["split"]["method"] == "blocks"  # 2 contigs: too few for a contig split
    held = [sum(1 for iv in manifest["intervals"] if iv["split"] == name and iv["windows"]) for name in SPLITS]
    assert f"split by blocks of 8 windows: {held[0]} train, {held[1]} val, {held[2]} test blocks with windows" \
        in caplog.text  # the held-out blocks that evaluation's intervals resample, said before pretraining
    result = cli("--fasta", fasta, "--window", 1024, "--out", "all")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    assert manifest["split"]["method"] == "contig"
    assert "split by whole sequence: 1 train, 1 val, 1 test sequences with windows" in caplog.text
    assert {iv["contig"]: iv["split"] for iv in manifest["intervals"]} == {
        "NC_000932.1": "train", "NC_045512.2": "val", "q": "test"}


def test_unknown_contig_in_contigs(tmp_path, cli, human_q):
    expect_one_line_error(cli("--fasta", human_q / "q.fa", "--contigs", "q,chrX", "--out", "ds"), "chrX",
                          human_q / "q.fa")
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_killed_run_leaves_no_dataset(tmp_path, cdiph_fasta, sarscov2):
    """SIGKILL while the 2.46 Mbp genome is being written: DIR never appears, only a hidden .DIR.*.tmp, which the
    next run writing DIR removes."""
    for _ in range(5):  # if the run wins the race and finishes before the kill, try again
        for leftover in tmp_path.iterdir():
            shutil.rmtree(leftover)
        process = subprocess.Popen([sys.executable, "-m", "genoformer", "tokenize", "--fasta", str(cdiph_fasta),
                                    "--k", "8", "--softmask", "--window", "4096", "--out", "ds"],
                                   cwd=tmp_path, stderr=subprocess.DEVNULL)
        while process.poll() is None and not list(tmp_path.glob(".ds.*.tmp")):
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        if process.wait() == -signal.SIGKILL:
            break
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "ds").exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ds.") and leftovers[0].endswith(".tmp")
    result = genoformer("--fasta", sarscov2 / "NC_045512.2.fasta", "--k", "1", "--window", "64", "--out", "ds",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"removed {tmp_path / leftovers[0]}, a temporary of ds left by process {process.pid}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []


# --------------------------------------------------------------------------------------------- bad input


def test_empty_fasta(tmp_path, cli):
    (tmp_path / "empty.fa").write_bytes(b"")
    expect_one_line_error(cli("--fasta", "empty.fa", "--out", "ds"), "empty.fa")
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_non_iupac_character_names_contig_and_position(tmp_path, resources):
    """Found while streaming, after the output folder was started: still one line (-q hides the INFO log
    of indexing the new FASTA) and nothing left behind."""
    sequence = (resources / "sarscov2" / "NC_045512.2.fasta").read_text().split("\n", 1)[1].replace("\n", "")
    bad = sequence[:12_344] + "X" + sequence[12_345:]
    (tmp_path / "bad.fa").write_text(">NC_045512.2\n" + "\n".join(bad[i:i + 70] for i in range(0, len(bad), 70)))
    result = genoformer("--fasta", "bad.fa", "--window", 512, "--out", "ds", cwd=tmp_path, quiet=True)
    expect_one_line_error(result, "bad.fa", "NC_045512.2", "12345")
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds*"))


def test_duplicate_contig_names(tmp_path, cli, resources):
    q = (resources / "human_chr22_q" / "q.fa").read_text()
    (tmp_path / "dup.fa").write_text(q + q)
    expect_one_line_error(cli("--fasta", "dup.fa", "--out", "ds"), "dup.fa", "'q'")
    assert not (tmp_path / "ds").exists()


def test_plain_gzip_fasta(tmp_path, cli, chloroplast_fasta):
    (tmp_path / "cp.fa.gz").write_bytes(gzip.compress(chloroplast_fasta.read_bytes()))
    result = cli("--fasta", "cp.fa.gz", "--out", "ds")
    expect_one_line_error(result, "cp.fa.gz", "bgzip")
    assert not (tmp_path / "ds").exists()


def test_a_thinly_covered_bam_names_the_n_windows_and_the_flags_that_help(tmp_path, cli, sarscov2):
    """The bundled SARS-CoV-2 reads cover few bases 3 deep: nearly every window is mostly N. The error says so
    and names the flags that help: lowering --block only where enough windows pass for every split."""
    args = ("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", sarscov2 / "SRR11728627.sorted.bam", "--k", 1,
            "--window", 512, "--out", "ds")
    result = cli(*args, "--block", 4)
    expect_one_line_error(result, "of 59 windows hold more than 10% N", "raise --max-n-fraction",
                          "lower --min-depth")
    assert "--block" not in result.stderr  # 1 window passes: no block size gives each of 3 splits one
    assert not (tmp_path / "ds").exists()
    # the sample keeps its reference's split, so its test blocks need a window at whatever N content they have:
    # 0.95 leaves the test split empty, which is an error naming the filter and, as 22 windows pass, the block
    expect_one_line_error(cli(*args, "--block", 4, "--max-n-fraction", 0.95),
                          "the test split, which follows the reference's", "has no window of this sample",
                          "raise --max-n-fraction", "or lower --block (4 windows")
    assert cli(*args, "--block", 2, "--max-n-fraction", 0.95).returncode == 0
    assert cli(*args, "--block", 4, "--max-n-fraction", 1.0).returncode == 0
    # too few blocks whatever the N filter does: the advice is the block size, not the N filter
    sequence = (sarscov2 / "NC_045512.2.fasta").read_text().split("\n", 1)[1].replace("\n", "")
    (tmp_path / "n.fa").write_text(">cov\n" + sequence[:5000] + "N" * 200 + sequence[5200:] + "\n")
    expect_one_line_error(cli("--fasta", "n.fa", "--k", 1, "--window", 64, "--block", 300, "--out", "ds2"),
                          "only 2 block(s) of 300 windows", "need one each; lower --block or --window")


def test_a_bam_without_a_read_that_counts_is_named_as_such(tmp_path, cli, human_q, sarscov2):
    """The NA12878 reads' header alone, the reads under a MAPQ minimum above theirs (60 at most), and a contig
    they do not cover: the consensus would be all N, which the N-window error blamed on --min-depth."""
    with pysam.AlignmentFile(str(human_q / "NA12878.chr22.tiny.bam")) as reads, \
            pysam.AlignmentFile(str(tmp_path / "header.bam"), "wb", template=reads):
        assert max(read.mapping_quality for read in reads) == 60
    (tmp_path / "both.fa").write_text((human_q / "q.fa").read_text() + (sarscov2 / "NC_045512.2.fasta").read_text())
    bam = human_q / "NA12878.chr22.tiny.bam"
    for args, named in [(("--bam", "header.bam"), "header.bam: no read on q is mapped with MAPQ >= 20"),
                        (("--bam", bam, "--min-mapq", 61), f"{bam}: no read on q is mapped with MAPQ >= 61"),
                        (("--bam", bam, "--fasta", "both.fa", "--contigs", "NC_045512.2"), "no read on NC_045512.2"),
                        (("--bam", bam, "--fasta", "both.fa", "--min-mapq", 61),
                         "no read on the 2 sequences tokenized (q, NC_045512.2)")]:
        fasta = () if "--fasta" in args else ("--fasta", human_q / "q.fa")
        result = cli(*fasta, *args, "--window", 512, "--out", "ds")
        expect_one_line_error(result, named, "the consensus would be all N", "lower --min-mapq")
        assert "--min-depth" not in result.stderr and not (tmp_path / "ds").exists()


def test_truncated_bam(tmp_path, cli, sarscov2):
    bam = sarscov2 / "SRR11728627.sorted.bam"
    data = bam.read_bytes()
    (tmp_path / "cut.bam").write_bytes(data[:len(data) * 2 // 3])
    shutil.copy(f"{bam}.bai", tmp_path / "cut.bam.bai")
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", "cut.bam", "--window", 512, "--out", "ds")
    expect_one_line_error(result, "cut.bam", "truncated")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("k, stride", [(6, 1), (6, 4)])
def test_a_bam_cut_at_a_block_boundary_fails_with_its_read_counts(tmp_path, cli, human_q, monkeypatch, k, stride):
    """The NA12878 BAM, indexed, cut where a BGZF block starts and given an end-of-file block, its index kept (see
    io_helpers.cut_at_block): tokenizing it wrote a dataset from half the reads (with --max-n-fraction 1, whatever
    the depth); now one line names the BAM, the contig and both counts, and nothing is written. The contig is read
    in chunks of 1,000 tokens here (as a chromosome is in chunks of 4 Mi), overlapping by k - stride bases, and
    with --stride 4 its last 2 bases hold no k-mer: the reads are counted all the same. The whole file tokenizes."""
    monkeypatch.setattr("genoformer.tokenize.dataset.CHUNK_TOKENS", 1000)
    shutil.copy(human_q / "NA12878.chr22.tiny.bam", tmp_path / "whole.bam")
    pysam.index(str(tmp_path / "whole.bam"))
    cut_at_block(tmp_path / "whole.bam", tmp_path / "cut.bam")
    with pysam.AlignmentFile(str(tmp_path / "cut.bam")) as reads:
        kept = sum(1 for _ in reads.fetch("q"))
    options = ("--fasta", human_q / "q.fa", "--k", k, "--stride", stride, "--window", 128, "--max-n-fraction", 1)
    expect_one_line_error(cli(*options, "--bam", "cut.bam", "--out", "ds"),
                          f"cut.bam: contig q: {kept} reads in the file but 3333 in its index: cut short (copy it "
                          "again) or replaced after indexing (then re-index it")
    assert not (tmp_path / "ds").exists()
    result = cli(*options, "--bam", "whole.bam", "--out", "ds")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ds" / "manifest.json").exists()


def test_sorted_bam_without_index_gets_one(tmp_path, cli, sarscov2):
    shutil.copy(sarscov2 / "SRR11728627.sorted.bam", tmp_path / "sorted.bam")
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", "sorted.bam", "--window", 512,
                 "--max-n-fraction", 1, "--out", "ds")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sorted.bam.bai").exists() and (tmp_path / "ds" / "manifest.json").exists()


def test_bam_without_index_that_cannot_be_indexed(tmp_path, cli, sarscov2):
    """Sorted by name, as its header says; or in name order under a header that claims coordinate order (htslib
    finds it when indexing)."""
    pysam.sort("-n", "-o", str(tmp_path / "byname.bam"), str(sarscov2 / "SRR11728627.sorted.bam"))
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", "byname.bam", "--window", 512, "--out", "ds")
    assert not (tmp_path / "ds").exists()
    expect_one_line_error(result, "byname.bam", "cannot index", "(@HD SO:queryname)", "samtools sort -o")
    with pysam.AlignmentFile(str(tmp_path / "byname.bam")) as byname, \
            pysam.AlignmentFile(str(tmp_path / "claims.bam"), "wb",
                                header={**byname.header.to_dict(), "HD": {"VN": "1.6", "SO": "coordinate"}}) as out:
        for read in byname:
            out.write(read)
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", "claims.bam", "--window", 512, "--out", "ds")
    expect_one_line_error(result, "claims.bam", "cannot index (is it coordinate-sorted?", "Unsorted positions")
    assert not (tmp_path / "ds").exists()


def test_bgzipped_sam_is_a_one_line_error(tmp_path, cli, sarscov2):
    """htslib opens a bgzipped SAM as a BAM would be; pysam then refused to read it by region with a traceback."""
    pysam.view("-h", "-o", str(tmp_path / "reads.sam"), str(sarscov2 / "SRR11728627.sorted.bam"), catch_stdout=False)
    pysam.tabix_compress(str(tmp_path / "reads.sam"), str(tmp_path / "reads.sam.gz"))
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", "reads.sam.gz", "--window", 512, "--out", "ds")
    expect_one_line_error(result, "reads.sam.gz: a SAM text file", "samtools sort -o reads.sorted.bam reads.sam.gz")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("line, problem", [
    ("q\t500\t500\n", "start 500 is not before end 500"),
    ("q\t100\t20000\n", "end 20000 is past the end of contig q"),
    ("chr22\t100\t200\n", "contig 'chr22' is not in reference"),
])
def test_bad_bed(tmp_path, cli, human_q, line, problem):
    (tmp_path / "r.bed").write_text("q\t10\t50\n" + line)
    result = cli("--fasta", human_q / "q.fa", "--regions", "r.bed", "--out", "ds")
    expect_one_line_error(result, "r.bed", "line 2", problem)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("k", [0, 9])
def test_k_out_of_range(tmp_path, cli, chloroplast_fasta, k):
    result = cli("--fasta", chloroplast_fasta, "--k", k, "--out", "ds")
    expect_one_line_error(result, f"k={k}")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("flag, value, allowed", [
    ("--min-depth", -1, "at least 0"),
    ("--min-mapq", -5, "from 0 to 255"),
    ("--min-mapq", 256, "from 0 to 255"),
])
def test_consensus_thresholds_out_of_range(tmp_path, cli, sarscov2, flag, value, allowed):
    result = cli("--fasta", sarscov2 / "NC_045512.2.fasta", "--bam", sarscov2 / "SRR11728627.sorted.bam",
                 "--window", 512, flag, value, "--out", "ds")
    expect_one_line_error(result, f"{flag} {value}", allowed)
    assert not (tmp_path / "ds").exists()
