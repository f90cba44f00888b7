"""Line-oriented text files (BED, GFF3), plain or gzip-compressed (bgzip is gzip), told apart by the magic bytes.

Lines are decoded as UTF-8 one at a time, so an error names the exact line; damage to the file (a corrupt or
truncated gzip stream, a read failure) becomes one :class:`~genoformer.errors.InputError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from genoformer.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path):
    """Open ``path`` for reading bytes, decompressing it when it starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def text_lines(path: Path, kind: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its line ending) for each line of the ``kind`` file ``path``."""
    number = 0
    try:
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise InputError(f"{path}: {kind} line {number} is not UTF-8 text (byte 0x{raw[err.start]:02x} "
                                     f"at column {err.start + 1})") from None
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as err:
        where = f" after line {number}" if number else ""
        problem = f"corrupt gzip data ({err})" if isinstance(err, zlib.error) else err
        raise InputError(f"{path}: cannot read {kind}{where}: {problem}") from err
