"""Latency measured for real with LiteRT, the way TFLite's ``benchmark_model`` does it.

Warm-up runs first (caches, lazy kernel setup), then timed ``invoke()`` calls until both the
minimum run count and the minimum time are reached; median and p90 are reported so that noisy
measurements are visible.
"""

from __future__ import annotations

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import HardwareProfile, MeasureSettings
from autocompress.records import LatencyResult


def run_times(interpreter: Interpreter, s: MeasureSettings) -> np.ndarray:
    """Milliseconds of each timed ``invoke()`` after the warm-up runs, until both ``min_runs``
    and ``min_seconds`` are reached (or ``max_seconds``)."""
    for _ in range(s.warmup_runs):
        interpreter.invoke()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        elapsed = time.perf_counter() - start
        if len(times) >= s.min_runs and elapsed >= s.min_seconds or elapsed >= s.max_seconds:
            return np.asarray(times)


def measure_latency(tflite: bytes, graph: Graph | None, profile: HardwareProfile) -> LatencyResult:
    """Time one-sample inference of ``tflite`` on this machine with the profile's settings."""
    s = profile.measure
    interpreter = Interpreter(model_content=tflite, num_threads=s.threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            value = rng.random(shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    arr = run_times(interpreter, s)
    return LatencyResult(
        profile=profile.name,
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        runs=len(arr),
        backend="measure",
    )
