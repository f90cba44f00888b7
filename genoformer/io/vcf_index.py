"""Which index goes next to a bgzipped VCF: tabix (.tbi) addresses contigs up to 512 Mbp, CSI any length."""

from __future__ import annotations

import os
from pathlib import Path

from genoformer.errors import InputError

TBI_MAX_CONTIG = 2**29 - 1
INDEX_KINDS = ("auto", "tbi", "csi")


def needs_csi(contigs: dict[str, int]) -> bool:
    """Whether a contig of ``contigs`` (name -> length) is too long for a tabix (.tbi) index."""
    return max(contigs.values(), default=0) > TBI_MAX_CONTIG


def index_path(path: str | os.PathLike, contigs: dict[str, int], kind: str = "auto") -> Path:
    """Where the index of ``path`` goes: ``kind`` ``tbi`` or ``csi``; with ``auto``, ``.tbi`` unless a contig
    is too long for tabix, then ``.csi``. Raises InputError for ``tbi`` with such a contig."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"index kind {kind!r} is not one of {INDEX_KINDS}")
    if kind == "tbi" and needs_csi(contigs):
        name, length = max(contigs.items(), key=lambda item: item[1])
        raise InputError(f"{path}: contig {name} is {length:,} bp, longer than the {TBI_MAX_CONTIG:,} bp a tabix "
                         "(.tbi) index addresses; write a .csi index instead (--index csi or auto)")
    csi = kind == "csi" or (kind == "auto" and needs_csi(contigs))
    return Path(f"{path}.csi" if csi else f"{path}.tbi")


def other_index(index: str | os.PathLike) -> Path:
    """The index of the other kind next to the same VCF (``.tbi`` for ``.csi`` and back): stale once ``index``
    is written, and htslib reads a ``.csi`` before a ``.tbi``, so it must go with the old index."""
    index = Path(index)
    return index.with_suffix(".tbi" if index.suffix == ".csi" else ".csi")


def add_index_argument(parser) -> None:
    """Add ``--index {auto,tbi,csi}`` to a command that writes a VCF."""
    parser.add_argument("--index", choices=INDEX_KINDS, default="auto",
                        help="index written next to the VCF: tbi (tabix), csi, or auto (default): tbi unless a "
                        f"contig is longer than the {TBI_MAX_CONTIG:,} bp tabix addresses, then csi")
