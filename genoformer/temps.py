"""The temporary names of atomic writes (:mod:`genoformer.atomic`), and the removal of those a killed writer left.

A temporary sibling of the output ``NAME`` is ``.NAME.WRITER.PID.RANDOM.tmp`` (then ``atomic_path``'s suffix):
WRITER is the host name (a dot written ``,``, any other character but ``[A-Za-z0-9-]`` as ``_`` and the hex of
each of its bytes), followed by ``+`` and the pid namespace's number in a container that has its own (another
container on the same host does not see its pids); PID is the writing process; RANDOM is tempfile's. No field but
NAME holds a dot, so a name parses one way only: ``.a.b.h.7.x1y2z3w4.tmp`` is a temporary of ``a.b``, not of ``a``.

A writer killed with SIGKILL (a Slurm time limit, the OOM killer) cannot remove its temporary, which may be a
checkpoint or a token dataset of gigabytes. The next write of the same output removes it when it names this
writer's host (and namespace) and no process has its pid. A temporary whose pid is alive is kept: its writer still
runs, or an unrelated process took the dead writer's number, and then the temporary merely waits until that one
ends. Those of another host (a cluster's shared filesystem) and those of an older genoformer, which name no writer
(``.NAME.RANDOM.tmp``), are kept and named in a warning, once per output.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import socket
from pathlib import Path

log = logging.getLogger(__name__)

INIT_PID_NAMESPACE = 0xEFFFFFFC  # the number of Linux's initial pid namespace (PROC_PID_INIT_INO)
_warned: set[str] = set()  # outputs whose kept temporaries were already named in a warning


def _escape(text: str) -> str:
    """``text`` in the characters ``[A-Za-z0-9,_-]``, one way back (``.`` -> ``,``, other characters -> ``_xx``)."""
    out = []
    for char in text:
        if char.isascii() and (char.isalnum() or char == "-"):
            out.append(char)
        elif char == ".":
            out.append(",")
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


@functools.cache
def writer() -> str:
    """This machine as a temporary's name gives it: the host name, and the pid namespace in a container."""
    host = _escape(socket.gethostname())
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux, or no /proc
        return host
    return host if namespace == INIT_PID_NAMESPACE else f"{host}+{namespace}"


def temp_prefix(path: Path) -> str:
    """How a new temporary for the output ``path`` starts: ``.NAME.WRITER.PID.`` (then RANDOM and ``.tmp``)."""
    return f".{path.name}.{writer()}.{os.getpid()}."


def _temps(path: Path, suffix: str) -> list[tuple[str, str | None, int | None]]:
    """(name, writer, pid) of each temporary of the output ``path`` whose name ends in ``suffix`` (``.tmp`` and
    atomic_path's suffix); writer and pid are None for one of an older genoformer, which named neither."""
    start = f".{path.name}."
    current = re.compile(re.escape(start) + r"([^.]+)\.([0-9]{1,10})\.[^.]+" + re.escape(suffix))
    legacy = re.compile(re.escape(start) + r"[a-z0-9_]{8}" + re.escape(suffix))
    try:
        names = sorted(name for name in os.listdir(path.parent) if name.startswith(start))
    except OSError:  # an unreadable folder: nothing is removed, the write goes on
        return []
    found = []
    for name in names:
        if match := current.fullmatch(name):
            found.append((name, match[1], int(match[2])))
        elif legacy.fullmatch(name):
            found.append((name, None, None))
    return found


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists here (another user's counts; so does anything but a clear no)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _size(path: Path) -> int:
    """Bytes in the file or folder ``path`` (0 for what vanished meanwhile)."""
    files = [path]
    if path.is_dir() and not path.is_symlink():
        files = [Path(root, name) for root, _, names in os.walk(path) for name in names]
    total = 0
    for file in files:
        try:
            total += file.lstat().st_size
        except OSError:
            pass
    return total


def _amount(size: int) -> str:
    """``size`` bytes for a person: ``512 bytes``, ``3.4 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:,.1f} {unit}"


def _remove(path: Path) -> bool:
    """Delete the file or folder ``path``; whether it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
    return not os.path.lexists(path)


def remove_dead_temps(path: Path, *, suffix: str) -> None:
    """Remove the temporaries of the output ``path`` (names ending in ``suffix``) that a writer on this host, no
    longer running, left, logging each and the space it freed; warn, once per output, of those of another host."""
    me = writer()
    kept = []
    for name, host, pid in _temps(path, suffix):
        temp = path.parent / name
        if host != me:
            kept.append(temp)
        elif not _alive(pid):
            size = _size(temp)
            if _remove(temp):
                log.info("removed %s, a temporary of %s left by process %d (no longer running): %s freed",
                         temp, path.name, pid, _amount(size))
    key = os.path.abspath(path)
    if kept and key not in _warned:
        _warned.add(key)
        log.warning("%s: kept %d temporary %s that a writer on another host (or an older genoformer) may still be "
                    "writing: %s; remove %s once no such run is alive", path, len(kept),
                    "copy" if len(kept) == 1 else "copies",
                    ", ".join(f"{temp.name} ({_amount(_size(temp))})" for temp in kept),
                    "it" if len(kept) == 1 else "them")
