"""Atomic outputs: write to a temporary sibling, then rename, so a killed run never leaves a partial file (and the
next write of that output removes the temporary it left: :mod:`genoformer.temps`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from genoformer.errors import ConfigError
from genoformer.temps import remove_dead_temps, temp_prefix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_file(path: str | os.PathLike | None) -> None:
    """Raise ``ConfigError`` when the output file ``path`` is an existing folder: checked before a command that
    writes several files starts, so that it does not fail at its second file, leaving the first behind."""
    if path is not None and Path(path).is_dir():
        raise ConfigError(f"{path}: output path is a folder; give a file name")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on failure delete it.

    ``suffix`` keeps an extension on the temporary name for writers that infer the format from it. Temporaries of
    ``path`` that a killed writer on this host left are removed first (:mod:`genoformer.temps`).
    """
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path, suffix=f".tmp{suffix}")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # again: a writer may have made the file anew (safetensors: 0600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_indexed(path: str | os.PathLike, index: str | os.PathLike, *, suffix: str = "",
                   stale: Iterable[str | os.PathLike] = ()) -> Iterator[tuple[Path, Path]]:
    """Yield temporary paths for a data file and its index (e.g. a VCF and its .tbi); on success the old index
    (and the ``stale`` ones: indexes of another kind that a reader might pick instead) goes first, then both are
    renamed into place, so a reader never finds the new file with an old index (it may briefly find the file with
    none, which htslib reports instead of reading at stale offsets)."""
    with atomic_path(index) as tmp_index, atomic_path(path, suffix=suffix) as tmp:
        yield tmp, tmp_index
        for old in (index, *stale):  # then the data file is renamed into place, then the index
            Path(old).unlink(missing_ok=True)


OWNER_FILE = ".genoformer-output"  # in every output folder: the marker of its kind (see claim)


def check_not_an_input(out: str | os.PathLike, inputs, what: str = "output") -> None:
    """Raise ``ConfigError`` when ``out`` is one of ``inputs`` (writing it would destroy an input)."""
    target = Path(out).resolve()
    if any(Path(path).resolve() == target for path in inputs if path is not None):
        raise ConfigError(f"{out}: the {what} would overwrite one of its inputs; write it elsewhere")


def claim(path: str | os.PathLike, marker: str, entries) -> None:
    """Mark the folder ``path`` as an output of the kind whose folders hold ``marker``, made of ``entries``
    (names): the marker itself may be deleted (snakemake deletes a job's declared outputs before rerunning it) and
    the folder is still replaceable, as long as it holds nothing but those entries."""
    record = {"marker": marker, "entries": sorted(set(entries) - {OWNER_FILE})}
    (Path(path) / OWNER_FILE).write_text(json.dumps(record) + "\n")


def _claimed(path: Path, marker: str) -> bool:
    """Whether ``path`` is claimed for ``marker`` and holds only the entries its claim names."""
    try:
        record = json.loads((path / OWNER_FILE).read_text())
        owned = {OWNER_FILE, *record["entries"]} if record["marker"] == marker else set()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(owned) and all(entry.name in owned for entry in path.iterdir())


def check_replaceable(path: str | os.PathLike, marker: str) -> None:
    """Raise ConfigError unless ``path`` is absent, an empty folder, or a folder holding ``marker`` (the file
    every output of this kind has) or claimed for that kind and holding nothing else (:func:`claim`), so that a
    mistyped output path never replaces a user's own file or folder. Commands call it before their work as well,
    so the mistake is caught before the work, not after it."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ConfigError(f"{path}: output folder exists and is a file; not replacing it (choose another path)")
    if any(path.iterdir()) and not (path / marker).is_file() and not _claimed(path, marker):
        raise ConfigError(f"{path}: output folder exists and is not one this command wrote (no {marker} in it); "
                          "not replacing it: remove it yourself or choose another path")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, marker: str) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` (old content removed).

    ``path`` must pass :func:`check_replaceable` with ``marker`` (a file the yielded folder will hold). The old
    folder is moved aside to ``.<name>.old`` for the instant between two renames; a run killed in that instant
    leaves it there, and the next call puts it back before anything else (then removes the killed run's complete
    but never renamed temporary, as it removes any temporary a killed writer left: :mod:`genoformer.temps`).
    """
    path = Path(os.path.realpath(path))  # normalized ('.' and 'x/..' get a name); a symlink's target is replaced
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and not path.exists():
        os.replace(old, path)
    check_replaceable(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path, suffix=".tmp")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        claim(tmp, marker, os.listdir(tmp))
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically; NaN and infinities (which JSON cannot hold) become null."""
    write_text(path, json.dumps(_finite_or_null(obj), indent=indent, sort_keys=False, allow_nan=False) + "\n")


def _finite_or_null(obj):
    """``obj`` with every non-finite float (e.g. an undefined confidence bound) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(value) for value in obj]
    return obj
