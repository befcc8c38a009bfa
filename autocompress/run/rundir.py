"""The run directory: study storage, model files and result tables, all written atomically.

Layout::

    DIR/study.journal         Optuna journal storage (the single source of truth)
    DIR/models/trial_N.tflite the deployed file of every completed trial; its Keras model as
                              trial_N.keras, or where to rebuild it (trial_N.keras-source.json)
    DIR/metric.json           the task's quality measure: name and direction (absent: accuracy)
    DIR/trials.csv            every trial: recipe, state, objectives, per-stage facts, error
    DIR/pareto.csv            the non-dominated completed trials
    DIR/cache/                stage outputs shared between trials (see run/cache.py)
    DIR/teacher.keras         (demo only) the cached trained teacher

Only the driver writes here (workers hand their stage outputs back to it: see
:mod:`autocompress.run.cache`). Every file is written to a temporary name and renamed, so a
kill never leaves a half-written file that a later run would read as valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autocompress._files import atomic_write_bytes, atomic_write_text
from autocompress.metrics import Quality

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STUDY_NAME", "RunDir"]

STUDY_NAME = "autocompress"


class RunDir:
    """Paths inside one search's output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def journal(self) -> Path:
        return self.path / "study.journal"

    @property
    def metric_json(self) -> Path:
        return self.path / "metric.json"

    def quality(self) -> Quality:
        """The run's quality measure as the search wrote it; runs from before the metric was
        the task's own measured accuracy."""
        if not self.metric_json.is_file():
            return Quality()
        return Quality.from_dict(json.loads(self.metric_json.read_text()))

    def write_quality(self, quality: Quality, spec: str = "", output: str | None = None) -> None:
        """Record the search's metric (``spec``: where it comes from; ``output``: the one output
        it scores); a run directory keeps the metric it was started with."""
        if self.metric_json.is_file():
            if self.quality() == quality:
                return
            from autocompress.errors import InputError

            raise InputError(
                str(self.path),
                f"holds a search with metric {self.quality().name}, not {quality.name}: use "
                "another --out directory",
            )
        document = {**quality.to_dict(), "spec": spec, **({"output": output} if output else {})}
        atomic_write_text(self.metric_json, json.dumps(document) + "\n")

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    def read_trials(self) -> pd.DataFrame:
        """``trials.csv`` as the search wrote it (no profiles added since)."""
        import pandas as pd

        from autocompress.errors import InputError

        if not self.trials_csv.is_file():
            raise InputError(str(self.path), "not a run directory (no trials.csv)")
        try:
            return pd.read_csv(self.trials_csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(str(self.trials_csv), f"unreadable table: {exc}") from None

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

    def keras_source_path(self, number: int) -> Path:
        """Where the candidate's Keras model can be rebuilt from, when the search kept no
        ``.keras`` file of it: ``{"source": "teacher"}`` (the model is the teacher, see
        :attr:`teacher_keras`) or ``{"source": KEY}`` (the stage cache entry ``KEY``)."""
        return self.models / f"trial_{number:04d}.keras-source.json"

    @property
    def teacher_keras(self) -> Path:
        """The teacher as a ``.keras`` file, written the first time a candidate is the teacher's
        own Keras model (quantized only)."""
        return self.models / "teacher.keras"

    def keep_keras(
        self,
        number: int,
        keras: bytes | None,
        source: str | None,
        teacher: Callable[[], bytes | None],
    ) -> None:
        """The trial's Keras model: its ``.keras`` file, or where export rebuilds it from
        (``source``: ``teacher``, whose file ``teacher()`` makes the first time, or a stage
        cache key); neither: the trial has no Keras model."""
        if keras is not None:
            atomic_write_bytes(self.keras_path(number), keras)
            return
        if source is None:
            return
        if source == "teacher" and not self.teacher_keras.is_file():
            blob = teacher()
            if blob is None:
                return
            atomic_write_bytes(self.teacher_keras, blob)
        atomic_write_text(self.keras_source_path(number), json.dumps({"source": source}))

    def evidence_path(self, number: int) -> Path:
        """The trial's validation evidence (per-sample scores or outputs) for ``--confidence``."""
        return self.models / f"trial_{number:04d}.val.npz"

    def metric_spec(self) -> tuple[str, str | None]:
        """Where the run's metric comes from (a built-in name or ``file.py:function``; empty
        for a Python callable) and the one output it scores (None: all)."""
        if not self.metric_json.is_file():
            return "accuracy", None  # a run from before the metric was the task's own
        document = json.loads(self.metric_json.read_text())
        return str(document.get("spec", "")), document.get("output")

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
