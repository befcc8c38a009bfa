"""Plain, JSON-serialisable records that travel between processes and into the run directory.

Between the driver and Ray workers only these records, numpy arrays and bytes travel; never live
Keras objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from autocompress.recipe import Recipe


@dataclass(frozen=True)
class StageRecord:
    """What one build stage really did, measured on its output (not what it was asked to do).

    ``seconds`` is the time the build took when it ran; ``reused`` is True when this trial took
    the output from the stage cache instead of building it.
    """

    stage: str
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one ``.tflite`` file on one hardware profile, measured or simulated.

    Simulated results have ``runs == 0`` and ``p90_ms == median_ms``. ``deployable`` is False
    when the target cannot run the file at all (e.g. a float model on the Edge TPU);
    ``details["reason"]`` then says why and ``details["latency_is"]`` what the number is.
    """

    profile: str
    median_ms: float
    p90_ms: float
    runs: int
    backend: str
    deployable: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def variation(self) -> float:
        """p90 / median: 1.0 is perfectly stable; large values flag a noisy measurement."""
        return self.p90_ms / self.median_ms if self.median_ms > 0 else float("nan")


@dataclass(frozen=True)
class Measurement:
    """Quality, size and latency of one deployed ``.tflite`` artifact.

    ``quality`` is the task's metric (:mod:`autocompress.metrics`) on the validation split (what
    the search optimises); ``test_quality`` on the task's test split when it has one (reported
    only, never used to choose).
    """

    quality: float
    size_bytes: int
    gzip_bytes: int
    latency: dict[str, LatencyResult]
    tensor_dtypes: dict[str, int]
    peak_ram_bytes: int = 0
    macs: int = 0
    test_quality: float | None = None
    # What the file runs (autocompress.hardware.signature): files with the same key share one
    # measured latency. "" in older runs.
    op_signature: str = ""
    # The file's input shapes without the batch dimension ("96x96x3"; a recipe's resolution
    # below 1.0 makes it smaller). "" in older runs.
    input_shape: str = ""


@dataclass(frozen=True)
class Audit:
    """What a candidate costs beyond its average quality, next to the teacher's figures.

    Per-class figures where the targets are classes (``max_class_drop``: teacher minus candidate
    accuracy on the worst class, may be < 0; ``agreement``: share of samples where both predict
    the same class); otherwise the quantiles of the metric's per-sample scores (``error_*``,
    where the metric has them). Both kinds: the metric under Gaussian input noise.
    """

    noise_sigma: float
    noise_quality: float | None
    teacher_noise_quality: float | None
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    teacher_per_class_accuracy: dict[str, float] = field(default_factory=dict)
    max_class_drop: float | None = None
    worst_class: str | None = None
    agreement: float | None = None
    error_quantiles: dict[str, float] = field(default_factory=dict)
    teacher_error_quantiles: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Audit:
        data = dict(data)
        for old, new in (
            ("noise_accuracy", "noise_quality"),
            ("teacher_noise_accuracy", "teacher_noise_quality"),
        ):
            if old in data:  # runs before the metric was the task's own
                data[new] = data.pop(old)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def columns(self, quality_name: str) -> dict[str, Any]:
        """The audit's columns of ``trials.csv`` (``noise_<metric>``; per-class or error
        figures where the audit has them)."""
        row: dict[str, Any] = {}
        if self.max_class_drop is not None:
            row["max_class_drop"] = round(self.max_class_drop, 4)
            row["worst_class"] = self.worst_class
        if self.agreement is not None:
            row["teacher_agreement"] = round(self.agreement, 4)
        if self.noise_quality is not None:
            row[f"noise_{quality_name}"] = round(self.noise_quality, 4)
        for k, v in self.error_quantiles.items():
            row[f"error_{k}"] = v
        return row


@dataclass(frozen=True)
class TrialRecord:
    """Everything known about one built-and-measured candidate; stored with its Optuna trial."""

    recipe: Recipe
    stages: list[StageRecord]
    measurement: Measurement
    seconds: float
    audit: Audit | None = None  # per-class, agreement, noise and lineage against the teacher
    # Seconds per part of the trial: scheduling (from submission to the worker starting it:
    # Ray's queue, a worker process starting, the context arriving), teacher (building the
    # teacher in the worker), build (the stages and conversion; each stage's own in
    # ``stages``, its fit in the stage's ``fit_seconds``), keras_file (saving the final Keras
    # model), validation (running the file on the validation split and scoring it), measure
    # (sizes, latency on every profile), test, audit (noisy inputs, comparison, lineage,
    # evidence), return (the outcome travelling back to the driver). Empty in older runs.
    parts: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        m = data["measurement"]
        measurement = Measurement(
            quality=m["quality"] if "quality" in m else m["accuracy"],  # older runs: accuracy
            size_bytes=m["size_bytes"],
            gzip_bytes=m["gzip_bytes"],
            latency={k: LatencyResult(**v) for k, v in m["latency"].items()},
            tensor_dtypes=dict(m["tensor_dtypes"]),
            peak_ram_bytes=m.get("peak_ram_bytes", 0),
            macs=m.get("macs", 0),
            test_quality=m.get("test_quality", m.get("test_accuracy")),
            op_signature=m.get("op_signature", ""),
            input_shape=m.get("input_shape", ""),
        )
        return cls(
            recipe=Recipe.from_dict(data["recipe"]),
            stages=[StageRecord(**s) for s in data["stages"]],
            measurement=measurement,
            seconds=data["seconds"],
            audit=Audit.from_dict(data["audit"]) if data.get("audit") else None,
            parts=dict(data.get("parts", {})),
        )


def record_since(stage: str, start: float, facts: dict[str, Any]) -> StageRecord:
    """The record of a stage that started at ``start`` (``time.perf_counter()``) and ends now."""
    import time

    return StageRecord(stage, time.perf_counter() - start, facts)
