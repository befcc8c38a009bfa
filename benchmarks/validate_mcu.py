"""Validate the microcontroller profiles (``tflm`` backend) against published MLPerf Tiny results.

Run: ``.venv/bin/python benchmarks/validate_mcu.py [--fit]`` (needs ``autocompress[mcu]``).

The four MLPerf Tiny networks (``_mcu_references.py``: DS-CNN, MobileNet v1 0.25, ResNet-8, the
FC autoencoder), converted to full int8 as a candidate would be, are prepared by TFLM (its arena
is printed) and timed by each profile's cycle model; ``data/mcu_published.csv`` holds the
published throughput of TFLM on each board with its source. Per profile two rows fit the two
constants ``cycles_per_mac`` (dense convolutions: ResNet-8) and ``cycles_per_fc_mac`` (fully
connected: the autoencoder); the two depthwise networks are held out, and each profile's held-out
median and worst |error| are printed. ``--fit`` prints the fitted constants (what the YAML files
hold) and writes the fit rows' graphs the tests refit from (``data/mcu_graphs``).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from _mcu_references import int8_file

import autocompress  # noqa: F401  (Keras-2 switch)
from autocompress.hardware import read_tflite
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import load_profile
from autocompress.hardware.tflm import allocate, fit_cycles, graph_seconds

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "data" / "mcu_published.csv"
GRAPHS = HERE / "data" / "mcu_graphs"
DEFAULT_CACHE = Path.home() / ".cache/autocompress/validate_mcu"


def reference(cache: Path, benchmark: str) -> bytes:
    path = cache / f"{benchmark}_int8.tflite"
    if not path.exists():
        start = time.perf_counter()
        data = int8_file(benchmark)
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"  converted {benchmark} in {time.perf_counter() - start:.0f} s")
    return path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="print the fit; write the fit graphs")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    rows = list(csv.DictReader(PUBLISHED.open()))
    files = {b: reference(args.cache, b) for b in sorted({r["benchmark"] for r in rows})}
    graphs = {b: read_tflite(data, b) for b, data in files.items()}
    print("\nreference networks (full int8): TFLM's arena, file size, MACs")
    for b, data in files.items():
        arena = allocate(data)
        print(
            f"  {b:4s} arena {arena.arena_bytes or arena.error} B  file {len(data)} B  "
            f"{graphs[b].macs / 1e6:.2f} M MACs"
        )
    fits: dict[str, dict[str, float]] = {}
    all_errors: list[float] = []
    print("\nprofile              bench  role      published ms  model ms   error")
    for name in sorted({r["profile"] for r in rows}, key=[r["profile"] for r in rows].index):
        profile = load_profile(name)
        assert profile.mcu is not None
        mine = [r for r in rows if r["profile"] == name]
        fit_rows = [(graphs[r["benchmark"]], 1e3 / float(r["inferences_per_s"])) for r in mine
                    if r["role"] == "fit"]  # fmt: skip
        fits[name] = fit_cycles(fit_rows, profile.mcu)
        held = []
        for r in mine:
            published = 1e3 / float(r["inferences_per_s"])
            ms = graph_seconds(graphs[r["benchmark"]], profile.mcu) * 1e3
            error = ms / published - 1
            if r["role"] == "held-out":
                held.append(abs(error))
            print(
                f"{name:20s} {r['benchmark']:6s} {r['role']:9s} {published:12.3f} {ms:9.3f} "
                f"{error:+7.1%}"
            )
        all_errors += held
        print(f"  {name}: held-out median |error| {np.median(held):.1%}, worst {max(held):.1%}")
    print(
        f"\nall held-out rows: median |error| {np.median(all_errors):.1%}, "
        f"worst {max(all_errors):.1%} (goal: median <= 25 %, worst <= 50 %)"
    )
    if args.fit:
        print("\nfitted constants (the YAML files' values, 4 significant digits):")
        for name, values in fits.items():
            print(f"  {name}: " + ", ".join(f"{k}: {float(f'{v:.4g}')}" for k, v in values.items()))
        GRAPHS.mkdir(parents=True, exist_ok=True)
        for r in rows:
            if r["role"] == "fit":
                graph: Graph = graphs[r["benchmark"]]
                (GRAPHS / f"{r['benchmark']}.json").write_text(json.dumps(graph.to_dict()))
        print(f"fit rows' graphs written to {GRAPHS}")


if __name__ == "__main__":
    main()
