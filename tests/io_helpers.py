"""Helpers shared by the reader tests (no tests here)."""

import os
import shutil
import subprocess
import sys

import pytest


def run_without_write_permission(code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a child process that obeys file permissions.

    Root ignores a read-only folder, so when the tests run as root the child drops CAP_DAC_OVERRIDE (with
    util-linux ``setpriv``) and then cannot write where the permission bits forbid it.
    """
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a folder cannot be made unwritable")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def open_and_report(opener: str) -> str:
    """Child-process code that runs ``opener`` and prints the GenoformerError it raises, if any."""
    return (
        "from genoformer.errors import GenoformerError\n"
        "try:\n"
        f"    {opener}\n"
        "    print('OK')\n"
        "except GenoformerError as err:\n"
        "    print(type(err).__name__, err)\n"
    )


BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")  # SAM specification 4.1.2


def bgzf_block_starts(data: bytes) -> list[int]:
    """Where each BGZF block of ``data`` starts: a block's size less 1 (BSIZE) is in the ``BC`` subfield of its
    gzip extra field (SAM specification 4.1)."""
    starts, offset = [], 0
    while offset < len(data):
        assert data[offset:offset + 4] == b"\x1f\x8b\x08\x04", f"no BGZF block at byte {offset}"
        extra_length = int.from_bytes(data[offset + 10:offset + 12], "little")
        extra, at, size = data[offset + 12:offset + 12 + extra_length], 0, None
        while at < extra_length:
            if extra[at:at + 2] == b"BC":
                size = int.from_bytes(extra[at + 4:at + 6], "little") + 1
            at += 4 + int.from_bytes(extra[at + 2:at + 4], "little")
        starts.append(offset)
        offset += size
    assert offset == len(data)
    return starts


def cut_at_block(bam, cut) -> None:
    """Write ``bam`` to ``cut`` up to where its middle BGZF block starts, then the 28-byte end-of-file block, and
    copy ``bam``'s .bai next to it: a valid shorter BAM (htslib sees no fault) with the index of the whole one."""
    data = open(bam, "rb").read()
    assert data.endswith(BGZF_EOF)
    starts = bgzf_block_starts(data)
    with open(cut, "wb") as handle:
        handle.write(data[:starts[len(starts) // 2]] + BGZF_EOF)
    shutil.copy(f"{bam}.bai", f"{cut}.bai")


def consensus(path, reference, contig, start=0, end=None, **options):
    """The consensus of the BAM/CRAM at ``path`` over ``contig[start:end]``, the file opened for this call only."""
    from genoformer.io.bam import AlignmentFile

    with AlignmentFile(path, reference) as alignments:
        return alignments.consensus(contig, start, end, **options)
