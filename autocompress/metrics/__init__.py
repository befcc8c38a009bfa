"""The quality measure of a task: one named metric with a direction, built in or the user's own.

Every module that judges a model's quality asks a :class:`Metric` (the evaluator, the Keras-side
checks of the stages, sensitivity, the audit, the floors of early stop and multi-fidelity); none
computes an argmax or knows what accuracy is. A metric scores a whole split at once, ``(y_true,
y_pred)`` as numpy arrays (dicts by output name when the model has several outputs), because
AUC, F1, mIoU and mAP are not means over samples. Where a metric *is* a mean over samples it
also returns one score per sample, which the confidence bound of a drop resamples
(:mod:`autocompress.evaluation.tolerance`).

Built-ins are reached by name (:data:`BUILTIN`); a user function by ``path/to/file.py:function``
or ``module:function`` with a ``direction``. As in scikit-learn's scorers the direction travels
with the metric, but values are never negated: ``mae 0.41`` is printed as it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from autocompress._imports import load_function
from autocompress.data.arrays import Arrays
from autocompress.errors import InputError
from autocompress.metrics.detection import map50

MetricFn = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Quality:
    """What the result tables need of a metric: its name and direction (no function).

    Classifiers keep the columns ``accuracy`` / ``test_accuracy``, so older runs still read;
    any other metric names them after itself (``mae`` / ``test_mae``).
    """

    name: str = "accuracy"
    maximize: bool = True

    @property
    def column(self) -> str:
        return self.name

    @property
    def test_column(self) -> str:
        return f"test_{self.name}"

    @property
    def sign(self) -> float:
        """+1 where higher is better, -1 where lower is: ``sign * value`` is always maximised."""
        return 1.0 if self.maximize else -1.0

    def drop(self, baseline: float, value: float) -> float:
        """How much worse ``value`` is than ``baseline`` in the metric's own direction (> 0:
        worse)."""
        return self.sign * (baseline - value)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "direction": "maximize" if self.maximize else "minimize"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quality:
        return cls(name=str(data["name"]), maximize=data.get("direction") != "minimize")


# Runs and tables from before a task had its own metric measured accuracy.
DEFAULT_QUALITY = Quality()


@dataclass(frozen=True)
class Score:
    """A metric's value on a split and, for a mean over samples, each sample's score (their
    mean is the value)."""

    value: float
    per_sample: np.ndarray | None = None


@dataclass(frozen=True)
class Metric:
    """A named quality measure with a direction.

    Attributes:
        name: the column name of its values (``accuracy``, ``mae``, a function's name).
        maximize: whether higher is better.
        targets: what it needs of ``y_true``: ``classes`` (integer class ids), ``values``
            (numbers), ``outputs`` (the original model's own outputs, as data without labels
            has them: :mod:`autocompress.data.targets`) or ``any`` (a user function decides).
        spec: where it comes from (a built-in name, ``file.py:function``, ``module:function``);
            a user function is loaded again from it in each worker process.
        output: the one output it scores, by name, for a model with several (None: all; the
            function then gets dicts by output name).
    """

    name: str
    maximize: bool
    targets: str = "any"
    spec: str = ""
    fn: MetricFn | None = field(default=None, compare=False, repr=False)
    output: str | None = None

    @property
    def quality(self) -> Quality:
        return Quality(self.name, self.maximize)

    @property
    def classification(self) -> bool:
        """Class ids as targets: cross-entropy for fine-tuning, per-class audit figures."""
        return self.targets == "classes"

    def score(self, y_true: Arrays, y_pred: Arrays) -> Score:
        """The metric on a whole split; raises ``ValueError`` when its result is not a number."""
        fn = self.fn if self.fn is not None else _resolve(self.spec, self.spec)[0]
        out = fn(self.scored(y_true), self.scored(y_pred))
        per_sample = None
        if isinstance(out, tuple):
            if len(out) != 2:
                raise ValueError(f"metric {self.name} returned a tuple of {len(out)}, not 2")
            out, per_sample = out
            per_sample = np.asarray(per_sample, dtype=np.float64).reshape(-1)
        try:
            value = float(out)
        except (TypeError, ValueError):
            raise ValueError(
                f"metric {self.name} returned {type(out).__name__}, not a number"
            ) from None
        if math.isnan(value):
            raise ValueError(f"metric {self.name} returned NaN")
        return Score(value, per_sample)

    def scored(self, y: Arrays) -> Arrays:
        """What of ``y`` the metric reads: its ``output``'s array, else all of ``y``."""
        if self.output is None or not isinstance(y, dict):
            return y
        if self.output not in y:
            raise ValueError(
                f"metric {self.name} scores output {self.output!r}, not in {sorted(y)}"
            )
        return y[self.output]

    def class_outputs(self, output_names: list[str]) -> set[str]:
        """The outputs whose targets must be class ids for this metric."""
        if not self.classification:
            return set()
        if self.output is not None:
            return {self.output}
        return set(output_names) if len(output_names) == 1 else set()

    def chance(self, y_train: Arrays, y_val: Arrays, n_classes: int | None) -> float | None:
        """The value a model must beat to be told from guessing on ``y_val``, in the metric's
        units: what a constant answer scores (the training majority class for class targets,
        the training mean otherwise), moved by two standard errors of its per-sample scores
        towards better where the metric has them. None where no constant answer can be
        formed (several outputs, a user function that needs more)."""
        train, val = self.scored(y_train), self.scored(y_val)
        if isinstance(val, dict) or isinstance(train, dict):
            return None
        train, val = np.asarray(train), np.asarray(val)
        if not val.size:
            return None
        ids = self.targets == "outputs" and np.issubdtype(val.dtype, np.integer)
        if self.classification or ids:
            if not n_classes:
                return None
            values, counts = np.unique(train, return_counts=True)
            constant = np.zeros((*val.shape, max(int(n_classes), 2)), np.float32)
            constant[..., int(values[np.argmax(counts)])] = 1.0
        else:
            constant = np.broadcast_to(train.mean(axis=0), val.shape).astype(np.float32)
        plain = dataclasses.replace(self, output=None)  # ``val`` is the scored output already
        try:
            score = plain.score(val, constant)
        except Exception:  # a metric undefined on a constant answer (AUC of one class ...)
            return None
        if score.per_sample is None or len(score.per_sample) < 2:
            return score.value
        spread = 2.0 * float(np.std(score.per_sample)) / math.sqrt(len(score.per_sample))
        return score.value + spread * self.quality.sign

    def __call__(self, y_true: Arrays, y_pred: Arrays) -> float:
        return self.score(y_true, y_pred).value

    def __reduce__(self) -> Any:
        # A user function from a file is not importable by name in another process: send the
        # spec and load it again there (built-ins resolve by name too).
        if self.spec:
            direction = "maximize" if self.maximize else "minimize"
            return (get_metric, (self.spec, direction, "metric", self.output))
        return (Metric, (self.name, self.maximize, self.targets, "", self.fn, self.output))


def from_function(fn: MetricFn, direction: str, name: str | None = None) -> Metric:
    """A metric from a Python callable (the Python API's way to bring one)."""
    return Metric(
        name=name or getattr(fn, "__name__", "score"),
        maximize=_direction(direction, "<python>"),
        targets="any",
        fn=fn,
    )


def get_metric(
    spec: str, direction: str | None = None, where: str = "metric", output: str | None = None
) -> Metric:
    """A built-in by name, or a user function ``file.py:function`` / ``module:function``;
    ``output`` names the one output it scores (a model with several).

    Raises:
        InputError: unknown name, missing file or function, or a function without
            ``direction`` (built-ins know theirs; a given direction must agree).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(where, f"metric must be a name or 'file.py:function', got {spec!r}")
    if spec in BUILTIN:
        fn, maximize, targets = BUILTIN[spec]
        if direction is not None and _direction(direction, where) != maximize:
            raise InputError(
                where,
                f"metric {spec} is {'maximized' if maximize else 'minimized'}, not {direction}",
            )
        return Metric(spec, maximize, targets, spec, fn, output)
    if ":" not in spec:
        raise InputError(
            where,
            f"unknown metric {spec!r} (built-ins: {', '.join(sorted(BUILTIN))}; or "
            "'file.py:function')",
        )
    if direction is None:
        raise InputError(
            where, f"metric {spec} is a function: give direction: maximize or minimize"
        )
    fn, name = _resolve(spec, where)
    return Metric(name, _direction(direction, where), "any", spec, fn, output)


def _direction(direction: Any, where: str) -> bool:
    if direction not in ("maximize", "minimize"):
        raise InputError(where, f"direction must be maximize or minimize, got {direction!r}")
    return direction == "maximize"


def _resolve(spec: str, where: str) -> tuple[MetricFn, str]:
    if spec in BUILTIN:
        return BUILTIN[spec][0], spec
    return load_function(spec, where, "metric")


# --- built-ins --------------------------------------------------------------------------------


def _single(y: Arrays) -> np.ndarray:
    """The one array of a single-output task (a built-in classifier or regression metric)."""
    if isinstance(y, dict):
        if len(y) != 1:
            raise ValueError(
                f"this metric scores one output; the model has {sorted(y)}: name the one it "
                "scores with metric_output"
            )
        return np.asarray(next(iter(y.values())))
    return np.asarray(y)


def predicted_classes(y_pred: Arrays) -> np.ndarray:
    """Class ids from class scores (last axis); one sigmoid unit: above 0.5 is class 1."""
    scores = _single(y_pred)
    if scores.shape[-1] == 1:
        return (scores[..., 0] > 0.5).astype(np.int64)
    return np.argmax(scores, axis=-1)


def _labels(y_true: Arrays) -> np.ndarray:
    labels = _single(y_true)
    if labels.ndim >= 1 and labels.shape[-1:] == (1,) and labels.ndim > 1:
        labels = labels[..., 0]
    return labels.astype(np.int64)


def accuracy(y_true: Arrays, y_pred: Arrays) -> tuple[float, np.ndarray]:
    """Share of samples whose top class is the label (per pixel for dense outputs)."""
    correct = (predicted_classes(y_pred) == _labels(y_true)).astype(np.float64)
    per_sample = correct.reshape(len(correct), -1).mean(axis=1)
    return float(per_sample.mean()), per_sample


def top5_accuracy(y_true: Arrays, y_pred: Arrays) -> tuple[float, np.ndarray]:
    """Share of samples whose label is among the five highest class scores."""
    scores, labels = _single(y_pred), _labels(y_true)
    k = min(5, scores.shape[-1])
    top = np.argsort(-scores, axis=-1)[..., :k]
    hit = np.any(top == labels[..., None], axis=-1).astype(np.float64)
    per_sample = hit.reshape(len(hit), -1).mean(axis=1)
    return float(per_sample.mean()), per_sample


def _errors(y_true: Arrays, y_pred: Arrays) -> np.ndarray:
    truth = _single(y_true).astype(np.float64)
    pred = _single(y_pred).astype(np.float64)
    if pred.shape != truth.shape and pred.size == truth.size:
        pred = pred.reshape(truth.shape)  # (N, 1) against (N,)
    return (pred - truth).reshape(len(truth), -1)


def mae(y_true: Arrays, y_pred: Arrays) -> tuple[float, np.ndarray]:
    """Mean absolute error over samples and output units."""
    per_sample = np.abs(_errors(y_true, y_pred)).mean(axis=1)
    return float(per_sample.mean()), per_sample


def mse(y_true: Arrays, y_pred: Arrays) -> tuple[float, np.ndarray]:
    """Mean squared error over samples and output units."""
    per_sample = np.square(_errors(y_true, y_pred)).mean(axis=1)
    return float(per_sample.mean()), per_sample


def rmse(y_true: Arrays, y_pred: Arrays) -> float:
    """Root mean squared error (not a mean over samples: no per-sample scores)."""
    return float(np.sqrt(np.square(_errors(y_true, y_pred)).mean()))


def auc(y_true: Arrays, y_pred: Arrays) -> float:
    """Area under the ROC curve of a binary task (Mann-Whitney, ties counted half)."""
    labels = _labels(y_true).reshape(-1)
    scores = _single(y_pred).astype(np.float64)
    scores = scores[..., -1].reshape(-1) if scores.ndim > 1 else scores
    positive, negative = labels == 1, labels == 0
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    if n_pos + n_neg != labels.size:
        raise ValueError("auc needs binary labels 0 / 1")
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc needs both classes among the labels")
    ranks = rankdata(scores)  # ties share their average rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _confusion(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)


def f1(y_true: Arrays, y_pred: Arrays) -> float:
    """Macro F1 over the classes present in the labels or the predictions."""
    labels, predicted = _labels(y_true).reshape(-1), predicted_classes(y_pred).reshape(-1)
    n = int(max(labels.max(), predicted.max())) + 1
    cm = _confusion(labels, predicted, n)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1) + cm.sum(axis=0)
    present = support > 0
    return float(np.mean(2 * tp[present] / support[present]))


def miou(y_true: Arrays, y_pred: Arrays) -> float:
    """Mean intersection over union of per-pixel class ids (classes seen in labels or output)."""
    labels, predicted = _labels(y_true).reshape(-1), predicted_classes(y_pred).reshape(-1)
    n = max(int(labels.max()), int(predicted.max()), _single(y_pred).shape[-1] - 1) + 1
    cm = _confusion(labels, predicted, n)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=1) + cm.sum(axis=0) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present]))


def fidelity(y_true: Arrays, y_pred: Arrays) -> tuple[float, np.ndarray]:
    """How close a candidate stays to the original model's outputs (``y_true``: what
    :mod:`autocompress.data.targets` makes of them), 1.0 when it matches: per output, for
    top-class ids the share of samples (pixels) whose top class agrees; for values the share of
    their spread the candidate keeps, R^2 = 1 - squared error / variance of the original's
    values over the split (per sample: 1 - its squared error / that variance; their mean is
    R^2). Several outputs: the mean of their per-sample scores."""
    truths = y_true if isinstance(y_true, dict) else {"": y_true}
    preds = y_pred if isinstance(y_pred, dict) else {"": y_pred}
    if len(preds) == 1 and len(truths) == 1:
        preds = {next(iter(truths)): next(iter(preds.values()))}
    parts = []
    for name, truth in truths.items():
        truth, pred = np.asarray(truth), np.asarray(preds[name])
        n = len(truth)
        if np.issubdtype(truth.dtype, np.integer):
            top = predicted_classes(pred)
            parts.append((top == truth.reshape(top.shape)).reshape(n, -1).mean(axis=1))
            continue
        t = truth.astype(np.float64).reshape(n, -1)
        p = pred.astype(np.float64).reshape(n, -1)
        spread = float(t.var(axis=0).mean())
        spread = max(spread, 1e-6 * float(np.square(t).mean()), 1e-12)
        parts.append(1.0 - np.square(p - t).mean(axis=1) / spread)
    per_sample = np.mean(parts, axis=0)
    return float(per_sample.mean()), per_sample


# name -> (function, maximize, what y_true must hold)
BUILTIN: dict[str, tuple[MetricFn, bool, str]] = {
    "accuracy": (accuracy, True, "classes"),
    "top5_accuracy": (top5_accuracy, True, "classes"),
    "mae": (mae, False, "values"),
    "mse": (mse, False, "values"),
    "rmse": (rmse, False, "values"),
    "auc": (auc, True, "classes"),
    "f1": (f1, True, "classes"),
    "miou": (miou, True, "classes"),
    "map50": (map50, True, "any"),
    "fidelity": (fidelity, True, "outputs"),
}

ACCURACY = get_metric("accuracy")
FIDELITY = get_metric("fidelity")  # the default of data without labels
