"""A tolerance users can trust: how much worse than the baseline a candidate is, and how sure.

``--max-drop D`` accepts a candidate at most ``D`` worse than the baseline in the metric's own
direction, ``D`` absolute in the metric's units (``0.01``) or relative to the baseline (``1%``).
Point estimates on one validation set often separate models by one or two samples, so
``--confidence C`` holds each candidate to the upper ``C`` bound of its drop instead: a paired
bootstrap over the validation samples (the same resampled samples for candidate and baseline),
on the metric's per-sample scores where it has them, else recomputing the metric on each
resample of both models' outputs. What a trial leaves for this is its validation evidence,
``models/trial_N.val.npz`` (:mod:`autocompress.evaluation.evidence`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autocompress.data.arrays import Arrays, count, take
from autocompress.errors import InputError
from autocompress.evaluation.evidence import outputs_of
from autocompress.metrics import Metric

RESAMPLES_SCORES = 2000  # bootstrap resamples over per-sample scores (cheap: a mean each)
RESAMPLES_RECOMPUTE = 300  # resamples where the metric is recomputed on the outputs


@dataclass(frozen=True)
class MaxDrop:
    """The user's tolerance: ``value`` in the metric's units, or a share of the baseline."""

    value: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str | float, where: str = "--max-drop") -> MaxDrop:
        raw = str(text).strip()
        relative = raw.endswith("%")
        try:
            value = float(raw[:-1] if relative else raw)
        except ValueError:
            raise InputError(where, f"cannot parse {text!r} (use e.g. 0.01 or 1%)") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(where, f"must be 0 or more, got {text!r}")
        return cls(value / 100.0 if relative else value, relative)

    def limit(self, baseline: float) -> float:
        """The largest drop accepted against ``baseline``."""
        return self.value * abs(baseline) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def drop_bound(
    metric: Metric,
    y_val: Arrays | None,
    baseline: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    confidence: float,
    seed: int = 0,
) -> float:
    """The upper ``confidence`` bound of the candidate's drop against the baseline (paired
    bootstrap over validation samples; > 0: worse)."""
    q = metric.quality
    rng = np.random.default_rng(seed)
    if "scores" in baseline and "scores" in candidate:
        a, b = baseline["scores"], candidate["scores"]
        picks = rng.integers(0, len(a), size=(RESAMPLES_SCORES, len(a)))
        drops = q.sign * (a[picks].mean(axis=1) - b[picks].mean(axis=1))
        return float(np.quantile(drops, confidence))
    if y_val is None:
        raise InputError("--confidence", "needs the validation targets to recompute the metric")
    base_out, cand_out = outputs_of(baseline), outputs_of(candidate)
    n = count(y_val)
    drops = []
    for _ in range(RESAMPLES_RECOMPUTE):
        idx = rng.integers(0, n, size=n)
        y = take(y_val, idx)
        drops.append(q.drop(metric(y, take(base_out, idx)), metric(y, take(cand_out, idx))))
    return float(np.quantile(drops, confidence))
