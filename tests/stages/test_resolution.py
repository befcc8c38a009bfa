"""Input resolution as a search dimension (issue 39, item 4): a convolutional model up to a global
pooling runs at a share of its input size with the teacher's weights; its file takes the smaller
images and every command says so; a model with a Flatten is refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tf_keras as keras

from autocompress.data.resize import Resized, resize_images, scaled_size
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.resolution import at_input_size, resolution_problem
from autocompress.task import TaskData
from tests.conftest import tiny_data, tiny_model
from tests.test_cli import assert_clean_error, cli, search_here

L = keras.layers


def pooled_model(size: int = 16) -> keras.Model:
    """Conv, BatchNorm, a residual Add, global pooling: weights independent of the input size."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 1))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = L.BatchNormalization(momentum=0.9)(x)  # (0.99 does not settle in a short training)
    y = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.Add()([x, y])
    x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def pooled_data() -> TaskData:
    """The tiny digits at 16x16 (resized from 8x8), so that half the resolution is 8x8."""
    d = tiny_data()

    def up(x: np.ndarray) -> np.ndarray:
        return resize_images(x, (16, 16))

    return TaskData(x_train=up(d.x_train), y_train=d.y_train, x_val=up(d.x_val), y_val=d.y_val)


@pytest.fixture(scope="module")
def pooled_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pooled")
    data = pooled_data()
    model = pooled_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0)
    model.save(root / "model.keras")
    np.savez(
        root / "data.npz",
        x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val,
    )  # fmt: skip
    (root / "task.yaml").write_text("name: pooled\nmodel: model.keras\ndata: data.npz\n")
    return root


def test_the_same_weights_run_at_a_smaller_input() -> None:
    model = pooled_model()
    small = at_input_size(model, (8, 8))
    assert tuple(small.inputs[0].shape[1:]) == (8, 8, 1)
    assert tuple(small.outputs[0].shape[1:]) == (10,)
    for a, b in zip(model.get_weights(), small.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert small.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 10)
    assert resolution_problem(model) is None
    assert scaled_size((96, 96, 3), 0.75) == (72, 72)


def test_a_model_whose_weights_follow_the_input_size_is_refused() -> None:
    problem = resolution_problem(tiny_model())  # Conv -> Flatten -> Dense
    assert problem is not None and "dense" in problem.lower() and "global pooling" in problem


def test_a_streamed_split_is_resized_batch_by_batch() -> None:
    from autocompress.data.images import ImageFolder  # noqa: F401  (a real Stream exists)
    from autocompress.data.stream import Stream

    class Plain(Stream):
        x = np.random.default_rng(0).random((10, 16, 16, 1)).astype("float32")

        @property
        def targets(self):  # type: ignore[no-untyped-def]
            return np.arange(10)

        def __len__(self) -> int:
            return 10

        def batches(self, size, seed=None):  # type: ignore[no-untyped-def]
            for i in range(0, 10, size):
                yield self.x[i : i + size], np.arange(10)[i : i + size]

        def samples(self, index):  # type: ignore[no-untyped-def]
            return self.x[index]

        def digest(self) -> str:
            return "plain"

    small = Resized(Plain(), (8, 8))
    (xb, original, yb), *_ = small.batches_with_originals(4)
    assert xb.shape == (4, 8, 8, 1) and original.shape == (4, 16, 16, 1)
    np.testing.assert_allclose(xb, resize_images(original, (8, 8)))
    assert small.samples(np.arange(3)).shape == (3, 8, 8, 1) and small.digest() == "plain@8x8"


def test_a_candidate_at_half_resolution_builds_with_every_stage_after_it() -> None:
    """Resolution, a teacher-initialised student and fine-tuning with the teacher: the file
    takes 8x8 images; the teacher's targets come from the 16x16 ones."""
    data = pooled_data()
    teacher = pooled_model()
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    ctx = BuildContext(data=data, teacher=teacher)
    recipe = Recipe(
        resolution=0.5, student_width=0.5, distill_epochs=1, sparsity=0.5,
        finetune_epochs=1, finetune_loss="distill", quantization="int8",
    )  # fmt: skip
    tflite, records, model = build_candidate(teacher, recipe, ctx)
    from autocompress.evaluation.deployed import input_shape

    assert input_shape(tflite) == "8x8x1"
    assert [r.stage for r in records] == ["resolution", "distill", "prune", "convert"]
    assert records[0].facts["input_size"] == "8x8"
    assert tuple(model.inputs[0].shape[1:]) == (8, 8, 1)


def test_search_show_pick_and_export_say_the_input_size(
    ray_cluster, pooled_task: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "resolution: [1.0, 0.5]\nfinetune_epochs: 1\nfinetune_loss: distill\nquantization: [none]\n"
    )
    out = tmp_path / "run"
    proc = search_here(pooled_task / "task.yaml", out, space=space, trials=3)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    # The baseline first, though the space fixes a training choice it does not make.
    assert (trials.loc[0, "resolution"], trials.loc[0, "finetune_loss"]) == (1.0, "task")
    shapes = dict(zip(trials["resolution"], trials["input_shape"]))
    assert shapes == {1.0: "16x16x1", 0.5: "8x8x1"}
    half = int(trials.loc[trials["resolution"] == 0.5, "trial"].iloc[0])
    assert trials.loc[trials["trial"] == half, "accuracy"].iloc[0] > 0.3  # chance: 0.1
    report, front = (out / "report.html").read_text(), pd.read_csv(out / "pareto.csv")
    assert "input_shape" in report and all(s in report for s in front["input_shape"])
    shown = cli("show", str(out), "--all")
    assert "8x8x1" in shown.stdout and "16x16x1" in shown.stdout
    exported = tmp_path / "half.tflite"
    assert cli("export", str(out), "--trial", str(half), "--out", str(exported)).returncode == 0
    note = json.loads((tmp_path / "half.audit.json").read_text())["export"]["input"]
    assert (
        note["shape"] == "8x8x1"
        and note["resolution"] == 0.5
        and "tf.image.resize" in (note["resize"])
    )


def test_a_flatten_model_leaves_smaller_resolutions_out(
    ray_cluster, task_files: Path, tmp_path: Path
) -> None:
    """Offered beside 1.0 (as techniques.yaml does), a smaller resolution is left out with a
    warning naming why; asked for alone, the space is refused in one line."""
    space = tmp_path / "space.yaml"
    space.write_text("resolution: [1.0, 0.5]\nquantization: [none]\n")
    proc = search_here(task_files / "task.yaml", tmp_path / "run", space=space, trials=1)
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_csv(tmp_path / "run" / "trials.csv")["resolution"]) == {1.0}
    assert "resolution below 1.0 left out" in (tmp_path / "run" / "search.log").read_text()
    space.write_text("resolution: [0.5]\nquantization: [none]\n")
    proc = search_here(task_files / "task.yaml", tmp_path / "run2", space=space)
    assert_clean_error(proc, "space.yaml", "resolution below 1.0 does not fit", "global pooling")
