"""Export one trial of a run for its target: the measured ``.tflite`` byte for byte, the Edge TPU
compilation of its int8 file, ONNX (checked against the ``.tflite`` with ONNX Runtime), or the
compressed Keras model as a ``.keras`` file or SavedModel for further training.

Every export writes ``<name>.audit.json`` beside the model: the trial's recipe, stages,
measurements, compression audit and lineage, plus what the export itself checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocompress._files import atomic_write_bytes, atomic_write_text
from autocompress.data.arrays import Arrays, as_float32, count, named, unflatten
from autocompress.data.resize import resize_images
from autocompress.errors import InputError
from autocompress.metrics import predicted_classes
from autocompress.run.rundir import RunDir

FORMATS = ("tflite", "edgetpu", "onnx", "saved_model", "keras")
# ONNX is exported from the float Keras model; quantized .tflite files round differently, so
# the check is on the predicted class, with a looser bound for integer files.
ONNX_MIN_AGREEMENT = {"float": 0.999, "integer": 0.97}
# On any other output of a float file: at most this difference, times 1 + the largest |value|.
ONNX_MAX_FLOAT_DIFFERENCE = 1e-3


@dataclass(frozen=True)
class Exported:
    """Where the export went and what was checked on the way."""

    path: Path
    audit_path: Path
    checks: dict[str, Any] = field(default_factory=dict)


def audit_path_for(out: Path) -> Path:
    return out.parent / f"{out.stem}.audit.json"


def export(run: Path, trial: int, fmt: str, out: Path) -> Exported:
    """Export ``trial`` of the run in ``run`` as ``fmt`` to ``out``."""
    if fmt not in FORMATS:
        raise InputError("--format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    rundir = RunDir(run)
    tflite_path = rundir.model_path(trial)
    audit_src = rundir.audit_path(trial)
    if not tflite_path.is_file() or not audit_src.is_file():
        raise InputError(str(run), f"trial {trial} has no completed model in this run directory")
    tflite = tflite_path.read_bytes()
    document = json.loads(audit_src.read_text())
    if fmt == "tflite":
        atomic_write_bytes(out, tflite)
        checks: dict[str, Any] = {}
    elif fmt == "edgetpu":
        checks = _edgetpu(tflite, trial, out)
    elif fmt == "keras":
        atomic_write_bytes(out, _keras_file(rundir, trial))
        checks = {}
    elif fmt == "saved_model":
        checks = _saved_model(rundir, trial, out)
    else:
        checks = _onnx(rundir, trial, tflite, out)
    document["export"] = {
        "format": fmt,
        "path": str(out),
        "source_tflite_sha256": hashlib.sha256(tflite).hexdigest(),
        "input": _input_note(tflite, document),
        "checks": checks,
    }
    audit_out = audit_path_for(out)
    atomic_write_text(audit_out, json.dumps(document, indent=1))
    return Exported(out, audit_out, checks)


def _input_note(tflite: bytes, document: dict[str, Any]) -> dict[str, Any]:
    """What the application feeds the model: its input shape, and for a candidate at a smaller
    resolution how to make its images from the original ones."""
    from autocompress.evaluation.deployed import input_shape

    note: dict[str, Any] = {"shape": input_shape(tflite)}
    resolution = document.get("recipe", {}).get("resolution", 1.0)
    if resolution < 1.0:
        note["resolution"] = resolution
        note["resize"] = (
            "the model was trained and measured on images resized to this shape with "
            "tf.image.resize(images, (height, width), method='bilinear', antialias=True)"
        )
    return note


def _edgetpu(tflite: bytes, trial: int, out: Path) -> dict[str, Any]:
    from autocompress.hardware.edgetpu import deployability
    from autocompress.hardware.flatbuffer import read_tflite

    problem = deployability(read_tflite(tflite, f"trial {trial}"))
    if problem is not None:
        raise InputError(f"trial {trial}", f"cannot be compiled for the Edge TPU: {problem}")
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        raise InputError(
            "edgetpu_compiler",
            "not found on PATH: install Coral's Edge TPU compiler (Debian/Ubuntu x86-64, "
            "https://coral.ai/docs/edgetpu/compiler/) or export --format tflite and compile "
            "the int8 file where it is installed",
        )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{out.stem}.tflite"
        src.write_bytes(tflite)
        proc = subprocess.run(
            [compiler, "-s", "-o", tmp, str(src)], capture_output=True, text=True, timeout=600
        )
        compiled = Path(tmp) / f"{out.stem}_edgetpu.tflite"
        if proc.returncode != 0 or not compiled.is_file():
            line = (proc.stderr or proc.stdout).strip().splitlines()
            raise InputError("edgetpu_compiler", f"failed: {line[-1] if line else proc.returncode}")
        atomic_write_bytes(out, compiled.read_bytes())
        report = out.parent / f"{out.stem}.edgetpu_compiler.log"
        atomic_write_text(report, proc.stdout)
    return {"compiler": compiler, "compiler_log": str(report)}


def _keras_file(rundir: RunDir, trial: int) -> bytes:
    """The trial's Keras model as a ``.keras`` file: the one the search kept, or rebuilt from
    what it points to (the teacher's file, or the stage cache entry of the model)."""
    path, source = rundir.keras_path(trial), rundir.keras_source_path(trial)
    if path.is_file():
        return path.read_bytes()
    if not source.is_file():
        raise InputError(
            str(path),
            f"trial {trial} has no Keras model (a .tflite task has none, and QAT models built "
            "with tfmot's cluster/prune-preserving schemes cannot be saved and loaded again); "
            "export --format tflite, or pick a trial without QAT",
        )
    key = str(json.loads(source.read_text())["source"])
    if key == "teacher":
        if not rundir.teacher_keras.is_file():
            raise InputError(str(rundir.teacher_keras), "missing: the teacher's Keras file")
        return rundir.teacher_keras.read_bytes()
    from autocompress.models.saving import keras_file_bytes
    from autocompress.run.cache import DirCache

    entry = DirCache(rundir.cache).load(key)
    blob = keras_file_bytes(entry[0]) if entry is not None else None
    if blob is None:
        raise InputError(
            str(rundir.cache / f"{key}.entry"),
            f"trial {trial}'s Keras model is rebuilt from this stage cache entry, which is "
            "missing or unreadable; export --format tflite",
        )
    return blob


def load_keras(rundir: RunDir, trial: int) -> Any:
    import tf_keras
    from tensorflow_model_optimization.quantization.keras import quantize_scope

    blob = _keras_file(rundir, trial)  # the clear error when there is none
    with tempfile.TemporaryDirectory() as tmp, quantize_scope():
        path = Path(tmp) / "model.keras"
        path.write_bytes(blob)
        return tf_keras.models.load_model(path, compile=False)


def _saved_model(rundir: RunDir, trial: int, out: Path) -> dict[str, Any]:
    model = load_keras(rundir, trial)
    if out.exists():
        raise InputError(str(out), "already exists; a SavedModel is a directory, choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save(tmp / "saved_model", save_format="tf")
        (tmp / "saved_model").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {}


def _onnx(rundir: RunDir, trial: int, tflite: bytes, out: Path) -> dict[str, Any]:
    """The compressed Keras model as ONNX (one input per model input, by name), written only
    when ONNX Runtime reproduces the ``.tflite`` file's outputs on the validation inputs: the
    same top class on a class output (:data:`ONNX_MIN_AGREEMENT`), the same values within
    :data:`ONNX_MAX_FLOAT_DIFFERENCE` on another output of a float file."""
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from autocompress.evaluation.deployed import predict

    model = load_keras(rundir, trial)
    spec = tuple(
        tf.TensorSpec((None, *t.shape[1:]), tf.float32, name=name)
        for name, t in zip(model.input_names, model.inputs)
    )
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    data = proto.SerializeToString()
    x_val = named(as_float32(_validation_inputs(rundir)), model.input_names)
    for name, t in zip(model.input_names, model.inputs):  # a smaller resolution's images
        if len(t.shape) == 4 and tuple(x_val[name].shape[1:3]) != tuple(t.shape[1:3]):
            x_val[name] = resize_images(x_val[name], (int(t.shape[1]), int(t.shape[2])))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    onnx_out = dict(zip(model.output_names, session.run(None, x_val)))
    tflite_out = named(predict(tflite, x_val if len(x_val) > 1 else next(iter(x_val.values()))),
                       model.output_names)  # fmt: skip
    integer = _is_integer(tflite)
    classes = _class_outputs(rundir, model)
    checks: dict[str, Any] = {"validation_samples": count(x_val), "tflite_is_integer": integer}
    failures = []
    for name in model.output_names:
        mine, theirs = np.asarray(onnx_out[name]), np.asarray(tflite_out[name])
        difference = float(np.max(np.abs(mine - theirs)))
        part: dict[str, Any] = {"max_abs_difference": difference}
        if name in classes:
            part = {"max_abs_score_difference": difference}
            agreement = float(np.mean(predicted_classes(mine) == predicted_classes(theirs)))
            needed = ONNX_MIN_AGREEMENT["integer" if integer else "float"]
            part.update(top1_agreement_with_tflite=round(agreement, 4), required_agreement=needed)
            if agreement < needed:
                failures.append(
                    f"output {name!r}: ONNX Runtime agrees with the .tflite on {agreement:.2%} "
                    f"of the validation samples, below the required {needed:.1%}"
                )
        elif not integer:
            scale = 1.0 + float(np.max(np.abs(theirs)))
            part["required_max_difference"] = ONNX_MAX_FLOAT_DIFFERENCE * scale
            if difference > part["required_max_difference"]:
                failures.append(
                    f"output {name!r}: ONNX Runtime's values differ from the .tflite's by "
                    f"{difference:.3g} (> {part['required_max_difference']:.3g})"
                )
        checks[name] = part
    if len(model.output_names) == 1:  # one output: its checks at the top, as before
        only = checks.pop(model.output_names[0])
        checks.update(only)
    if failures:
        raise InputError(str(out), f"not written: {failures[0]}")
    atomic_write_bytes(out, data)
    return checks


def _class_outputs(rundir: RunDir, model: Any) -> set[str]:
    """The outputs the run's metric reads class ids from."""
    from autocompress.metrics import get_metric

    spec, output = rundir.metric_spec()
    if not spec:
        return set()
    direction = rundir.quality().to_dict()["direction"]
    return get_metric(spec, direction, output=output).class_outputs(list(model.output_names))


def _validation_inputs(rundir: RunDir) -> Arrays:
    path = rundir.validation
    if not path.is_file():
        raise InputError(str(path), "missing: the run directory keeps its validation data here")
    with np.load(path, allow_pickle=False) as npz:
        found = unflatten({k: npz[k] for k in npz.files}, "x_val")
    if found is None:
        raise InputError(str(path), "holds no validation inputs (x_val)")
    return found


def _is_integer(tflite: bytes) -> bool:
    from autocompress.hardware.flatbuffer import read_tflite

    graph = read_tflite(tflite, "model")
    return any(op.compute == "int8" for op in graph.ops)
