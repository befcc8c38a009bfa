"""The run directory: study storage, model files and result tables, all written atomically.

Layout::

    DIR/study.journal         Optuna journal storage (the single source of truth)
    DIR/models/trial_N.tflite the deployed file of every completed trial
    DIR/trials.csv            every trial: recipe, state, objectives, per-stage facts, error
    DIR/pareto.csv            the non-dominated completed trials
    DIR/teacher.keras         (demo only) the cached trained teacher

Only the driver writes here. Every file is written to a temporary name and renamed, so a kill
never leaves a half-written file that a later run would read as valid.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

STUDY_NAME = "autocompress"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class RunDir:
    """Paths inside one search's output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def journal(self) -> Path:
        return self.path / "study.journal"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def pareto_csv(self) -> Path:
        return self.path / "pareto.csv"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def model_path(self, number: int) -> Path:
        return self.models / f"trial_{number:04d}.tflite"

    def storage_url(self) -> str:
        return f"journal:{self.journal}"
