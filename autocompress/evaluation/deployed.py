"""Measure a deployed ``.tflite`` artifact: the task's metric with LiteRT, size, gzip size, latency.

Everything here reads the converted file, never the Keras model: the file is what ships.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections import Counter
from collections.abc import Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from autocompress.data.arrays import Inputs, concat
from autocompress.data.stream import Stream
from autocompress.hardware import HardwareProfile, latency, quiet, read_tflite
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.signature import op_signature
from autocompress.metrics import Arrays, Metric, Score
from autocompress.records import LatencyResult, Measurement

# Samples read from a stream at a time for the file to run on.
STREAM_CHUNK = 256


def evaluate(
    tflite: bytes,
    x_val: Inputs,
    y_val: Arrays,
    profiles: Sequence[HardwareProfile],
    metric: Metric,
    outputs: Arrays | None = None,
    score: Score | None = None,
) -> Measurement:
    """The metric on the validation data, sizes, tensor dtypes and latency on every profile.

    ``outputs`` are the file's outputs on ``x_val`` and ``score`` the metric's on them, when
    the caller already has them.
    """
    graph = read_tflite(tflite, "candidate")
    if score is None:
        score = metric.score(y_val, predict(tflite, x_val) if outputs is None else outputs)
    return Measurement(
        quality=score.value,
        size_bytes=len(tflite),
        gzip_bytes=gzip_size(tflite),
        latency={p.name: _latency(tflite, p, graph) for p in profiles},
        tensor_dtypes=tensor_dtypes(tflite),
        peak_ram_bytes=graph.peak_ram_bytes(),
        macs=graph.macs,
        op_signature=op_signature(tflite),
        input_shape=input_shape(tflite),
    )


def input_shape(tflite: bytes) -> str:
    """The file's input shapes without the batch dimension, as a user reads them: ``72x72x3``
    (several inputs: ``, ``-separated; a dynamic dimension: ``?``)."""
    interpreter = Interpreter(model_content=tflite)
    shapes = []
    for detail in interpreter.get_input_details():
        dims = detail.get("shape_signature", detail["shape"])[1:]
        shapes.append("x".join("?" if d < 0 else str(int(d)) for d in dims))
    return ", ".join(shapes)


def _latency(tflite: bytes, profile: HardwareProfile, graph: Graph) -> LatencyResult:
    """The profile's latency; a measured one in a quiet window of the search
    (:mod:`autocompress.hardware.quiet`), and ``details["quiet"]`` says whether it was."""
    if profile.backend != "measure" or quiet.current() is None:
        return latency(tflite, profile, graph)
    with quiet.measuring() as calm:
        result = latency(tflite, profile, graph)
    return dataclasses.replace(result, details={**result.details, "quiet": calm})


def gzip_size(data: bytes) -> int:
    """Compressed size, deterministic (no timestamp): what a download or flash image costs."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def tensor_dtypes(tflite: bytes) -> dict[str, int]:
    """How many tensors of each dtype the file holds."""
    interpreter = Interpreter(model_content=tflite)
    counts = Counter(np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details())
    return dict(sorted(counts.items()))


def predict(tflite: bytes, x: Inputs, batch: int = 64) -> Arrays:
    """The file's outputs for ``x``, quantizing inputs and dequantizing outputs as it requires.

    ``x`` is one array, or a dict by input name; a file with several inputs or outputs is run
    through its signature, so that tensors are matched by name, never by position, and gives a
    dict by output name; a stream (an image folder) is read a few batches at a time. A file
    whose batch dimension is fixed (litert-torch exports batch 1,
    with reshapes that assume it) is run in batches of that size, never resized."""
    interpreter = Interpreter(model_content=tflite, num_threads=1)
    if isinstance(x, Stream):  # read a few batches at a time
        return concat([_predict(interpreter, xb, batch) for xb in x.inputs(STREAM_CHUNK)])
    return _predict(interpreter, x, batch)


def _predict(interpreter: Interpreter, x: Arrays, batch: int) -> Arrays:
    if isinstance(x, dict) or len(interpreter.get_output_details()) > 1:
        return _predict_named(interpreter, x, batch)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    signature = inp.get("shape_signature", inp["shape"])
    fixed = len(signature) > 0 and int(signature[0]) > 0
    if fixed:
        batch = int(signature[0])
        interpreter.allocate_tensors()
    chunks: list[np.ndarray] = []
    current = batch if fixed else -1
    for startpos in range(0, len(x), batch):
        quiet.yield_point()
        xb = x[startpos : startpos + batch]
        if fixed and len(xb) != batch:  # pad the last batch; its padding is dropped below
            pad = np.zeros((batch - len(xb), *xb.shape[1:]), dtype=xb.dtype)
            interpreter.set_tensor(inp["index"], _quantize(np.concatenate([xb, pad]), inp))
            interpreter.invoke()
            chunks.append(_dequantize(interpreter.get_tensor(out["index"]), out)[: len(xb)])
            continue
        if len(xb) != current:
            interpreter.resize_tensor_input(inp["index"], [len(xb), *x.shape[1:]])
            interpreter.allocate_tensors()
            current = len(xb)
        interpreter.set_tensor(inp["index"], _quantize(xb, inp))
        interpreter.invoke()
        chunks.append(_dequantize(interpreter.get_tensor(out["index"]), out))
    return np.concatenate(chunks)


def quality(tflite: bytes, x: Inputs, y: Arrays, metric: Metric) -> float:
    """The metric of the file's outputs on ``x`` against ``y``."""
    return metric(y, predict(tflite, x))


def _predict_named(interpreter: Interpreter, x: Arrays, batch: int) -> Arrays:
    """Run through the file's (only) signature: inputs and outputs by name."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ValueError(
            f"a file with several inputs or outputs needs exactly one signature, has "
            f"{len(signatures)}"
        )
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    inputs = x if isinstance(x, dict) else {next(iter(in_details)): x}
    missing = sorted(set(in_details) - set(inputs))
    if missing:
        raise ValueError(f"no data for the file's input {missing[0]!r}")
    n = len(next(iter(inputs.values())))
    sizes = {
        int(d["shape_signature"][0]) if len(d["shape_signature"]) else -1
        for d in in_details.values()
    }
    fixed = max(sizes) > 0  # a fixed batch dimension: run in batches of it, pad the last
    step = max(sizes) if fixed else batch
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in out_details}
    for start in range(0, n, step):
        quiet.yield_point()
        feed = {}
        for name, detail in in_details.items():
            xb = np.asarray(inputs[name][start : start + step])
            if fixed and len(xb) != step:  # pad the last batch; its padding is dropped below
                xb = np.concatenate([xb, np.zeros((step - len(xb), *xb.shape[1:]), xb.dtype)])
            feed[name] = _quantize(xb, detail)
        got = runner(**feed)
        taken = min(step, n - start)
        for name, detail in out_details.items():
            chunks[name].append(_dequantize(got[name], detail)[:taken])
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
