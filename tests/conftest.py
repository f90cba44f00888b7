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
