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
from autocompress.data.arrays import Arrays, Inputs, count, flatten, keras_predict, take
from autocompress.data.checks import by_name, check_array, check_classes, keyed
from autocompress.data.images import input_image_shape
from autocompress.data.npz import DATA_KEYS
from autocompress.data.pipeline import is_pipeline, read_pipeline
from autocompress.data.stream import Stream
from autocompress.data.targets import label_free, teacher_targets
from autocompress.errors import InputError
from autocompress.metrics import ACCURACY, FIDELITY, Metric, get_metric
from autocompress.models.loading import load_model, model_errors
from autocompress.models.stored import compiled_loss, stored_config
from autocompress.models.tflite import TfliteTeacher

if TYPE_CHECKING:
    import tf_keras

TFLITE_SUFFIX = ".tflite"
# Validation samples of a streamed split a Keras 3 translation is checked on.
PARITY_SAMPLES = 512


@dataclass(frozen=True)
class TaskData:
    """Train, validation and (optional) test data; targets are what the task's metric scores
    (integer class ids for a classifier). Each is one array, or a dict by input / output name
    for a model with several (:mod:`autocompress.data.arrays`).

    Validation data drives everything the search decides (sampler, early stop, constraints,
    ``pick``); the test split, when given, is only measured and reported, so that the accuracy a
    user reads beside a chosen model is one no choice was tuned on.
    """

    x_train: Inputs
    y_train: Arrays
    x_val: Inputs
    y_val: Arrays
    x_test: Inputs | None = None
    y_test: Arrays | None = None

    @classmethod
    def from_pipeline(cls, spec: str) -> TaskData:
        """The splits a function ``file.py:function`` / ``module:function`` gives as
        ``tf.data.Dataset`` s or re-iterables of ``(x, y)`` batches, read in batches (see
        :mod:`autocompress.data.pipeline`): what a task entry point returns for such data."""
        splits = read_pipeline(spec, spec)
        if label_free(splits):
            raise InputError(spec, "yields inputs alone: give data without labels in a task YAML")
        return cls(**splits)  # type: ignore[arg-type]

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None

    def entries(
        self, keys: tuple[str, ...] = DATA_KEYS, samples: int | None = None
    ) -> dict[str, np.ndarray]:
        """The arrays of ``keys`` as a data file stores them (``x_val`` or ``x_val.NAME``);
        a stream's first ``samples`` inputs (none without ``samples``)."""
        out: dict[str, np.ndarray] = {}
        for key in keys:
            value = getattr(self, key)
            if isinstance(value, Stream):
                value = take(value, slice(samples)) if samples else None
            if value is not None:
                out.update(flatten(key, value))
        return out

    def streams(self) -> dict[str, Stream]:
        """The splits whose inputs are read in batches, by key."""
        keys = (*DATA_KEYS, "x_test")
        return {k: v for k in keys if isinstance(v := getattr(self, k), Stream)}

    def digest(self) -> str:
        """Content hash of the train and validation data (the audit's lineage)."""
        arrays = sha256_arrays(*(v for _, v in sorted(self.entries().items())))
        streamed = [f"{k}={s.digest()}" for k, s in sorted(self.streams().items())]
        if not streamed:
            return arrays
        return hashlib.sha256(";".join([arrays, *streamed]).encode()).hexdigest()


@dataclass(frozen=True)
class TeacherSpec:
    """A Keras model as plain data (architecture JSON + weights), safe to send between processes."""

    config_json: str
    weights: list[np.ndarray]
    trusted: bool = False  # the user allowed code in it (Lambda layers): deserialise unsafely
    trainable: bool = field(default=True, init=False)  # every technique applies
    source: str = "<model>"  # the file it came from: what errors about the model name

    @classmethod
    def from_model(
        cls, model: tf_keras.Model, trusted: bool = False, source: str = "<model>"
    ) -> TeacherSpec:
        weights = [w.copy() for w in model.get_weights()]
        return cls(config_json=model.to_json(), weights=weights, trusted=trusted, source=source)

    def build(self) -> tf_keras.Model:
        """A fresh model object with copied weights; nothing is shared with any other copy."""
        import tf_keras

        from autocompress.models.safe_mode import safe_mode

        with safe_mode(not self.trusted):
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
    ``calibration_samples``: how many training samples int8 / int16x8 calibration and the
    sensitivity ranking read.
    """

    name: str
    teacher: TeacherSpec | TfliteTeacher
    data: TaskData
    source: str = "<python>"
    metric: Metric = ACCURACY
    loss: str | dict[str, str] | None = None
    calibration_samples: int = 100  # training samples post-training quantization calibrates on


def load_task(path: str | Path, trust_model: bool = False) -> Task:
    """Load a task YAML (``model`` + ``data``, or ``entry_point``), checked against its data.

    ``trust_model`` allows model files that need code to load (see :func:`load_model`).
    """
    source = str(path)
    spec = load_mapping(path)
    check_keys(
        source,
        spec,
        {
            "name",
            "model",
            "data",
            "entry_point",
            "metric",
            "direction",
            "metric_output",
            "loss",
            "calibration_samples",
        },
        set(),
    )
    base = Path(path).resolve().parent
    metric = _metric(source, spec, base)
    loss = _loss(source, spec.get("loss"))
    calibration = spec.get("calibration_samples")
    if calibration is not None and (
        not isinstance(calibration, int) or isinstance(calibration, bool) or calibration < 1
    ):
        raise InputError(
            source, f"calibration_samples must be a whole number >= 1, got {calibration!r}"
        )
    if "entry_point" in spec:
        if "model" in spec or "data" in spec:
            raise InputError(source, "give either entry_point or model + data, not both")
        task = _from_entry_point(source, spec["entry_point"], base)
        if metric is not None:
            task = dataclasses.replace(task, metric=metric)
        if loss is not None:
            task = dataclasses.replace(task, loss=loss)
        if calibration is not None:
            task = dataclasses.replace(task, calibration_samples=calibration)
        check_task(task)
        return task
    for key in ("model", "data"):
        if not isinstance(spec.get(key), str):
            raise InputError(source, f"{key!r} must be a file path (or use entry_point)")
    model_path = base / spec["model"]
    if is_pipeline(spec["data"]):  # a function giving a tf.data.Dataset / iterable per split
        data_path = Path(source)
        splits = read_pipeline(_beside(spec["data"], base), source)
    else:
        data_path = base / spec["data"]
        splits = read_data(data_path, model_path)
    teacher: TeacherSpec | TfliteTeacher
    with model_errors(str(model_path)):
        if model_path.suffix == TFLITE_SUFFIX:
            teacher = TfliteTeacher.from_file(model_path)
        else:
            x_check = splits["x_val"]
            if isinstance(x_check, Stream):  # a Keras 3 translation is checked on a part of it
                x_check = take(x_check, slice(PARITY_SAMPLES))
            model = load_model(model_path, trust=trust_model, x_check=x_check)
            teacher = TeacherSpec.from_model(model, trusted=trust_model, source=str(model_path))
            loss = loss or compiled_loss(model_path)
    if label_free(splits):  # the model's own outputs are the targets
        with model_errors(str(model_path), "cannot run on the data"):
            splits = teacher_targets(splits, teacher.predict)
        metric = metric or FIDELITY
    task = Task(
        name=str(spec.get("name", Path(path).stem)),
        teacher=teacher,
        data=TaskData(**splits),
        source=source,
        metric=metric or ACCURACY,
        loss=loss,
        calibration_samples=calibration or 100,
    )
    check_task(task, data_source=str(data_path))
    return task


def read_data(path: Path, model_path: Path | None = None) -> dict[str, Any]:
    """The splits of the data a task file names: an ``.npz`` file, or an image folder (decoded
    at the input size of the model in ``model_path``; see :mod:`autocompress.data`). Without
    labels, the ``y_*`` entries are missing or None (:func:`label_free`)."""
    if path.is_dir():
        if model_path is None:
            raise InputError(str(path), "an image folder needs the model to know the image size")
        shape = _image_input(model_path)
        return read_image_folder(path, (shape[0], shape[1]), shape[2])
    return read_npz(path)


def load_data(path: Path, model_path: Path | None = None) -> TaskData:
    """:func:`read_data` as :class:`TaskData` (data with labels)."""
    splits = read_data(path, model_path)
    if label_free(splits):
        raise InputError(str(path), "has no labels: load it with its model (load_task)")
    return TaskData(**splits)


def _image_input(model_path: Path) -> tuple[int, int, int]:
    """(height, width, channels) of the model's image input, read without loading the model."""
    if not model_path.exists():
        raise InputError(str(model_path), "model file not found")
    with model_errors(str(model_path)):
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
        value = getattr(d, xs)
        streamed = isinstance(value, Stream)  # its first batch stands for its inputs
        x = by_name(src, xs, take(value, slice(32)) if streamed else value, list(inputs), "input")
        y = by_name(src, ys, getattr(d, ys), list(outputs), "output")
        n = count(value)
        for key, arr in [*keyed(xs, x), *keyed(ys, y)]:
            check_array(src, key, arr)
            if len(arr) != n and not (streamed and key.startswith("x_")):
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
        check_classes(src, outputs[name], labels[name])
    if isinstance(task.loss, dict):
        unknown = sorted(set(task.loss) - set(outputs))
        if unknown:
            raise InputError(
                task.source,
                f"loss names output {unknown[0]!r}, which the model does not have (its "
                f"outputs: {', '.join(outputs)})",
            )
    _check_metric_on_teacher(task.source, task)


def _check_metric_on_teacher(src: str, task: Task) -> None:
    """The metric must give a number on the teacher's validation outputs, before any trial."""
    with model_errors(task.teacher.source, "cannot run on the validation data"):
        outputs = task.teacher.predict(task.data.x_val)
    try:
        task.metric.score(task.data.y_val, outputs)
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
    if isinstance(name, str):
        name = _beside(name, base)
    output = spec.get("metric_output")
    if output is not None and not isinstance(output, str):
        raise InputError(source, f"metric_output must be an output name, got {output!r}")
    return get_metric(name, spec.get("direction"), where=source, output=output)


def _beside(spec: str, base: Path) -> str:
    """A ``file.py:function`` spec with its file relative to the task file made absolute."""
    if ".py:" in spec and not Path(spec.split(":")[0]).is_absolute():
        return str(base / spec)
    return spec


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
