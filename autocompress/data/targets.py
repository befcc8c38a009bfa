"""Data without labels: the original model's own outputs as a task's targets.

Most people who compress a model they already deploy have its inputs, not labels. A reader
gives such data as inputs only (an ``.npz`` with ``x_*`` and no ``y_*``, a pipeline that yields
inputs, an image folder whose splits hold images without class subfolders); here the teacher is
run once on every split and what it says becomes the targets, per output kind:

* class scores (an output whose last axis holds probabilities: two or more values in [0, 1]
  summing to 1) become the teacher's top class per sample (or per pixel), integer ids -- so
  fine-tuning uses cross-entropy on them and ``fidelity`` scores agreement of the top class;
* any other output (boxes, embeddings, logits, a mask) stays the teacher's values, scored by
  how much of their spread a candidate keeps (see :func:`autocompress.metrics.fidelity`).

The kind is decided on the training split's outputs and kept for every split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autocompress.data.arrays import Arrays, Inputs
from autocompress.data.pipeline import SPLITS
from autocompress.data.stream import Stream

PROBABILITY_TOLERANCE = 1e-3


def label_free(splits: dict[str, Any]) -> bool:
    """Whether a reader's splits hold inputs only (no ``y_train``)."""
    return splits.get("y_train") is None


def class_scores(values: np.ndarray) -> bool:
    """Whether an output holds probabilities over its last axis (softmax-like)."""
    values = np.asarray(values)
    if values.ndim < 2 or values.shape[-1] < 2 or not np.issubdtype(values.dtype, np.floating):
        return False
    if values.min() < -PROBABILITY_TOLERANCE or values.max() > 1 + PROBABILITY_TOLERANCE:
        return False
    return bool(np.all(np.abs(values.sum(axis=-1) - 1.0) <= PROBABILITY_TOLERANCE))


def as_targets(outputs: Arrays, classes: dict[str, bool]) -> Arrays:
    """The teacher's outputs as targets: top-class ids for class-score outputs, else values."""

    def one(name: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if classes[name]:
            return np.argmax(values, axis=-1).astype(np.int64)
        return values.astype(np.float32)

    if isinstance(outputs, dict):
        return {name: one(name, v) for name, v in outputs.items()}
    return one("", outputs)


def teacher_targets(splits: dict[str, Any], predict: Callable[[Inputs], Arrays]) -> dict[str, Any]:
    """``splits`` (inputs only) with ``y_<split>`` from ``predict`` (the teacher) for every
    split, and each streamed split given those targets."""
    out: dict[str, Any] = {}
    classes: dict[str, bool] | None = None
    for split in SPLITS:
        x = splits.get(f"x_{split}")
        if x is None:
            continue
        outputs = predict(x)
        if classes is None:  # decided on the training split
            named = outputs if isinstance(outputs, dict) else {"": outputs}
            classes = {name: class_scores(values) for name, values in named.items()}
        targets = as_targets(outputs, classes)
        out[f"x_{split}"] = x.relabelled(targets) if isinstance(x, Stream) else x
        out[f"y_{split}"] = targets
    return out
