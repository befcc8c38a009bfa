"""A trial's validation evidence for ``--confidence``: what the bound of
:mod:`autocompress.evaluation.tolerance` needs of one model, kept beside its file as
``models/trial_N.val.npz``: the metric's per-sample scores where it has them, else the model's
outputs on the validation split.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from autocompress.data.arrays import Arrays, flatten, unflatten
from autocompress.errors import InputError
from autocompress.metrics import Metric, Score


def evidence(
    metric: Metric, y_true: Arrays, outputs: Arrays, score: Score | None = None
) -> dict[str, np.ndarray]:
    """What the bound needs of one model on the validation split: the metric's per-sample
    scores (``scores``; from ``score`` when the caller has it), else its outputs (``outputs``
    or ``outputs.NAME``)."""
    per_sample = (score or metric.score(y_true, outputs)).per_sample
    if per_sample is not None:
        return {"scores": per_sample.astype(np.float64)}
    return flatten("outputs", outputs)


def to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_evidence(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(str(path), "missing: the run has no validation evidence for --confidence")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def outputs_of(arrays: dict[str, np.ndarray]) -> Arrays:
    found = unflatten(arrays, "outputs")
    if found is None:
        raise InputError("--confidence", "the evidence holds neither scores nor outputs")
    return found
