"""Trial and Pareto tables built from the study; written as ``trials.csv`` and ``pareto.csv``.

The study storage is the source of truth: both tables can always be rebuilt from it, and the front
can be recomputed from ``trials.csv`` alone for any profile it recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from autocompress.front import pareto_mask
from autocompress.hardware.limits import violated
from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.recipe import EPOCH_FIELDS, RECIPE_FIELDS
from autocompress.records import TrialRecord
from autocompress.space import on_grid

RECIPE_COLUMNS = list(RECIPE_FIELDS)


def latency_column(profile: str) -> str:
    return f"latency_ms_{profile}"


def objective_columns(profile: str, quality: Quality = DEFAULT_QUALITY) -> list[tuple[str, bool]]:
    """The front's objectives as (column, maximize): the task's metric, latency on ``profile``,
    gzip size."""
    return [
        (quality.column, quality.maximize),
        (latency_column(profile), False),
        ("gzip_bytes", False),
    ]


def trial_row(
    trial: optuna.trial.FrozenTrial,
    quality: Quality = DEFAULT_QUALITY,
    retimed: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One trial as a row of ``trials.csv``; ``retimed``: the figures the end of the search
    timed again, by profile and op signature (:mod:`autocompress.study.retime`), shown in
    place of the search's."""
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    if "level" in trial.user_attrs:  # a multi-fidelity build: the highest level it counts for
        row["level"] = trial.user_attrs.get("last_level", trial.user_attrs["level"])
        row["candidate"] = trial.user_attrs.get("candidate", trial.user_attrs.get("promoted_from"))
    if "finished_from" in trial.user_attrs:  # a finishing run's (autocompress.study.finish)
        row["finished_from"] = trial.user_attrs["finished_from"]
    data = trial.user_attrs.get("record")
    if data is None:
        # Raw Optuna values, rounded as the search space rounds the recipes it builds.
        row.update({k: on_grid(trial.params.get(k)) for k in RECIPE_COLUMNS})
        row["reused_from"] = trial.user_attrs.get("reused_from")
        row["error"] = trial.user_attrs.get("error", "")
        row["stopped"] = trial.user_attrs.get("stopped", "")
        return row
    record = TrialRecord.from_dict(data)
    m = record.measurement
    row.update(record.recipe.to_dict())
    row[quality.column] = m.quality
    row.update(size_bytes=m.size_bytes, gzip_bytes=m.gzip_bytes)
    if m.test_quality is not None:
        row[quality.test_column] = m.test_quality
    if m.input_shape:
        row["input_shape"] = m.input_shape
    row["peak_ram_bytes"] = m.peak_ram_bytes
    row["macs"] = m.macs
    constraints = dict(trial.user_attrs.get("constraint_values", {}))  # > 0: violated
    for name, lat in m.latency.items():
        row[latency_column(name)] = lat.median_ms
        row[f"deployable_{name}"] = lat.deployable
        for key in ("arena_bytes", "ram_bytes", "flash_bytes"):  # a microcontroller's figures
            if key in lat.details:
                row[f"{key}_{name}"] = int(lat.details[key])
        if lat.runs:  # measured, not simulated
            row[f"latency_p90_ms_{name}"] = lat.p90_ms
            row[f"latency_variation_{name}"] = round(lat.variation, 3)
            if "quiet" in lat.details:  # timed with no other trial of the node computing
                row[f"latency_quiet_{name}"] = bool(lat.details["quiet"])
            if "timed_with" in lat.details:  # same ops as that trial: its figure
                row[f"latency_timed_with_{name}"] = int(lat.details["timed_with"])
            if retimed and name in retimed:
                again = retimed[name].get(m.op_signature) if m.op_signature else None
                row[f"latency_retimed_{name}"] = again is not None
                if again is not None:
                    row[f"latency_search_ms_{name}"] = lat.median_ms
                    row[latency_column(name)] = again["median_ms"]
                    if name == next(iter(m.latency)) and "user.max_latency_ms" in constraints:
                        # the --max-latency-ms limit (first profile) judged on the new figure
                        constraints["user.max_latency_ms"] += again["median_ms"] - lat.median_ms
                    row[f"latency_p90_ms_{name}"] = again["p90_ms"]
                    row[f"latency_spread_{name}"] = again["details"].get("spread")
                    row[f"latency_unsure_{name}"] = bool(again["details"].get("unsure", False))
    facts = {s.stage: s.facts for s in record.stages}
    row["achieved_sparsity"] = facts.get("cluster", facts.get("prune", {})).get("sparsity", 0.0)
    uniques = facts.get("cluster", {}).get("unique_weights_per_layer")
    row["max_unique_weights"] = max(uniques.values()) if uniques else None
    row["tensor_dtypes"] = json.dumps(m.tensor_dtypes)
    row["constraints_violated"] = ";".join(violated(constraints))
    if record.audit is not None:
        row.update(record.audit.columns(quality.name))
    row["seconds"] = round(record.seconds, 2)
    row["reused_stages"] = ";".join(s.stage for s in record.stages if s.reused)
    # Each stage's build time; for a reused stage, the time its original build took.
    row["stage_seconds"] = json.dumps({s.stage: round(s.seconds, 4) for s in record.stages})
    row["stages"] = json.dumps({s.stage: s.facts for s in record.stages})
    row["part_seconds"] = json.dumps(record.parts)  # where the trial's time went
    row["model_path"] = trial.user_attrs.get("model_path", "")
    row["reused_from"] = trial.user_attrs.get("reused_from")
    row["node"] = trial.user_attrs.get("node")
    row["driver"] = trial.user_attrs.get("driver")
    row["error"] = ""
    row["stopped"] = trial.user_attrs.get("stopped", "")  # a lower fidelity level's build
    return row


def trials_frame(
    study: optuna.Study,
    quality: Quality = DEFAULT_QUALITY,
    retimed: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> pd.DataFrame:
    """Every finished or running trial, one row each, ordered by trial number (``retimed``: see
    :func:`trial_row`)."""
    states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.RUNNING,
    )  # not WAITING: enqueued recipes that have not started are not trials yet
    trials = study.get_trials(deepcopy=False, states=states)
    rows = [trial_row(t, quality, retimed) for t in trials]
    if not rows:  # keep a header so that the file is a readable, empty table
        return pd.DataFrame(columns=["trial", "state", *RECIPE_COLUMNS, "error"])
    return pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)


def front_columns(quality: Quality = DEFAULT_QUALITY) -> list[str]:
    return [
        "trial",
        *(f for f in RECIPE_FIELDS if f not in EPOCH_FIELDS),
        quality.column,
        quality.test_column,
        "input_shape",
        "size_bytes",
        "gzip_bytes",
    ]


def audit_columns(quality: Quality = DEFAULT_QUALITY) -> list[str]:
    """The audit's columns in the front: per-class drop and agreement where there are classes,
    the metric under input noise, and the error quantiles where the metric has per-sample
    scores."""
    return ["max_class_drop", "teacher_agreement", f"noise_{quality.name}", "error_p90"]


def front_frame(
    trials: pd.DataFrame, profile: str, quality: Quality = DEFAULT_QUALITY
) -> pd.DataFrame:
    """The completed, feasible, first-built trials not dominated on (the metric, latency,
    gzip)."""
    lat = latency_column(profile)
    columns = front_columns(quality)
    if trials.empty or lat not in trials.columns:
        return pd.DataFrame(columns=[*columns, lat, "model_path"])
    ok = measured(trials, profile)
    if "constraints_violated" in ok.columns:
        # A boolean Series, never a list: an empty list would select no columns, not no rows.
        feasible = ok["constraints_violated"].fillna("").map(lambda v: _feasible_for(v, profile))
        ok = ok[feasible.astype(bool)]
    objectives = objective_columns(profile, quality)
    cols = [c for c, _ in objectives]
    mask = pareto_mask(
        ok[cols].to_numpy(dtype=float),
        [m for _, m in objectives],
        latency_tolerance(ok, cols, profile),
    )
    front = ok[mask]
    extra = [c for c in front.columns if c.startswith("latency_ms_") and c != lat]
    audit = [c for c in audit_columns(quality) if c in front.columns]
    ordered = [c for c in columns if c in front.columns]  # older runs lack new columns
    ordered += [lat, *extra, *audit, "model_path"]
    best_first = front[ordered].sort_values(quality.column, ascending=not quality.maximize)
    return best_first.reset_index(drop=True)


def measured(trials: pd.DataFrame, profile: str) -> pd.DataFrame:
    """The completed, first-built trials with a latency on ``profile`` (a re-proposed recipe's
    row is answered by its original's, which stands for it)."""
    lat = latency_column(profile)
    if lat not in trials.columns:
        return trials.iloc[0:0]
    rows = trials[(trials["state"] == "COMPLETE") & trials[lat].notna()]
    if "reused_from" in rows.columns:
        rows = rows[rows["reused_from"].isna()]
    return rows


def latency_tolerance(rows: pd.DataFrame, cols: list[str], profile: str) -> np.ndarray:
    """Per row and objective, how far a figure may differ from another's and still be tied:
    a re-timed latency's measured spread (the rounds' range over their median,
    :mod:`autocompress.study.retime`); 0 elsewhere (exact). Two candidates whose latencies
    are within the larger of their spreads are not ranked apart by them."""
    tolerance = np.zeros((len(rows), len(cols)))
    spread = f"latency_spread_{profile}"
    if spread in rows.columns:
        values = pd.to_numeric(rows[spread], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        tolerance[:, cols.index(latency_column(profile))] = values
    return tolerance


def _feasible_for(violated: str, profile: str) -> bool:
    """Constraints are named ``<profile>.<limit>`` or ``user.<limit>`` (for every profile)."""
    names = [v for v in str(violated).split(";") if v]
    return not any(n.startswith((f"{profile}.", "user.")) for n in names)


def profiles_in(trials: pd.DataFrame) -> Sequence[str]:
    return [c.removeprefix("latency_ms_") for c in trials.columns if c.startswith("latency_ms_")]
