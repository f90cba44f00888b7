"""The workflow's slow DAG-time checks, remembered between `snakemake` invocations while their files stay the same.

Every `snakemake` run, dry runs included, builds the DAG again, and two of its checks read a VCF whole:
:func:`genoformer.workflow_checks.check_variant_labels` (about 1.4 s per 32,000 records: minutes for a ClinVar-size
file) and, for a VCF without an index, :func:`genoformer.workflow_checks.check_vcf_on_reference` (its contigs); a
third hashes the reference contigs a sample CRAM is read on, to compare with its ``@SQ M5`` tags (1-5 s a human
chromosome: :func:`genoformer.workflow_checks.check_bam_on_reference`). A check that passed leaves one small JSON
file in the cache folder (the workflow's ``.snakemake/genoformer/<kind>/``) holding what it found (say the variants
of each class, or each contig's MD5) and what it depended on: each file's real path, size, mtime, ctime, inode and
device, the check's settings (the task's label field and class values, the contigs hashed), and the code that ran it
(pysam's version and the source of the modules the checks run). The next check with all of these equal returns the
stored result without reading the files; anything else (a touched or rewritten file, other classes, an upgrade)
reads them again.

Only passing checks are stored: a failure is raised the same way every time, by reading the files. A file changed
less than :data:`SETTLE_NS` before the check ended is not stored either, since a second write within the same
timestamp tick could leave its size and times as they were. An entry that cannot be read or parsed is ignored
(and replaced); entries are written atomically, so a killed run leaves none half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

SETTLE_NS = 2_000_000_000  # 2 s: coarser than the timestamps of any common filesystem (FAT: 2 s, NFS: 1 s)
_CHECK_MODULES = ("genoformer.workflow_checks", "genoformer.io.vcf", "genoformer.io.vcf_text", "genoformer.io.htslib",
                  "genoformer.tasks.variant_labels", "genoformer.io.fasta",  # reads the contig check's FASTA
                  "genoformer.io.bam")  # hashes a reference contig as a CRAM's @SQ M5 is


def _code_digest() -> str:
    """sha256 of pysam's version and of the source of every module the checks run."""
    import importlib

    import pysam

    digest = hashlib.sha256(pysam.__version__.encode())
    for name in _CHECK_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()


def _file_state(path: str | os.PathLike) -> dict:
    """What tells a changed file from the same one: real path, size, mtime, ctime, inode, device."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    return {"path": real, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
            "inode": stat.st_ino, "device": stat.st_dev}


def _read_entry(path: Path) -> dict | None:
    """The stored entry at ``path``, or None when there is none or it cannot be read as one."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "key" in entry and "result" in entry else None


def cached_check(kind: str, files: dict[str, str | os.PathLike], settings: dict, check: Callable[[], Any],
                 cache_dir: str | os.PathLike) -> Any:
    """``check()`` (a JSON-able result, or an error it raises), or the result it gave before for the same
    ``files`` (by role: their real paths, sizes, times and inodes), ``settings`` and code; entries are kept in
    ``cache_dir/kind/`` (see the module docstring)."""
    from genoformer.atomic import write_json

    try:
        key = {"files": {role: _file_state(path) for role, path in files.items()}, "settings": settings,
               "code": _code_digest()}
    except OSError:
        return check()  # the check names the file and what is wrong with it
    identity = [[role, key["files"][role]["path"]] for role in sorted(files)]
    name = hashlib.sha256(json.dumps([identity, settings], sort_keys=True).encode()).hexdigest()[:24]
    entry_path = Path(cache_dir) / kind / f"{name}.json"
    entry = _read_entry(entry_path)
    if entry is not None and entry["key"] == key:
        return entry["result"]
    result = check()
    try:
        after = {role: _file_state(path) for role, path in files.items()}
    except OSError:
        return result
    now = time.time_ns()
    settled = all(now - max(state["mtime_ns"], state["ctime_ns"]) >= SETTLE_NS for state in after.values())
    if settled and after == key["files"]:  # unchanged while it was read
        try:
            write_json(entry_path, {"key": key, "result": result})
        except OSError:
            pass  # a cache that cannot be written only costs the next run the same read
    return result
