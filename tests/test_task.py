from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocompress.errors import InputError
from autocompress.task import load_task


def test_task_yaml_loads(task_files: Path) -> None:
    task = load_task(task_files / "task.yaml")
    assert task.name == "tiny"
    assert task.data.x_train.shape[1:] == (8, 8, 1)


def _write(root: Path, yaml_text: str, **arrays: np.ndarray) -> Path:
    if arrays:
        np.savez(root / "d.npz", **arrays)
    (root / "t.yaml").write_text(yaml_text)
    return root / "t.yaml"


def test_missing_model_file(tmp_path: Path, task_files: Path) -> None:
    path = _write(tmp_path, f"model: nowhere.keras\ndata: {task_files / 'data.npz'}\n")
    with pytest.raises(InputError, match="nowhere.keras: model file not found"):
        load_task(path)


def test_not_a_model(tmp_path: Path, task_files: Path) -> None:
    (tmp_path / "junk.keras").write_bytes(b"not a zip file at all")
    path = _write(tmp_path, f"model: junk.keras\ndata: {task_files / 'data.npz'}\n")
    with pytest.raises(InputError, match="cannot be loaded as a Keras model"):
        load_task(path)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"x_train": np.zeros((5, 9, 9, 1), "float32")}, "sample shape"),
        ({"x_val": np.full((5, 8, 8, 1), np.nan, "float32")}, "NaN"),
        ({"y_train": np.full(600, 12)}, "labels range up to 12"),
        ({"y_val": np.zeros((0,), "int64"), "x_val": np.zeros((0, 8, 8, 1), "float32")}, "empty"),
        ({"y_train": np.zeros(600, "float32")}, "integer class ids"),
    ],
)
def test_data_not_matching_model(tmp_path, task_files: Path, change: dict, fragment: str) -> None:
    with np.load(task_files / "data.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(change)
    if "x_train" in change and "y_train" not in change:
        arrays["y_train"] = arrays["y_train"][: len(change["x_train"])]
    if "x_val" in change and "y_val" not in change:
        arrays["y_val"] = arrays["y_val"][: len(change["x_val"])]
    path = _write(tmp_path, f"model: {task_files / 'model.keras'}\ndata: d.npz\n", **arrays)
    with pytest.raises(InputError) as info:
        load_task(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_that_needs_code_is_refused_unless_trusted(
    tmp_path: Path, task_files: Path, suffix: str
) -> None:
    import tf_keras as keras

    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Lambda(lambda x: x * 2.0, name="doubler"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.save(tmp_path / f"m{suffix}")
    path = _write(tmp_path, f"model: m{suffix}\ndata: {task_files / 'data.npz'}\n")
    with pytest.raises(InputError) as info:
        load_task(path)
    assert "'doubler' of type Lambda" in str(info.value) and "--trust-model" in str(info.value)
    assert load_task(path, trust_model=True).name == "t"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_compiled_model_loads_without_trust(tmp_path: Path, task_files: Path, suffix: str) -> None:
    """A trained model's optimizer config is not code: only the architecture is checked."""
    import tf_keras as keras

    model = keras.Sequential(
        [keras.layers.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int64"), verbose=0)
    model.save(tmp_path / f"m{suffix}")
    path = _write(tmp_path, f"model: m{suffix}\ndata: {task_files / 'data.npz'}\n")
    assert load_task(path).name == "t"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["name", "model", "data", "entry_point", "modle"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=12),
            st.sampled_from(["model.keras", "data.npz", "os:getcwd", "x:y", "../task0"]),
            st.lists(st.text(max_size=3), max_size=2),
        ),
        max_size=4,
    )
)
def test_random_task_documents_give_task_or_clean_error(task_files: Path, doc: dict) -> None:
    path = task_files / "random.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        task = load_task(path)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).split(": ")[0]
        return
    assert task.data.x_train.shape[1:] == (8, 8, 1)
