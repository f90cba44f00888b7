"""Shared test fixtures: paths to the bundled real data in resources/."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"


@pytest.fixture(scope="session")
def resources() -> Path:
    """The bundled real data folder (see resources/README.md)."""
    return RESOURCES


@pytest.fixture(scope="session")
def cdiph_fasta() -> Path:
    """C. diphtheriae chromosome, bgzipped FASTA, 2.46 Mbp, one contig NZ_LN831026.1."""
    return RESOURCES / "cdiph" / "NZ_LN831026.1.fa.gz"


@pytest.fixture(scope="session")
def chloroplast_fasta() -> Path:
    """A. thaliana chloroplast, plain FASTA, 154,478 bp, contig NC_000932.1."""
    return RESOURCES / "athal_cp" / "NC_000932.1.fa"


@pytest.fixture(scope="session")
def human_q() -> Path:
    """Folder with human chr22 fragment q.fa, NA12878 reads (BAM/CRAM) and VCFs on contig q."""
    return RESOURCES / "human_chr22_q"


@pytest.fixture(scope="session")
def sarscov2() -> Path:
    """Folder with SARS-CoV-2 reference NC_045512.2.fasta and an indexed BAM of real reads."""
    return RESOURCES / "sarscov2"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Two test workers share two cores: one intra-op thread each avoids oversubscription (10x slowdowns)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def allele_type_vcf(tmp_path, human_q):
    """Writes (with pysam) the bundled freebayes calls (16 records on contig q: 14 snp, 2 del) with an INFO field
    declared Number=R, ALLELE_TYPE: 'ref' for the REF, then each ALT's TYPE (Number=A). The first record, q:186
    T>C, is made multi-allelic with a second ALT, TA (an insertion); its ALLELE_TYPE and TYPE are given (by default
    ref,snp,ins and snp,ins; pysam refuses a count that does not fit the ALTs, so they are written as text).
    Returns the VCF's path."""
    import pysam

    def write(allele_types=("ref", "snp", "ins"), types=("snp", "ins")):
        path = tmp_path / "allele_type.vcf"
        with pysam.VariantFile(str(human_q / "q.vcf.gz")) as calls:
            header = calls.header.copy()
            header.add_line('##INFO=<ID=ALLELE_TYPE,Number=R,Type=String,Description="Type of each allele, REF '
                            'first: ref, then the TYPE of each ALT">')
            with pysam.VariantFile(str(path), "w", header=header) as out:
                for number, record in enumerate(calls, start=1):
                    record.translate(header)
                    record.info["ALLELE_TYPE"] = ("ref", *record.info["TYPE"])
                    if number == 1:
                        record.alts = ("C", "TA")
                        record.info["ALLELE_TYPE"], record.info["TYPE"] = ("ref", "snp", "x"), ("snp", "x")
                    out.write(record)
        text = path.read_text()
        first = text.index("\nq\t186\t") + 1
        line = text[first:text.index("\n", first)]
        edited = line.replace("ALLELE_TYPE=ref,snp,x", f"ALLELE_TYPE={','.join(allele_types)}").replace(
            ";TYPE=snp,x", f";TYPE={','.join(types)}")
        path.write_text(text.replace(line, edited))
        return path

    return write
