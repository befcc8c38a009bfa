"""Compression audit: what a compressed model costs beyond its average quality.

Against the uncompressed teacher on the same validation data, in the task's metric: where the
targets are classes, accuracy per class and the largest per-class drop and agreement with the
teacher's predictions; otherwise the quantiles of the metric's per-sample scores (its errors);
both, the metric under small Gaussian input noise (both models, same noise). Where a candidate
came from is :mod:`autocompress.evaluation.lineage`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress.data.arrays import Inputs, take
from autocompress.data.stream import Stream
from autocompress.metrics import Arrays, Metric, Quality, Score, predicted_classes
from autocompress.records import Audit

if TYPE_CHECKING:
    from collections.abc import Callable

    from autocompress.records import TrialRecord
    from autocompress.task import TaskData

NOISE_SIGMA = 0.05  # noise std as a fraction of the training data's std
STD_SAMPLES = 512  # training samples a streamed split's std is estimated on
QUANTILES = (0.5, 0.9, 0.99)  # of the per-sample scores, for metrics that are not per-class


def class_accuracy(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy on the samples of each class present in ``labels``, keyed by class id."""
    return {str(int(c)): float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels)}


def compare(
    metric: Metric,
    labels: Arrays,
    candidate: Arrays,
    teacher: Arrays,
    candidate_noisy: Arrays,
    teacher_noisy: Arrays,
    noise_sigma: float,
    candidate_score: Score | None = None,
    teacher_score: Score | None = None,
) -> Audit:
    """The audit from both models' outputs on the clean and the noisy validation inputs (and
    the metric's scores on the clean ones, when the caller has them)."""
    noise = Audit(
        noise_sigma=noise_sigma,
        noise_quality=metric(labels, candidate_noisy),
        teacher_noise_quality=metric(labels, teacher_noisy),
    )
    scored = metric.scored(labels)
    if metric.classification and not isinstance(scored, dict):
        truth = np.asarray(scored).reshape(-1)
        mine_cls = predicted_classes(metric.scored(candidate)).reshape(-1)
        theirs_cls = predicted_classes(metric.scored(teacher)).reshape(-1)
        mine, theirs = class_accuracy(mine_cls, truth), class_accuracy(theirs_cls, truth)
        drops = {c: theirs[c] - mine[c] for c in mine}
        worst = max(drops, key=lambda c: (drops[c], -int(c)))
        return dataclasses.replace(
            noise,
            per_class_accuracy=mine,
            teacher_per_class_accuracy=theirs,
            max_class_drop=float(drops[worst]),
            worst_class=worst,
            agreement=float(np.mean(mine_cls == theirs_cls)),
        )
    return dataclasses.replace(
        noise,
        error_quantiles=_quantiles(candidate_score or metric.score(labels, candidate)),
        teacher_error_quantiles=_quantiles(teacher_score or metric.score(labels, teacher)),
    )


def _quantiles(score: Score) -> dict[str, float]:
    per_sample = score.per_sample
    if per_sample is None:
        return {}
    values = np.quantile(per_sample, QUANTILES)
    return {f"p{round(q * 100)}": round(float(v), 6) for q, v in zip(QUANTILES, values)}


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's outputs on the validation inputs, clean and noisy.

    The same for every trial of a search, so the driver computes them once
    (:func:`teacher_reference`) and sends them with the trial context instead of every trial
    running the teacher twice.
    """

    clean: Arrays
    noisy: Arrays
    score: Score | None = None  # the metric on ``clean``


def teacher_reference(
    predict: Callable[[Arrays], Arrays],
    data: TaskData,
    seed: int,
    sigma: float = NOISE_SIGMA,
    metric: Metric | None = None,
) -> TeacherReference:
    """The teacher's outputs on the validation inputs, clean and noisy, and ``metric`` on the
    clean ones; ``predict`` runs the teacher (a Keras model or a ``.tflite`` file)."""
    clean = predict(data.x_val)
    score = metric.score(data.y_val, clean) if metric is not None else None
    return TeacherReference(clean, predict(noisy(data, sigma, seed)), score)


def noisy(data: TaskData, sigma: float = NOISE_SIGMA, seed: int = 0) -> Inputs:
    """The validation inputs plus Gaussian noise of ``sigma`` times the training data's std
    (each float input its own; integer inputs such as token ids stay as they are)."""
    rng = np.random.default_rng(seed)

    def add(x_val: np.ndarray, x_train: np.ndarray) -> np.ndarray:
        if not np.issubdtype(x_val.dtype, np.floating):
            return x_val
        scale = sigma * float(np.std(x_train))
        return (x_val + rng.normal(0.0, scale, size=x_val.shape)).astype(x_val.dtype)

    if isinstance(data.x_val, Stream):  # the noise scale from up to 512 training samples
        train = take(data.x_train, slice(STD_SAMPLES))
        parts = list(train.values()) if isinstance(train, dict) else [train]
        floats = [p.ravel() for p in parts if np.issubdtype(p.dtype, np.floating)]
        scale = sigma * float(np.std(np.concatenate(floats))) if floats else 0.0
        return data.x_val.with_noise(scale, seed)
    if isinstance(data.x_val, dict):
        assert isinstance(data.x_train, dict)
        return {k: add(v, data.x_train[k]) for k, v in sorted(data.x_val.items())}
    assert isinstance(data.x_train, np.ndarray)
    return add(data.x_val, data.x_train)


def audit_document(
    number: int, record: TrialRecord, model_path: str, quality: Quality
) -> dict[str, Any]:
    """The ``<model>.audit.json`` content: recipe, stages, measurements (named after the
    metric), audit and lineage."""
    m = record.measurement
    return {
        "trial": number,
        "model": model_path,
        "recipe": record.recipe.to_dict(),
        "measurement": {
            quality.column: m.quality,
            f"{quality.column}_split": "validation",
            quality.test_column: m.test_quality,
            "size_bytes": m.size_bytes,
            "gzip_bytes": m.gzip_bytes,
            "latency_ms": {p: lat.median_ms for p, lat in m.latency.items()},
            "deployable": {p: lat.deployable for p, lat in m.latency.items()},
            "peak_ram_bytes": m.peak_ram_bytes,
        },
        "stages": [dataclasses.asdict(s) for s in record.stages],
        "audit": record.audit.to_dict() if record.audit is not None else None,
    }
