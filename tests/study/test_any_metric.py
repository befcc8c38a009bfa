"""A regression model searched with its own metric, end to end: a Keras 3 file compiled with
MAE, ``metric: mae`` in the task, real candidates, and every table, command and file naming the
metric and ranking in its direction; and a user's function through the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress import search
from autocompress.cli import main
from autocompress.front import pareto_mask
from autocompress.run.tables import latency_tolerance
from autocompress.task import load_task

pytestmark = pytest.mark.usefixtures("ray_cluster")

SPACE = "sparsity: [0.0, 0.5]\nquantization: [none, int8]\nfinetune_epochs: 1\n"


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's diabetes data (targets scaled to unit spread) and a small Keras 3 MLP
    compiled with mean absolute error."""
    import keras
    from sklearn.datasets import load_diabetes

    root = tmp_path_factory.mktemp("regression")
    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    y = ((y - y.mean()) / y.std()).astype("float32")
    idx = np.random.default_rng(0).permutation(len(x))
    tr, va, te = idx[:300], idx[300:380], idx[380:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mean_absolute_error")
    model.fit(x[tr], y[tr], epochs=40, batch_size=32, verbose=0)
    model.save(root / "model.keras")
    np.savez(
        root / "data.npz",
        x_train=x[tr], y_train=y[tr], x_val=x[va], y_val=y[va], x_test=x[te], y_test=y[te],
    )  # fmt: skip
    (root / "task.yaml").write_text("model: model.keras\ndata: data.npz\nmetric: mae\n")
    (root / "space.yaml").write_text(SPACE)
    return root


def test_task_takes_metric_and_the_compiled_loss(regression_files: Path) -> None:
    task = load_task(regression_files / "task.yaml")
    assert task.metric.name == "mae" and not task.metric.maximize
    assert task.loss == "mean_absolute_error"  # from the file's compile config


@pytest.fixture(scope="module")
def mae_run(regression_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mae_run") / "run"
    search(
        task=regression_files / "task.yaml",
        space=regression_files / "space.yaml",
        trials=4,
        sampler="random",
        out=out,
        workers=2,
    )
    return out


def test_every_table_names_and_ranks_the_metric(mae_run: Path) -> None:
    trials = pd.read_csv(mae_run / "trials.csv")
    assert {"mae", "test_mae", "noise_mae", "error_p90"} <= set(trials.columns)
    assert "accuracy" not in trials.columns and "max_class_drop" not in trials.columns
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) == 4 and (done["mae"] > 0).all() and (done["mae"] < 1).all()
    front = pd.read_csv(mae_run / "pareto.csv")
    assert list(front["mae"]) == sorted(front["mae"])  # best (lowest) error first
    cols = ["mae", "latency_ms_cpu-host", "gzip_bytes"]
    feasible = done[done["constraints_violated"].isna()]  # (no worse than a constant answer)
    tied = latency_tolerance(feasible, cols, "cpu-host")  # re-timed figures' spreads
    mask = pareto_mask(feasible[cols].to_numpy(float), [False, False, False], tied)
    assert set(front["trial"]) == set(feasible[mask]["trial"])
    assert json.loads((mae_run / "metric.json").read_text()) == {
        "name": "mae",
        "direction": "minimize",
        "spec": "mae",
    }
    audit = json.loads(next((mae_run / "models").glob("*.audit.json")).read_text())
    assert audit["measurement"]["mae"] > 0 and "test_mae" in audit["measurement"]
    assert set(audit["audit"]["error_quantiles"]) == {"p50", "p90", "p99"}
    assert audit["audit"]["per_class_accuracy"] == {}


def test_show_pick_and_report_speak_the_metric(mae_run: Path, capsys) -> None:
    assert main(["show", str(mae_run)]) == 0
    shown = capsys.readouterr().out
    assert "val_mae" in shown and "test_mae" in shown and "accuracy" not in shown
    front = pd.read_csv(mae_run / "pareto.csv")
    bound = float(front["mae"].median())
    assert main(["pick", str(mae_run), "--min-quality", str(bound), "--wide"]) == 0
    picked = capsys.readouterr().out
    best = front[front["mae"] <= bound].sort_values("mae").iloc[0]
    assert f"{best['mae']:.4g}"[:5] in picked
    assert main(["report", str(mae_run)]) == 0
    page = (mae_run / "report.html").read_text()
    assert "validation mae" in page and "validation accuracy" not in page


def test_a_python_callable_with_a_direction(regression_files: Path, tmp_path: Path) -> None:
    """The Python API takes a function and its direction; the worker gets it by value."""

    def within_quarter(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, np.ndarray]:
        hit = (np.abs(np.ravel(y_pred) - y_true) < 0.25).astype(float)
        return float(hit.mean()), hit

    result = search(
        task=regression_files / "task.yaml",
        space=regression_files / "space.yaml",
        trials=2,
        sampler="random",
        out=tmp_path / "run",
        metric=within_quarter,
        direction="maximize",
        warm_start=False,
    )
    assert "within_quarter" in result.trials.columns
    assert result.trials["within_quarter"].between(0, 1).all()
    assert result.study.directions[0].name == "MAXIMIZE"
