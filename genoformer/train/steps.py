"""Where a run keeps its checkpoints (``RUN/checkpoints/step-<N>/``), and their trainer state read back.

No torch here: the workflow reads a run's newest trainer state while it builds its DAG
(:func:`genoformer.workflow_checks.check_pretrain_run`), and :mod:`genoformer.train.checkpoint` builds on it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CHECKPOINTS = "checkpoints"
STEP_DIR = re.compile(r"step-(\d+)")


def step_number(step_dir: str | Path) -> int:
    """N of a ``step-<N>`` checkpoint folder."""
    return int(STEP_DIR.fullmatch(Path(step_dir).name).group(1))


def step_dirs(run_dir: str | Path) -> list[Path]:
    """The run's ``step-<N>`` checkpoint folders, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and STEP_DIR.fullmatch(p.name)), key=step_number)


def newest_trainer_state(run_dir: str | Path) -> dict | None:
    """The trainer state (``trainer_state.json``) of the newest checkpoint of ``run_dir`` that reads back as a
    mapping holding a ``config``, or None when there is none."""
    for step_dir in reversed(step_dirs(run_dir)):
        try:
            state = json.loads((step_dir / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and "config" in state:
            return state
    return None
