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
from autocompress.data.arrays import Arrays, count, flatten, keras_predict
from autocompress.data.images import input_image_shape
from autocompress.data.npz import DATA_KEYS
from autocompress.errors import InputError
from autocompress.metrics import ACCURACY, Metric, get_metric
from autocompress.models.loading import load_model
from autocompress.models.stored import compiled_loss, stored_config
from autocompress.models.tflite import TfliteTeacher

if TYPE_CHECKING:
    import tf_keras

TFLITE_SUFFIX = ".tflite"


@dataclass(frozen=True)
class TaskData:
    """Train, validation and (optional) test data; targets are what the task's metric scores
    (integer class ids for a classifier). Each is one array, or a dict by input / output name
    for a model with several (:mod:`autocompress.data.arrays`).

    Validation data drives everything the search decides (sampler, early stop, constraints,
    ``pick``); the test split, when given, is only measured and reported, so that the accuracy a
    user reads beside a chosen model is one no choice was tuned on.
    """

    x_train: Arrays
    y_train: Arrays
    x_val: Arrays
    y_val: Arrays
    x_test: Arrays | None = None
    y_test: Arrays | None = None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None

    def entries(self, keys: tuple[str, ...] = DATA_KEYS) -> dict[str, np.ndarray]:
        """The arrays of ``keys`` as a data file stores them (``x_val`` or ``x_val.NAME``)."""
        out: dict[str, np.ndarray] = {}
        for key in keys:
            value = getattr(self, key)
            if value is not None:
                out.update(flatten(key, value))
        return out

    def digest(self) -> str:
        """Content hash of the train and validation arrays (the audit's lineage)."""
        return sha256_arrays(*(v for _, v in sorted(self.entries().items())))


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

    def io_shapes(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """Input and output shapes by Keras input / output name, without the batch dimension
        (None where dynamic)."""
        model = self.build()
        return (
            {n: tuple(t.shape[1:]) for n, t in zip(model.input_names, model.inputs)},
            {n: tuple(t.shape[1:]) for n, t in zip(model.output_names, model.outputs)},
        )

    def predict(self, x: Arrays) -> Arrays:
        """The model's outputs on ``x`` (a dict by output name for several outputs)."""
        return keras_predict(self.build(), x)


@dataclass(frozen=True)
class Task:
    """A trained model (the teacher), its data and how its quality is measured.

    ``loss`` is the Keras loss fine-tuning uses: a name, or one per output name; None: the
    loss chosen per output (cross-entropy for class ids, mean squared error otherwise).
    """

    name: str
    teacher: TeacherSpec | TfliteTeacher
    data: TaskData
    source: str = "<python>"
    metric: Metric = ACCURACY
    loss: str | dict[str, str] | None = None


def load_task(path: str | Path, trust_model: bool = False) -> Task:
    """Load a task YAML (``model`` + ``data``, or ``entry_point``), checked against its data.

    ``trust_model`` allows model files that need code to load (see :func:`load_model`).
    """
    source = str(path)
    spec = load_mapping(path)
    check_keys(
        source,
        spec,
        {"name", "model", "data", "entry_point", "metric", "direction", "metric_output", "loss"},
        set(),
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
        inputs = list(TfliteTeacher.from_file(model_path).io_shapes()[0].values())
        shape = inputs[0] if len(inputs) == 1 else ()
        found = tuple(shape) if len(shape) == 3 and None not in shape else None
    else:
        found = input_image_shape(stored_config(model_path)) if model_path.is_file() else None
    if found is None:
        raise InputError(
            str(model_path),
            "an image folder needs a model with one (height, width, channels) input",
        )
    return found  # type: ignore[return-value]


def check_task(task: Task, data_source: str | None = None) -> None:
    """Check that the data fits the model: one array per input and output by name, shapes,
    dtypes, sample counts, label range, no empty or NaN arrays, and a metric that scores the
    teacher.

    Errors name ``data_source`` (the data file) when given, else the task's source.
    """
    src = data_source or task.source
    d = task.data
    inputs, outputs = task.teacher.io_shapes()
    classes = task.metric.class_outputs(list(outputs))
    labels: dict[str, list[np.ndarray]] = {name: [] for name in classes}
    for split in ("train", "val", *(("test",) if d.has_test else ())):
        xs, ys = f"x_{split}", f"y_{split}"
        x = _by_name(src, xs, getattr(d, xs), list(inputs), "input")
        y = _by_name(src, ys, getattr(d, ys), list(outputs), "output")
        n = count(getattr(d, xs))
        for key, arr in [*_keyed(xs, x), *_keyed(ys, y)]:
            _check_array(src, key, arr)
            if len(arr) != n:
                raise InputError(src, f"{xs} has {n} samples but {key} has {len(arr)}")
        for name, expected in inputs.items():
            got = x[name].shape[1:]
            if len(got) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected, got)
            ):
                key = xs if len(inputs) == 1 else f"{xs}.{name}"
                raise InputError(
                    src, f"{key} has sample shape {got} but the model expects {expected}"
                )
        for name in classes:
            key = ys if len(outputs) == 1 else f"{ys}.{name}"
            if not np.issubdtype(y[name].dtype, np.integer):
                raise InputError(
                    src,
                    f"{key} must hold integer class ids for metric {task.metric.name}, "
                    f"not {y[name].dtype} (use a metric such as mae for float targets)",
                )
            labels[name].append(y[name])
    for name in sorted(classes):
        _check_classes(src, outputs[name], labels[name])
    if isinstance(task.loss, dict):
        unknown = sorted(set(task.loss) - set(outputs))
        if unknown:
            raise InputError(
                task.source,
                f"loss names output {unknown[0]!r}, which the model does not have (its "
                f"outputs: {', '.join(outputs)})",
            )
    _check_metric_on_teacher(task.source, task)


def _by_name(
    src: str, key: str, value: Arrays, names: list[str], kind: str
) -> dict[str, np.ndarray]:
    """The arrays of one split key by the model's input / output names; a one-line error for
    an array the model needs but the data lacks, or one it has no tensor for."""
    if not isinstance(value, dict):
        if len(names) != 1:
            wanted = ", ".join(f"{key}.{n}" for n in names)
            raise InputError(src, f"the model has {len(names)} {kind}s: give {wanted}")
        return {names[0]: value}
    missing = [n for n in names if n not in value]
    if missing:
        raise InputError(
            src, f"missing array '{key}.{missing[0]}' for the model's {kind} {missing[0]!r}"
        )
    extra = sorted(set(value) - set(names))
    if extra:
        raise InputError(
            src,
            f"array '{key}.{extra[0]}' names no {kind} of the model (its {kind}s: "
            f"{', '.join(names)})",
        )
    return {n: value[n] for n in names}


def _keyed(key: str, arrays: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(data-file name, array) pairs: ``key`` for one array, ``key.NAME`` for several."""
    if len(arrays) == 1:
        return [(key, next(iter(arrays.values())))]
    return [(f"{key}.{n}", a) for n, a in arrays.items()]


def _check_array(src: str, key: str, arr: np.ndarray) -> None:
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        raise InputError(src, f"data array {key} is empty")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(src, f"data array {key} has non-numeric dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InputError(src, f"data array {key} contains NaN or infinite values")


def _check_classes(src: str, out_shape: tuple, labels: list[np.ndarray]) -> None:
    """Class ids in range of the output's class scores (last axis; one unit: a sigmoid)."""
    if len(out_shape) < 1 or out_shape[-1] is None:
        raise InputError(src, f"the model output {out_shape} is not a vector of class scores")
    n_classes = max(int(out_shape[-1]), 2)
    top = int(max(np.max(y) for y in labels))
    if min(int(np.min(y)) for y in labels) < 0 or top >= n_classes:
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
        for key in ("direction", "metric_output"):
            if key in spec:
                raise InputError(source, f"{key} is given but no metric")
        return None
    name = spec["metric"]
    if isinstance(name, str) and ".py:" in name and not Path(name.split(":")[0]).is_absolute():
        name = str(base / name)
    output = spec.get("metric_output")
    if output is not None and not isinstance(output, str):
        raise InputError(source, f"metric_output must be an output name, got {output!r}")
    return get_metric(name, spec.get("direction"), where=source, output=output)


def _loss(source: str, loss: Any) -> str | dict[str, str] | None:
    """A Keras loss name, or one per output name, checked here (not in a worker)."""
    if loss is None:
        return None
    if isinstance(loss, dict):
        return {str(name): _loss_name(source, value) for name, value in loss.items()}
    return _loss_name(source, loss)


def _loss_name(source: str, loss: Any) -> str:
    import tf_keras

    try:
        tf_keras.losses.get(loss)
    except (ValueError, TypeError):
        raise InputError(source, f"unknown Keras loss {loss!r}") from None
    return str(loss)


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
