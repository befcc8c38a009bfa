"""Where a candidate came from, by content: hashes of the teacher, the data and the produced
``.tflite`` file, the seed and the library versions (the recipe and each stage's facts are in its
record). With the record it makes a review possible from the run's files alone.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autocompress.task import Task

LIBRARIES = (
    "autocompress",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "optuna",
    "numpy",
)


def teacher_sha256(task: Task) -> str:
    """Hash of the teacher's content (a Keras model's architecture and weights, independent of
    the file format; a ``.tflite`` teacher's bytes)."""
    return task.teacher.digest()


def versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def lineage(
    task: Task, tflite: bytes, seed: int, known: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where a candidate came from, by content hash (the recipe and stages are in its record);
    ``known`` is the task's part (:func:`task_lineage`) when the search computed it once."""
    base = known if known is not None else task_lineage(task, seed)
    return {**base, "tflite_sha256": hashlib.sha256(tflite).hexdigest()}


def task_lineage(task: Task, seed: int) -> dict[str, Any]:
    """The lineage every candidate of a search shares: hashes of the teacher and the data (a
    second or more on a real data set: computed once per search, not per trial)."""
    return {
        "teacher_sha256": teacher_sha256(task),
        "data_sha256": task.data.digest(),
        "task": task.source,
        "seed": seed,
        "versions": versions(),
    }
