"""A Keras 3 model with dict inputs and outputs (``keras.Model({"image": x, "meta": m},
{"digit": c, "box": b})``, as KerasHub and most multi-head Keras 3 code builds them): its dict
keys are its input and output names everywhere -- data arrays, a metric function reading the
outputs by name, every technique of the smoke space in a search, and the exported file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.errors import InputError
from autocompress.models.keras3 import load_keras3
from tests.study.test_multi_io import detection_data
from tests.test_cli import cli, search_here

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.usefixtures("ray_cluster")  # searches run in this process

METRIC = '''
import numpy as np


def digit_accuracy(y_true, y_pred):
    """Reads the outputs by their dict keys."""
    hit = np.argmax(y_pred["digit"], axis=-1) == y_true["digit"]
    return float(hit.mean()), hit.astype(float)
'''
# One recipe per technique of the smoke space (and int8 on its own).
RECIPES = """
- {student_width: 0.5, sparsity: 0.0, clusters: 0, quantization: none}
- {student_width: 1.0, sparsity: 0.3, clusters: 0, quantization: dynamic}
- {student_width: 1.0, sparsity: 0.0, clusters: 8, quantization: float16}
- {student_width: 1.0, sparsity: 0.0, clusters: 0, quantization: qat}
- {student_width: 1.0, sparsity: 0.0, clusters: 0, quantization: int8}
"""


def dict_model():
    """Keys differ from the layer names (``head_digit``), and one key (``meta``) is also the
    name of another layer's output in the graph, as a user's code may have it."""
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta_in")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    m = keras.layers.Dense(8, activation="relu", name="meta")(meta)
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([x, m]))
    digit = keras.layers.Dense(10, activation="softmax", name="head_digit")(x)
    box = keras.layers.Dense(4, activation="hard_swish", name="head_box")(x)
    return keras.Model({"image": image, "meta": meta}, {"digit": digit, "box": box})


@pytest.fixture(scope="module")
def dict_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keras3_dict")
    splits = {"train": detection_data(600, 0), "val": detection_data(200, 1)}
    keras.utils.set_random_seed(0)
    model = dict_model()
    model.compile("adam", loss={"digit": "sparse_categorical_crossentropy", "box": "mse"})
    train = splits["train"]
    model.fit(
        {"image": train["image"], "meta": train["meta"]},
        {"digit": train["classes"], "box": train["boxes"]},
        epochs=20,
        batch_size=32,
        verbose=0,
    )
    model.save(root / "model.keras")
    arrays = {}
    for split, part in splits.items():
        arrays[f"x_{split}.image"], arrays[f"x_{split}.meta"] = part["image"], part["meta"]
        arrays[f"y_{split}.digit"], arrays[f"y_{split}.box"] = part["classes"], part["boxes"]
    np.savez(root / "data.npz", **arrays)
    (root / "metric.py").write_text(METRIC)
    (root / "recipes.yaml").write_text(RECIPES)
    (root / "task.yaml").write_text(
        "model: model.keras\ndata: data.npz\nmetric: metric.py:digit_accuracy\n"
        "direction: maximize\n"
    )
    return root


def test_dict_keys_are_the_names(dict_task: Path) -> None:
    data = dict(np.load(dict_task / "data.npz"))
    x = {"image": data["x_val.image"], "meta": data["x_val.meta"]}
    rebuilt = load_keras3(dict_task / "model.keras", x)
    assert rebuilt.input_names == ["image", "meta"]
    assert rebuilt.output_names == ["digit", "box"]
    assert "meta_1" in [layer.name for layer in rebuilt.layers]  # made way for the key
    original = keras.saving.load_model(dict_task / "model.keras")
    want = original.predict(x, verbose=0)
    got = rebuilt.predict([x["image"], x["meta"]], verbose=0)
    for name, values in zip(rebuilt.output_names, got):
        np.testing.assert_allclose(values, want[name], atol=1e-5)


def test_a_key_on_a_second_output_of_one_layer_is_one_line(tmp_path: Path) -> None:
    inp = keras.Input((4,), name="x")
    y = keras.layers.Dense(2, name="d")(inp)
    keras.Model(inp, {"a": y, "b": y}).save(tmp_path / "twice.keras")
    with pytest.raises(InputError, match="'b' is not the only output of layer 'd'"):
        load_keras3(tmp_path / "twice.keras", np.zeros((2, 4), "float32"))


def test_search_every_technique_and_export(dict_task: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = search_here(
        dict_task / "task.yaml",
        run,
        "--no-warm-start",
        "--enqueue",
        str(dict_task / "recipes.yaml"),
        space=Path("search_spaces/smoke.yaml").resolve(),
        trials=6,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(run / "trials.csv")
    assert (trials["state"] == "COMPLETE").all(), trials[["trial", "state", "error"]]
    assert "digit_accuracy" in trials.columns
    assert trials["digit_accuracy"].max() > 0.5  # chance is 0.1
    best = int(trials.sort_values("digit_accuracy").iloc[-1]["trial"])
    out = tmp_path / "model.tflite"
    proc = cli("export", str(run), "--trial", str(best), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    from ai_edge_litert.interpreter import Interpreter

    (signature,) = Interpreter(model_path=str(out)).get_signature_list().values()
    assert set(signature["inputs"]) == {"image", "meta"}
    assert set(signature["outputs"]) == {"digit", "box"}
