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
from autocompress.errors import InputError
from autocompress.study.rundir import RunDir

FORMATS = ("tflite", "edgetpu", "onnx", "saved_model", "keras")
# ONNX is exported from the float Keras model; quantized .tflite files round differently, so
# the check is on the predicted class, with a looser bound for integer files.
ONNX_MIN_AGREEMENT = {"float": 0.999, "integer": 0.97}


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
        "checks": checks,
    }
    audit_out = audit_path_for(out)
    atomic_write_text(audit_out, json.dumps(document, indent=1))
    return Exported(out, audit_out, checks)


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
    path = rundir.keras_path(trial)
    if not path.is_file():
        raise InputError(
            str(path),
            f"trial {trial} has no Keras model (a .tflite task has none, and QAT models built "
            "with tfmot's cluster/prune-preserving schemes cannot be saved and loaded again); "
            "export --format tflite, or pick a trial without QAT",
        )
    return path.read_bytes()


def load_keras(rundir: RunDir, trial: int) -> Any:
    import tf_keras
    from tensorflow_model_optimization.quantization.keras import quantize_scope

    _keras_file(rundir, trial)  # the clear error when there is none
    with quantize_scope():
        return tf_keras.models.load_model(rundir.keras_path(trial), compile=False)


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
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from autocompress.evaluate import predict

    model = load_keras(rundir, trial)
    shape = (None, *model.inputs[0].shape[1:])
    spec = (tf.TensorSpec(shape, tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    data = proto.SerializeToString()
    x_val = _validation_inputs(rundir)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    onnx_scores = session.run(None, {"input": x_val.astype(np.float32)})[0]
    tflite_scores = predict(tflite, x_val)
    agreement = float(np.mean(np.argmax(onnx_scores, -1) == np.argmax(tflite_scores, -1)))
    integer = _is_integer(tflite)
    needed = ONNX_MIN_AGREEMENT["integer" if integer else "float"]
    checks = {
        "validation_samples": len(x_val),
        "top1_agreement_with_tflite": round(agreement, 4),
        "max_abs_score_difference": float(np.max(np.abs(onnx_scores - tflite_scores))),
        "required_agreement": needed,
        "tflite_is_integer": integer,
    }
    if agreement < needed:
        raise InputError(
            str(out),
            f"not written: ONNX Runtime agrees with the .tflite on {agreement:.2%} of the "
            f"validation samples, below the required {needed:.1%}",
        )
    atomic_write_bytes(out, data)
    return checks


def _validation_inputs(rundir: RunDir) -> np.ndarray:
    path = rundir.validation
    if not path.is_file():
        raise InputError(str(path), "missing: the run directory keeps its validation data here")
    with np.load(path, allow_pickle=False) as npz:
        return npz["x_val"]


def _is_integer(tflite: bytes) -> bool:
    from autocompress.hardware.flatbuffer import read_tflite

    graph = read_tflite(tflite, "model")
    return any(op.compute == "int8" for op in graph.ops)
