"""Reading a finished (or running) run directory: the front for any profile, and picking.

Reads only the files in the run directory (``trials.csv``), so it works on a copied directory
without the study storage, Ray or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from autocompress.errors import InputError
from autocompress.evaluation.tolerance import MaxDrop
from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.recipe import EPOCH_FIELDS, RECIPE_FIELDS, Recipe
from autocompress.run.retarget import join_profiles
from autocompress.run.rundir import RunDir
from autocompress.run.tables import front_frame, latency_column, profiles_in


def for_display(
    frame: pd.DataFrame, wide: bool = True, quality: Quality = DEFAULT_QUALITY
) -> pd.DataFrame:
    """The table as printed. The metric's column (``accuracy``, ``mae``) is named ``val_<metric>``:
    it is measured on the validation data, which the search tuned on; ``test_<metric>`` (when the
    task has a test split) on data it never saw.

    Not ``wide``: a terminal's width of columns: trial, the recipe in words (what it changes),
    the metric on both splits, the sizes and the latency on each profile.
    """
    val = f"val_{quality.name}"
    shown = frame.rename(columns={quality.column: val})
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
    for c in (
        val,
        quality.test_column,
        "drop",
        "drop_bound",
        "input_shape",
        "gzip_bytes",
        "size_bytes",
    ):
        if c in shown.columns:
            out[c] = shown[c]
    for c in shown.columns:
        if c.startswith("latency_ms_"):
            out[c.removeprefix("latency_")] = shown[c]
    return out


# Front members of a classifier more than this below the baseline's validation accuracy are
# hidden by `show` and marked by `pick` and the report (unless the user gives the floor with
# --min-quality or --max-drop): the front stays exact, but a 40 %-accuracy model is rarely what a
# user is choosing between. Other metrics have no natural scale: their floor is the user's.
FLOOR_MARGIN = 0.05
FLOOR_METRIC = "accuracy"


def unchanged(trials: pd.DataFrame, but: Sequence[str] = ()) -> pd.Series:
    """Which completed trials left every recipe field (epochs aside, and those in ``but``) at
    its off value: with ``but=("quantization",)``, the teacher's plain conversions."""
    default = Recipe().to_dict()
    mask = trials["state"] == "COMPLETE"
    for name in RECIPE_FIELDS:
        if name not in EPOCH_FIELDS and name not in but and name in trials.columns:
            mask &= trials[name] == default[name]
    return mask


def baseline_row(trials: pd.DataFrame) -> pd.Series | None:
    """The fp32 teacher converted unchanged (the first trial of every search), if it completed."""
    if trials.empty or "state" not in trials.columns:
        return None
    rows = trials[unchanged(trials)].sort_values("trial")
    return rows.iloc[0] if len(rows) else None


def quality_floor(
    trials: pd.DataFrame, quality: Quality = DEFAULT_QUALITY, min_quality: float | None = None
) -> float | None:
    """The user's ``min_quality``, else for accuracy the baseline's minus :data:`FLOOR_MARGIN`;
    None without either."""
    if min_quality is not None:
        return min_quality
    base = baseline_row(trials)
    if base is None or quality.name != FLOOR_METRIC:
        return None
    return float(base[quality.column]) - FLOOR_MARGIN


def below_floor(values: pd.Series, quality: Quality, floor: float | None) -> pd.Series:
    """Which values are worse than ``floor`` in the metric's direction."""
    if floor is None:
        return pd.Series(False, index=values.index)
    return values < floor if quality.maximize else values > floor


def run_quality(run: Path) -> Quality:
    """The quality measure of a run directory (older runs: accuracy)."""
    return RunDir(run).quality()


def load_trials(run: Path) -> pd.DataFrame:
    """``trials.csv`` with the profiles added after the search (``autocompress retarget``)."""
    return join_profiles(run, RunDir(run).read_trials())


def load_front(run: Path, profile: str | None = None) -> tuple[pd.DataFrame, str]:
    """The front recomputed from ``trials.csv`` for ``profile`` (default: the search's first)."""
    trials = load_trials(run)
    known = list(profiles_in(trials))
    quality = run_quality(run)
    if not known:
        return front_frame(trials, profile or "cpu-host", quality), profile or "cpu-host"
    chosen = profile or known[0]
    if chosen not in known:
        raise InputError(
            "--profile",
            f"{chosen!r} was not measured in {run} (measured: {', '.join(known)}); add it with "
            f"`autocompress retarget {run} --profile {chosen}`",
        )
    return front_frame(trials, chosen, quality), chosen


def with_drops(
    run: Path, front: pd.DataFrame, confidence: float | None = None
) -> tuple[pd.DataFrame, float]:
    """``front`` with ``drop`` (how much worse than the run's baseline, in the metric's
    direction) and, with ``confidence``, ``drop_bound`` (its upper bound; see
    :mod:`autocompress.evaluation.tolerance`); and the baseline's value."""
    from autocompress.data.arrays import unflatten
    from autocompress.evaluation.evidence import load_evidence
    from autocompress.evaluation.tolerance import drop_bound
    from autocompress.metrics import Metric, get_metric

    rundir, quality = RunDir(run), run_quality(run)
    base = baseline_row(load_trials(run))
    if base is None:
        raise InputError(str(run), "has no completed baseline (fp32) trial to measure a drop from")
    value = float(base[quality.column])
    out = front.copy()
    out["drop"] = quality.sign * (value - out[quality.column].astype(float))
    if confidence is None or out.empty:
        return out, value
    spec, output = rundir.metric_spec()
    metric = (
        get_metric(spec, quality.to_dict()["direction"], output=output)
        if spec
        else Metric(quality.name, quality.maximize)
    )
    base_evidence = load_evidence(rundir.evidence_path(int(base["trial"])))
    y_val = None
    if "scores" not in base_evidence:
        if not spec:
            raise InputError(
                "--confidence",
                f"metric {quality.name} is a Python function without per-sample "
                "scores: return (value, scores) from it to get a bound",
            )
        with np.load(rundir.validation, allow_pickle=False) as npz:
            y_val = unflatten({k: npz[k] for k in npz.files}, "y_val")
    out["drop_bound"] = [
        drop_bound(
            metric, y_val, base_evidence, load_evidence(rundir.evidence_path(int(t))), confidence
        )
        for t in out["trial"]
    ]
    return out, value


def pick(
    run: Path,
    profile: str | None = None,
    max_latency_ms: float | None = None,
    min_quality: float | None = None,
    max_size_kb: float | None = None,
    max_class_drop: float | None = None,
    max_drop: MaxDrop | None = None,
    confidence: float | None = None,
    prefer: str = "speed",
) -> pd.Series | None:
    """The best front model in the run's metric meeting every given limit (ties: faster, then
    smaller). ``min_quality``: at least this good in the metric's direction.

    With ``max_drop``: the fastest front member on the profile (``prefer="size"``: the
    smallest) at most that much worse than the baseline; with ``confidence``, held to the
    upper bound of its drop instead of the point estimate.

    ``max_class_drop`` refuses models whose accuracy on some class is more than this below the
    teacher's on that class (from the compression audit).
    """
    if confidence is not None and max_drop is None:
        raise InputError("--confidence", "needs --max-drop (the drop it bounds)")
    front, chosen = load_front(run, profile)
    quality = run_quality(run)
    if max_drop is not None:
        front, base = with_drops(run, front, confidence)
        column = "drop_bound" if confidence is not None else "drop"
        front = front[front[column] <= max_drop.limit(base) + 1e-12]
    lat = latency_column(chosen)
    ok = front
    if max_latency_ms is not None:
        ok = ok[ok[lat] <= max_latency_ms]
    if min_quality is not None:
        ok = ok[~below_floor(ok[quality.column], quality, min_quality)]
    if max_size_kb is not None:
        ok = ok[ok["size_bytes"] <= max_size_kb * 1024]
    if max_class_drop is not None:
        if "max_class_drop" not in ok.columns:
            raise InputError(str(run), "its trials have no compression audit (max_class_drop)")
        ok = ok[ok["max_class_drop"] <= max_class_drop]
    if ok.empty:
        return None
    if max_drop is not None:  # within the tolerance: the fastest (or the smallest)
        order = [lat, "size_bytes"] if prefer == "speed" else ["size_bytes", lat]
        return ok.sort_values(order).iloc[0]
    best = ok.sort_values(
        [quality.column, lat, "size_bytes"], ascending=[not quality.maximize, True, True]
    )
    return best.iloc[0]
