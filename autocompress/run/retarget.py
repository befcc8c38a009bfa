"""Add a hardware profile to a finished run, without rebuilding any candidate.

Every candidate's ``.tflite`` file is kept in ``RUN/models/``; its latency on a simulated profile is
seconds away. :func:`retarget` estimates every kept candidate on the profile and writes
``RUN/profiles/<name>.csv`` beside the study's tables: the study and ``trials.csv`` are never
changed (a resumed search rewrites ``trials.csv`` from the study and keeps this file), and
:func:`autocompress.run.results.load_trials` joins the file's columns in, so that ``show``,
``pick``, ``report`` and ``pick --export`` accept ``--profile <name>`` with the front
recomputed for it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autocompress._files import atomic_write_text
from autocompress.errors import InputError
from autocompress.hardware import HardwareProfile, latency, load_profile, read_tflite
from autocompress.hardware.limits import over_limits, violated
from autocompress.run.device import PROFILES_DIR, kept_candidates
from autocompress.run.rundir import RunDir


@dataclass(frozen=True)
class Retargeted:
    """What :func:`retarget` did: the profile, the file it wrote and how many candidates."""

    profile: str
    path: Path
    candidates: int


def retarget(run: Path, profile: str | Path | HardwareProfile) -> Retargeted:
    """Estimate every kept candidate of ``run`` on a simulated ``profile``."""
    hw = profile if isinstance(profile, HardwareProfile) else load_profile(profile)
    if hw.backend == "measure":
        raise InputError(
            "--profile",
            f"{hw.name!r} is measured, not simulated: run `autocompress measure {run} --as "
            f"{hw.name}` on the machine it describes",
        )
    trials = RunDir(run).read_trials()
    if f"latency_ms_{hw.name}" in trials.columns:
        raise InputError("--profile", f"{hw.name!r} was measured by the search in {run}")
    rows = []
    for trial, path in kept_candidates(Path(run)):
        data = path.read_bytes()
        graph = read_tflite(data, str(path))
        result = latency(data, hw, graph)
        over = violated(over_limits(hw, len(data), graph.peak_ram_bytes(), result))
        rows.append(
            {
                "trial": trial,
                f"latency_ms_{hw.name}": result.median_ms,
                f"deployable_{hw.name}": result.deployable,
                "constraints_violated": ";".join(over),
            }
        )
    out = Path(run) / PROFILES_DIR / f"{hw.name}.csv"
    buffer = io.StringIO()
    columns = ["trial", f"latency_ms_{hw.name}", f"deployable_{hw.name}", "constraints_violated"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buffer.getvalue())
    return Retargeted(hw.name, out, len(rows))


def join_profiles(run: Path, trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with the columns of every added profile of ``run`` joined in by trial; a
    reused trial takes the values of the trial it reuses, and each added profile's violated
    constraints are appended to ``constraints_violated``."""
    folder = Path(run) / PROFILES_DIR
    if not folder.is_dir() or trials.empty:
        return trials
    out = trials.copy()
    source = out["trial"]
    if "reused_from" in out.columns:
        source = out["reused_from"].fillna(out["trial"]).astype(int)
    for path in sorted(folder.glob("*.csv")):
        try:
            added = pd.read_csv(path).set_index("trial")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(str(path), f"unreadable table: {exc}") from None
        for column in added.columns:
            if column == "constraints_violated":
                extra = source.map(added[column]).fillna("").astype(str)
                base = out.get(column, pd.Series("", index=out.index)).fillna("").astype(str)
                out[column] = [";".join(p for p in (a, b) if p) for a, b in zip(base, extra)]
            elif column not in out.columns:
                out[column] = source.map(added[column])
    return out
