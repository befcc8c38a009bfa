"""Validate the simulated hardware profiles against published latencies, and cpu-host's roofline
against measurements made here.

Run: ``.venv/bin/python benchmarks/validate_profiles.py [--fit] [--run runs/demo]``

1. Reference architectures from ``tf_keras.applications`` (``weights=None``: latency does not
   depend on the weights' values) are converted exactly as a candidate would be (full int8 for the
   Edge TPU, float32 and int8 for the phone), simulated, and compared with published numbers:
   Coral's benchmark page (desktop + USB accelerator / Dev Board) and TFLite's Pixel 2 numbers.
   Only the rows marked "fit" were used to choose constants; every other row is held out.
2. ``--fit`` prints the constants that the calibration rows imply (what the YAML files hold).
3. cpu-host: a roofline is fitted to LiteRT measurements of micro-models made here, then used to
   predict the measured latency of the candidates of a finished search (``--run``); it prints the
   share of candidates predicted within +-10 %.

Converted files are cached in ``--cache`` (default ~/.cache/autocompress/validate).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import autocompress  # noqa: F401  (Keras-2 switch)
from autocompress.hardware import latency, load_profile, read_tflite
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import RooflineSettings
from autocompress.hardware.roofline import graph_seconds
from autocompress.stages.convert import to_tflite

# name -> (builder, input size, {profile: published ms}, used for fitting?)
# Coral: coral.ai/docs/edgetpu/benchmarks (table 1). TFLite Pixel 2: the numbers.
CORAL = {
    "MobileNet v1": ("MobileNet", 224, 2.4, 2.4, True),
    "MobileNet v2": ("MobileNetV2", 224, 2.6, 2.6, True),
    "DenseNet-121": ("DenseNet121", 224, 20.0, 25.0, False),
    "ResNet-50 V1": ("ResNet50", 299, 49.0, 56.0, False),
    "ResNet-50 V2": ("ResNet50V2", 299, 50.0, 59.0, False),
    "ResNet-152 V2": ("ResNet152V2", 299, 128.0, 151.0, False),
    "Inception-ResNet V2": ("InceptionResNetV2", 299, 57.0, 69.0, False),
    "VGG16": ("VGG16", 224, 296.0, 343.0, False),
    "VGG19": ("VGG19", 224, 308.0, 357.0, False),
}
PIXEL2 = {("MobileNet v1", "none"): 124.0, ("MobileNet v1", "int8"): 64.0}


def convert(model, mode: str) -> bytes:
    """Exactly the candidates' conversion; int8 calibrated on random inputs (latency only)."""
    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    return to_tflite(model, mode, calibration)


def reference_file(cache: Path, name: str, mode: str) -> bytes:
    import tf_keras as keras

    builder, size, *_ = CORAL[name]
    path = cache / f"{builder}_{size}_{mode}.tflite"
    if not path.exists():
        start = time.perf_counter()
        model = getattr(keras.applications, builder)(weights=None, input_shape=(size, size, 3))
        data = convert(model, mode)
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        keras.backend.clear_session()
        print(f"  converted {name} ({mode}) in {time.perf_counter() - start:.0f} s")
    return path.read_bytes()


def fit_edgetpu(graphs: dict[str, Graph]) -> tuple[float, float]:
    """Least squares for (invoke overhead, per-op overhead) on the calibration rows."""
    profile = load_profile("edgetpu-usb")
    zero = dataclasses.replace(profile.edgetpu, op_overhead_s=0.0, invoke_overhead_s=0.0)
    base = dataclasses.replace(profile, edgetpu=zero)
    rows, target = [], []
    for name, g in graphs.items():
        if not CORAL[name][4]:
            continue
        r = latency(b"", base, g)
        rows.append([1.0, r.details["ops_mapped"]])
        target.append(CORAL[name][2] - r.median_ms)
    (invoke_ms, op_ms), *_ = np.linalg.lstsq(np.array(rows), np.array(target), rcond=None)
    return invoke_ms / 1e3, op_ms / 1e3


def fit_rate(graph: Graph, settings: RooflineSettings, kind: str, target_ms: float) -> float:
    """The ``macs_per_s[kind]`` that makes the roofline hit ``target_ms`` (bisection, log scale)."""
    lo, hi = 1e8, 1e13
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        s = dataclasses.replace(settings, macs_per_s={**settings.macs_per_s, kind: mid})
        ms = (graph_seconds(graph.ops, s) + s.invoke_overhead_s) * 1e3
        lo, hi = (lo, mid) if ms < target_ms else (mid, hi)
    return (lo * hi) ** 0.5


def published_table(cache: Path, fit: bool) -> None:
    print("\n== Edge TPU (full int8 files) ==")
    graphs = {name: read_tflite(reference_file(cache, name, "int8"), name) for name in CORAL}
    if fit:
        invoke, op = fit_edgetpu(graphs)
        print(f"fit: invoke_overhead_s = {invoke:.3g}, op_overhead_s = {op:.3g}")
    rows = []
    for profile_name, col in (("edgetpu-usb", 2), ("edgetpu-devboard", 3)):
        profile = load_profile(profile_name)
        for name, g in graphs.items():
            r = latency(b"", profile, g)
            published = CORAL[name][col]
            rows.append(
                {
                    "profile": profile_name,
                    "model": name,
                    "role": "fit" if CORAL[name][4] else "held out",
                    "MMACs": round(g.macs / 1e6),
                    "params_MB": round(g.weight_bytes / 1e6, 1),
                    "mapped": f"{r.details['ops_mapped']}/{r.details['ops_total']}",
                    "streamed_MB": round(r.details["streamed_param_bytes"] / 1e6, 1),
                    "published_ms": published,
                    "predicted_ms": round(r.median_ms, 2),
                    "error_%": round(100 * (r.median_ms - published) / published, 1),
                }
            )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    held = table[table["role"] == "held out"]
    print(
        f"held-out rows within 25 %: {int((held['error_%'].abs() <= 25).sum())}/{len(held)}; "
        f"median |error| {held['error_%'].abs().median():.1f} %"
    )

    print("\n== Pixel 2, one big core ==")
    profile = load_profile("pixel2-cpu")
    rows = []
    for (name, mode), published in PIXEL2.items():
        g = read_tflite(reference_file(cache, name, mode), name)
        if fit:
            kind = "float32" if mode == "none" else "int8"
            print(f"fit: macs_per_s.{kind} = {fit_rate(g, profile.roofline, kind, published):.3g}")
        r = latency(b"", profile, g)
        rows.append(
            {
                "model": name,
                "file": mode,
                "role": "fit",
                "published_ms": published,
                "predicted_ms": round(r.median_ms, 1),
                "error_%": round(100 * (r.median_ms - published) / published, 1),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    print("No other published Pixel 2 numbers are at hand: nothing held out for this profile.")


def micro_models() -> list[Callable]:
    """One- and two-layer models spanning the shapes of small CNNs: conv, depthwise, dense,
    pooling, from overhead-dominated to compute-dominated."""
    import tf_keras as keras

    L = keras.layers
    out = []
    for size, cin, cout, k in [
        (32, 1, 16, 3),
        (32, 1, 32, 3),
        (32, 8, 32, 3),
        (16, 32, 64, 3),
        (16, 32, 96, 3),
        (16, 64, 64, 1),
        (8, 96, 96, 3),
        (8, 64, 128, 3),
        (32, 16, 16, 5),
        (8, 128, 128, 1),
        (16, 96, 96, 3),
    ]:
        out.append(
            lambda s=size, a=cin, b=cout, kk=k: keras.Sequential(
                [L.Input((s, s, a)), L.Conv2D(b, kk, padding="same", activation="relu")]
            )
        )
        out.append(
            lambda s=size, a=cin, b=cout, kk=k: keras.Sequential(
                [
                    L.Input((s, s, a)),
                    L.Conv2D(b, kk, padding="same", activation="relu"),
                    L.MaxPool2D(),
                ]
            )
        )
    for size, c in [(32, 16), (16, 64), (8, 128), (32, 64)]:
        out.append(
            lambda s=size, a=c: keras.Sequential(
                [L.Input((s, s, a)), L.DepthwiseConv2D(3, padding="same", activation="relu")]
            )
        )
    for n_in, n_out in [(256, 64), (1024, 128), (1536, 128), (4096, 256), (6144, 128)]:
        out.append(lambda a=n_in, b=n_out: keras.Sequential([L.Input((a,)), L.Dense(b)]))
    return out


def cpu_host(run: Path | None) -> None:
    from autocompress.hardware.measure import measure_latency

    print("\n== cpu-host: roofline fitted to micro-models measured here ==")
    host = load_profile("cpu-host")
    samples: dict[str, list[tuple[Graph, float]]] = {"float32": [], "int8": [], "hybrid": []}
    for build in micro_models():
        for mode, kind in (("none", "float32"), ("int8", "int8"), ("dynamic", "hybrid")):
            model = build()
            data = convert(model, mode)
            samples[kind].append((read_tflite(data), measure_latency(data, None, host).median_ms))
    # Unknowns: invoke overhead, per-op overhead, seconds per MAC for each compute kind and
    # seconds per element operation. Relative errors (rows divided by the measurement) so that
    # small and large models count alike; non-negative least squares keeps every rate physical.
    from scipy.optimize import nnls

    rows, target = [], []
    kinds = list(samples)
    for kind, items in samples.items():
        for g, ms in items:
            row = [1.0, len(g.ops)] + [0.0] * len(kinds) + [sum(o.elementwise for o in g.ops)]
            row[2 + kinds.index(kind)] = g.macs
            rows.append(np.array(row) / (ms / 1e3))
            target.append(1.0)
    scale = np.max(np.abs(rows), axis=0)
    coef, _ = nnls(np.array(rows) / scale, np.array(target))
    coef = np.maximum(coef / scale, 1e-18)
    fitted = RooflineSettings(
        macs_per_s={k: 1.0 / coef[2 + i] for i, k in enumerate(kinds)} | {"float16": 1.0 / coef[2]},
        elementwise_per_s=1.0 / coef[-1],
        bandwidth_bytes_per_s=1e12,
        op_overhead_s=float(coef[1]),
        invoke_overhead_s=float(coef[0]),
    )
    print(
        "fitted:",
        {k: f"{v:.3g}" for k, v in fitted.macs_per_s.items()},
        f"elementwise/s {fitted.elementwise_per_s:.3g}, per op {fitted.op_overhead_s * 1e6:.2f} us,"
        f" per invoke {fitted.invoke_overhead_s * 1e6:.2f} us",
    )
    if run is None:
        return
    trials = pd.read_csv(run / "trials.csv")
    reused = trials.get("reused_from", pd.Series(index=trials.index, dtype=float))
    done = trials[(trials["state"] == "COMPLETE") & reused.isna()]
    # The search measured its candidates while another worker trained on the other core; measure
    # them again here, idle like the micro-models, so that both sides see the same machine.
    errors, by_mode, load = [], {}, []
    for _, row in done.iterrows():
        data = (run / row["model_path"]).read_bytes()
        g = read_tflite(data)
        measured = measure_latency(data, None, host).median_ms
        load.append(row["latency_ms_cpu-host"] / measured)
        predicted = (graph_seconds(g.ops, fitted) + fitted.invoke_overhead_s) * 1e3
        error = (predicted - measured) / measured
        errors.append(error)
        by_mode.setdefault(row["quantization"], []).append(error)
    err = np.abs(np.array(errors))
    print(f"latency measured during the search / measured idle here: {np.median(load):.2f}x")
    print(
        "median signed error by quantization mode:",
        {k: f"{np.median(v):+.0%} (n={len(v)})" for k, v in sorted(by_mode.items())},
    )
    print(
        f"candidates of {run}: {len(err)}; within +-10 %: {np.mean(err <= 0.10):.0%}, "
        f"within +-25 %: {np.mean(err <= 0.25):.0%}, median |error| {np.median(err):.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true", help="print the constants the fit implies")
    parser.add_argument("--run", type=Path, default=None, help="a finished search directory")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/autocompress/validate")
    parser.add_argument("--skip-published", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.skip_published:
        published_table(args.cache, args.fit)
    cpu_host(args.run)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
