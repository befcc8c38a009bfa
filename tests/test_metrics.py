"""The metric module: built-ins against hand-computed or scikit-learn values, user functions,
directions, per-sample scores, the chance floor, and pickling to workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.metrics import (
    ACCURACY,
    BUILTIN,
    Quality,
    from_function,
    get_metric,
)
from autocompress.metrics.detection import box_iou


def _onehot(classes: list[int], n: int) -> np.ndarray:
    return np.eye(n, dtype="float32")[classes]


def test_accuracy_and_top5_per_sample_scores_average_to_the_value() -> None:
    labels = np.array([0, 1, 2, 2])
    scores = _onehot([0, 1, 1, 2], 3)
    s = ACCURACY.score(labels, scores)
    assert s.value == pytest.approx(0.75)
    assert s.per_sample is not None and list(s.per_sample) == [1, 1, 0, 1]
    top = get_metric("top5_accuracy").score(np.array([9, 0]), np.tile(np.arange(10.0), (2, 1)))
    assert top.value == pytest.approx(0.5)  # 9 is the top class of row 1, 0 is the last of row 2


def test_accuracy_of_one_sigmoid_unit_thresholds_at_a_half() -> None:
    assert ACCURACY(np.array([1, 0, 1]), np.array([[0.9], [0.2], [0.4]])) == pytest.approx(2 / 3)


def test_regression_errors_by_hand() -> None:
    y, p = np.array([1.0, 2.0, 4.0]), np.array([[1.5], [2.0], [2.0]])  # (N, 1) against (N,)
    assert get_metric("mae")(y, p) == pytest.approx((0.5 + 0 + 2) / 3)
    assert get_metric("mse")(y, p) == pytest.approx((0.25 + 0 + 4) / 3)
    assert get_metric("rmse")(y, p) == pytest.approx(np.sqrt(4.25 / 3))
    assert get_metric("rmse").score(y, p).per_sample is None  # not a mean over samples
    assert not get_metric("mae").maximize and get_metric("auc").maximize


def test_auc_and_f1_agree_with_scikit_learn() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.6 + labels * 0.3, 2)  # ties included
    assert get_metric("auc")(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    two_columns = np.stack([1 - scores, scores], axis=1)
    assert get_metric("auc")(labels, two_columns) == pytest.approx(roc_auc_score(labels, scores))
    classes = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.6, classes, rng.integers(0, 4, 300))
    f1 = get_metric("f1")(classes, _onehot(list(predicted), 4))
    assert f1 == pytest.approx(f1_score(classes, predicted, average="macro"))


def test_miou_per_pixel_by_hand() -> None:
    labels = np.array([[[0, 0], [1, 1]]])  # one 2x2 image
    predicted = _onehot([0, 1, 1, 1], 2).reshape(1, 2, 2, 2)
    # class 0: intersection 1, union 2; class 1: intersection 2, union 3
    assert get_metric("miou")(labels, predicted) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_map50_by_hand() -> None:
    boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], "float32")
    truth = {"boxes": boxes, "classes": np.array([[0, 1]])}
    perfect = {"boxes": boxes, "scores": _onehot([0, 1], 2)[None]}
    assert get_metric("map50")(truth, perfect) == pytest.approx(1.0)
    shifted = boxes.copy()
    shifted[0, 1] += 8  # IoU of the second box falls to 4/196: a miss
    missed = {"boxes": shifted, "scores": _onehot([0, 1], 2)[None]}
    assert get_metric("map50")(truth, missed) == pytest.approx(0.5)
    assert box_iou(boxes[0], boxes[0]) == pytest.approx(np.eye(2))


def test_user_function_from_a_file_with_direction(tmp_path: Path) -> None:
    path = tmp_path / "score.py"
    path.write_text(
        "import numpy as np\n"
        "def worst_error(y_true, y_pred):\n"
        "    e = np.abs(np.ravel(y_pred) - y_true)\n"
        "    return float(e.max()), e\n"
    )
    metric = get_metric(f"{path}:worst_error", "minimize")
    assert metric.name == "worst_error" and not metric.maximize
    s = metric.score(np.array([0.0, 1.0]), np.array([[0.5], [3.0]]))
    assert s.value == 2.0 and list(s.per_sample) == [0.5, 2.0]
    again = pickle.loads(pickle.dumps(metric))  # what a Ray worker gets: loaded from the spec
    assert again(np.array([0.0]), np.array([[1.0]])) == 1.0
    assert again.quality == Quality("worst_error", maximize=False)


@pytest.mark.parametrize(
    ("spec", "direction", "fragment"),
    [
        ("acuracy", None, "unknown metric 'acuracy'"),
        ("gone.py:f", "maximize", "not found"),
        ("numpy:no_such_function", "maximize", "no function 'no_such_function'"),
        ("no_such_module_x:f", "maximize", "cannot import"),
        ("numpy:mean", None, "give direction"),
        ("numpy:mean", "up", "maximize or minimize"),
        ("mae", "maximize", "minimized"),
    ],
)
def test_bad_metrics_are_one_line_errors(spec: str, direction: str | None, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        get_metric(spec, direction, where="task.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("task.yaml")
    assert "\n" not in str(info.value)


def test_a_metric_returning_nan_or_text_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        from_function(lambda y, p: float("nan"), "maximize")(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="not a number"):
        from_function(lambda y, p: "ok", "maximize")(np.zeros(2), np.zeros(2))


def test_chance_floor_is_a_constant_answer_plus_two_standard_errors() -> None:
    rng = np.random.default_rng(1)
    y_train, y_val = rng.normal(5.0, 2.0, 400), rng.normal(5.0, 2.0, 100)
    errors = np.abs(y_val - y_train.mean())
    expected = errors.mean() - 2 * errors.std() / np.sqrt(100)  # better = lower for mae
    assert get_metric("mae").chance(y_train, y_val, None) == pytest.approx(expected)
    labels = np.array([0] * 70 + [1] * 30)
    share = 0.7 + 2 * np.sqrt(0.7 * 0.3 / 100)
    assert ACCURACY.chance(labels, labels, 2) == pytest.approx(share)
    assert get_metric("map50").chance({"a": labels}, {"a": labels}, None) is None


def test_quality_drop_follows_the_direction() -> None:
    assert Quality("accuracy", True).drop(0.9, 0.85) == pytest.approx(0.05)
    assert Quality("mae", False).drop(0.30, 0.35) == pytest.approx(0.05)  # higher error: worse
    assert Quality.from_dict(Quality("mae", False).to_dict()) == Quality("mae", False)
    assert {"accuracy", "top5_accuracy", "mae", "mse", "rmse", "auc", "f1", "miou"} <= set(BUILTIN)
