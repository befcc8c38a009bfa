"""Validate the simulated hardware profiles against published latencies, and cpu-host's roofline
against measurements made here.

Run: ``.venv/bin/python benchmarks/validate_profiles.py [--fit] [--run runs/demo]``

1. Reference architectures (``_references.py``: ``tf_keras.applications``, ``weights=None``:
   latency does not depend on the weights' values, and the torchvision networks the GPU tables
   measured, built layer for layer) at the resolution each row states are converted exactly as
   a candidate would be (full int8 for the Edge TPU, float32 or int8 as the row says elsewhere),
   simulated, and compared with published numbers (``data/*_published.csv``, with sources):
   Coral's benchmark page, TFLite's Pixel 2 and Pixel 3 GPU tables, torch2trt's Jetson Nano
   table, MLPerf and mmdeploy on the T4, NVIDIA's TensorRT model zoo on the A100. Only the rows
   marked "fit" were used to choose constants; every other row is held out, and each profile's
   held-out median and worst |error| and rank correlation are printed.
2. ``--fit`` prints the constants that the calibration rows imply (what the YAML files hold)
   and writes the fit rows' graphs the tests refit from.
3. cpu-host: a per-op roofline and two kernel-level predictors (``_kernels.py``: one regressor
   per op type and compute kind, after nn-Meter) are fitted to LiteRT measurements of single-op
   micro-models made here, then used to predict the measured latency of the candidates of a
   finished search (``--run``); it prints the share of candidates predicted within +-10 %, and
   how often a second measurement agrees with the first (the noise floor).

Converted files are cached in ``--cache`` (default ~/.cache/autocompress/validate).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _kernels import MODES, KernelPredictor, features, file_kind, micro_models
from _references import build
from scipy.stats import spearmanr

import autocompress  # noqa: F401  (Keras-2 switch)
from autocompress.hardware import latency, load_profile, read_tflite
from autocompress.hardware.edgetpu import fit_coral
from autocompress.hardware.fits import fit_published
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import RooflineSettings
from autocompress.hardware.roofline import graph_seconds
from autocompress.stages.convert import to_tflite

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "data" / "edgetpu_published.csv"  # published Edge TPU latencies, with sources
FIT_GRAPHS = HERE / "data" / "edgetpu_graphs"  # the fit rows' graphs (what tests refit from)
GPU_PUBLISHED = HERE / "data" / "gpu_published.csv"  # published GPU latencies, with sources
GPU_GRAPHS = HERE / "data" / "gpu_graphs"  # the GPU fit rows' graphs
DEFAULT_CACHE = Path.home() / ".cache/autocompress/validate"
PIXEL2_PUBLISHED = HERE / "data" / "pixel2_published.csv"  # TFLite's Pixel 2 numbers, one big core


def convert(model, mode: str) -> bytes:
    """Exactly the candidates' conversion; int8 calibrated on random inputs (latency only)."""
    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    return to_tflite(model, mode, calibration)


def reference_graph(cache: Path, row: dict[str, str], mode: str = "int8") -> Graph:
    """The graph of a reference architecture (``weights=None``: latency does not depend on the
    weights' values), converted as a candidate would be; the file is cached in ``cache``."""
    import tf_keras as keras

    size, alpha = int(row["input"]), float(row["alpha"])
    path = cache / f"{row['builder']}_{size}_{alpha:g}_{mode}.tflite"
    if not path.exists():
        start = time.perf_counter()
        data = convert(build(row["builder"], size, alpha), mode)
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        keras.backend.clear_session()
        print(f"  converted {row['model']} ({mode}) in {time.perf_counter() - start:.0f} s")
    return read_tflite(path.read_bytes(), row["model"])


def published_rows() -> list[dict[str, str]]:
    with PUBLISHED.open() as f:
        return list(csv.DictReader(f))


def published_table(cache: Path, fit: bool) -> None:
    print("\n== Edge TPU (full int8 files) ==")
    rows = published_rows()
    graphs = {row["model"]: reference_graph(cache, row) for row in rows}
    if fit:
        fit_rows = [
            (graphs[r["model"]], float(r["usb_ms"]), float(r["devboard_ms"] or "nan"))
            for r in rows
            if r["role"] == "fit"
        ]
        shipped = {
            r["model"].replace(" ", "_") + ".json": graphs[r["model"]]
            for r in rows
            if r["role"] == "fit"
        }
        report_fit(fit_coral(fit_rows), FIT_GRAPHS, shipped)
    table = []
    for profile_name, col in (("edgetpu-usb", "usb_ms"), ("edgetpu-devboard", "devboard_ms")):
        profile = load_profile(profile_name)
        for row in rows:
            if not row[col]:
                continue
            g = graphs[row["model"]]
            r = latency(b"", profile, g)
            published = float(row[col])
            table.append(
                {
                    "profile": profile_name,
                    "model": f"{row['model']} {row['input']}",
                    "role": row["role"],
                    "MMACs": round(g.macs / 1e6),
                    "params_MB": round(g.weight_bytes / 1e6, 1),
                    "mapped": f"{r.details['ops_mapped']}/{r.details['ops_total']}",
                    "streamed_MB": round(r.details["streamed_param_bytes"] / 1e6, 1),
                    "published_ms": published,
                    "predicted_ms": round(r.median_ms, 2),
                    "error_%": round(100 * (r.median_ms - published) / published, 1),
                }
            )
    frame = pd.DataFrame(table)
    print(frame.to_string(index=False))
    held_out_summary(frame)


def report_fit(fits: dict[str, dict[str, float]], folder: Path, graphs: dict[str, Graph]) -> None:
    """Print each profile's fitted constants (what its YAML holds) and ship the fit rows'
    graphs, which the tests refit from."""
    for name, values in fits.items():
        print(f"fit (write these into hardware_profiles/{name}.yaml):")
        for key, value in values.items():
            print(f"  {key}: {value:.4g}")
    folder.mkdir(exist_ok=True)
    for file_name, graph in graphs.items():
        (folder / file_name).write_text(json.dumps(graph.to_dict()))


def held_out_summary(frame: pd.DataFrame) -> None:
    """Per profile: the held-out rows' median and worst |error| and the rank correlation
    (Spearman) of predicted against published latency over them."""
    for profile_name, part in frame.groupby("profile", sort=False):
        held = part[part["role"] == "held out"]
        err = held["error_%"].abs()
        worst = held.loc[err.idxmax()] if len(held) else None
        rho = spearmanr(held["predicted_ms"], held["published_ms"])[0] if len(held) > 2 else None
        if worst is None:
            print(f"{profile_name}: nothing held out")
            continue
        label = f"{worst['model']} {worst['file'] if 'file' in worst else ''}".strip()
        print(
            f"{profile_name}: {len(held)} held-out rows, within 25 %: {int((err <= 25).sum())}; "
            f"median |error| {err.median():.1f} %, worst {worst['error_%']:+.1f} % ({label})"
            + ("" if rho is None else f", rank correlation {rho:.2f}")
        )


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def row_graphs(cache: Path, rows: list[dict[str, str]]) -> dict[tuple[str, ...], Graph]:
    """The reference graph of each row, converted once per (network, resolution, file)."""
    graphs: dict[tuple[str, ...], Graph] = {}
    for r in rows:
        key = (r["builder"], r["input"], r["alpha"], r["file"])
        if key not in graphs:
            graphs[key] = reference_graph(cache, r, r["file"])
    return graphs


def graph_of(graphs: dict[tuple[str, ...], Graph], r: dict[str, str]) -> Graph:
    return graphs[(r["builder"], r["input"], r["alpha"], r["file"])]


def published_frame(rows: list[dict[str, str]], graphs: dict[tuple[str, ...], Graph]):
    """Predicted against published latency for every row (its profile's simulator)."""
    table = []
    for r in rows:
        g = graph_of(graphs, r)
        result = latency(b"", load_profile(r["profile"]), g)
        published = float(r["published_ms"])
        row = {
            "profile": r["profile"],
            "model": f"{r['model']} {r['input']}",
            "file": r["file"],
            "role": r["role"],
            "MMACs": round(g.macs / 1e6),
        }
        if "kernels" in result.details:
            row["kernels"] = result.details["kernels"]
            on_gpu = result.details.get("ops_on_gpu")
            row["on_gpu"] = "all" if on_gpu is None else f"{on_gpu}/{result.details['ops_total']}"
        row["deployable"] = result.deployable
        row["published_ms"] = published
        row["predicted_ms"] = round(result.median_ms, 3)
        row["error_%"] = round(100 * (result.median_ms - published) / published, 1)
        table.append(row)
    return pd.DataFrame(table)


def pixel2_table(cache: Path, fit: bool) -> None:
    print("\n== Pixel 2, one big core ==")
    rows = csv_rows(PIXEL2_PUBLISHED)
    graphs = row_graphs(cache, rows)
    profile = load_profile("pixel2-cpu")
    assert profile.roofline is not None
    if fit:
        for r in rows:
            if r["role"] == "fit":
                kind = "float32" if r["file"] == "none" else "int8"
                rate = fit_rate(
                    graph_of(graphs, r), profile.roofline, kind, float(r["published_ms"])
                )
                print(f"fit: macs_per_s.{kind} = {rate:.3g}")
    frame = published_frame(rows, graphs)
    print(frame.to_string(index=False))
    held_out_summary(frame)


def gpu_table(cache: Path, fit: bool) -> None:
    """The GPU profiles against published TensorRT and GPU-delegate latencies."""
    print("\n== GPU profiles (TFLite GPU delegate, TensorRT) ==")
    rows = csv_rows(GPU_PUBLISHED)
    graphs = row_graphs(cache, rows)
    if fit:
        fit_rows: dict[str, list[tuple[Graph, float]]] = {}
        for r in rows:
            if r["role"] == "fit":
                fit_rows.setdefault(r["profile"], []).append(
                    (graph_of(graphs, r), float(r["published_ms"]))
                )
        shipped = {
            f"{r['builder']}_{r['input']}_{float(r['alpha']):g}_{r['file']}.json": graph_of(
                graphs, r
            )
            for r in rows
            if r["role"] == "fit"
        }
        report_fit(fit_published(fit_rows), GPU_GRAPHS, shipped)
    frame = published_frame(rows, graphs)
    print(frame.to_string(index=False))
    held_out_summary(frame)


def fit_rate(graph: Graph, settings: RooflineSettings, kind: str, target_ms: float) -> float:
    """The ``macs_per_s[kind]`` that makes the roofline hit ``target_ms`` (bisection, log scale)."""
    lo, hi = 1e8, 1e13
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        s = dataclasses.replace(settings, macs_per_s={**settings.macs_per_s, kind: mid})
        ms = (graph_seconds(graph.ops, s) + s.invoke_overhead_s) * 1e3
        lo, hi = (lo, mid) if ms < target_ms else (mid, hi)
    return (lo * hi) ** 0.5


def cpu_host(run: Path | None) -> None:
    """Fit the roofline and the kernel-level predictors to single-op micro-models measured here,
    then predict the candidates of a finished search, re-measured idle in this run."""
    from scipy.optimize import nnls

    from autocompress.hardware.measure import measure_latency

    print("\n== cpu-host: predictors fitted to single-op micro-models measured here ==")
    host = load_profile("cpu-host")
    micros = micro_models()
    files: list[tuple[str, Graph, float]] = []  # (micro op type, graph, measured seconds)
    start = time.perf_counter()
    for micro in micros:
        for mode, _ in MODES:
            data = convert(micro.build(), mode)
            files.append(
                (micro.op, read_tflite(data), measure_latency(data, None, host).median_ms / 1e3)
            )
    print(f"measured {len(files)} micro-model files in {time.perf_counter() - start:.0f} s")

    # Roofline: invoke + per-op overhead + seconds per MAC per compute kind + per element.
    kinds = ["float32", "int8", "hybrid"]
    rows, target = [], []
    for _, g, seconds in files:
        row = [1.0, len(g.ops)] + [0.0] * len(kinds) + [sum(o.elementwise for o in g.ops)]
        for op in g.ops:
            if op.compute in kinds:
                row[2 + kinds.index(op.compute)] += op.macs
        rows.append(np.array(row) / seconds)
        target.append(1.0)
    scale = np.max(np.abs(rows), axis=0)
    coef, _ = nnls(np.array(rows) / scale, np.array(target))
    coef = np.maximum(coef / scale, 1e-18)
    roofline = RooflineSettings(
        macs_per_s={k: 1.0 / coef[2 + i] for i, k in enumerate(kinds)} | {"float16": 1.0 / coef[2]},
        elementwise_per_s=1.0 / coef[-1],
        bandwidth_bytes_per_s=1e12,
        op_overhead_s=float(coef[1]),
        invoke_overhead_s=float(coef[0]),
    )

    # Kernel level: an op's time is its file's time minus the invoke cost of a RESHAPE-only file
    # of the same compute kind.
    invoke = {file_kind(g): seconds for op, g, seconds in files if op == "RESHAPE"}
    invoke.setdefault("hybrid", invoke.get("float32", 0.0))
    samples = []
    for op_type, g, seconds in files:
        ops = [op for op in g.ops if op.name == op_type]
        if op_type != "RESHAPE" and len(ops) == 1:
            own = seconds - invoke.get(file_kind(g), invoke["float32"])
            samples.append((file_kind(g), ops[0], features(g, ops[0]), own))
    predictors = {
        kind: dataclasses.replace(KernelPredictor(kind), invoke_s=invoke).fit(samples)
        for kind in ("linear", "forest")
    }

    def predict(name: str, g: Graph) -> float:
        if name == "roofline":
            return (graph_seconds(g.ops, roofline) + roofline.invoke_overhead_s) * 1e3
        p = predictors[name]
        total = p.invoke_s.get(file_kind(g), p.invoke_s["float32"])
        for op in g.ops:
            t = p.op_seconds(g, op)
            total += t if t is not None else graph_seconds([op], roofline)
        return total * 1e3

    print(
        "roofline fitted:",
        {k: f"{v:.3g}" for k, v in roofline.macs_per_s.items()},
        f"elementwise/s {roofline.elementwise_per_s:.3g}, per op "
        f"{roofline.op_overhead_s * 1e6:.2f} us, "
        f"per invoke {roofline.invoke_overhead_s * 1e6:.2f} us",
    )
    print(
        "kernels:",
        ", ".join(sorted(f"{n}/{c}" for n, c in predictors["linear"].linear)),
        "| invoke us:",
        {k: round(v * 1e6, 2) for k, v in invoke.items()},
    )
    if run is None:
        return
    trials = pd.read_csv(run / "trials.csv")
    reused = trials.get("reused_from", pd.Series(index=trials.index, dtype=float))
    done = trials[(trials["state"] == "COMPLETE") & reused.isna()]
    # The search measured its candidates while another worker trained on the other core: measure
    # them again here, idle like the micro-models, twice (the second time is the noise floor:
    # how often a measurement agrees with itself within +-10 %).
    errors: dict[str, list[float]] = {"roofline": [], "linear": [], "forest": []}
    by_mode: dict[str, dict[str, list[float]]] = {k: {} for k in errors}
    repeat = []
    for _, row in done.iterrows():
        data = (run / row["model_path"]).read_bytes()
        g = read_tflite(data)
        measured = measure_latency(data, None, host).median_ms
        repeat.append(measure_latency(data, None, host).median_ms / measured - 1.0)
        for name in errors:
            error = predict(name, g) / measured - 1.0
            errors[name].append(error)
            by_mode[name].setdefault(row["quantization"], []).append(error)
    print(f"candidates of {run}: {len(done)}")
    noise = np.abs(np.array(repeat))
    print(
        f"  noise floor (second measurement vs first): within +-10 %: {np.mean(noise <= 0.10):.0%},"
        f" median |difference| {np.median(noise):.1%}"
    )
    for name, errs in errors.items():
        err = np.abs(np.array(errs))
        modes = {k: f"{np.median(v):+.0%}" for k, v in sorted(by_mode[name].items())}
        print(
            f"  {name:8s} within +-10 %: {np.mean(err <= 0.10):4.0%}, within +-25 %: "
            f"{np.mean(err <= 0.25):4.0%}, median |error| {np.median(err):4.0%}; "
            f"median signed error by mode {modes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true", help="print the constants the fit implies")
    parser.add_argument("--run", type=Path, default=None, help="a finished search directory")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--skip-published", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.skip_published:
        published_table(args.cache, args.fit)
        pixel2_table(args.cache, args.fit)
        gpu_table(args.cache, args.fit)
    cpu_host(args.run)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
