"""The workflow's DAG-time label check, remembered between `snakemake` invocations while its VCF stays the same.

:func:`genoformer.workflow_checks.check_variant_labels` reads a labelled VCF whole (about 1.4 s per 32,000 records:
minutes for a ClinVar-size file), and every `snakemake` run, dry runs included, builds the DAG again. A check
that passed leaves one small JSON file in the cache folder (the workflow's ``.snakemake/genoformer/``) holding
what it found (the variants of each class) and what it depended on: the VCF's real path, size, mtime, ctime,
inode and device, the task's label field and class values, and the code that read it (pysam's version and the
source of the modules the check runs). The next check with all of these equal returns the stored counts without
reading the file; anything else (a touched or rewritten file, other classes, an upgrade) reads it again.

Only passing checks are stored: a failure is raised the same way every time, by reading the file. A file changed
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
from typing import Callable

SETTLE_NS = 2_000_000_000  # 2 s: coarser than the timestamps of any common filesystem (FAT: 2 s, NFS: 1 s)
_CHECK_MODULES = ("genoformer.workflow_checks", "genoformer.io.vcf", "genoformer.io.vcf_text", "genoformer.io.htslib",
                  "genoformer.tasks.variant_labels")


def _code_digest() -> str:
    """sha256 of pysam's version and of the source of every module the label check runs."""
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
    return entry if isinstance(entry, dict) and isinstance(entry.get("counts"), dict) else None


def cached_label_check(task: dict, check: Callable[[dict], dict], cache_dir: str | os.PathLike) -> dict:
    """``check(task)`` (the label counts of a variant task, or an error it raises), or the counts it gave before
    for the same VCF, label settings and code (see the module docstring)."""
    from genoformer.atomic import write_json

    settings = {"label_field": task["label_field"], "positive": task.get("positive"),
                "negative": task.get("negative")}
    try:
        key = {**_file_state(task["vcf"]), **settings, "code": _code_digest()}
    except OSError:
        return check(task)  # the check names the file and what is wrong with it
    name = hashlib.sha256(json.dumps([key["path"], settings], sort_keys=True).encode()).hexdigest()[:24]
    entry_path = Path(cache_dir) / "variant-labels" / f"{name}.json"
    entry = _read_entry(entry_path)
    if entry is not None and entry.get("key") == key:
        return entry["counts"]
    counts = check(task)
    try:
        after = _file_state(task["vcf"])
    except OSError:
        return counts
    settled = time.time_ns() - max(after["mtime_ns"], after["ctime_ns"]) >= SETTLE_NS
    if settled and {**after, **settings, "code": key["code"]} == key:  # unchanged while it was read
        try:
            write_json(entry_path, {"key": key, "counts": counts})
        except OSError:
            pass  # a cache that cannot be written only costs the next run the same read
    return counts
