"""--max-drop and --confidence: parsing, and the paired bootstrap bound against hand-made
evidence (per-sample scores, and a metric recomputed on outputs)."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.evaluation.evidence import evidence
from autocompress.evaluation.tolerance import MaxDrop, drop_bound
from autocompress.metrics import ACCURACY, get_metric


def test_max_drop_parses_absolute_and_relative() -> None:
    assert MaxDrop.parse("0.01") == MaxDrop(0.01, False)
    assert MaxDrop.parse("1%").limit(0.8) == pytest.approx(0.008)
    assert MaxDrop.parse("2.5%").limit(-2.0) == pytest.approx(0.05)  # a share of |baseline|
    for bad in ("-0.1", "one", "1%%", "nan"):
        with pytest.raises(InputError, match="--max-drop"):
            MaxDrop.parse(bad)


def test_bound_is_above_the_point_drop_and_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(0)

    def bound(n: int, gap: float) -> tuple[float, float]:
        base = (rng.random(n) < 0.90).astype(float)
        cand = base.copy()
        flips = rng.choice(n, size=int(gap * n), replace=False)
        cand[flips] = 0.0  # the candidate loses some of the baseline's correct answers
        point = base.mean() - cand.mean()
        return point, drop_bound(ACCURACY, None, {"scores": base}, {"scores": cand}, 0.95)

    point_small, bound_small = bound(100, 0.01)
    point_large, bound_large = bound(10000, 0.01)
    assert bound_small > point_small and bound_large > point_large
    assert bound_small - point_small > bound_large - point_large  # fewer samples, less sure
    same = np.ones(50)
    assert drop_bound(ACCURACY, None, {"scores": same}, {"scores": same}, 0.95) == 0.0


def test_error_metric_bound_follows_its_direction() -> None:
    """For MAE a candidate with larger errors has a positive drop."""
    y = np.linspace(0, 1, 400)
    mae = get_metric("mae")
    base = evidence(mae, y, y + 0.01)
    cand = evidence(mae, y, y + 0.05)
    assert set(base) == {"scores"}
    assert drop_bound(mae, y, base, cand, 0.95) > 0.039


def test_metric_without_per_sample_scores_is_recomputed_on_outputs() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    good = np.eye(3)[y]
    worse = np.eye(3)[np.where(rng.random(300) < 0.2, (y + 1) % 3, y)]
    f1 = get_metric("f1")
    base, cand = evidence(f1, y, good), evidence(f1, y, worse)
    assert set(base) == {"outputs"}
    bound = drop_bound(f1, y, base, cand, 0.95)
    point = f1(y, good) - f1(y, worse)
    assert bound > point > 0.1
