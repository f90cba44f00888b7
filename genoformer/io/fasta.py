"""Reference genomes: FASTA or bgzipped FASTA through pyfaidx, as base codes plus a soft-mask track.

Base codes are ``numpy.uint8``: ``A=0, C=1, G=2, T=3, N=4`` (``BASES``). Every IUPAC ambiguity code
(R Y S W K M B D H V N) maps to 4; ``U`` is read as ``T``. Lowercase (soft-masked) bases get the same code and
set the soft-mask track. Any other character is an error naming the file, contig and 1-based position.

pyfaidx needs an index next to the FASTA (``F.fai``, and ``F.gzi`` for bgzip). A missing or stale index is
built on open (written atomically, so parallel jobs never read half an index); when the folder is not
writable that is an error telling the user how to make the index. An existing index is checked cheaply against
the file (record bounds, and the header and first and last sequence line of the first and last record), so an
index left by another FASTA is an error, not wrong sequence.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import hashlib
import logging
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pyfaidx
from Bio import bgzf

from genoformer.atomic import atomic_path
from genoformer.errors import InputError, MismatchError, MissingFileError

log = logging.getLogger(__name__)

BASES = "ACGTN"
N_CODE = 4
INVALID = 255

_IUPAC_AMBIGUOUS = "RYSWKMBDHVN"


def _code_table() -> np.ndarray:
    """256-entry lookup: byte -> base code, ``INVALID`` for bytes that are not IUPAC nucleotides."""
    table = np.full(256, INVALID, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = table[ord(base.lower())] = code
    table[ord("U")] = table[ord("u")] = 3
    for base in _IUPAC_AMBIGUOUS:
        table[ord(base)] = table[ord(base.lower())] = N_CODE
    return table


CODE_OF_BYTE = _code_table()
_CODE_TABLE_BYTES = CODE_OF_BYTE.tobytes()
BASE_OF_CODE = np.frombuffer(BASES.encode(), dtype=np.uint8)
COMPLEMENT_CODE = np.array([3, 2, 1, 0, 4], dtype=np.uint8)

_COUNT_CHUNK = 1 << 22  # bases read at a time by Reference.base_counts
# bytes base_counts rejects: those codes() rejects, less the line ends that fetch() drops
_REJECTED = (CODE_OF_BYTE == INVALID) & ~np.isin(np.arange(256), [ord("\n"), ord("\r")])

_GZIP_MAGIC = b"\x1f\x8b"
# The empty block every BGZF file ends with (SAM/BAM specification, section 4.1.2): its absence means truncation.
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BGZF_MAX_BLOCK = 1 << 16  # a BGZF block holds at most 64 KiB, compressed or not
_BGZF_DAMAGED = "not a valid bgzip FASTA (truncated or corrupt block)"
# what Bio.bgzf raises on a truncated or corrupt block (ValueError too, for a bad block header)
_BGZF_READ_ERRORS = (ValueError, EOFError, RuntimeError, struct.error, zlib.error)
_HEADER_WINDOW = 1 << 16  # bytes read back before a record's sequence to find its header line


def _codes_of_bytes(raw: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Map raw sequence bytes to (codes, softmask, index of the first invalid byte or -1).

    ``bytes.translate`` through the 256-entry table runs at memory speed, with no Python loop per base.
    """
    translated = bytearray(raw).translate(_CODE_TABLE_BYTES)
    codes = np.frombuffer(translated, dtype=np.uint8)
    softmask = np.frombuffer(raw, dtype=np.uint8) >= ord("a")
    return codes, softmask, translated.find(INVALID)


def _byte_counts(raw: bytes) -> np.ndarray:
    """How often each byte value (``[256]`` int64) occurs in ``raw``. Counts byte pairs (uint16) and folds
    them: half the elements, about 3 times as fast as ``np.bincount`` of the single bytes."""
    data = np.frombuffer(raw, dtype=np.uint8)
    even = data.size - data.size % 2
    pairs = np.bincount(data[:even].view(np.uint16), minlength=1 << 16).reshape(256, 256)
    return pairs.sum(axis=0) + pairs.sum(axis=1) + np.bincount(data[even:], minlength=256)


def encode_bases(sequence: str) -> np.ndarray:
    """Base codes (uint8, A=0 C=1 G=2 T=3 N=4) of a DNA string; IUPAC ambiguity codes become N.

    Raises ``InputError`` for a character that is not an IUPAC nucleotide code.
    """
    codes, _, bad = _codes_of_bytes(sequence.encode("latin-1", errors="replace"))
    if bad >= 0:
        raise InputError(f"sequence {_preview(sequence)}: character {sequence[bad]!r} at position {bad + 1} "
                         "is not an IUPAC nucleotide code")
    return codes


def decode_bases(codes: np.ndarray) -> str:
    """The uppercase ``ACGTN`` string of an array of base codes (values 0..4)."""
    codes = np.asarray(codes)
    if codes.size and int(codes.max()) > N_CODE:
        raise ValueError(f"base codes must be 0..4, got {int(codes.max())}")
    return BASE_OF_CODE[codes].tobytes().decode("ascii")


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of base codes (A<->T, C<->G, N stays N), as a new uint8 array."""
    codes = np.asarray(codes)
    if codes.size and int(codes.max()) > N_CODE:
        raise ValueError(f"base codes must be 0..4, got {int(codes.max())}")
    return COMPLEMENT_CODE[codes[::-1]]


def _preview(sequence: str, width: int = 20) -> str:
    return repr(sequence if len(sequence) <= width else sequence[:width] + "...")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def is_plain_gzip(path: Path) -> bool:
    """True for a gzip file that is not BGZF (no 'BC' extra subfield in the first member's header)."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != _GZIP_MAGIC:
        return False
    has_extra = len(head) >= 4 and head[3] & 0x04
    return not (has_extra and head[12:14] == b"BC")


def _first_non_ascii(path: Path, sequence_only: bool = False) -> str | None:
    """Where the first non-ASCII byte of a (possibly bgzipped) text file is, for an error message; None if all
    bytes are ASCII. ``sequence_only``: in sequence lines only (pyfaidx reads a UTF-8 header without complaint,
    so such a header is not why it found a line of inconsistent length)."""
    with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.isascii() and not (sequence_only and line.startswith(b">")):
                column, byte = next((col, b) for col, b in enumerate(line, start=1) if b > 127)
                return f"line {number} column {column}: non-ASCII byte 0x{byte:02x} (FASTA must be ASCII text)"
    return None


def _cr_only_lines(path: Path) -> bool:
    """True when the start of a (possibly bgzipped) text file ends its lines with CR alone (classic Mac OS)."""
    with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as handle:
        head = handle.read(65536)
    return b"\r" in head and b"\n" not in head


def _pyfaidx_reason(err: Exception) -> str:
    """pyfaidx's indexing error as one line, its 0-based line numbers made 1-based where it names one."""
    text = " ".join(str(err).split())
    unnamed = re.fullmatch(r"Bad sequence name (.*) at line (\d+)\.?", text)
    if unnamed:
        return f"line {int(unnamed[2]) + 1}: header {unnamed[1]!r} has no sequence name"
    return text


def _has_bgzf_eof(path: Path) -> bool:
    """True when the file ends with the empty BGZF block that bgzip writes last (its absence means truncation)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - len(_BGZF_EOF)))
        return handle.read() == _BGZF_EOF


def _is_stale(index: Path, data: Path) -> bool:
    return not index.exists() or index.stat().st_mtime < data.stat().st_mtime


class Reference:
    """A reference genome (FASTA or bgzipped FASTA), validated on open.

    ``contigs`` maps contig name -> length in file order. Coordinates are 0-based half-open. Use as a context
    manager (or call ``close``) to release the file handle.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._sha256: str | None = None
        self._check_file()
        self._bgzf = _is_gzip(self.path)
        self._ensure_index()
        self.contigs = self._read_contigs()
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=False,
                                        build_index=False, rebuild=False, duplicate_action="first")
        except struct.error as err:  # only the .gzi is read with struct
            raise InputError(f"{self._gzi}: index is damaged; delete it to rebuild") from err
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError, OSError) as err:
            raise InputError(f"{self.path}: cannot read FASTA: {err}") from err
        try:
            self._check_index()
        except Exception:
            self._fasta.close()
            raise

    def _check_file(self) -> None:
        if not self.path.exists():
            raise MissingFileError(f"{self.path}: FASTA file not found")
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a regular file")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: FASTA file is empty")
        if is_plain_gzip(self.path):
            plain, bgz = self.path.with_suffix(""), self.path.with_suffix(".bgz")
            raise InputError(f"{self.path}: plain-gzip FASTA cannot be indexed; recompress it with bgzip: "
                             f"`zcat {self.path} | bgzip > {bgz}` (without htslib: `zcat {self.path} > {plain}` "
                             f"then `python -c \"import pysam; pysam.tabix_compress('{plain}', '{bgz}')\"`)")
        if _is_gzip(self.path) and not _has_bgzf_eof(self.path):
            raise InputError(f"{self.path}: {_BGZF_DAMAGED}")

    @property
    def _fai(self) -> Path:
        return Path(f"{self.path}.fai")

    @property
    def _gzi(self) -> Path:
        return Path(f"{self.path}.gzi")

    def _ensure_index(self) -> None:
        """Build ``.fai`` (and ``.gzi`` for bgzip) when missing or older than the FASTA, atomically."""
        stale = _is_stale(self._fai, self.path) or (self._bgzf and _is_stale(self._gzi, self.path))
        if not stale:
            return
        if not os.access(self.path.parent, os.W_OK):
            needed = f"{self._fai} and {self._gzi}" if self._bgzf else str(self._fai)
            raise MissingFileError(f"{self.path}: index {needed} is missing or older than the FASTA and folder "
                                   f"{self.path.parent} is not writable; run `samtools faidx {self.path}` where "
                                   "you can write, or copy the FASTA to a writable folder")
        log.info("indexing %s", self.path)
        with atomic_path(self._fai) as tmp_fai, \
                (atomic_path(self._gzi) if self._bgzf else contextlib.nullcontext()) as tmp_gzi:
            tmp_fai.unlink()  # pyfaidx would read an existing (empty) file as the index
            if tmp_gzi is not None:
                tmp_gzi.unlink()
            try:
                pyfaidx.Faidx(str(self.path), indexname=str(tmp_fai), gzi_indexname=tmp_gzi and str(tmp_gzi),
                              duplicate_action="first").close()
            except UnicodeDecodeError as err:
                raise InputError(f"{self.path}: not a valid FASTA: {_first_non_ascii(self.path) or 'non-ASCII text'}") \
                    from err
            except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError, OSError,
                    EOFError) as err:
                if self._bgzf and isinstance(err, _BGZF_READ_ERRORS):
                    raise InputError(f"{self.path}: {_BGZF_DAMAGED}") from err
                # a multi-byte character makes pyfaidx see an inconsistent line length: name the character
                reason = (isinstance(err, pyfaidx.FastaIndexingError) and _first_non_ascii(self.path, True)) \
                    or _pyfaidx_reason(err)
                raise InputError(f"{self.path}: not a valid FASTA: {reason}") from err
            except _BGZF_READ_ERRORS as err:  # RuntimeError, struct.error, zlib.error: only Bio.bgzf raises them
                raise InputError(f"{self.path}: {_BGZF_DAMAGED}") from err

    def _read_contigs(self) -> dict[str, int]:
        """Contig name -> length from the ``.fai``, checking names are unique and some sequence exists."""
        contigs: dict[str, int] = {}
        for record, line in enumerate(self._fai.read_text().splitlines(), start=1):
            fields = line.split("\t")
            if len(fields) < 5 or not fields[1].isdigit():
                raise InputError(f"{self._fai} line {record}: not a FASTA index line; delete the file to have it "
                                 "rebuilt")
            name, length = fields[0], int(fields[1])
            if name in contigs:
                first = list(contigs).index(name) + 1
                raise InputError(f"{self.path}: duplicate contig name '{name}' (records {first} and {record})")
            contigs[name] = length
        if not contigs or not any(contigs.values()):
            hint = (" (its lines end in a carriage return alone: convert them with `tr '\\r' '\\n'`)"
                    if _cr_only_lines(self.path) else "")
            raise InputError(f"{self.path}: FASTA has no sequence{hint}")
        return contigs

    def _check_index(self) -> None:
        """Raise an error naming the index when ``.gzi``/``.fai`` do not describe this file (e.g. copied from
        another FASTA). Cheap: block and record bounds, then a few short reads at the first and last record."""
        faidx = self._fasta.faidx
        if self._bgzf:
            self._check_gzi(faidx.gzi_index)
            size = faidx.gzi_index[-1].ustart + _BGZF_MAX_BLOCK  # an upper bound of the uncompressed size
        else:
            size = self.path.stat().st_size
        records = list(faidx.index.items())
        for name, record in records:
            if record.rlen and not 0 < record.lenc <= record.lenb:
                self._index_mismatch(name, f"line width {record.lenc} bases in {record.lenb} bytes is impossible")
            end = record.bend - (record.lenb - record.lenc)  # the last line end may be missing
            if end > size:
                self._index_mismatch(name, f"its sequence ends at byte {end}, past the end of the file")
        for name, record in dict(records[:1] + records[-1:]).items():  # the first and the last record
            self._check_record(name, record)

    def _check_gzi(self, blocks: list) -> None:
        """Raise when the ``.gzi`` block list cannot be this file's: blocks out of order, too big, or past its end."""
        size = self.path.stat().st_size
        for before, after in zip(blocks, blocks[1:]):
            if not (0 < after.cstart - before.cstart <= _BGZF_MAX_BLOCK and 0 <= after.ustart - before.ustart
                    <= _BGZF_MAX_BLOCK and after.cstart < size):
                raise InputError(f"{self._gzi}: index is damaged; delete it to rebuild")

    def _check_record(self, name: str, record) -> None:
        """Check that the line before a record's sequence is its header and its first and last lines are
        sequence lines of the indexed width."""
        start = max(0, record.offset - _HEADER_WINDOW)
        before = self._read(start, record.offset - start)
        if not before.endswith(b"\n"):
            if record.rlen or self._read(record.offset, 1):  # else an empty last record without a final line end
                self._index_mismatch(name, f"no line ends at byte {record.offset}, where its sequence starts")
            before += b"\n"
        header = before[:-1].rstrip(b"\r").rpartition(b"\n")
        if header[1] or start == 0:  # the header's start is in the window
            words = header[2].decode("latin-1")[1:].split()
            if not header[2].startswith(b">") or (words or [""])[0] != name:
                self._index_mismatch(name, f"the line before its sequence is not its header '>{name}'")
        if not record.rlen:
            return
        last = -(-record.rlen // record.lenc) - 1  # 0-based number of the last sequence line
        for line in {0, last}:
            bases = min(record.lenc, record.rlen - line * record.lenc)
            text = self._read(record.offset + line * record.lenb, bases + record.lenb - record.lenc)
            line_end = text[bases:]
            if len(text) < bases or any(mark in text[:bases] for mark in (b"\n", b"\r", b">")) \
                    or line_end.strip(b"\r\n"):
                self._index_mismatch(name, f"sequence line {line + 1} is not {bases} bases and a line end")

    def _index_mismatch(self, name: str, problem: str) -> None:
        raise MismatchError(f"{self._fai} does not match {self.path} (record '{name}': {problem}); "
                            "delete it to rebuild")

    def _read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` raw bytes at (uncompressed) byte ``offset`` of the FASTA; fewer past its end."""
        faidx = self._fasta.faidx
        with faidx.lock:
            if not self._bgzf:
                faidx.file.seek(offset)
                return faidx.file.read(size)
            blocks = faidx.gzi_index
            block = blocks[bisect.bisect_right([b.ustart for b in blocks], offset) - 1]
            try:
                faidx.file.seek(bgzf.make_virtual_offset(block.cstart, 0))
                skip = offset - block.ustart
                if len(faidx.file.read(skip)) < skip:  # the offset is past the end of the data
                    return b""
                return faidx.file.read(size)
            except _BGZF_READ_ERRORS as err:
                raise InputError(f"{self.path}: {_BGZF_DAMAGED}") from err

    def check_contig(self, name: str, source: str | os.PathLike | None = None) -> None:
        """Raise ``MismatchError`` if ``name`` is not a contig of this reference (``source``: who asked)."""
        if name not in self.contigs:
            where = f"{source}: " if source is not None else ""
            known = ", ".join(list(self.contigs)[:10]) + (", ..." if len(self.contigs) > 10 else "")
            raise MismatchError(f"{where}contig '{name}' is not in reference {self.path} (its contigs: {known})")

    def _check_region(self, contig: str, start: int, end: int) -> None:
        self.check_contig(contig)
        length = self.contigs[contig]
        if not 0 <= start <= end <= length:
            raise InputError(f"{self.path}: region {contig}:{start}-{end} (0-based half-open) is outside "
                             f"contig {contig} of length {length}")

    def fetch(self, contig: str, start: int = 0, end: int | None = None) -> str:
        """The sequence of ``contig[start:end]`` (0-based half-open, whole contig by default), original case."""
        end = self.contigs.get(contig, 0) if end is None else end
        self._check_region(contig, start, end)
        if start == end:
            return ""
        try:
            return self._fasta.faidx.fetch(contig, start + 1, end)
        except UnicodeDecodeError as err:
            raise InputError(f"{self.path}: contig {contig} has a non-ASCII byte near position "
                             f"{start + err.start + 1}") from err
        except _BGZF_READ_ERRORS as err:
            if not self._bgzf:
                raise
            raise InputError(f"{self.path}: {_BGZF_DAMAGED}") from err

    def codes(self, contig: str, start: int = 0, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Base codes (uint8) and soft-mask (bool, True where lowercase) of ``contig[start:end]``.

        Raises ``InputError`` naming the file, contig and 1-based position of a non-IUPAC character.
        """
        sequence = self.fetch(contig, start, end)
        codes, softmask, bad = _codes_of_bytes(sequence.encode("latin-1", errors="replace"))
        if bad >= 0:
            raise InputError(f"{self.path}: contig {contig} position {start + bad + 1}: character "
                             f"{sequence[bad]!r} is not an IUPAC nucleotide code")
        return codes, softmask

    def base_counts(self, contig: str) -> np.ndarray:
        """How many A, C, G and T (``[4]`` int64; either case, ``U`` as ``T``) ``contig`` holds; ambiguity codes
        (N included) are not counted. Counts the raw bytes of the file (line ends skipped, no decoding): on
        20 Mbp of real genomes 17 times as fast as counting ``codes`` (8 times bgzipped, where decompression
        dominates). A character ``codes`` rejects raises its error."""
        self.check_contig(contig)
        record = self._fasta.faidx.index[contig]
        counts = np.zeros(4, dtype=np.int64)
        for start in range(0, record.rlen, _COUNT_CHUNK):
            end = min(start + _COUNT_CHUNK, record.rlen)
            first, last = (record.offset + base // record.lenc * record.lenb + base % record.lenc
                           for base in (start, end))
            by_byte = _byte_counts(self._read(first, last - first))
            if by_byte[_REJECTED].any():
                self.codes(contig, start, end)  # raises, naming the first bad character
                raise InputError(f"{self.path}: contig {contig} holds a byte that is not an IUPAC nucleotide code "
                                 f"between positions {start + 1} and {end}")
            counts += [by_byte[CODE_OF_BYTE == code].sum() for code in range(4)]
        return counts

    def sha256(self) -> str:
        """Hex SHA-256 of the FASTA file's bytes (as stored, compressed or not)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def close(self) -> None:
        """Release the file handle."""
        self._fasta.close()

    def __enter__(self) -> "Reference":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Reference({str(self.path)!r}, {len(self.contigs)} contigs)"
