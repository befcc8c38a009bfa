"""Keras 3 model files: rebuilt in tf_keras with equal outputs, refused in one line otherwise.

The models are built here with ``import keras`` (Keras 3, whatever ``TF_USE_LEGACY_KERAS`` says),
with BatchNormalization statistics randomised so that a wrong translation shows in the outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.models.keras3 import is_keras3_file, load_keras3, translate
from autocompress.models.parity import check_parity

keras = pytest.importorskip("keras")


def randomise_batchnorm(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.2, beta.shape),
                    rng.normal(0, 0.2, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


def plain_cnn():
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)  # conv -> BN -> ReLU: the pattern QAT folds
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


def mlp():
    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def nested():
    inner = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="hard_silu")], name="inner"
    )
    inp = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(inner(inp))
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


APPS = {
    "mobilenet_v2": lambda: keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10
    ),
    "mobilenet_v3_small": lambda: keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
    "efficientnet_b0": lambda: keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
    "resnet50": lambda: keras.applications.ResNet50(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
}
FAMILIES = {"plain_cnn": plain_cnn, "mlp": mlp, "nested": nested, **APPS}


def sample_inputs(model, n: int = 8) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(1).uniform(0, 1, (n, *shape)).astype("float32")


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_rebuilt_model_computes_the_same(family: str, suffix: str, tmp_path: Path) -> None:
    if suffix == ".h5" and family in APPS and family != "mobilenet_v2":
        # one application is enough for HDF5; Keras 3.15 itself cannot load MobileNetV3 from
        # HDF5 (its `x + 3.0` operation nodes), which the loader reports in one line
        pytest.skip("one application is enough for the HDF5 format")
    import tf_keras

    model = FAMILIES[family]()
    randomise_batchnorm(model)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    assert is_keras3_file(path)
    x = sample_inputs(model)
    rebuilt = load_keras3(path, x)
    assert isinstance(rebuilt, tf_keras.Model)
    want = model.predict(x, verbose=0)
    got = rebuilt.predict(x, verbose=0)
    assert np.max(np.abs(want - got)) <= 1e-4
    assert rebuilt.count_params() == model.count_params()


def test_tf_keras_file_is_not_keras3(task_files: Path) -> None:
    assert not is_keras3_file(task_files / "model.keras")


def test_parity_gate_names_the_first_differing_layer() -> None:
    model = plain_cnn()
    randomise_batchnorm(model)
    rebuilt = translate(model)
    kernel, bias = rebuilt.get_layer(model.layers[1].name).get_weights()
    rebuilt.get_layer(model.layers[1].name).set_weights([kernel * 1.5, bias])
    with pytest.raises(InputError, match=rf"first at layer '{model.layers[1].name}'"):
        check_parity(model, rebuilt, sample_inputs(model), "m.keras")


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (
            lambda inp: keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp),
            "layer 'double' of type Lambda",
        ),
        (
            lambda inp: keras.layers.UnitNormalization(name="unit")(inp),
            "layer 'unit' of type UnitNormalization",
        ),
    ],
)
def test_untranslatable_layer_is_one_line_naming_it(build, fragment: str, tmp_path: Path) -> None:
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(build(inp)))
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(InputError) as info:
        load_keras3(path, np.zeros((2, 4), "float32"))
    message = str(info.value)
    assert fragment in message and str(path) in message and ".tflite" in message
    assert "\n" not in message


def test_subclassed_model_is_refused(tmp_path: Path) -> None:
    @keras.saving.register_keras_serializable(package="autocompress_test")
    class Tiny(keras.Model):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(np.zeros((1, 4), "float32"))
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(InputError, match="subclassed model"):
        load_keras3(path, np.zeros((2, 4), "float32"))


@pytest.fixture(scope="module")
def keras3_task(tmp_path_factory: pytest.TempPathFactory, tiny_task) -> Path:
    """A Keras 3 CNN trained on the tiny digits task and saved as a user would: a task YAML."""
    root = tmp_path_factory.mktemp("keras3_task")
    d = tiny_task.data
    keras.utils.set_random_seed(0)
    model = plain_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(d.x_train, d.y_train, epochs=6, batch_size=32, verbose=0)
    model.save(root / "model.keras")
    np.savez(root / "data.npz", x_train=d.x_train, y_train=d.y_train, x_val=d.x_val, y_val=d.y_val)
    (root / "task.yaml").write_text("name: k3\nmodel: model.keras\ndata: data.npz\n")
    return root


def test_every_technique_runs_on_a_keras3_model(keras3_task: Path) -> None:
    from autocompress.evaluation.deployed import quality
    from autocompress.metrics import ACCURACY
    from autocompress.recipe import Recipe
    from autocompress.stages import BuildContext, build_candidate
    from autocompress.task import load_task

    task = load_task(keras3_task / "task.yaml")
    teacher = task.teacher.build()
    ctx = BuildContext(data=task.data, teacher=teacher)
    recipe = Recipe(
        student_width=0.75,
        channel_fraction=0.25,
        rank_energy=0.95,
        sparsity=0.5,
        clusters=8,
        quantization="qat",
        distill_epochs=2,
        finetune_epochs=1,
    )
    tflite, records, _ = build_candidate(teacher, recipe, ctx)
    assert [r.stage for r in records] == [
        "distill", "channels", "lowrank", "prune", "cluster", "qat", "convert"
    ]  # fmt: skip
    assert quality(tflite, task.data.x_val, task.data.y_val, ACCURACY) > 0.2  # chance is 0.1
    for mode in ("dynamic", "float16", "int8", "int16x8"):
        tflite, _, _ = build_candidate(teacher, Recipe(quantization=mode), ctx)
        assert quality(tflite, task.data.x_val, task.data.y_val, ACCURACY) > 0.5, mode


def test_cli_searches_a_keras3_model(keras3_task: Path, tmp_path: Path, smoke_space_file) -> None:
    from tests.test_cli import search_cli

    run = tmp_path / "run"
    proc = search_cli(keras3_task / "task.yaml", run, "--no-warm-start", space=smoke_space_file)
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 2


def test_cli_refuses_a_lambda_layer_in_one_line(keras3_task: Path, tmp_path: Path) -> None:
    from tests.test_cli import assert_clean_error, run_cli

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    x = keras.layers.Flatten()(x)
    keras.Model(inp, keras.layers.Dense(10)(x)).save(tmp_path / "lam.keras")
    task = tmp_path / "task.yaml"
    task.write_text(f"model: lam.keras\ndata: {keras3_task / 'data.npz'}\n")
    proc = run_cli("search", "--task", str(task), "--out", str(tmp_path / "run"))
    assert_clean_error(proc, "lam.keras", "'double' of type Lambda", ".tflite")
