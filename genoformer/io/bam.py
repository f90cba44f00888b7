"""Aligned reads from BAM/CRAM through pysam: filtered reads, and a sample consensus on reference coordinates.

An index (``.bai``/``.csi`` or ``.crai``) is required; when it is missing and the folder is writable it is built
(atomically), else the error names the index expected. What can have no index is an error on open, also where none
is built: SAM text (plain or bgzipped), and, when the index is missing, a BAM whose ``@HD`` says it is grouped by
read name. A CRAM needs the reference it was compressed against: where its ``@SQ`` lines carry ``M5`` tags, each
contig is checked against the reference's MD5 before its first read. A file without its end-of-file marker (BGZF
block, or CRAM container: cut short by a failed copy) or that breaks while reading is an ``InputError`` with
htslib's reason, never a partial result; so is a BAM whose whole-contig consensus met fewer reads than its index
lists for that contig (cut at a block boundary and given a new end-of-file marker). The BAM's contigs (names and
lengths) must be in the reference; a reference contig the BAM's header lacks holds no reads (its consensus is all
N). What htslib prints goes to this module's logger (see ``genoformer.io.htslib``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam
from tqdm import tqdm

from genoformer.atomic import atomic_path
from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference, decode_bases
from genoformer.io.htslib import close_quietly, htslib_messages, read_quietly

log = logging.getLogger(__name__)

# SAM flag bits
UNMAP, SECONDARY, QCFAIL, DUP, SUPPLEMENTARY = 0x4, 0x100, 0x200, 0x400, 0x800
DEFAULT_SKIP_FLAGS = UNMAP | SECONDARY | SUPPLEMENTARY | DUP | QCFAIL

# CIGAR operations
_DELETION = 2
_CONSUMES_REFERENCE = (0, 2, 3, 7, 8)  # M D N = X

CONSENSUS_CHUNK = 1_000_000
MD5_CHUNK = 1 << 22

# The container every CRAM ends with, by major version (CRAM specification, section 9): its absence means truncation
# (htslib only warns, and reads the containers before a cut as the whole file). Like htslib, byte 8 is compared
# masked with 0x0F (early writers differ there).
_CRAM_EOF = {2: bytes.fromhex("0b000000ffffffff0fe0454f460000000001000001000606010001000100"),
             3: bytes.fromhex("0f000000ffffffff0fe0454f4600000000010005bdd94f0001000606010001000100ee63014b")}
# htslib's message for a BGZF block that the file ends inside of
_SHORT_BLOCK = re.compile(r"expected (\d+) bytes; hread returned (\d+)")
# reference file, its size and mtime, contig -> MD5 of the upper-cased sequence: a consensus per region hashes
# a contig once, not once per region
_MD5_CACHE: dict[tuple[str, int, int, str], str] = {}


@dataclass(frozen=True)
class ReadFilter:
    """Which reads count: mapping quality at least ``min_mapq`` and none of the ``skip_flags`` bits set."""

    min_mapq: int = 20
    skip_flags: int = DEFAULT_SKIP_FLAGS

    def passes(self, read: pysam.AlignedSegment) -> bool:
        """True when ``read`` passes the filter."""
        return not read.flag & self.skip_flags and read.mapping_quality >= self.min_mapq


class AlignmentFile:
    """An indexed BAM or CRAM, validated on open; use as a context manager (or call ``close``)."""

    def __init__(self, path: str | os.PathLike, reference: Reference | None = None, *, build_index: bool = True):
        """Open and validate ``path`` (decoded against ``reference`` when a CRAM, whose contigs it must match);
        a missing index is built next to it unless ``build_index`` is False (a check that reads no region)."""
        self.path = Path(path)
        self.reference = reference
        if not self.path.is_file():
            raise MissingFileError(f"{self.path}: alignment file not found")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: alignment file is empty")
        self.is_cram = _magic(self.path) == b"CRAM"
        if self.is_cram and not _has_cram_eof(self.path):
            raise InputError(f"{self.path}: file is truncated (no CRAM end-of-file container); copy or create it "
                             "again")
        if self.is_cram and reference is None:
            raise InputError(f"{self.path}: a CRAM can only be decoded with the reference FASTA it was made "
                             "against; pass the reference")
        self._file = self._open()
        try:
            self._check_indexable()
        except InputError:
            self._file.close()
            raise
        if build_index and not self._file.has_index():
            self._file.close()
            self._build_index()
            self._file = self._open()
        if reference is not None:
            self._check_contigs(reference)
        # a CRAM's contig -> its @SQ M5 tag, until checked against the reference
        self._unchecked_md5 = {line["SN"]: line["M5"].lower() for line in self._file.header.to_dict().get("SQ", [])
                               if self.is_cram and "M5" in line}
        # contig -> reads base_counts met there from its start up to _counted_to[contig], ranges read without a gap
        self.reads_met: Counter[str] = Counter()
        self._counted_to: dict[str, int] = {}

    def _open(self) -> pysam.AlignmentFile:
        reference_filename = str(self.reference.path) if self.is_cram else None
        with htslib_messages(log, self.path) as messages:
            try:
                return pysam.AlignmentFile(str(self.path), "rc" if self.is_cram else "rb",
                                           reference_filename=reference_filename)
            except (ValueError, OSError) as err:
                if "EOF marker" in str(err):
                    raise InputError(f"{self.path}: file is truncated (no BGZF end-of-file marker); copy or "
                                     "create it again") from err
                raise InputError(f"{self.path}: not a valid {'CRAM' if self.is_cram else 'BAM'}: "
                                 f"{messages.reason(err)}") from err

    def _check_indexable(self) -> None:
        """``InputError`` for a file that can have no index, found on open (so a check that builds none finds it
        too): SAM text, plain or bgzipped, which pysam cannot read by region; and, when the index is missing,
        a BAM whose header says it is sorted by read name."""
        if self._file.is_sam:
            raise InputError(f"{self.path}: a SAM text file, which cannot be read by region; convert it to a "
                             f"sorted BAM: `samtools sort -o {_sorted_name(self.path)} {self.path}`")
        header = self._file.header.to_dict().get("HD", {})
        if not self._file.has_index() and (header.get("SO") == "queryname" or header.get("GO") == "query"):
            order = f"SO:{header['SO']}" if header.get("SO") == "queryname" else f"GO:{header['GO']}"
            raise InputError(f"{self.path}: cannot index: grouped by read name (@HD {order}), not sorted by "
                             f"position; `samtools sort -o {_sorted_name(self.path)} {self.path}` and index that")

    @property
    def _index_name(self) -> Path:
        return Path(f"{self.path}.{'crai' if self.is_cram else 'bai'}")

    def _build_index(self) -> None:
        if not os.access(self.path.parent, os.W_OK):
            raise MissingFileError(f"{self.path}: index {self._index_name} not found and folder {self.path.parent} "
                                   f"is not writable; create it with `samtools index {self.path}`")
        if not self.is_cram and _magic(self.path)[:2] != b"\x1f\x8b":  # htslib reads it, but cannot index it
            raise InputError(f"{self.path}: a BAM without BGZF compression, which cannot be indexed; convert it to "
                             f"a sorted BAM: `samtools sort -o {_sorted_name(self.path)} {self.path}`")
        log.info("indexing %s", self.path)
        with htslib_messages(log, self.path) as messages:
            try:
                with atomic_path(self._index_name) as tmp:
                    tmp.unlink()  # let samtools create it, with the usual permissions
                    pysam.index("-o", str(tmp), str(self.path))
            except pysam.SamtoolsError as err:
                reason = messages.reason(err)
                raise InputError(f"{self.path}: cannot index{_index_hint(reason)}: {reason}") from err

    def _check_contigs(self, reference: Reference) -> None:
        """``MismatchError`` listing the BAM contigs absent from the reference or of another length."""
        problems = []
        for name, length in zip(self._file.references, self._file.lengths):
            if name not in reference.contigs:
                problems.append(f"{name} (absent)")
            elif reference.contigs[name] != length:
                problems.append(f"{name} (length {length} in the BAM, {reference.contigs[name]} in the reference)")
        if problems:
            shown = ", ".join(problems[:10]) + (f" and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise MismatchError(f"{self.path}: contigs disagree with reference {reference.path}: {shown}")

    def unchecked_md5(self, contigs: list[str]) -> list[str]:
        """Those of ``contigs`` whose ``@SQ M5`` tag (a CRAM's) is still to be checked by :meth:`check_md5`."""
        return [contig for contig in contigs if contig in self._unchecked_md5]

    def check_md5(self, contigs: list[str], md5s: dict[str, str] | None = None) -> None:
        """For a CRAM, ``MismatchError`` when the ``M5`` of a contig's ``@SQ`` line is not the MD5 of that contig
        in the reference: htslib could not decode its reads. Each contig is hashed when first read (and cached),
        not all on open: a region of a human CRAM costs its chromosome (chr1: 1-5 s), not the whole genome
        (15-60 s for 3 Gbp, plain or bgzipped FASTA); ``md5s`` (contig -> :func:`contig_md5`, as a check made
        before gave it) spares hashing those contigs."""
        for contig in self.unchecked_md5(contigs):
            expected = self._unchecked_md5[contig]
            actual = (md5s or {}).get(contig) or contig_md5(self.reference, contig)
            if actual != expected:
                raise MismatchError(f"{self.path}: contig {contig}: MD5 {expected} in the CRAM header (@SQ M5) but "
                                    f"{actual} in reference {self.reference.path}: the CRAM was made against "
                                    "another sequence; pass the reference it was made with")
            del self._unchecked_md5[contig]

    def _check_read_count(self, contig: str) -> None:
        """For a BAM whose ``contig`` :meth:`base_counts` has read whole (from its start, without a gap),
        ``InputError`` when it met fewer reads there than the index lists (mapped and unmapped reads placed on it:
        what fetching the contig returns): the file was cut at a block boundary and given a new end-of-file marker,
        or replaced, after indexing. A ``.crai`` lists no counts (pysam gives 0), so a CRAM is not compared; nor is
        an index that lists fewer reads than met (made without counts by an old samtools)."""
        if self.is_cram or contig not in self.contigs or self._counted_to.get(contig, 0) < self.contigs[contig]:
            return
        listed = {stats.contig: stats.total for stats in self._file.get_index_statistics()}[contig]
        if self.reads_met[contig] < listed:
            raise InputError(f"{self.path}: contig {contig}: {self.reads_met[contig]} reads in the file but {listed} "
                             "in its index: cut short (copy it again) or replaced after indexing (then re-index "
                             f"it: `samtools index {self.path}`)")

    def _read_error(self, reason: str, indexed: bool) -> InputError:
        """The error for a read that failed with htslib's ``reason``: "file truncated" where htslib found the file
        ending inside a block; else, for a read through the index, the index may be another file's."""
        if _is_short_block(reason):
            return InputError(f"{self.path}: file truncated: {reason}")
        hint = f"; if {self._index_name} is another file's index, delete it to have it rebuilt" if indexed else ""
        return InputError(f"{self.path}: read error: {reason}{hint}")

    @property
    def contigs(self) -> dict[str, int]:
        """Contig name -> length from the header, in header order."""
        return dict(zip(self._file.references, self._file.lengths))

    @property
    def indexed(self) -> bool:
        """Whether the file has its index (a check opened without building one may find none)."""
        return self._file.has_index()

    def any_read(self, read_filter: ReadFilter, regions: list[tuple[str, int, int]]) -> bool:
        """True when a read passing ``read_filter`` overlaps one of ``regions`` (contig, start, end: 0-based
        half-open); stops at the first such read, so it reads the whole file only where none passes."""
        for contig, start, end in regions:
            if contig not in self.contigs:
                continue
            self.check_md5([contig])
            with htslib_messages(log, self.path):
                found = self._file.fetch(contig, start, end)
            for read in read_quietly(found, log, self.path, lambda reason, _: self._read_error(reason, True)):
                if read_filter.passes(read):
                    return True
        return False

    def base_counts(self, contig: str, start: int, end: int, read_filter: ReadFilter = ReadFilter(),
                    min_base_quality: int = 13) -> np.ndarray:
        """Counts per reference position of ``contig[start:end]``, shape (5, end - start): reads showing
        A, C, G, T (base quality >= ``min_base_quality``; every base of a read stored without qualities, QUAL
        ``*``, as samtools mpileup counts them) and reads with a deletion there; all 0 on a contig the header
        lacks (no read can lie on it). Where the range continues those read before from the contig's start, the
        reads it fetches that no such range fetched (those starting after them) are added to ``reads_met``."""
        self.check_md5([contig])
        counts = np.zeros((5, end - start), dtype=np.int64)
        if contig not in self.contigs:
            return counts
        without_qualities = [False]  # whether a read passing the filter had none
        counted_to = self._counted_to.get(contig, 0)
        counting = start <= counted_to
        met = [0]

        def with_qualities(read: pysam.AlignedSegment) -> bool:
            met[0] += counting and read.reference_start >= counted_to
            if not read_filter.passes(read):
                return False
            if read.query_qualities is None:  # pysam's count_coverage would drop all its bases
                without_qualities[0] = True
                return False
            return True

        with htslib_messages(log, self.path) as messages:
            try:
                counts[:4] = np.asarray(self._file.count_coverage(
                    contig, start, end, quality_threshold=min_base_quality, read_callback=with_qualities))
                if without_qualities[0]:
                    counts[:4] += np.asarray(self._file.count_coverage(
                        contig, start, end, quality_threshold=0,
                        read_callback=lambda read: read_filter.passes(read) and read.query_qualities is None),
                        dtype=np.int64)
                counts[4] = self._deletion_counts(contig, start, end, read_filter)
            except OSError as err:
                raise self._read_error(messages.reason(err), indexed=True) from err
        if counting:
            self.reads_met[contig] += met[0]
            self._counted_to[contig] = max(counted_to, end)
        return counts

    def consensus(self, contig: str, start: int = 0, end: int | None = None, min_depth: int = 3,
                  read_filter: ReadFilter = ReadFilter(), min_base_quality: int = 13) -> str:
        """The sample's consensus sequence over ``contig[start:end]`` (0-based half-open; whole contig by default)
        on the reference the file was opened with.

        Per reference position: the base seen most often among reads passing ``read_filter`` (bases of quality
        >= ``min_base_quality``, and all bases of a read stored without qualities), where depth (those bases plus
        the reads' deletions) >= ``min_depth``; N where depth is lower, where two bases tie for the most, or where
        deletions are at least as many as the most common base (``call_consensus``). Reference coordinates are
        kept: insertions are dropped and deleted positions written as N, so the result aligns base for base with
        the reference (length end - start). Overlapping mates both count. Once the calls on this open file have
        read a whole contig of a BAM (in one call or in ranges that follow on from its start), fewer reads there
        than its index lists is an ``InputError`` naming both counts."""
        reference = self.reference
        end = reference.contigs.get(contig, 0) if end is None else end
        reference.check_contig(contig, self.path)
        if not 0 <= start <= end <= reference.contigs[contig]:
            raise InputError(f"{self.path}: region {contig}:{start}-{end} is outside contig {contig} "
                             f"(length {reference.contigs[contig]})")
        pieces = []
        with tqdm(total=end - start, desc=f"consensus {contig}", unit="bp", unit_scale=True, disable=None) as bar:
            for chunk_start in range(start, end, CONSENSUS_CHUNK):
                chunk_end = min(end, chunk_start + CONSENSUS_CHUNK)
                counts = self.base_counts(contig, chunk_start, chunk_end, read_filter, min_base_quality)
                pieces.append(decode_bases(call_consensus(counts, min_depth)))
                bar.update(chunk_end - chunk_start)
        self._check_read_count(contig)
        return "".join(pieces)

    def _deletion_counts(self, contig: str, start: int, end: int, read_filter: ReadFilter) -> np.ndarray:
        steps = np.zeros(end - start + 1, dtype=np.int64)
        for read in self._file.fetch(contig, start, end):
            if not read_filter.passes(read):
                continue
            position = read.reference_start
            for operation, length in read.cigartuples or ():  # unmapped reads have none
                if operation == _DELETION:
                    first, last = max(position, start), min(position + length, end)
                    if first < last:
                        steps[first - start] += 1
                        steps[last - start] -= 1
                if operation in _CONSUMES_REFERENCE:
                    position += length
        return np.cumsum(steps[:-1])

    def close(self) -> None:
        """Release the file handle."""
        close_quietly(self._file, log, self.path)

    def __enter__(self) -> "AlignmentFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def contig_md5(reference: Reference, contig: str) -> str:
    """MD5 of ``contig``'s sequence upper-cased (as the SAM ``@SQ M5`` tag), cached per file and contig."""
    stat = reference.path.stat()
    key = (str(reference.path.resolve()), stat.st_size, stat.st_mtime_ns, contig)
    if key not in _MD5_CACHE:
        digest = hashlib.md5()
        length = reference.contigs[contig]
        for start in range(0, length, MD5_CHUNK):
            digest.update(reference.fetch(contig, start, min(length, start + MD5_CHUNK)).upper().encode())
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


def _is_short_block(reason: str) -> bool:
    """True when htslib's ``reason`` says the file ends inside a BGZF block."""
    short = _SHORT_BLOCK.search(reason)
    return bool(short) and int(short[2]) < int(short[1])


def _index_hint(reason: str) -> str:
    """What to do about an index that htslib could not build for ``reason``."""
    if "sort" in reason.lower():
        return " (is it coordinate-sorted? `samtools sort` it)"
    if "CRC32" in reason or "nflate" in reason:
        return " (the file is damaged; copy or create it again)"
    return " (the file is truncated; copy or create it again)" if _is_short_block(reason) else ""


def _sorted_name(path: Path) -> Path:
    """Where the advice to ``samtools sort`` ``path`` puts the sorted copy."""
    return path.with_name(f"{path.name.removesuffix('.gz').rsplit('.', 1)[0]}.sorted.bam")


def _magic(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(4)


def _has_cram_eof(path: Path) -> bool:
    """True when the CRAM ends with its version's end-of-file container (or is of a version without a known one)."""
    with open(path, "rb") as handle:
        version = handle.read(6)[4:5]
        eof = _CRAM_EOF.get(version[0]) if version else None
        if eof is None:
            return bool(version)
        handle.seek(max(0, path.stat().st_size - len(eof)))
        tail = bytearray(handle.read())
    if len(tail) == len(eof):
        tail[8] &= 0x0F
    return tail == eof


def call_consensus(counts: np.ndarray, min_depth: int) -> np.ndarray:
    """Consensus base codes (A=0 C=1 G=2 T=3 N=4) from ``base_counts`` output, shape (5, L).

    A position gets the base seen in the most reads when its depth (bases plus deletions) is at least
    ``min_depth`` and that base beats every other base and the deletion count strictly; otherwise N.
    """
    bases, deletions = counts[:4], counts[4]
    best = bases.argmax(axis=0)
    best_count = bases.max(axis=0)
    tied = (bases == best_count).sum(axis=0) > 1
    called = (bases.sum(axis=0) + deletions >= min_depth) & ~tied & (best_count > deletions)
    return np.where(called, best, 4).astype(np.uint8)
