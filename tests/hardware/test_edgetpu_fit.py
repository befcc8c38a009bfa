"""The Edge TPU profiles' fitted constants are what the fit gives on the shipped data.

``benchmarks/data/edgetpu_published.csv`` holds the published latencies (with sources) and
which rows calibrate; ``benchmarks/data/edgetpu_graphs/`` the calibration rows' graphs as the
reader sees them. The YAML files hold the fit's printed values (4 significant digits).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from autocompress.hardware import latency, load_profile, read_tflite
from autocompress.hardware.edgetpu import FITTED, fit_coral, fit_timing
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.profile import PROFILES_DIR
from tests.hardware.conftest import to_tflite

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


def fit_rows() -> list[tuple[str, Graph, float, float]]:
    """(model, graph, published USB ms, published Dev Board ms or NaN) of the "fit" rows."""
    with (DATA / "edgetpu_published.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["role"] == "fit"]
    assert len(rows) >= len(FITTED)  # at least as many rows as constants
    out = []
    for r in rows:
        path = DATA / "edgetpu_graphs" / (r["model"].replace(" ", "_") + ".json")
        graph = Graph.from_dict(json.loads(path.read_text()))
        out.append((r["model"], graph, float(r["usb_ms"]), float(r["devboard_ms"] or "nan")))
    return out


@pytest.mark.parametrize("name", ["edgetpu-usb", "edgetpu-devboard"])
def test_shipped_constants_are_the_fit_of_the_shipped_data(name: str) -> None:
    fitted = fit_coral([(g, usb, board) for _, g, usb, board in fit_rows()])[name]
    settings = load_profile(name).edgetpu
    assert settings is not None
    assert set(fitted) == set(FITTED)
    for key in FITTED:
        assert getattr(settings, key) == float(f"{fitted[key]:.4g}"), key


@pytest.mark.parametrize("name", ["edgetpu-usb", "edgetpu-devboard"])
def test_fitted_profile_reproduces_its_calibration_rows(name: str) -> None:
    profile = load_profile(name)
    column = 2 if name == "edgetpu-usb" else 3
    errors = []
    for row in fit_rows():
        if row[column] == row[column]:  # not NaN
            predicted = latency(b"", profile, row[1]).median_ms
            errors.append(predicted / row[column] - 1.0)
    if name == "edgetpu-usb":  # four constants, four rows: an exact solve (4-digit constants)
        assert max(abs(e) for e in errors) < 0.01
    else:  # one constant (the link) on three rows: least squares, close on each
        assert max(abs(e) for e in errors) < 0.15


def test_fit_moves_with_the_data() -> None:
    """Not a constant echoed back: slower published numbers give a slower fitted chip."""
    rows = [(g, ms) for _, g, ms, _ in fit_rows()]
    base = fit_timing(rows, load_profile("edgetpu-usb"))
    slower = fit_timing([(g, ms * 1.5) for g, ms in rows], load_profile("edgetpu-usb"))
    assert slower["macs_per_s"] < base["macs_per_s"]
    assert slower["link_bytes_per_s"] < base["link_bytes_per_s"]
    assert slower["invoke_overhead_s"] + slower["op_overhead_s"] > (
        base["invoke_overhead_s"] + base["op_overhead_s"]
    )
    with pytest.raises(ValueError, match="non-positive"):
        fit_timing(
            [(g, ms * (0.2 if i == 2 else 1.0)) for i, (g, ms) in enumerate(rows)],
            load_profile("edgetpu-usb"),
        )


def test_yaml_names_its_priors_and_its_fitted_values() -> None:
    for name in ("edgetpu-usb", "edgetpu-devboard"):
        lines = (PROFILES_DIR / f"{name}.yaml").read_text().splitlines()
        lines = lines[lines.index("edgetpu:") : lines.index("host:")]  # the chip's section
        (sram,) = [x for x in lines if x.strip().startswith("sram_bytes:")]
        assert "prior" in sram, name
        at = next(i for i, x in enumerate(lines) if x.strip().startswith("utilisation:"))
        assert any("prior" in x.lower() for x in lines[max(0, at - 3) : at + 1]), name
        for key in FITTED:
            (i,) = [i for i, x in enumerate(lines) if x.strip().startswith(key + ":")]
            assert any("fitted" in x.lower() for x in lines[max(0, i - 8) : i + 1]), (name, key)


def test_shipped_graph_is_what_the_reader_gives_today() -> None:
    """The smallest calibration graph, converted again now (MobileNet v1 0.25 at 128 px,
    weights=None, random calibration): the same ops, MACs and weight bytes as the shipped one."""
    import tf_keras as keras

    ((_, shipped, _, _),) = [row for row in fit_rows() if row[0] == "MobileNet v1 0.25"]
    model = keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=None)
    fresh = read_tflite(to_tflite(model, "int8"))
    keras.backend.clear_session()

    def summary(g: Graph) -> list[tuple[str, int, int, str]]:
        return [(op.name, op.macs, op.weight_bytes, op.compute) for op in g.ops]

    assert summary(fresh) == summary(shipped)
    usb = load_profile("edgetpu-usb")
    assert latency(b"", usb, fresh).median_ms == pytest.approx(
        latency(b"", usb, shipped).median_ms, rel=1e-9
    )
    assert dataclasses.asdict(fresh)["inputs"] == dataclasses.asdict(shipped)["inputs"]
