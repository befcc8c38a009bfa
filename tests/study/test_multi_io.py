"""A model with two inputs and two outputs through every stage: named arrays in the ``.npz``
(``x_train.image``, ``y_train.boxes``, ...), a loss per output from the file's compile config,
each technique building a file whose outputs come back by name, a search with map50, the
confidence bound, export to ONNX, a Keras 3 file with two outputs, the ``.tflite`` route, and
one-line errors for data that does not name what the model needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.evaluation.deployed import predict
from autocompress.recipe import Recipe
from autocompress.study.objective import TrialContext, TrialRequest, run_trial
from autocompress.task import Task, load_task

OUTPUTS = {"boxes", "classes"}


def detection_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """Digits as the ``image`` input, and a box whose corner is given by the ``meta`` input:
    the ``classes`` target is the digit, the ``boxes`` target the box (one object per image)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(d.images), size=n, replace=False)
    meta = rng.uniform(0.0, 0.2, size=(n, 3)).astype("float32")
    boxes = np.stack([meta[:, 0], meta[:, 1], meta[:, 0] + 0.8, meta[:, 1] + 0.8], axis=1)
    return {
        "image": (d.images[idx] / 16.0).astype("float32")[..., None],
        "meta": meta,
        "boxes": boxes.astype("float32"),
        "classes": d.target[idx].astype("int64"),
    }


def two_io_model():  # type: ignore[no-untyped-def]
    import tf_keras as keras

    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPool2D()(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(16, activation="relu")(meta)])
    x = keras.layers.Dense(32, activation="relu")(x)
    boxes = keras.layers.Dense(4, name="boxes")(x)
    classes = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model([image, meta], [boxes, classes])


@pytest.fixture(scope="module")
def two_io_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tf_keras as keras

    root = tmp_path_factory.mktemp("two_io")
    splits = {"train": detection_data(600, 0), "val": detection_data(200, 1)}
    splits["test"] = detection_data(150, 2)
    keras.utils.set_random_seed(0)
    model = two_io_model()
    model.compile(
        "adam", loss={"boxes": "mean_squared_error", "classes": "sparse_categorical_crossentropy"}
    )
    train = splits["train"]
    model.fit(
        {"image": train["image"], "meta": train["meta"]},
        {"boxes": train["boxes"], "classes": train["classes"]},
        epochs=40,
        batch_size=32,
        verbose=0,
    )
    model.save(root / "model.keras")
    arrays = {}
    for split, part in splits.items():
        for name in ("image", "meta"):
            arrays[f"x_{split}.{name}"] = part[name]
        for name in ("boxes", "classes"):
            arrays[f"y_{split}.{name}"] = part[name]
    np.savez(root / "data.npz", **arrays)
    (root / "task.yaml").write_text("model: model.keras\ndata: data.npz\nmetric: map50\n")
    return root


@pytest.fixture(scope="module")
def two_io_task(two_io_files: Path) -> Task:
    return load_task(two_io_files / "task.yaml")


def test_named_arrays_and_a_loss_per_output(two_io_task: Task) -> None:
    d = two_io_task.data
    assert isinstance(d.x_train, dict) and set(d.x_train) == {"image", "meta"}
    assert isinstance(d.y_val, dict) and set(d.y_val) == OUTPUTS and d.has_test
    assert two_io_task.loss == {
        "boxes": "mean_squared_error",
        "classes": "sparse_categorical_crossentropy",
    }
    teacher_map = two_io_task.metric(d.y_val, two_io_task.teacher.predict(d.x_val))
    assert teacher_map > 0.5  # the teacher finds most boxes of the right class


RECIPES = {
    "baseline": Recipe(),
    "distill": Recipe(student_width=0.5, distill_epochs=10),
    # fine-tuned with the teacher beside each output's loss (a class and a box output)
    "prune": Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8", finetune_loss="distill"),
    "cluster": Recipe(clusters=8, finetune_epochs=1),
    "lowrank": Recipe(rank_energy=0.9, finetune_epochs=1),
    "channels": Recipe(
        channel_fraction=0.25, finetune_epochs=1, quantization="float16", finetune_loss="distill"
    ),
    "qat": Recipe(quantization="qat", finetune_epochs=1),
    "int8_tf_converter": Recipe(quantization="int8", exclude="ends"),
    "int16x8": Recipe(quantization="int16x8"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_technique_builds_a_two_output_file(two_io_task: Task, name: str) -> None:
    from autocompress.hardware import load_profile

    ctx = TrialContext(task=two_io_task, profiles=(load_profile("pixel2-cpu"),))
    outcome = run_trial(ctx, TrialRequest(0, RECIPES[name]))
    assert outcome.error is None, outcome.detail
    assert outcome.record is not None and outcome.tflite is not None
    out = predict(outcome.tflite, two_io_task.data.x_val)
    assert isinstance(out, dict) and set(out) == OUTPUTS
    assert out["boxes"].shape == (200, 4) and out["classes"].shape == (200, 10)
    m = outcome.record.measurement
    assert m.quality == pytest.approx(two_io_task.metric(two_io_task.data.y_val, out))
    assert m.test_quality is not None
    # Outputs are not swapped or scrambled: the class output still tells the digits apart
    # (map50 also needs the boxes, which aggressive clustering of the box head can ruin).
    assert np.mean(np.argmax(out["classes"], -1) == two_io_task.data.y_val["classes"]) > 0.3
    assert set(outcome.evidence) == {"outputs.boxes", "outputs.classes"}  # map50: no per sample


def test_sensitivity_and_mixed_precision_with_two_inputs(two_io_task: Task) -> None:
    from autocompress.litert.ptq import calibration_samples
    from autocompress.litert.sensitivity import measure_sensitivity
    from autocompress.stages.convert import to_tflite

    d = two_io_task.data
    float_file = to_tflite(two_io_task.teacher.build(), "none")
    ops = measure_sensitivity(
        float_file, calibration_samples(d.x_train, 50, 0), d.x_val, d.y_val, 64, two_io_task.metric
    )
    assert len(ops) >= 5
    ctx = TrialContext(task=two_io_task, profiles=(), sensitive=tuple(o.pattern for o in ops))
    outcome = run_trial(ctx, TrialRequest(0, Recipe(quantization="int8", keep_sensitive=2)))
    assert outcome.error is None, outcome.detail
    assert outcome.record is not None
    facts = next(s for s in outcome.record.stages if s.stage == "convert").facts
    assert len(facts["kept_float"]) == 2


@pytest.mark.usefixtures("ray_cluster")
def test_search_confidence_and_onnx_export(two_io_files: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    (tmp_path / "space.yaml").write_text("sparsity: [0.0, 0.5]\nquantization: [none, int8]\n")
    (tmp_path / "enqueue.yaml").write_text("- {quantization: int8}\n")
    code = main(
        [
            "search",
            "--task",
            str(two_io_files / "task.yaml"),
            "--space",
            str(tmp_path / "space.yaml"),
            "--enqueue",
            str(tmp_path / "enqueue.yaml"),
            "--trials",
            "3",
            "--out",
            str(out),
            "--sampler",
            "random",
        ]
    )
    assert code == 0
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) == 3 and {"map50", "test_map50", "noise_map50"} <= set(trials.columns)
    capsys.readouterr()
    # map50 has no per-sample scores: the bound resamples the outputs and recomputes it.
    assert main(["show", str(out), "--max-drop", "1", "--confidence", "0.9"]) == 0
    shown = capsys.readouterr().out
    assert "drop" in shown, shown
    trial = int(done[done["quantization"] == "none"]["trial"].iloc[0])
    onnx = tmp_path / "m.onnx"
    args = ["export", str(out), "--trial", str(trial), "--format", "onnx", "--out", str(onnx)]
    assert main(args) == 0
    assert onnx.stat().st_size > 0


def test_data_that_does_not_name_what_the_model_needs(two_io_files: Path, tmp_path: Path) -> None:
    with np.load(two_io_files / "data.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    (tmp_path / "model.keras").write_bytes((two_io_files / "model.keras").read_bytes())
    cases = {
        "no_boxes": ({k: v for k, v in arrays.items() if k != "y_train.boxes"},
                     "missing array 'y_train.boxes' for the model's output 'boxes'"),
        "extra": ({**arrays, "x_val.depth": arrays["x_val.meta"]},
                  "array 'x_val.depth' names no input of the model"),
        "one_array": ({**{k: v for k, v in arrays.items() if not k.startswith("x_train.")},
                       "x_train": arrays["x_train.image"]},
                      "the model has 2 inputs: give x_train.image, x_train.meta"),
    }  # fmt: skip
    for name, (data, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **data)
        task = tmp_path / f"{name}.yaml"
        task.write_text(f"model: model.keras\ndata: {name}.npz\nmetric: map50\n")
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            load_task(task)
    (tmp_path / "loss.yaml").write_text(
        "model: model.keras\ndata: no_boxes.npz\nmetric: map50\nloss: {scores: mse}\n"
    )
    np.savez(tmp_path / "no_boxes.npz", **arrays)
    with pytest.raises(InputError, match="loss names output 'scores'"):
        load_task(tmp_path / "loss.yaml")


def test_a_builtin_metric_scores_the_output_it_is_given(two_io_files: Path, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        f"model: {two_io_files / 'model.keras'}\ndata: {two_io_files / 'data.npz'}\n"
        "metric: accuracy\nmetric_output: classes\n"
    )
    task = load_task(tmp_path / "t.yaml")
    outputs = task.teacher.predict(task.data.x_val)
    assert isinstance(outputs, dict) and isinstance(task.data.y_val, dict)
    want = np.mean(np.argmax(outputs["classes"], -1) == task.data.y_val["classes"])
    assert task.metric(task.data.y_val, outputs) == pytest.approx(want)
    (tmp_path / "u.yaml").write_text(
        f"model: {two_io_files / 'model.keras'}\ndata: {two_io_files / 'data.npz'}\n"
        "metric: accuracy\n"
    )
    with pytest.raises(InputError, match="name the one it scores with metric_output"):
        load_task(tmp_path / "u.yaml")


def test_keras3_file_with_two_outputs(two_io_files: Path, tmp_path: Path) -> None:
    """A Keras 3 model with two named inputs and outputs is rebuilt in tf_keras, parity-checked
    on the dict of validation inputs, and predicts by output name."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta")
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    x = keras.layers.Concatenate()([x, meta])
    boxes = keras.layers.Dense(4, name="boxes")(x)
    classes = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    keras.Model([image, meta], [boxes, classes]).save(tmp_path / "k3.keras")
    (tmp_path / "t.yaml").write_text(
        f"model: k3.keras\ndata: {two_io_files / 'data.npz'}\nmetric: map50\n"
    )
    task = load_task(tmp_path / "t.yaml")
    out = task.teacher.predict(task.data.x_val)
    assert isinstance(out, dict) and set(out) == OUTPUTS


def test_tflite_route_with_two_outputs(
    two_io_task: Task, tmp_path: Path, two_io_files: Path
) -> None:
    from autocompress.stages.convert import to_tflite

    (tmp_path / "m.tflite").write_bytes(to_tflite(two_io_task.teacher.build(), "none"))
    (tmp_path / "t.yaml").write_text(
        f"model: m.tflite\ndata: {two_io_files / 'data.npz'}\nmetric: map50\n"
    )
    task = load_task(tmp_path / "t.yaml")
    ctx = TrialContext(task=task, profiles=())
    outcome = run_trial(ctx, TrialRequest(0, Recipe(quantization="int8")))
    assert outcome.error is None, outcome.detail
    assert outcome.record is not None and outcome.record.measurement.quality > 0.3
