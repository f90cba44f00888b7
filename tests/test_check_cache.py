"""The workflow's slow DAG-time checks remembered between runs (genoformer.check_cache), on the bundled human VCF and
CRAM: a passing check is not read again while its files and settings stay the same, and is read again after any
change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pysam
import pytest
import yaml

from genoformer import check_cache, workflow_checks
from genoformer.errors import ConfigError, MismatchError
from genoformer.stage_options import stage_options

HUMAN_VCF = Path(__file__).resolve().parents[1] / "resources/human_chr22_q/q.vcf.gz"
TASK = {"label_field": "TYPE", "positive": ["snp"], "negative": ["del"]}  # 14 snp, 2 del


def settle() -> None:
    """Wait until files written now count as settled (older than check_cache.SETTLE_NS)."""
    time.sleep(check_cache.SETTLE_NS / 1e9 + 0.1)


def test_a_passing_label_check_is_reused_until_the_vcf_or_the_task_changes(tmp_path):
    vcf = tmp_path / "q.vcf"  # plain text, so that one label can be changed in place at the same size
    vcf.write_text(pysam.BGZFile(str(HUMAN_VCF)).read().decode())
    cache = tmp_path / "cache"
    reads = []

    def check(task):
        reads.append(task["vcf"])
        return workflow_checks.check_variant_labels(task, "config key variant_tasks.mine")

    def cached(**task):
        task = {"vcf": str(vcf), **TASK, **task}
        labels = {key: task[key] for key in TASK}
        return check_cache.cached_check("variant-labels", {"vcf": vcf}, labels, lambda: check(task), cache)

    settle()
    cold = cached()
    assert cold == {"del": 2, "snp": 14} and len(reads) == 1
    assert cached() == cold and len(reads) == 1  # warm: the same counts, the file not read
    (entry,) = (cache / "variant-labels").iterdir()
    assert json.loads(entry.read_text())["key"]["files"]["vcf"]["path"] == os.path.realpath(vcf)

    assert cached(positive=["del"], negative=["snp"]) == {"snp": 14, "del": 2} and len(reads) == 2  # other classes
    for _ in range(2):  # a failure is not stored: read, and reported in the same words, every time
        with pytest.raises(ConfigError, match=r"^config key variant_tasks.mine: .*q.vcf: no variant has the "
                                              r"positive label value\(s\) mnp in INFO field 'TYPE'"):
            cached(positive=["mnp"])
    assert len(reads) == 4

    entry.write_text('{"key": ')  # a torn or corrupt entry is ignored and replaced
    assert cached() == cold and len(reads) == 5
    assert json.loads(entry.read_text())["result"] == cold

    # One snp relabelled del in place: same size, and mtime set back to the old one; still read again (ctime).
    before = vcf.stat()
    text = vcf.read_text()
    vcf.write_text(text.replace("TYPE=snp", "TYPE=del", 1))
    os.utime(vcf, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert vcf.stat().st_size == before.st_size and vcf.stat().st_mtime_ns == before.st_mtime_ns
    assert cached() == {"del": 3, "snp": 13} and len(reads) == 6
    assert cached() == {"del": 3, "snp": 13} and len(reads) == 7  # just written: not stored until it settles
    settle()
    assert cached() == {"del": 3, "snp": 13} and len(reads) == 8
    assert cached() == {"del": 3, "snp": 13} and len(reads) == 8
    vcf.touch()
    assert cached() == {"del": 3, "snp": 13} and len(reads) == 9


def test_an_unindexed_vcf_contig_check_is_reused_until_the_vcf_or_the_reference_changes(tmp_path, human_q):
    """The contig check of a plain-text VCF (read whole: it has no index) on the human reference: stored once
    passed (its result None); read again after the VCF or the FASTA changes; a VCF now naming a contig the
    reference lacks fails, and keeps failing."""
    vcf, fasta = tmp_path / "q.vcf", tmp_path / "q.fa"
    vcf.write_text(pysam.BGZFile(str(HUMAN_VCF)).read().decode())
    fasta.write_bytes((human_q / "q.fa").read_bytes())
    reads = []

    def check():
        reads.append(vcf)
        return workflow_checks.check_vcf_on_reference(vcf, fasta, "samples.tsv: line 2 (sample x): vcf")

    def cached():
        return check_cache.cached_check("vcf-contigs", {"vcf": vcf, "fasta": fasta}, {}, check, tmp_path / "cache")

    settle()
    assert cached() is None and cached() is None and len(reads) == 1
    fasta.touch()
    assert cached() is None and len(reads) == 2
    vcf.write_text(vcf.read_text().replace("\nq\t", "\nchrQ\t", 1))
    settle()
    for _ in range(2):
        with pytest.raises(MismatchError, match=r"^samples.tsv: line 2 \(sample x\): vcf: VCF .*q.vcf has contig\(s\) "
                                                r"chrQ not in reference"):
            cached()
    assert len(reads) == 4


def test_a_crams_reference_md5s_are_hashed_once_and_a_mismatch_is_never_kept(tmp_path, human_q, monkeypatch):
    """The NA12878 CRAM (its @SQ M5 for q: ee5a...) on a copy of q.fa: the workflow's BAM check hashes q once, then
    takes its MD5 from the cache; a copy with two lines hard-masked (same name, length) fails the same way every
    time, though its MD5 is kept too (the header is compared on every run); the touched FASTA is hashed again."""
    import genoformer.io.bam as bam_module

    hashed = []
    real_md5 = bam_module.contig_md5

    def counted_md5(reference, contig):
        hashed.append((reference.path.name, contig))
        return real_md5(reference, contig)

    monkeypatch.setattr(bam_module, "contig_md5", counted_md5)
    cram = tmp_path / "sample.cram"
    cram.write_bytes((human_q / "NA12878.chr22.tiny.cram").read_bytes())
    fasta, masked = tmp_path / "q.fa", tmp_path / "masked.fa"
    fasta.write_bytes((human_q / "q.fa").read_bytes())
    lines = fasta.read_text().splitlines(keepends=True)
    masked.write_text("".join("N" * (len(line) - 1) + "\n" if number in (40, 41) else line
                              for number, line in enumerate(lines)))
    tokenize = stage_options({"tokenize": {"extra": ""}}, "tokenize")

    def check(reference):
        bam_module._MD5_CACHE.clear()  # a new snakemake process
        workflow_checks.check_bam_on_reference(cram, reference, "samples.tsv: line 2 (sample x): bam", tokenize,
                                               tmp_path / "cache")

    settle()
    check(fasta)
    check(fasta)
    assert hashed == [("q.fa", "q")]
    (entry,) = (tmp_path / "cache/reference-md5").iterdir()
    assert json.loads(entry.read_text())["result"] == {"q": "ee5a2decc990ba0220728d924ddd4dba"}
    for _ in range(2):
        with pytest.raises(MismatchError, match=r"^samples.tsv: line 2 \(sample x\): bam: .*sample.cram: contig q: "
                                                r"MD5 ee5a2decc990ba0220728d924ddd4dba in the CRAM header \(@SQ M5\) "
                                                r"but [0-9a-f]{32} in reference .*masked.fa"):
            check(masked)
    assert hashed == [("q.fa", "q"), ("masked.fa", "q")]
    fasta.touch()
    settle()
    check(fasta)
    assert hashed == [("q.fa", "q"), ("masked.fa", "q"), ("q.fa", "q")]


def test_the_workflow_checks_use_the_cache_only_when_given_one(tmp_path, monkeypatch):
    """check_inputs with cache_dir (as the workflow calls it) leaves one label entry for the bundled config plus a
    variant task on the bundled human VCF, and one contig entry per VCF (the sample's and the task's); without
    it, none."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the bundled config's paths are relative to the repository
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    config["variant_tasks"] = {"mine": {"reference": "human_q", "vcf": str(HUMAN_VCF), **TASK}}
    samples = workflow_checks.read_samples(config["samples"])
    workflow_checks.check_inputs(config, samples, config["samples"])
    assert not (tmp_path / "cache").exists()
    workflow_checks.check_inputs(config, samples, config["samples"], cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache/variant-labels").iterdir()
    assert json.loads(entry.read_text())["result"] == {"del": 2, "snp": 14}
    vcfs = {row["vcf"] for row in samples if "vcf" in row} | {str(HUMAN_VCF)}
    contig_entries = [json.loads(path.read_text()) for path in (tmp_path / "cache/vcf-contigs").iterdir()]
    assert {entry["key"]["files"]["vcf"]["path"] for entry in contig_entries} == {os.path.realpath(v) for v in vcfs}
