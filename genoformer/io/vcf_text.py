"""The data lines of a text VCF, read next to pysam's records and checked where htslib misreads them quietly.

htslib reads QUAL with ``atof`` and numeric INFO values with ``strtol``/``strtod``, without a word: QUAL ``abc``
becomes 0 and ``1e5x`` 100000, ``DP=3e1`` (Type=Integer) becomes 3 and ``DP=39.7`` 39, and a value that does not
start like a number (``DP=abc``, ``AF=x``, ``DP=``) is dropped; a genoformer output would carry the wrong value.
A data line with fewer than 8 columns (spaces for tabs, a cut line, an empty line) ends htslib's read with a
guess ("truncated file", "unable to parse next record"). :class:`TextRecords` reads the same file's lines:

- a bad QUAL or too few columns is damage: an ``InputError`` naming the record, its line and what is wrong;
- an INFO value that does not fit its header's Type is most often a header that misdeclares a field (GIAB's
  truth VCFs declare ``allalts``, which holds alleles, ``Type=Integer``). It is a warning, once per field, that
  names the first record and says the field's values are dropped or cut in genoformer's outputs; the scores do
  not read INFO. Refusing the file would refuse such releases as they are. A field the caller reads (``strict``:
  a classifier's label field) is an error instead.

BCF is typed: it needs none of this.

The check is one regular-expression match per line, about 17 µs (pysam's own parse takes about 4.5), and the file
is decompressed a second time. With the REF checks against the reference, reading takes 1.05-1.2 times as long as
without it (freebayes's 16 calls with 45 INFO fields each, repeated to 32,000 and to 200,000 records: 1.17x), and
1.3 times for 16,000 lines of 60 of 400 numeric fields, gnomAD-like (the keys are a tree of their bytes, not tried
one by one). Only a line that fails the match is split to say what is wrong.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
import zlib
from pathlib import Path

import pysam

from genoformer.errors import InputError

log = logging.getLogger(__name__)

COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
CHUNK = 1 << 20  # bytes of lines read at once
UNREADABLE = (OSError, EOFError, zlib.error)  # a corrupt or cut block: pysam, reading it too, says so

_FLOAT = (rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
          rb"|[-+]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])")  # VCF 4.3, section 1.6.1
_QUAL = re.compile(rb"\.|" + _FLOAT)
_VALUES = {kind: rb"(?:%s|\.)(?:,(?:%s|\.))*" % (number, number)  # a list of numbers, any of them '.'
           for kind, number in (("Integer", rb"[-+]?[0-9]+"), ("Float", _FLOAT))}


def _keys(header: pysam.VariantHeader, kind: str, tolerated: frozenset[str]) -> bytes:
    """The INFO keys declared of Type ``kind``, less the ``tolerated``, as one alternation (never matching when
    there is none)."""
    return _alternation([key.encode() for key in header.info
                         if header.info[key].type == kind and key not in tolerated]) or b"(?!)"


def _alternation(keys: list[bytes]) -> bytes:
    """A pattern matching exactly the ``keys``, branching on their bytes like a tree: Python's regular
    expressions try the branches of ``A|B|...`` one by one, which for the hundreds of numeric INFO fields of a
    gnomAD-like header made a read 2.6 times as long as without the check (1.3 times with the tree)."""
    by_first: dict[bytes, list[bytes]] = {}
    for key in sorted(set(keys)):
        by_first.setdefault(key[:1], []).append(key[1:])
    branches = []
    for first, rests in by_first.items():
        if len(rests) == 1:
            branches.append(re.escape(first + rests[0]))
        else:
            tails = _alternation([rest for rest in rests if rest])
            branches.append(re.escape(first) + b"(?:%s)%s" % (tails, b"?" if b"" in rests else b""))
    return b"|".join(branches)


def _valid_line(header: pysam.VariantHeader, tolerated: frozenset[str] = frozenset()) -> re.Pattern:
    """A pattern that a data line fully matches when it has 8 columns at least, a QUAL that is a number or ``.``
    and numbers in its Integer and Float INFO fields (except the ``tolerated`` ones, already warned about): one
    match per line, at C speed."""
    integer, floats = _keys(header, "Integer", tolerated), _keys(header, "Float", tolerated)
    numeric = integer + b"|" + floats
    field = rb"(?:(?:%s)=%s|(?:%s)=%s|(?!(?:%s)=)[^;=\t\r\n]+(?:=[^;\t\r\n]*)?)" % (
        integer, _VALUES["Integer"], floats, _VALUES["Float"], numeric)
    info = rb"(?:%s)?(?:;(?:%s)?)*" % (field, field)  # '.' is a field; empty ones (';;', a last ';') htslib skips
    return re.compile(rb"(?:[^\t\n]*\t){5}(?:%s)\t[^\t\n]*\t(?:%s)(?:\t[^\n]*)?\r?\n?" % (_QUAL.pattern, info))


class TextRecords:
    """The data lines of the text VCF ``path`` (plain or bgzipped, as pysam says), checked in step with its
    records: ``check_through(n)`` raises the error of the first bad line once it is among the first n. A misread
    value of an INFO field in ``strict`` is an error, of another a warning (see the module docstring)."""

    def __init__(self, vcf: pysam.VariantFile, path: Path, strict: tuple[str, ...] = ()):
        self.path = path
        self._strict = set(strict)
        self._header = vcf.header
        self._tolerated: frozenset[str] = frozenset()  # INFO fields already warned about
        self._valid = _valid_line(vcf.header).fullmatch
        self._numeric = {key.encode(): info.type for key, info in vcf.header.info.items()
                         if info.type in _VALUES}
        self._handle = gzip.open(path) if vcf.compression == "BGZF" else open(path, "rb")
        self._header_lines = 0  # lines before the first data line, as htslib reads the header
        with contextlib.suppress(*UNREADABLE):  # then _read_chunk finds no line either
            for line in self._handle:
                self._header_lines += 1
                if _ends_header(line):
                    break
        self._read = 0
        self._problem: tuple[int, InputError] | None = None

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def check_through(self, number: int) -> None:
        """Raise ``InputError`` when one of the first ``number`` data lines (1-based) is bad: the first of them."""
        while self._read < number and self._problem is None and self._read_chunk():
            pass
        if self._problem is not None and self._problem[0] <= number:
            raise self._problem[1]

    def _read_chunk(self) -> bool:
        """Read and check the next ``CHUNK`` bytes of lines; False at the end of what can be read."""
        try:
            lines = self._handle.readlines(CHUNK)
        except UNREADABLE:
            return False
        for number, line in enumerate(lines, start=self._read + 1):
            if not self._valid(line):
                message = self._what_is_wrong(line.rstrip(b"\r\n"), number)
                if message:
                    self._problem = (number, InputError(self._where(number) + message))
                    break
        self._read += len(lines)
        return bool(lines)

    def _where(self, number: int) -> str:
        """The start of a message about data line ``number``: ``PATH record N (line L``."""
        return f"{self.path} record {number} (line {self._header_lines + number}"

    def _what_is_wrong(self, line: bytes, number: int) -> str | None:
        """The error of a data line, after where it is (``), 5 columns...`` or ``, q:186): QUAL...``), or None;
        an INFO value that does not fit its declared Type is warned about instead, once per field."""
        fields = line.split(b"\t", 8)
        if len(fields) < len(COLUMNS):
            return f"): {_too_few(line, len(fields))}"
        where = f", {_text(fields[0])}:{_text(fields[1])}): "
        if not _QUAL.fullmatch(fields[5]):
            return f"{where}QUAL '{_text(fields[5])}' is not a number"
        for item in fields[7].split(b";"):
            key, has_value, value = item.partition(b"=")
            kind, name = self._numeric.get(key), key.decode(errors="replace")
            if kind and has_value and name not in self._tolerated and not re.fullmatch(_VALUES[kind], value):
                problem = (f"INFO {name}='{_text(value)}' is not {'an' if kind == 'Integer' else 'a'} {kind} "
                           "as its header declares")
                if name in self._strict:
                    return where + problem
                log.warning("%s%s%s: htslib drops or cuts such values, so genoformer's outputs carry %s wrong or "
                            "not at all (warned once per field)", self._where(number), where, problem, name)
                self._tolerated |= {name}
                self._valid = _valid_line(self._header, self._tolerated).fullmatch
        return None


def _ends_header(line: bytes) -> bool:
    """Whether htslib's header ends with ``line``: the first of 2 characters or more not starting ``##`` (the
    ``#CHROM`` line); it skips shorter lines (blank ones) among the ``##`` lines."""
    line = line.rstrip(b"\r\n")
    return len(line) >= 2 and not line.startswith(b"##")


def _too_few(line: bytes, count: int) -> str:
    """What is wrong with a data line of ``count`` (fewer than 8) tab-separated columns."""
    needed = f"a VCF data line needs at least 8 columns ({' '.join(COLUMNS)})"
    if not line.strip():
        return f"empty line; {needed}"
    spaces = "; are the columns separated by spaces instead of tabs?" if len(line.split()) >= len(COLUMNS) else ""
    return f"{count} column{'s' if count > 1 else ''}, {needed}{spaces}"


def _text(raw: bytes, limit: int = 40) -> str:
    """``raw`` for a message: decoded, cut to ``limit`` characters."""
    text = raw.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."
