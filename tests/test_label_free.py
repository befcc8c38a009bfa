"""Data without labels: an ``.npz`` of inputs alone, a pipeline that yields inputs, an image folder
without class subfolders. The original model's outputs become the targets (top-class ids for
class scores, values otherwise), ``fidelity`` is the default metric, and a search, ``pick
--max-drop 1% --confidence 0.95`` and the report work on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.data.targets import as_targets, class_scores
from autocompress.errors import InputError
from autocompress.metrics import fidelity, get_metric
from autocompress.task import load_task
from tests.test_cli import cli, search_here

pytestmark = pytest.mark.usefixtures("ray_cluster")  # searches run in this process

PIPELINE = """
import numpy as np

_DATA = np.load(__file__.replace("pipe.py", "inputs.npz"))


def splits():
    def batches(key):
        x = _DATA[key]
        return [x[i : i + 50] for i in range(0, len(x), 50)]  # a list: re-iterable

    return {"train": batches("x_train"), "val": batches("x_val")}


def shuffled():
    class Shuffled:
        def __iter__(self):
            x = _DATA["x_val"][np.random.permutation(len(_DATA["x_val"]))]
            return iter([x[i : i + 50] for i in range(0, len(x), 50)])

    return {"train": Shuffled(), "val": Shuffled()}
"""


def test_fidelity_per_output_kind() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 100)
    values = rng.normal(size=(100, 4)).astype("float32")
    scores = np.eye(5)[ids] * 0.9 + 0.02
    truth = {"cls": ids, "box": values}
    value, per_sample = fidelity(truth, {"cls": scores, "box": values})
    assert value == pytest.approx(1.0) and per_sample.shape == (100,)
    wrong = np.roll(scores, 1, axis=-1)  # never the same top class
    value, _ = fidelity(truth, {"cls": wrong, "box": values})
    assert value == pytest.approx(0.5)  # one output agrees fully, the other never
    noisy = values + rng.normal(scale=values.std(axis=0).mean() * 0.5, size=values.shape)
    r2, per_sample = fidelity(values, noisy)
    assert 0.6 < r2 < 0.85 and per_sample.mean() == pytest.approx(r2)
    metric = get_metric("fidelity")
    assert metric.maximize and metric.targets == "outputs"


def test_targets_are_top_classes_for_class_scores_and_values_otherwise() -> None:
    softmax = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], "float32")
    logits = np.array([[2.0, -1.0, 0.5], [0.3, 0.1, 0.0]], "float32")
    assert class_scores(softmax) and not class_scores(logits)
    assert not class_scores(np.array([[0.3], [0.9]], "float32"))  # one unit: a value
    targets = as_targets({"p": softmax, "l": logits}, {"p": True, "l": False})
    assert targets["p"].tolist() == [1, 0] and targets["l"].dtype == np.float32


def _inputs_only(task_files: Path, root: Path) -> None:
    data = np.load(task_files / "data.npz")
    np.savez(root / "inputs.npz", x_train=data["x_train"], x_val=data["x_val"])
    (root / "model.keras").symlink_to(task_files / "model.keras")


def _image_folder(root: Path) -> None:
    import tf_keras as keras
    from PIL import Image

    from tests.test_images import CLASSES, _draw

    rng = np.random.default_rng(0)
    for split, n in {"train": 30, "val": 12}.items():
        (root / "images" / split).mkdir(parents=True)
        for i in range(n):
            image = _draw(CLASSES[i % 3], rng)
            Image.fromarray(image).save(root / "images" / split / f"{i}.png")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(root / "model.keras")


def _layout(kind: str, root: Path, task_files: Path) -> Path:
    """A task file of ``kind`` without labels in ``root``."""
    if kind == "npz":
        _inputs_only(task_files, root)
        data = "inputs.npz"
    elif kind == "pipeline":
        _inputs_only(task_files, root)
        (root / "pipe.py").write_text(PIPELINE)
        data = "pipe.py:splits"
    else:
        _image_folder(root)
        data = "images"
    (root / "task.yaml").write_text(f"model: model.keras\ndata: {data}\n")
    return root / "task.yaml"


@pytest.mark.parametrize("kind", ["npz", "pipeline", "images"])
def test_a_task_without_labels_takes_the_model_outputs(
    kind: str, tmp_path: Path, task_files: Path
) -> None:
    task = load_task(_layout(kind, tmp_path, task_files))
    assert task.metric.name == "fidelity"
    y_val = task.data.y_val
    assert np.issubdtype(np.asarray(y_val).dtype, np.integer)  # softmax -> top-class ids
    teacher_says = np.argmax(task.teacher.predict(task.data.x_val), axis=-1)
    np.testing.assert_array_equal(y_val, teacher_says)
    assert task.metric(y_val, task.teacher.predict(task.data.x_val)) == 1.0


@pytest.mark.parametrize("kind", ["npz", "pipeline", "images"])
def test_search_pick_and_report_without_labels(
    kind: str, tmp_path: Path, task_files: Path, smoke_space_file: Path
) -> None:
    task = _layout(kind, tmp_path, task_files)
    run = tmp_path / "run"
    trials = 2 if kind == "npz" else 1  # the baseline alone, for the streamed layouts
    proc = search_here(task, run, "--no-warm-start", space=smoke_space_file, trials=trials)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "report.html").is_file()
    trials = pd.read_csv(run / "trials.csv")
    assert "fidelity" in trials.columns and (trials["state"] == "COMPLETE").all()
    baseline = trials.loc[trials["trial"] == 0, "fidelity"].item()
    assert baseline > 0.99  # the fp32 conversion of the teacher agrees with it
    proc = cli("pick", str(run), "--max-drop", "1%", "--confidence", "0.95")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fidelity" in proc.stdout


def test_a_shuffled_pipeline_without_labels_is_refused(tmp_path: Path, task_files: Path) -> None:
    _layout("pipeline", tmp_path, task_files)
    (tmp_path / "task.yaml").write_text("model: model.keras\ndata: pipe.py:shuffled\n")
    with pytest.raises(InputError, match="do not shuffle a pipeline without labels"):
        load_task(tmp_path / "task.yaml")
