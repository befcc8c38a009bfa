"""The GPU profiles' fitted constants are what the fit gives on the shipped data.

``benchmarks/data/gpu_published.csv`` holds the published latencies (with sources) and which rows
fit; ``benchmarks/data/gpu_graphs/`` the fit rows' graphs as the reader sees them. The YAML files
hold the fit's printed values (4 significant digits).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from autocompress.hardware import latency, load_profile
from autocompress.hardware.fits import PLAN, fit_gpu, fit_published, with_values
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import PROFILES_DIR

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


def fit_rows() -> dict[str, list[tuple[Graph, float]]]:
    with (DATA / "gpu_published.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["role"] == "fit"]
    out: dict[str, list[tuple[Graph, float]]] = {}
    for r in rows:
        name = f"{r['builder']}_{r['input']}_{float(r['alpha']):g}_{r['file']}.json"
        graph = Graph.from_dict(json.loads((DATA / "gpu_graphs" / name).read_text()))
        out.setdefault(r["profile"], []).append((graph, float(r["published_ms"])))
    return out


@pytest.fixture(scope="module")
def rows() -> dict[str, list[tuple[Graph, float]]]:
    return fit_rows()


def _value(profile_name: str, key: str) -> float:
    gpu = load_profile(profile_name).gpu
    assert gpu is not None
    if "." in key:
        section, sub = key.split(".", 1)
        return getattr(gpu, section)[sub]
    return getattr(gpu, key)


@pytest.mark.parametrize("name", list(PLAN))
def test_shipped_constants_are_the_fit_of_the_shipped_data(rows, name: str) -> None:
    assert len(rows[name]) >= len(PLAN[name])  # at least as many rows as constants
    fitted = fit_published(rows)[name]
    for key, value in fitted.items():
        assert _value(name, key) == value, (name, key)


@pytest.mark.parametrize("name", list(PLAN))
def test_fitted_profile_reproduces_its_fit_rows(rows, name: str) -> None:
    profile = load_profile(name)
    for graph, published in rows[name]:
        assert latency(b"", profile, graph).median_ms == pytest.approx(published, rel=0.01)


def test_fit_moves_with_the_data(rows) -> None:
    """Not a constant echoed back: slower published numbers give a slower fitted GPU."""
    profile = load_profile("jetson-nano-trt")
    keys = PLAN["jetson-nano-trt"]
    base = fit_gpu(rows["jetson-nano-trt"], profile, keys)
    slower = fit_gpu([(g, ms * 1.5) for g, ms in rows["jetson-nano-trt"]], profile, keys)
    assert slower["macs_per_s.float16"] < base["macs_per_s.float16"]
    refit = with_values(profile, slower)
    for graph, published in rows["jetson-nano-trt"]:
        assert latency(b"", refit, graph).median_ms == pytest.approx(published * 1.5, rel=0.01)


def test_yaml_names_its_priors_and_its_fitted_values() -> None:
    for name, keys in PLAN.items():
        lines = (PROFILES_DIR / f"{name}.yaml").read_text().splitlines()
        lines = lines[: lines.index("host:")] if "host:" in lines else lines  # the GPU's part
        for key in keys:
            field = key.split(".")[-1]
            (i,) = [
                i
                for i, x in enumerate(lines)
                if x.strip().startswith(field + ":") and "prior" not in x
            ]
            assert any("fitted" in x.lower() for x in lines[max(0, i - 10) : i + 1]), (name, key)
        for line in lines:
            if line.strip().startswith(("bandwidth_bytes_per_s:", "invoke_overhead_s:")):
                assert "prior" in line, (name, line)
