"""The microcontroller profiles' fitted constants are what the fit gives on the shipped data.

``benchmarks/data/mcu_published.csv`` holds MLPerf Tiny's published throughput of TFLM on each
board (with sources) and which rows fit; ``benchmarks/data/mcu_graphs/`` the fit rows' graphs as
the reader sees them. The YAML files hold the fit's printed values (4 significant digits). No
TFLM here: the cycle model needs only the graphs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import PROFILES_DIR, mcu_settings
from autocompress.hardware.tflm import FITTED, fit_cycles, graph_seconds

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


def published() -> dict[str, list[tuple[Graph, float]]]:
    out: dict[str, list[tuple[Graph, float]]] = {}
    with (DATA / "mcu_published.csv").open() as f:
        for r in csv.DictReader(f):
            if r["role"] == "fit":
                graph = Graph.from_dict(
                    json.loads((DATA / "mcu_graphs" / f"{r['benchmark']}.json").read_text())
                )
                out.setdefault(r["profile"], []).append((graph, 1e3 / float(r["inferences_per_s"])))
    return out


ROWS = published()


@pytest.mark.parametrize("name", sorted(ROWS))
def test_shipped_constants_are_the_fit_of_the_shipped_data(name: str) -> None:
    mcu = mcu_settings(name)
    assert len(ROWS[name]) == len(FITTED)
    fitted = fit_cycles(ROWS[name], mcu)
    for key in FITTED:
        assert getattr(mcu, key) == float(f"{fitted[key]:.4g}"), (name, key)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_fitted_profile_reproduces_its_fit_rows(name: str) -> None:
    mcu = mcu_settings(name)
    for graph, ms in ROWS[name]:
        assert graph_seconds(graph, mcu) * 1e3 == pytest.approx(ms, rel=1e-3)


def test_fit_moves_with_the_data() -> None:
    """Not a constant echoed back: a slower board fits slower kernels."""
    mcu = mcu_settings("nucleo-l4r5zi")
    base = fit_cycles(ROWS["nucleo-l4r5zi"], mcu)
    slower = fit_cycles([(g, ms * 2) for g, ms in ROWS["nucleo-l4r5zi"]], mcu)
    assert slower["cycles_per_mac"] > 1.9 * base["cycles_per_mac"]
    refit = dataclasses.replace(mcu, **slower)
    for graph, ms in ROWS["nucleo-l4r5zi"]:
        assert graph_seconds(graph, refit) * 1e3 == pytest.approx(ms * 2, rel=1e-6)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_yaml_marks_fitted_and_prior_constants(name: str) -> None:
    lines = (PROFILES_DIR / f"{name}.yaml").read_text().splitlines()
    for key in FITTED:
        (i,) = [i for i, x in enumerate(lines) if x.strip().startswith(key + ":")]
        assert any("Fitted" in x for x in lines[max(0, i - 4) : i]), (name, key)
    for key in ("mac_cost", "cycles_per_output", "op_cycles", "runtime_ram_bytes"):
        (i,) = [i for i, x in enumerate(lines) if x.strip().startswith(key + ":")]
        assert any("Prior" in x for x in lines[max(0, i - 6) : i]), (name, key)
