"""genoformer.io.text: the plain-or-gzip line reader shared by the BED and GFF3 readers."""

import gzip

import pytest

from genoformer.errors import InputError
from genoformer.io.text import text_lines


def test_plain_crlf_and_gzip_give_the_same_numbered_lines(resources, tmp_path):
    text = (resources / "athal_cp" / "NC_000932.1.gff3").read_text()
    expected = list(enumerate(text.splitlines(), start=1))
    crlf = tmp_path / "crlf.gff3"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    packed = tmp_path / "packed.gff3.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert len(expected) > 100 and "\t" in expected[4][1]
    assert list(text_lines(crlf, "GFF3")) == expected
    assert list(text_lines(packed, "GFF3")) == expected


def test_damaged_gzip_header_names_the_file_without_a_line(tmp_path):
    path = tmp_path / "header.bed.gz"
    path.write_bytes(b"\x1f\x8b\x07" + gzip.compress(b"chr1\t0\t10\n")[3:])  # compression method 7 does not exist
    with pytest.raises(InputError) as err:
        list(text_lines(path, "BED"))
    assert str(err.value) == f"{path}: cannot read BED: Unknown compression method"
