"""The fitted constants of the simulated GPU profiles: which published rows fit which constant.

Each GPU profile has two published fit rows (``benchmarks/data/gpu_published.csv``, role
``fit``) and so fits two constants; every other constant is a prior stated in its YAML. The plan
(:data:`PLAN`):

* ``pixel3-gpu``: the fp16 MAC rate and the cost per kernel, on MobileNet v1 224 and
  Inception v3 299 (6.5 and 56 ms);
* ``jetson-nano-trt``: the fp16 MAC rate and the cost per kernel, on ResNet-50 and VGG-16;
* ``a100-trt``: the int8 MAC rate and the cost per kernel, on ResNet-50 v1 and MobileNet v1
  (int8); its fp16 rate is the int8 one halved (the datasheet's 312 fp16 against 624 int8
  dense TOPS): no fp16 row is published for it;
* ``t4-trt``: the int8 and fp16 MAC rates on ResNet-50 v1.5 (int8 1.00 ms, fp16 1.26 ms); the
  cost per kernel is a100-trt's fitted one (the same TensorRT runtime on a server host), as
  edgetpu-devboard takes edgetpu-usb's chip constants.

``benchmarks/validate_profiles.py --fit`` prints the fit; ``tests/hardware/test_gpu_fit.py``
recomputes it from the shipped graphs of the fit rows and compares it with the YAML files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import HardwareProfile, load_profile

Simulator = Callable[[Graph, HardwareProfile], float]  # seconds per inference

PLAN: dict[str, tuple[str, ...]] = {
    "pixel3-gpu": ("macs_per_s.float16", "kernel_launch_s"),
    "jetson-nano-trt": ("macs_per_s.float16", "kernel_launch_s"),
    "a100-trt": ("macs_per_s.int8", "kernel_launch_s"),
    "t4-trt": ("macs_per_s.int8", "macs_per_s.float16"),
}
FP16_PER_INT8 = {"a100-trt": 0.5}  # datasheet ratio, for a profile without a published fp16 row
SHARED = {"t4-trt": ("a100-trt", "kernel_launch_s")}  # constant taken from another profile's fit


def simulator(profile: HardwareProfile) -> Simulator:
    if profile.backend == "tensorrt":
        from autocompress.hardware.tensorrt import simulate_seconds
    elif profile.backend == "gpu-delegate":
        from autocompress.hardware.gpu_delegate import simulate_seconds
    else:
        raise ValueError(f"{profile.name}: backend {profile.backend!r} has no GPU fit")
    return simulate_seconds


def with_values(profile: HardwareProfile, values: dict[str, float]) -> HardwareProfile:
    """``profile`` with GPU constants replaced; a key ``macs_per_s.int8`` sets one rate."""
    assert profile.gpu is not None
    gpu = profile.gpu
    for key, value in values.items():
        if "." in key:
            section, sub = key.split(".", 1)
            gpu = dataclasses.replace(gpu, **{section: {**getattr(gpu, section), sub: value}})
        else:
            gpu = dataclasses.replace(gpu, **{key: value})
    return dataclasses.replace(profile, gpu=gpu)


def fit_gpu(
    rows: list[tuple[Graph, float]], profile: HardwareProfile, keys: tuple[str, ...]
) -> dict[str, float]:
    """The constants named in ``keys`` that make the profile's simulator reproduce published
    latencies (``rows``: graph, published milliseconds), least squares on the log of the ratio;
    every other constant keeps the profile's value. The kernel model is piecewise linear in the
    constants (a kernel is bound by compute or by memory), so the fit searches in log space from
    a start that does not depend on the profile's current values, to a tight tolerance: the same
    rows give the same constants."""
    from scipy.optimize import least_squares

    if len(rows) < len(keys):
        raise ValueError(f"{len(rows)} rows cannot fit {len(keys)} constants")
    simulate = simulator(profile)
    start = np.array([np.log(_START[k.split(".")[0]]) for k in keys])

    def residuals(x: np.ndarray) -> np.ndarray:
        p = with_values(profile, dict(zip(keys, np.exp(x), strict=True)))
        return np.array([np.log(simulate(g, p) * 1e3 / ms) for g, ms in rows])

    result = least_squares(residuals, start, method="lm", xtol=1e-15, ftol=1e-15, max_nfev=5000)
    worst = float(np.max(np.abs(residuals(result.x))))
    if len(rows) == len(keys) and worst > 1e-3:
        raise ValueError(f"the rows do not fit this model (worst |log ratio| {worst:.3f})")
    return dict(zip(keys, (float(v) for v in np.exp(result.x)), strict=True))


def fit_published(rows: dict[str, list[tuple[Graph, float]]]) -> dict[str, dict[str, float]]:
    """Every GPU profile's fitted constants (``rows``: profile -> its fit rows), as the YAML
    files hold them (4 significant digits; a constant shared or derived from another fit is
    taken as rounded)."""
    out: dict[str, dict[str, float]] = {}
    for name in ("pixel3-gpu", "jetson-nano-trt", "a100-trt", "t4-trt"):
        profile = load_profile(name)
        fixed: dict[str, float] = {}
        if name in SHARED:
            other, key = SHARED[name]
            fixed[key] = out[other][key]
        profile = with_values(profile, fixed)
        values = {k: _round(v) for k, v in fit_gpu(rows[name], profile, PLAN[name]).items()}
        if name in FP16_PER_INT8:
            values["macs_per_s.float16"] = _round(values["macs_per_s.int8"] * FP16_PER_INT8[name])
        out[name] = {**values, **fixed}
    return out


def _round(value: float) -> float:
    return float(f"{value:.4g}")


_START = {  # where the search starts (seconds or per second), the same for every profile
    "macs_per_s": 1.0e11,
    "kernel_launch_s": 1.0e-5,
}
