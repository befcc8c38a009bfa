"""Reading a finished (or running) run directory: the front for any profile, and picking.

Reads only the files in the run directory (``trials.csv``), so it works on a copied directory
without the study storage, Ray or TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from autocompress.errors import InputError
from autocompress.records import EPOCH_FIELDS, RECIPE_FIELDS, Recipe
from autocompress.study.rundir import RunDir
from autocompress.study.tables import front_frame, latency_column, profiles_in


def for_display(frame: pd.DataFrame, wide: bool = True) -> pd.DataFrame:
    """The table as printed. ``accuracy`` is named ``val_accuracy``: it is measured on the
    validation data, which the search tuned on; ``test_accuracy`` (when the task has a test
    split) on data it never saw.

    Not ``wide``: a terminal's width of columns: trial, the recipe in words (what it changes),
    the accuracies, the sizes and the latency on each profile.
    """
    shown = frame.rename(columns={"accuracy": "val_accuracy"})
    if wide:
        return shown
    default = Recipe().to_dict()

    def recipe(row: pd.Series) -> str:
        changed = [
            f"{k}={row[k]}" if k != "quantization" else str(row[k])
            for k in RECIPE_FIELDS
            if k not in EPOCH_FIELDS and k in row and pd.notna(row[k]) and row[k] != default[k]
        ]
        return ", ".join(changed) or "unchanged"

    columns = ["trial", "state", "level"]  # level: a multi-fidelity build's
    out = shown[[c for c in columns if c in shown.columns]].copy()
    if "level" in out.columns:
        out["level"] = out["level"].astype("Int64")
    out["recipe"] = [recipe(row) for _, row in shown.iterrows()]
    for c in ("val_accuracy", "test_accuracy", "gzip_bytes", "size_bytes"):
        if c in shown.columns:
            out[c] = shown[c]
    for c in shown.columns:
        if c.startswith("latency_ms_"):
            out[c.removeprefix("latency_")] = shown[c]
    return out


# Front members more than this below the baseline's validation accuracy are hidden by `show` and
# marked by `pick` and the report (unless the user gives the floor with --min-accuracy): the front
# stays exact, but a 40 %-accuracy model is rarely what a user is choosing between.
FLOOR_MARGIN = 0.05


def baseline_row(trials: pd.DataFrame) -> pd.Series | None:
    """The fp32 teacher converted unchanged (the first trial of every search), if it completed."""
    if trials.empty or "state" not in trials.columns:
        return None
    default = Recipe().to_dict()
    mask = trials["state"] == "COMPLETE"
    for name in RECIPE_FIELDS:
        if name not in EPOCH_FIELDS and name in trials.columns:
            mask &= trials[name] == default[name]
    rows = trials[mask].sort_values("trial")
    return rows.iloc[0] if len(rows) else None


def accuracy_floor(trials: pd.DataFrame, min_accuracy: float | None = None) -> float | None:
    """The user's ``min_accuracy``, else the baseline's validation accuracy minus
    :data:`FLOOR_MARGIN`; None without a baseline."""
    if min_accuracy is not None:
        return min_accuracy
    base = baseline_row(trials)
    return None if base is None else float(base["accuracy"]) - FLOOR_MARGIN


def load_trials(run: Path) -> pd.DataFrame:
    """``trials.csv`` with the profiles added after the search (``autocompress retarget``)."""
    from autocompress.retarget import join_profiles

    return join_profiles(run, load_study_trials(run))


def load_study_trials(run: Path) -> pd.DataFrame:
    """``trials.csv`` as the search wrote it."""
    path = RunDir(run).trials_csv
    if not path.is_file():
        raise InputError(str(run), "not a run directory (no trials.csv)")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"unreadable table: {exc}") from None


def load_front(run: Path, profile: str | None = None) -> tuple[pd.DataFrame, str]:
    """The front recomputed from ``trials.csv`` for ``profile`` (default: the search's first)."""
    trials = load_trials(run)
    known = list(profiles_in(trials))
    if not known:
        return front_frame(trials, profile or "cpu-host"), profile or "cpu-host"
    chosen = profile or known[0]
    if chosen not in known:
        raise InputError(
            "--profile",
            f"{chosen!r} was not measured in {run} (measured: {', '.join(known)}); add it with "
            f"`autocompress retarget {run} --profile {chosen}`",
        )
    return front_frame(trials, chosen), chosen


def pick(
    run: Path,
    profile: str | None = None,
    max_latency_ms: float | None = None,
    min_accuracy: float | None = None,
    max_size_kb: float | None = None,
    max_class_drop: float | None = None,
) -> pd.Series | None:
    """The most accurate front model meeting every given limit (ties: faster, then smaller).

    ``max_class_drop`` refuses models whose accuracy on some class is more than this below the
    teacher's on that class (from the compression audit).
    """
    front, chosen = load_front(run, profile)
    lat = latency_column(chosen)
    ok = front
    if max_latency_ms is not None:
        ok = ok[ok[lat] <= max_latency_ms]
    if min_accuracy is not None:
        ok = ok[ok["accuracy"] >= min_accuracy]
    if max_size_kb is not None:
        ok = ok[ok["size_bytes"] <= max_size_kb * 1024]
    if max_class_drop is not None:
        if "max_class_drop" not in ok.columns:
            raise InputError(str(run), "its trials have no compression audit (max_class_drop)")
        ok = ok[ok["max_class_drop"] <= max_class_drop]
    if ok.empty:
        return None
    best = ok.sort_values(["accuracy", lat, "size_bytes"], ascending=[False, True, True])
    return best.iloc[0]
