"""Compression audit: what a compressed model costs beyond its average accuracy, and where it
came from.

Against the uncompressed teacher on the same validation data: accuracy per class and the largest
per-class drop, agreement with the teacher's predictions, and accuracy under small Gaussian input
noise (both models, same noise). The lineage (hashes of the teacher and the data, the recipe,
library versions, each stage's facts, the hash of the produced ``.tflite``) makes a review
possible from the files alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress.records import Audit

if TYPE_CHECKING:
    from collections.abc import Callable

    from autocompress.records import TrialRecord
    from autocompress.task import Task, TaskData

NOISE_SIGMA = 0.05  # noise std as a fraction of the training data's std
LIBRARIES = (
    "autocompress",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "optuna",
    "numpy",
)


def class_accuracy(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy on the samples of each class present in ``labels``, keyed by class id."""
    return {str(int(c)): float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels)}


def compare(
    candidate: np.ndarray,
    teacher: np.ndarray,
    labels: np.ndarray,
    candidate_noisy: np.ndarray,
    teacher_noisy: np.ndarray,
    noise_sigma: float,
) -> Audit:
    """The audit numbers from predicted classes (clean and noisy inputs) of both models."""
    mine, theirs = class_accuracy(candidate, labels), class_accuracy(teacher, labels)
    drops = {c: theirs[c] - mine[c] for c in mine}
    worst = max(drops, key=lambda c: (drops[c], -int(c)))
    return Audit(
        per_class_accuracy=mine,
        teacher_per_class_accuracy=theirs,
        max_class_drop=float(drops[worst]),
        worst_class=worst,
        agreement=float(np.mean(candidate == teacher)),
        noise_sigma=noise_sigma,
        noise_accuracy=float(np.mean(candidate_noisy == labels)),
        teacher_noise_accuracy=float(np.mean(teacher_noisy == labels)),
    )


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's predicted classes on the validation inputs, clean and noisy.

    The same for every trial of a search, so the driver computes them once
    (:func:`teacher_reference`) and sends them with the trial context instead of every trial
    running the teacher twice.
    """

    clean: np.ndarray
    noisy: np.ndarray


def teacher_reference(
    predict: Callable[[np.ndarray], np.ndarray],
    data: TaskData,
    seed: int,
    sigma: float = NOISE_SIGMA,
) -> TeacherReference:
    """The teacher's classes on the validation inputs, clean and noisy; ``predict`` gives the
    teacher's class scores (a Keras model's or a ``.tflite`` file's)."""

    def classes(x: np.ndarray) -> np.ndarray:
        return np.argmax(predict(x), axis=-1)

    return TeacherReference(classes(data.x_val), classes(noisy(data, sigma, seed)))


def noisy(data: TaskData, sigma: float = NOISE_SIGMA, seed: int = 0) -> np.ndarray:
    """The validation inputs plus Gaussian noise of ``sigma`` times the training data's std."""
    rng = np.random.default_rng(seed)
    scale = sigma * float(np.std(data.x_train))
    noise = rng.normal(0.0, scale, size=data.x_val.shape)
    return (data.x_val + noise).astype(data.x_val.dtype)


def sha256_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


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


def lineage(task: Task, tflite: bytes, seed: int) -> dict[str, Any]:
    """Where a candidate came from, by content hash (the recipe and stages are in its record)."""
    d = task.data
    return {
        "teacher_sha256": teacher_sha256(task),
        "data_sha256": sha256_arrays(d.x_train, d.y_train, d.x_val, d.y_val),
        "task": task.source,
        "seed": seed,
        "tflite_sha256": hashlib.sha256(tflite).hexdigest(),
        "versions": versions(),
    }


def audit_document(number: int, record: TrialRecord, model_path: str) -> dict[str, Any]:
    """The ``<model>.audit.json`` content: recipe, stages, measurements, audit and lineage."""
    m = record.measurement
    return {
        "trial": number,
        "model": model_path,
        "recipe": record.recipe.to_dict(),
        "measurement": {
            "accuracy": m.accuracy,
            "accuracy_split": "validation",
            "test_accuracy": m.test_accuracy,
            "size_bytes": m.size_bytes,
            "gzip_bytes": m.gzip_bytes,
            "latency_ms": {p: lat.median_ms for p, lat in m.latency.items()},
            "deployable": {p: lat.deployable for p, lat in m.latency.items()},
            "peak_ram_bytes": m.peak_ram_bytes,
        },
        "stages": [dataclasses.asdict(s) for s in record.stages],
        "audit": record.audit.to_dict() if record.audit is not None else None,
    }
