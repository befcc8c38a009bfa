"""The run directory: study storage, model files and result tables, all written atomically.

Layout::

    DIR/study.journal         Optuna journal storage (the single source of truth)
    DIR/models/trial_N.tflite the deployed file of every completed trial
    DIR/trials.csv            every trial: recipe, state, objectives, per-stage facts, error
    DIR/pareto.csv            the non-dominated completed trials
    DIR/cache/                stage outputs shared between trials (see stages/cache.py)
    DIR/teacher.keras         (demo only) the cached trained teacher

Only the driver writes here, except ``cache/``, which workers fill. Every file is written to a
temporary name and renamed, so a kill never leaves a half-written file that a later run would
read as valid.
"""

from __future__ import annotations

from pathlib import Path

from autocompress._files import atomic_write_bytes, atomic_write_text

__all__ = ["STUDY_NAME", "RunDir", "atomic_write_bytes", "atomic_write_text"]

STUDY_NAME = "autocompress"


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

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    def model_path(self, number: int) -> Path:
        return self.models / f"trial_{number:04d}.tflite"

    def keras_path(self, number: int) -> Path:
        """The candidate's final Keras model before conversion (for further training)."""
        return self.models / f"trial_{number:04d}.keras"

    def audit_path(self, number: int) -> Path:
        return self.models / f"trial_{number:04d}.audit.json"

    @property
    def validation(self) -> Path:
        """The validation split, kept so that ``export --format onnx`` can check the ONNX file
        against the ``.tflite`` file with the run directory alone (its only reader)."""
        return self.path / "validation.npz"

    @property
    def report(self) -> Path:
        return self.path / "report.html"
