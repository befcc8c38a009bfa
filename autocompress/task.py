"""Tasks: a trained model, its train / validation (/ test) data and its quality metric, loaded
and checked.

A task comes from a YAML file naming a model file, its data (an ``.npz`` file or an image
folder: :mod:`autocompress.data`) and optionally its
``metric`` (a built-in name or ``file.py:function``, with ``direction`` for a function; default
``accuracy``) and ``loss`` (a Keras loss name for fine-tuning; default the loss the model was
compiled with in its file, else one chosen from the metric), or from a Python entry point
``module:function`` returning a :class:`Task`. The model is a Keras file (tf_keras, or Keras
3 rebuilt in tf_keras: every technique applies) or a float ``.tflite`` file (post-training
quantization only; see :mod:`autocompress.models`). Everything a search needs about the task is
checked here, before any trial runs, so that bad input fails in one line instead of in a worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress._digest import sha256_arrays
from autocompress._yaml import check_keys, load_mapping
from autocompress.data import read_image_folder, read_npz
from autocompress.data.images import input_image_shape
from autocompress.data.npz import DATA_KEYS, TEST_KEYS
from autocompress.errors import InputError
from autocompress.metrics import ACCURACY, Metric, get_metric
from autocompress.models import keras3
from autocompress.models.tflite import TfliteTeacher

if TYPE_CHECKING:
    import tf_keras

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_SUFFIX = ".tflite"


@dataclass(frozen=True)
class TaskData:
    """Train, validation and (optional) test arrays; targets are what the task's metric scores
    (integer class ids for a classifier).

    Validation data drives everything the search decides (sampler, early stop, constraints,
    ``pick``); the test split, when given, is only measured and reported, so that the accuracy a
    user reads beside a chosen model is one no choice was tuned on.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None

    def digest(self) -> str:
        """Content hash of the train and validation arrays (the audit's lineage)."""
        return sha256_arrays(self.x_train, self.y_train, self.x_val, self.y_val)


@dataclass(frozen=True)
class TeacherSpec:
    """A Keras model as plain data (architecture JSON + weights), safe to send between processes."""

    config_json: str
    weights: list[np.ndarray]
    trusted: bool = False  # the user allowed code in it (Lambda layers): deserialise unsafely
    trainable: bool = field(default=True, init=False)  # every technique applies

    @classmethod
    def from_model(cls, model: tf_keras.Model, trusted: bool = False) -> TeacherSpec:
        weights = [w.copy() for w in model.get_weights()]
        return cls(config_json=model.to_json(), weights=weights, trusted=trusted)

    def build(self) -> tf_keras.Model:
        """A fresh model object with copied weights; nothing is shared with any other copy."""
        import tf_keras
        from tf_keras.src.saving.serialization_lib import SafeModeScope

        with SafeModeScope(safe_mode=not self.trusted):
            model = tf_keras.models.model_from_json(self.config_json)
        model.set_weights(self.weights)
        return model

    def digest(self) -> str:
        """Hash of the architecture JSON and weights (independent of the file format)."""
        h = hashlib.sha256(self.config_json.encode())
        h.update(sha256_arrays(*self.weights).encode())
        return h.hexdigest()

    def io_shapes(self) -> tuple[list[tuple], list[tuple]]:
        """Input and output shapes without the batch dimension (None where dynamic)."""
        model = self.build()
        return (
            [tuple(t.shape[1:]) for t in model.inputs],
            [tuple(t.shape[1:]) for t in model.outputs],
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs on ``x``."""
        return self.build().predict(x, batch_size=256, verbose=0)


@dataclass(frozen=True)
class Task:
    """A trained model (the teacher), its data and how its quality is measured.

    ``loss`` is the Keras loss fine-tuning uses (a name); None: chosen from the metric
    (cross-entropy for class ids, mean squared error otherwise).
    """

    name: str
    teacher: TeacherSpec | TfliteTeacher
    data: TaskData
    source: str = "<python>"
    metric: Metric = ACCURACY
    loss: str | None = None


def load_task(path: str | Path, trust_model: bool = False) -> Task:
    """Load a task YAML (``model`` + ``data``, or ``entry_point``), checked against its data.

    ``trust_model`` allows model files that need code to load (see :func:`load_model`).
    """
    source = str(path)
    spec = load_mapping(path)
    check_keys(
        source, spec, {"name", "model", "data", "entry_point", "metric", "direction", "loss"}, set()
    )
    base = Path(path).resolve().parent
    metric = _metric(source, spec, base)
    loss = _loss(source, spec.get("loss"))
    if "entry_point" in spec:
        if "model" in spec or "data" in spec:
            raise InputError(source, "give either entry_point or model + data, not both")
        task = _from_entry_point(source, spec["entry_point"], base)
        if metric is not None:
            task = dataclasses.replace(task, metric=metric)
        if loss is not None:
            task = dataclasses.replace(task, loss=loss)
        check_task(task)
        return task
    for key in ("model", "data"):
        if not isinstance(spec.get(key), str):
            raise InputError(source, f"{key!r} must be a file path (or use entry_point)")
    data_path = base / spec["data"]
    model_path = base / spec["model"]
    data = load_data(data_path, model_path)
    teacher: TeacherSpec | TfliteTeacher
    if model_path.suffix == TFLITE_SUFFIX:
        teacher = TfliteTeacher.from_file(model_path)
    else:
        model = load_model(model_path, trust=trust_model, x_check=data.x_val)
        teacher = TeacherSpec.from_model(model, trusted=trust_model)
        loss = loss or compiled_loss(model_path)
    task = Task(
        name=str(spec.get("name", Path(path).stem)),
        teacher=teacher,
        data=data,
        source=source,
        metric=metric or ACCURACY,
        loss=loss,
    )
    check_task(task, data_source=str(data_path))
    return task


def load_model(
    path: Path, trust: bool = False, x_check: np.ndarray | None = None
) -> tf_keras.Model:
    """Load a ``.keras`` / ``.h5`` file or SavedModel directory as a tf_keras model.

    A file saved by Keras 3 is rebuilt in tf_keras (see :mod:`autocompress.models.keras3`) and
    must compute the same outputs on ``x_check`` (the validation inputs).

    Loading can run code: a Lambda layer stores Python bytecode, a custom layer names a class to
    import, and HDF5 files ignore Keras's safe mode. Unless ``trust`` is set, the stored
    architecture is read first, without deserialising anything, and a model that needs code to
    load is refused with a message naming ``--trust-model``.
    """
    import tf_keras

    if not path.exists():
        raise InputError(str(path), "model file not found")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(str(path), "directory is not a SavedModel (no saved_model.pb)")
    elif path.suffix not in MODEL_SUFFIXES:
        raise InputError(
            str(path),
            f"unsupported model file type {path.suffix!r} (use .keras, .h5, .tflite or a "
            "SavedModel)",
        )
    if path.is_file() and keras3.is_keras3_file(path):
        if x_check is None:
            raise InputError(str(path), "a Keras 3 model needs data to check its translation")
        return keras3.load_keras3(path, x_check)
    if not trust:
        needs_code = _layers_needing_code(_stored_config(path))
        if needs_code:
            raise InputError(
                str(path),
                f"loading it would run code (layer {needs_code[0]}); "
                "pass --trust-model if you trust this file",
            )
    try:
        kwargs: dict[str, Any] = {"compile": False}
        if path.suffix == ".keras":
            kwargs["safe_mode"] = not trust
        model = tf_keras.models.load_model(str(path), **kwargs)
    except Exception as exc:  # the loaders raise many unrelated types for a bad file
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(str(path), f"cannot be loaded as a Keras model: {reason}") from None
    if not isinstance(model, tf_keras.Model):
        raise InputError(str(path), "did not load as a Keras model")
    return model


def _stored_config(path: Path) -> Any:
    """The architecture as stored in the file, read as plain JSON (nothing is deserialised)."""
    import json
    import zipfile

    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is None:
                    return None
                return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception as exc:  # not a zip / not HDF5 / no JSON: the loader will say so below
        raise InputError(str(path), f"cannot be loaded as a Keras model: {exc}") from None
    return None  # SavedModel: graphs of TensorFlow ops, no Python code


def _layers_needing_code(config: Any) -> list[str]:
    """Lambda layers and classes that are not built into Keras, anywhere in the architecture.

    The training configuration (``compile_config``: optimizer, loss, metrics) is skipped: models
    are loaded with ``compile=False``, so it is never deserialised.
    """
    import tf_keras

    builtin = set(dir(tf_keras.layers)) | {
        "Functional",
        "Sequential",
        "Model",
        "TFOpLambda",
        "SlicingOpLambda",
    }
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str) and "config" in node and isinstance(node["config"], dict):
                is_layer = "name" in node["config"] or "layers" in node["config"]
                if name == "Lambda" or (is_layer and name not in builtin):
                    found.append(f"{node['config'].get('name', '?')!r} of type {name}")
            for key, value in node.items():
                if key != "compile_config":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def load_data(path: Path, model_path: Path | None = None) -> TaskData:
    """The data a task file names: an ``.npz`` file, or an image folder (decoded at the input
    size of the model in ``model_path``; see :mod:`autocompress.data`)."""
    if path.is_dir():
        if model_path is None:
            raise InputError(str(path), "an image folder needs the model to know the image size")
        shape = _image_input(model_path)
        return TaskData(**read_image_folder(path, (shape[0], shape[1]), shape[2]))
    return TaskData(**read_npz(path))


def _image_input(model_path: Path) -> tuple[int, int, int]:
    """(height, width, channels) of the model's image input, read without loading the model."""
    if not model_path.exists():
        raise InputError(str(model_path), "model file not found")
    if model_path.suffix == TFLITE_SUFFIX:
        inputs = TfliteTeacher.from_file(model_path).io_shapes()[0]
        shape = inputs[0] if len(inputs) == 1 else ()
        found = tuple(shape) if len(shape) == 3 and None not in shape else None
    else:
        found = input_image_shape(_stored_config(model_path)) if model_path.is_file() else None
    if found is None:
        raise InputError(
            str(model_path),
            "an image folder needs a model with one (height, width, channels) input",
        )
    return found  # type: ignore[return-value]


def check_task(task: Task, data_source: str | None = None) -> None:
    """Check that the data fits the model: shapes, dtypes, label range, no empty or NaN arrays.

    Errors name ``data_source`` (the data file) when given, else the task's source.
    """
    src = data_source or task.source
    d = task.data
    keys = DATA_KEYS + (TEST_KEYS if d.has_test else ())
    for key in keys:
        arr = getattr(d, key)
        if not isinstance(arr, np.ndarray) or arr.size == 0:
            raise InputError(src, f"data array {key} is empty")
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(src, f"data array {key} has non-numeric dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise InputError(src, f"data array {key} contains NaN or infinite values")
    pairs = [("x_train", "y_train"), ("x_val", "y_val")]
    pairs += [("x_test", "y_test")] if d.has_test else []
    for xs, ys in pairs:
        x, y = getattr(d, xs), getattr(d, ys)
        if len(x) != len(y):
            raise InputError(src, f"{xs} has {len(x)} samples but {ys} has {len(y)}")
        if task.metric.classification and not np.issubdtype(y.dtype, np.integer):
            raise InputError(
                src,
                f"{ys} must hold integer class ids for metric {task.metric.name}, "
                f"not {y.dtype} (use a metric such as mae for float targets)",
            )
    inputs, outputs = task.teacher.io_shapes()
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(src, "the model must have exactly one input and one output")
    expected = inputs[0]
    for xs in ("x_train", "x_val", *(("x_test",) if d.has_test else ())):
        got = getattr(d, xs).shape[1:]
        if len(got) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected, got)
        ):
            raise InputError(src, f"{xs} has sample shape {got} but the model expects {expected}")
    if task.metric.classification:
        _check_classes(src, task, outputs[0])
    _check_metric_on_teacher(task.source, task)


def _check_classes(src: str, task: Task, out_shape: tuple) -> None:
    """Class ids in range of the model's class scores (last axis; one unit: a sigmoid)."""
    d = task.data
    if len(out_shape) < 1 or out_shape[-1] is None:
        raise InputError(src, f"the model output {out_shape} is not a vector of class scores")
    n_classes = max(int(out_shape[-1]), 2)
    labels = [d.y_train, d.y_val, *((d.y_test,) if d.has_test else ())]
    top = int(max(y.max() for y in labels))
    if min(int(y.min()) for y in labels) < 0 or top >= n_classes:
        raise InputError(src, f"labels range up to {top} but the model outputs {n_classes} classes")


def _check_metric_on_teacher(src: str, task: Task) -> None:
    """The metric must give a number on the teacher's validation outputs, before any trial."""
    try:
        task.metric.score(task.data.y_val, task.teacher.predict(task.data.x_val))
    except InputError:
        raise
    except Exception as exc:  # the user's function: anything it raises is bad input
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            src,
            f"metric {task.metric.name} fails on the teacher's outputs: "
            f"{type(exc).__name__}: {reason}",
        ) from None


def _metric(source: str, spec: dict[str, Any], base: Path) -> Metric | None:
    """The task file's ``metric`` / ``direction`` (a file path relative to the task file)."""
    if "metric" not in spec:
        if "direction" in spec:
            raise InputError(source, "direction is given but no metric")
        return None
    name = spec["metric"]
    if isinstance(name, str) and ".py:" in name and not Path(name.split(":")[0]).is_absolute():
        name = str(base / name)
    return get_metric(name, spec.get("direction"), where=source)


def _loss(source: str, loss: Any) -> str | None:
    """A Keras loss name, checked here (not in a worker)."""
    if loss is None:
        return None
    import tf_keras

    try:
        tf_keras.losses.get(loss)
    except (ValueError, TypeError):
        raise InputError(source, f"unknown Keras loss {loss!r}") from None
    return str(loss)


def compiled_loss(path: Path) -> str | None:
    """The loss the model was compiled with in its file, when it is one Keras loss by name."""
    try:
        config = _stored_config(path)
    except InputError:
        return None
    if not isinstance(config, dict):
        return None
    compiled = config.get("compile_config") or {}
    loss = compiled.get("loss") if isinstance(compiled, dict) else None
    if isinstance(loss, dict):  # a serialised loss object
        loss = loss.get("config", {}).get("name") or loss.get("class_name")
    if not isinstance(loss, str):
        return None
    import tf_keras

    try:
        tf_keras.losses.get(loss)
    except (ValueError, TypeError):
        return None
    return loss


def _from_entry_point(source: str, entry: Any, base: Path) -> Task:
    if not isinstance(entry, str) or entry.count(":") != 1:
        raise InputError(source, "entry_point must look like 'module:function'")
    module_name, func_name = entry.split(":")
    sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(source, f"cannot import {module_name!r}: {exc}") from None
    finally:
        sys.path.remove(str(base))
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputError(source, f"{module_name!r} has no function {func_name!r}")
    task = func()
    if not isinstance(task, Task):
        raise InputError(source, f"{entry} returned {type(task).__name__}, not a Task")
    return task
