"""VCF indexes past tabix's 512 Mbp: a contig longer than 2^29 - 1 bp gets a .csi index, from every command
that writes a VCF and from the workflow, and a .tbi asked for there is refused by name before any work.

The long contig is real chloroplast sequence placed after 2^29 N bases (a 2 MB bgzipped FASTA, made once)."""

import subprocess
import sys

import pysam
import pytest

from genoformer.errors import ConfigError, InputError
from genoformer.io.fasta import Reference
from genoformer.io.vcf_index import TBI_MAX_CONTIG, index_path
from genoformer.workflow_checks import vcf_index_kind
from test_score_variants import checkpoint, write_vcf  # noqa: F401  (checkpoint is a fixture)

LONG = "chr1A"
CHLOROPLAST = "NC_000932.1"
OFFSET = 2**29  # the chloroplast sequence starts here (0-based) on the long contig


@pytest.fixture(scope="module")
def long_fasta(tmp_path_factory, chloroplast_fasta):
    """A bgzipped, indexed FASTA with one contig of 2^29 N + the chloroplast genome (537 Mbp)."""
    folder = tmp_path_factory.mktemp("long")
    with Reference(chloroplast_fasta) as chloroplast:
        tail = chloroplast.fetch(CHLOROPLAST, 0, chloroplast.contigs[CHLOROPLAST]).upper()
    plain = folder / "long.fa"
    with open(plain, "w") as handle:
        handle.write(f">{LONG}\n")
        block = ("N" * 64 + "\n") * 8192
        for _ in range(OFFSET // (64 * 8192)):
            handle.write(block)
        handle.writelines(tail[i:i + 64] + "\n" for i in range(0, len(tail), 64))
    pysam.tabix_compress(str(plain), str(folder / "long.fa.gz"))
    plain.unlink()
    pysam.faidx(str(folder / "long.fa.gz"))
    return folder / "long.fa.gz"


@pytest.fixture(scope="module")
def long_vcf(long_fasta, tmp_path_factory):
    """Four SNVs in the chloroplast part of the long contig, REF as in the reference."""
    with Reference(long_fasta) as reference:
        contigs = reference.contigs
        positions = [OFFSET + 3000, OFFSET + 3400, OFFSET + 60_000, OFFSET + 60_500]
        records = []
        for pos in positions:
            ref = reference.fetch(LONG, pos - 1, pos).upper()
            records.append((LONG, pos, ".", ref, "A" if ref != "A" else "C", ".", ".", "DP=5"))
    return write_vcf(tmp_path_factory.mktemp("vcf") / "long.vcf", records, contigs), positions


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genoformer", "-q", *map(str, args)], capture_output=True,
                          text=True)


def test_index_path_picks_tbi_until_a_contig_is_too_long_for_it(tmp_path):
    short, long = {"chr1": TBI_MAX_CONTIG}, {"chr1": 1000, "chr1A": TBI_MAX_CONTIG + 1}
    assert index_path("x.vcf.gz", short).name == "x.vcf.gz.tbi"
    assert index_path("x.vcf.gz", long).name == "x.vcf.gz.csi"
    assert index_path("x.vcf.gz", short, "csi").name == "x.vcf.gz.csi"
    assert index_path("x.vcf.gz", short, "tbi").name == "x.vcf.gz.tbi"
    with pytest.raises(InputError, match="x.vcf.gz: contig chr1A is 536,870,912 bp, longer than the 536,870,911 bp"):
        index_path("x.vcf.gz", long, "tbi")


@pytest.mark.slow
def test_scores_on_a_contig_over_512_mbp_get_a_csi_index_and_merge(long_fasta, long_vcf, checkpoint, tmp_path):
    vcf, positions = long_vcf
    shards = []
    for shard in ("0/2", "1/2"):
        out = tmp_path / f"shard{shard[0]}.vcf.gz"
        result = cli("score-variants", "--reference", long_fasta, "--vcf", vcf, "--checkpoint", checkpoint,
                     "--window", 256, "--no-embeddings", "--shard", shard, "--out", out)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"{out.name}.csi").exists() and not (tmp_path / f"{out.name}.tbi").exists()
        shards.append(out)
    merged = tmp_path / "merged.vcf.gz"
    result = cli("merge-vcf", "--vcfs", *shards, "--out", merged)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "merged.vcf.gz.csi").exists() and not (tmp_path / "merged.vcf.gz.tbi").exists()
    with pysam.VariantFile(str(merged)) as scored:  # region queries past 2^29 work through the .csi
        assert [r.pos for r in scored.fetch(LONG, positions[2] - 1, positions[3])] == positions[2:]
        assert all(r.info["GF_LLR"] == r.info["GF_LLR"] for r in scored.fetch(LONG))  # scored, not NaN


@pytest.mark.slow
def test_a_tbi_asked_for_on_a_contig_over_512_mbp_is_refused_before_scoring(long_fasta, long_vcf, checkpoint,
                                                                            tmp_path):
    out = tmp_path / "scored.vcf.gz"
    result = cli("score-variants", "--reference", long_fasta, "--vcf", long_vcf[0], "--checkpoint", checkpoint,
                 "--window", 256, "--index", "tbi", "--out", out)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"contig {LONG} is 537,025,390 bp, longer than the 536,870,911 bp a tabix (.tbi) index" in result.stderr
    assert "--index csi" in result.stderr and list(tmp_path.iterdir()) == []


def test_the_workflow_indexes_every_vcf_with_csi_when_a_reference_needs_it(long_fasta, chloroplast_fasta):
    config = {"references": {"athal_cp": {"fasta": str(chloroplast_fasta)}}}
    assert vcf_index_kind(config) == "tbi"
    assert vcf_index_kind({**config, "vcf_index": "csi"}) == "csi"
    config["references"]["wheat"] = {"fasta": str(long_fasta)}
    assert vcf_index_kind(config) == "csi"
    with pytest.raises(ConfigError, match=f"config key vcf_index: tbi, but contig {LONG} of references.wheat.fasta"):
        vcf_index_kind({**config, "vcf_index": "tbi"})


@pytest.mark.parametrize("first, second", [("csi", "tbi"), ("tbi", "csi")])
def test_rewriting_a_vcf_with_the_other_index_kind_removes_the_stale_index(tmp_path, chloroplast_fasta, first,
                                                                           second):
    """htslib reads a .csi before a .tbi: a .csi left from an earlier run next to a VCF rewritten with a .tbi
    (config vcf_index changed, or --index) is read at stale offsets, and region queries fail or go wrong."""
    from genoformer.tasks.vcf_writer import write_sites_vcf
    from genoformer.vcf_shards import merge_vcfs

    with Reference(chloroplast_fasta) as reference:
        def records(positions):
            return [dict(contig=CHLOROPLAST, pos=pos, ref=reference.fetch(CHLOROPLAST, pos - 1, pos).upper(),
                         alt="T" if reference.fetch(CHLOROPLAST, pos - 1, pos).upper() != "T" else "G")
                    for pos in positions]

        out = tmp_path / "x.vcf.gz"
        write_sites_vcf(out, reference, records(range(100, 100_000, 100)), info_fields=[], index_kind=first)
        write_sites_vcf(out, reference, records(range(50_000, 50_100, 10)), info_fields=[], index_kind=second)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x.vcf.gz", f"x.vcf.gz.{second}"]
    with pysam.VariantFile(str(out)) as vcf:
        assert [r.pos for r in vcf.fetch(CHLOROPLAST, 50_000, 50_050)] == [50_010, 50_020, 50_030, 50_040, 50_050]
    merged = tmp_path / "merged.vcf.gz"
    merge_vcfs([out], merged, first)
    merge_vcfs([out], merged, second)
    assert not (tmp_path / f"merged.vcf.gz.{first}").exists() and (tmp_path / f"merged.vcf.gz.{second}").exists()


def test_classify_variants_predict_takes_index_and_refuses_a_tbi_before_any_work(tmp_path, long_fasta, capsys):
    """classify-variants --predict writes a VCF too: it takes --index like the other commands, and a .tbi too
    small for a contig is refused before the variants are read or the model loaded (the inputs do not exist, so
    any later step would fail otherwise)."""
    from genoformer.cli import main

    out = tmp_path / "out"
    code = main(["classify-variants", "--reference", str(long_fasta), "--vcf", str(tmp_path / "no.vcf.gz"),
                 "--label-field", "X", "--positive", "a", "--checkpoint", str(tmp_path / "no-run"), "--out",
                 str(out), "--predict", str(tmp_path / "new.vcf.gz"), "--index", "tbi"])
    assert code == 2
    assert f"predicted.vcf.gz: contig {LONG} is 537,025,390 bp, longer than the 536,870,911 bp a tabix (.tbi)" in \
        capsys.readouterr().err
    assert not out.exists()
