"""htslib's own messages, kept off the terminal: logged, and put into genoformer's one-line errors.

htslib (the C library under pysam) prints its warnings and errors straight to file descriptor 2, apart from the
exception pysam then raises, whose text is often a guess ("truncated file"). Inside ``htslib_messages`` fd 2
goes to a temporary file; when the block ends each line goes to the caller's logger: WARNING, but DEBUG for
``NOISE`` and when an exception ends the block (the caller's error carries htslib's reason, ``reason``).

A block costs 40-60 µs (a temporary file, ``dup`` and two ``dup2``): one per record would make reading a BAM
30 times slower. ``read_quietly`` reads ``BATCH`` records inside one block instead (0.4-0.7 µs more per BAM
record than pysam's 1.2-1.7 µs), and fd 2 is never held while the caller's code (its logging, progress bars) runs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import sys
import tempfile
from typing import Callable, Iterable, Iterator, TypeVar

# messages about an index genoformer builds or does not read
NOISE = ("Could not retrieve index file",)
BATCH = 256

_TAGGED = re.compile(r"\[([A-Z])::\w+\] ?(.*)")
Item = TypeVar("Item")


class HtslibMessages:
    """What htslib printed inside one ``htslib_messages`` block, readable during the block too."""

    def __init__(self, fd: int):
        self._fd: int | None = fd
        self._lines: list[str] = []

    @property
    def lines(self) -> list[str]:
        """The lines printed so far (all of them once the block has ended)."""
        if self._fd is not None:
            self._lines = os.pread(self._fd, os.fstat(self._fd).st_size, 0).decode(errors="replace").splitlines()
        return self._lines

    def end(self) -> list[str]:
        """All the lines, read a last time before the capture file closes."""
        lines = self.lines
        self._fd = None
        return lines

    def reason(self, err: BaseException) -> str:
        """htslib's first error message (without its ``[E::function]`` tag) or else ``err``'s text, on one line."""
        errors = (match[2] for match in map(_TAGGED.fullmatch, self.lines)
                  if match and match[1] == "E" and not is_noise(match[2]))
        return " ".join((next(errors, None) or str(err)).split())


def is_noise(message: str) -> bool:
    """True for an htslib message that only matters with ``--verbose`` (see ``NOISE``)."""
    return any(text in message for text in NOISE)


@contextlib.contextmanager
def htslib_messages(log: logging.Logger, source: object) -> Iterator[HtslibMessages]:
    """Capture what htslib prints inside the block and log it, each line prefixed with ``source`` (a file)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        messages = HtslibMessages(capture.fileno())
        failed = True
        try:
            yield messages
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            for line in messages.end():
                tagged = _TAGGED.fullmatch(line)
                text = f"htslib: {tagged[2]}" if tagged else line
                quiet = failed or is_noise(line) or (tagged is not None and tagged[1] not in "EW")
                log.log(logging.DEBUG if quiet else logging.WARNING, "%s: %s", source, text)


def read_quietly(items: Iterable[Item], log: logging.Logger, source: object,
                 error: Callable[[str, int], Exception], batch: int = BATCH) -> Iterator[Item]:
    """``items`` (a pysam iterator), read ``batch`` at a time inside ``htslib_messages``. An ``OSError`` or
    ``ValueError`` while reading raises ``error(reason, number)`` instead: htslib's reason and the 1-based
    ordinal of the item that could not be read."""
    items = iter(items)
    done = 0
    while True:
        chunk: list[Item] = []
        with htslib_messages(log, source) as messages:
            try:
                chunk.extend(itertools.islice(items, batch))
            except (OSError, ValueError) as err:
                raise error(messages.reason(err), done + len(chunk) + 1) from err
        if not chunk:
            return
        done += len(chunk)
        yield from chunk


def close_quietly(handle, log: logging.Logger, source: object) -> None:
    """Close a pysam file that was only read: after a read error htslib reports a failed close, which would hide
    that error; nothing was written, so it is ignored."""
    with contextlib.suppress(OSError), htslib_messages(log, source):
        handle.close()
