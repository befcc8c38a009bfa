"""Measure a deployed ``.tflite`` artifact: accuracy with LiteRT, size, gzip size, latency.

Everything here reads the converted file, never the Keras model: the file is what ships.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from autocompress.hardware import HardwareProfile, latency, read_tflite
from autocompress.records import Measurement


def evaluate(
    tflite: bytes,
    x_val: np.ndarray,
    y_val: np.ndarray,
    profiles: Sequence[HardwareProfile],
    scores: np.ndarray | None = None,
) -> Measurement:
    """Accuracy on the validation data, sizes, tensor dtypes and latency on every profile.

    ``scores`` are the file's outputs on ``x_val`` when the caller already has them.
    """
    graph = read_tflite(tflite, "candidate")
    if scores is None:
        scores = predict(tflite, x_val)
    return Measurement(
        accuracy=float(np.mean(np.argmax(scores, axis=-1) == y_val)),
        size_bytes=len(tflite),
        gzip_bytes=gzip_size(tflite),
        latency={p.name: latency(tflite, p, graph) for p in profiles},
        tensor_dtypes=tensor_dtypes(tflite),
        peak_ram_bytes=graph.peak_ram_bytes(),
        macs=graph.macs,
    )


def gzip_size(data: bytes) -> int:
    """Compressed size, deterministic (no timestamp): what a download or flash image costs."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def tensor_dtypes(tflite: bytes) -> dict[str, int]:
    """How many tensors of each dtype the file holds."""
    interpreter = Interpreter(model_content=tflite)
    counts = Counter(np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details())
    return dict(sorted(counts.items()))


def predict(tflite: bytes, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Class scores for ``x``, quantizing inputs and dequantizing outputs as the file requires.

    A file whose batch dimension is fixed (litert-torch exports batch 1, with reshapes that
    assume it) is run in batches of that size, never resized."""
    interpreter = Interpreter(model_content=tflite, num_threads=1)
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


def accuracy(tflite: bytes, x_val: np.ndarray, y_val: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict(tflite, x_val), axis=-1) == y_val))


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
