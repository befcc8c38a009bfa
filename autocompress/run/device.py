"""Measure a run's candidates on the device itself: ``autocompress measure RUN --as NAME``.

Run on the target machine (a Raspberry Pi, an ARM board, a laptop) over a copy of the run
directory: every kept candidate's ``.tflite`` file is timed with LiteRT as ``cpu-host`` times it
(warm-up, then runs until a minimum count and time; median, p90 and their ratio), and the results
go to ``RUN/profiles/NAME.csv``, which ``show`` / ``pick`` / ``report`` then read as a measured
profile ``NAME`` (see :mod:`autocompress.run.retarget`). The file is rewritten atomically after
every candidate, so a measurement killed half way resumes where it stopped.

This module's import path needs only ai-edge-litert, numpy and PyYAML: no TensorFlow, tfmot, Ray,
Optuna or pandas (the light install of the README; a test runs it with those made unimportable).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autocompress._files import atomic_write_text
from autocompress.errors import InputError
from autocompress.hardware.flatbuffer import read_tflite
from autocompress.hardware.measure import measure_latency
from autocompress.hardware.profile import HardwareProfile, MeasureSettings, load_profile

PROFILES_DIR = "profiles"  # inside the run directory (the same folder retarget writes)


@dataclass(frozen=True)
class Measured:
    """What :func:`measure_run` did."""

    profile: str
    path: Path
    measured: int  # candidates timed by this call
    resumed: int  # candidates found already measured in the file


def kept_candidates(run: Path) -> list[tuple[int, Path]]:
    """(trial, model file) of every completed, first-built candidate in ``RUN/trials.csv``."""
    table = run / "trials.csv"
    if not table.is_file():
        raise InputError(str(run), "not a run directory (no trials.csv)")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        if row.get("state") != "COMPLETE" or not row.get("model_path"):
            continue
        if row.get("reused_from"):
            continue  # a repeat: its file is the earlier trial's
        path = run / row["model_path"]
        if not path.is_file():
            raise InputError(str(path), f"the model of trial {row['trial']} is missing")
        out.append((int(row["trial"]), path))
    return out


def measure_run(
    run: Path,
    name: str,
    settings: MeasureSettings | None = None,
    on_candidate: Callable[[int, float], None] | None = None,
) -> Measured:
    """Time every kept candidate of ``run`` on this machine as profile ``name``; resume a file
    left by an earlier, interrupted call."""
    run = Path(run)
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise InputError("--as", f"{name!r} is not a usable profile name (letters, digits, -, _)")
    searched = _header(run / "trials.csv")
    if f"latency_ms_{name}" in searched:
        raise InputError("--as", f"{name!r} is a profile the search measured; choose a new name")
    settings = settings or load_profile("cpu-host").measure
    profile = HardwareProfile(name=name, backend="measure", measure=settings)
    path = run / PROFILES_DIR / f"{name}.csv"
    columns = [
        "trial",
        f"latency_ms_{name}",
        f"latency_p90_ms_{name}",
        f"latency_variation_{name}",
        f"deployable_{name}",
        "constraints_violated",
    ]
    rows = _read_rows(path, columns)
    done = {int(r["trial"]) for r in rows}
    measured = 0
    for trial, model in kept_candidates(run):
        if trial in done:
            continue
        data = model.read_bytes()
        result = measure_latency(data, read_tflite(data, str(model)), profile)
        rows.append(
            {
                "trial": trial,
                columns[1]: result.median_ms,
                columns[2]: result.p90_ms,
                columns[3]: round(result.variation, 3),
                columns[4]: True,
                "constraints_violated": "",
            }
        )
        _write_rows(path, columns, rows)
        measured += 1
        if on_candidate is not None:
            on_candidate(trial, result.median_ms)
    facts = {
        "profile": name,
        "backend": "measure",
        "machine": platform.machine(),
        "processor": platform.processor(),
        "system": platform.platform(),
        "cpus": os.cpu_count(),
        "settings": dataclasses.asdict(settings),
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(facts, indent=1))
    if not rows:
        _write_rows(path, columns, rows)
    return Measured(name, path, measured, len(done))


def _header(table: Path) -> list[str]:
    if not table.is_file():
        raise InputError(str(table.parent), "not a run directory (no trials.csv)")
    with open(table, newline="") as f:
        return next(csv.reader(f), [])


def _read_rows(path: Path, columns: list[str]) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != columns:
            raise InputError(str(path), "is not a measurement of this profile; move it away")
        return [dict(r) for r in reader]


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
