"""The candidates re-timed at the end of a search, the front first, with no trial running.

In a search a measured latency is taken in a quiet window (:mod:`autocompress.hardware.quiet`),
but a window between two training batches is still short and the machine may run other work. So
when a search ends -- its budget spent, its timeout reached, Ctrl-C, or a resumed search with
nothing left to build -- the candidates are timed again: for every measured profile, first its
front members and every candidate within :data:`MARGIN` of it (one that would be on the front
were its latency that much lower), then every other candidate while :data:`REST_BUDGET_S`
lasts, each op signature once (same ops, same latency:
:mod:`autocompress.study.timing`), in :data:`ROUNDS` interleaved rounds (every file once per
round, so a slow moment of the machine falls on all of them, not on one), the figure being the
median of the rounds' medians (the rounds share one measurement's budget of runs and
seconds). ``spread`` is the rounds' range over that median: a file spread more than
:data:`TOLERANCE` gets more rounds, up to :data:`MAX_ROUNDS`, and is flagged ``unsure`` if it
still is.

The figures go to ``DIR/retimed.json`` by profile and op signature; ``trials.csv`` shows them in
place of the search's (``latency_retimed_<profile>`` True, the search's own figure in
``latency_search_ms_<profile>``), and everything that reads the run (``show``, ``pick``, the
report) reads ``trials.csv``. The study keeps what the sampler was told. The front ties
re-timed latencies within their spreads (``latency_spread_<profile>``;
:func:`autocompress.run.tables.front_frame`): an unsure figure is not ranked by.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from autocompress._files import atomic_write_text
from autocompress.front import pareto_mask
from autocompress.hardware import HardwareProfile, read_tflite
from autocompress.hardware.measure import measure_latency
from autocompress.metrics import Quality
from autocompress.records import LatencyResult
from autocompress.run.rundir import RunDir
from autocompress.run.tables import front_frame, latency_column, measured, objective_columns

log = logging.getLogger("autocompress")

RETIMED = "retimed.json"
MARGIN = 0.10
ROUNDS = 3
# A file whose rounds spread more than this is timed in more rounds, up to MAX_ROUNDS, and then
# flagged (``latency_unsure_<profile>``). On this project's 2-core machines one file timed ten
# times, quiet, spread 14-56 % (benchmarks/README.md, latency_repeatability.py).
TOLERANCE = 0.10
MAX_ROUNDS = 6
# After the front, every other candidate's file is re-timed too, BATCH files interleaved at a
# time, while this budget lasts (a few seconds a file; a search of thousands of distinct files
# keeps the search's figures for those it leaves). In a trial a file was timed up to 1.6x its
# quiet figure although no other trial computed (MobileNetV2, 2 workers: benchmarks/README.md).
REST_BUDGET_S = 120.0
BATCH = 16

Retimed = dict[str, dict[str, dict[str, Any]]]  # profile -> op signature -> LatencyResult


def load_retimed(rundir: RunDir) -> Retimed:
    path = rundir.path / RETIMED
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("profiles", {}))


def near_front(table: pd.DataFrame, profile: str, quality: Quality, margin: float) -> list[int]:
    """The front's trials on ``profile`` and those that would join it were their latency
    ``margin`` lower (tested against the front alone: whatever dominates a candidate is
    dominated by a front member or is one)."""
    front = front_frame(table, profile, quality)
    if front.empty:
        return []
    lat = latency_column(profile)
    objectives = objective_columns(profile, quality)
    cols, maximize = [c for c, _ in objectives], [m for _, m in objectives]
    rows = measured(table, profile)
    near = set(front["trial"].astype(int))
    members = front[cols].to_numpy(dtype=float)
    for _, row in rows.iterrows():
        if int(row["trial"]) in near:
            continue
        point = row[cols].to_numpy(dtype=float)
        point[cols.index(lat)] *= 1.0 - margin
        if pareto_mask(np.vstack([members, point]), maximize)[-1]:
            near.add(int(row["trial"]))
    return sorted(near)


def retime(
    rundir: RunDir,
    table: pd.DataFrame,
    signatures: dict[int, str],
    profiles: Sequence[HardwareProfile],
    quality: Quality,
) -> int:
    """Re-time, on each measured profile, the op signatures not re-timed yet: those near its
    front first, then every other candidate's, in batches, while :data:`REST_BUDGET_S` lasts;
    returns how many files were timed. A KeyboardInterrupt stops it and keeps what was done."""
    retimed = load_retimed(rundir)
    timed = 0
    try:
        for profile in (p for p in profiles if p.backend == "measure"):
            done = retimed.setdefault(profile.name, {})
            near = _todo(near_front(table, profile.name, quality, MARGIN), signatures, done)
            rest = _todo(_by_latency(table, profile.name), signatures, {**done, **near})
            started = time.perf_counter()
            if near:
                done.update(_interleaved(rundir, near, profile))
            items = list(rest.items())
            batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
            rest_started, left = time.perf_counter(), len(rest)
            for batch in batches:
                if time.perf_counter() - rest_started > REST_BUDGET_S:
                    break
                done.update(_interleaved(rundir, dict(batch), profile))
                left -= len(batch)
            count = len(near) + len(rest) - left
            timed += count
            if count:
                log.info(
                    "re-timed %d file(s) on %s (%d near its front) in %.1f s%s", count,
                    profile.name, len(near), time.perf_counter() - started,
                    f"; {left} left with the search's figures (budget)" if left else "",
                )  # fmt: skip
    except KeyboardInterrupt:
        log.warning("re-timing interrupted: the figures timed so far are kept")
    document = {"profiles": retimed, "rounds": ROUNDS, "margin": MARGIN}
    atomic_write_text(rundir.path / RETIMED, json.dumps(document, indent=1))
    return timed


def _todo(numbers: Sequence[int], signatures: dict[int, str], done: dict) -> dict[str, int]:
    """Signature -> the trial whose file stands for it, for the signatures not in ``done``."""
    todo: dict[str, int] = {}
    for number in numbers:
        signature = signatures.get(number, "")
        if signature and signature not in done and signature not in todo:
            todo[signature] = number
    return todo


def _by_latency(table: pd.DataFrame, profile: str) -> list[int]:
    """Every first-built completed candidate measured on ``profile``, fastest first."""
    rows = measured(table, profile).sort_values(latency_column(profile))
    return [int(n) for n in rows["trial"]]


def _interleaved(
    rundir: RunDir, todo: dict[str, int], profile: HardwareProfile
) -> dict[str, dict[str, Any]]:
    files = {s: rundir.model_path(n).read_bytes() for s, n in todo.items()}
    graphs = {s: read_tflite(f) for s, f in files.items()}
    # The rounds share one measurement's budget of runs and seconds: re-timing a file costs
    # about what timing it did in the search.
    base = profile.measure
    share = dataclasses.replace(
        base, min_runs=max(10, base.min_runs // ROUNDS), min_seconds=base.min_seconds / ROUNDS
    )
    each = dataclasses.replace(profile, measure=share)
    rounds: dict[str, list[LatencyResult]] = {s: [] for s in files}
    unsure = list(files)
    for n in range(MAX_ROUNDS):  # more rounds, up to MAX_ROUNDS, for the files still unsure
        for signature in unsure:
            rounds[signature].append(measure_latency(files[signature], graphs[signature], each))
        if n + 1 >= ROUNDS:
            unsure = [s for s in unsure if _spread(rounds[s]) > TOLERANCE]
            if not unsure:
                break
    out = {}
    for signature, results in rounds.items():
        medians = [r.median_ms for r in results]
        median = statistics.median(medians)
        result = LatencyResult(
            profile=profile.name,
            median_ms=median,
            p90_ms=statistics.median(r.p90_ms for r in results),
            runs=sum(r.runs for r in results),
            backend="measure",
            details={
                "retimed": True,
                "round_medians_ms": [round(m, 5) for m in medians],
                "spread": round(_spread(results), 4),
                "unsure": _spread(results) > TOLERANCE,
                "timed_as_trial": todo[signature],
            },
        )
        out[signature] = dataclasses.asdict(result)
    return out


def _spread(results: list[LatencyResult]) -> float:
    """The rounds' range over their median."""
    medians = [r.median_ms for r in results]
    median = statistics.median(medians)
    return (max(medians) - min(medians)) / median if median > 0 else 0.0


def retime_run(
    rundir: RunDir, study: optuna.Study, profiles: Sequence[HardwareProfile], quality: Quality
) -> Retimed:
    """Re-time what a finished search's fronts are made of (two passes: a re-timed figure can
    bring other candidates near a front); returns every re-timed figure of the run. A failure
    is logged, never raised: the search's own figures stand without it."""
    from autocompress.run.tables import trials_frame

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    signatures = {
        t.number: str(t.user_attrs["record"]["measurement"].get("op_signature", ""))
        for t in completed
        if isinstance(t.user_attrs.get("record"), dict)
    }
    try:
        for _ in range(2):
            table = trials_frame(study, quality, load_retimed(rundir))
            if not retime(rundir, table, signatures, profiles, quality):
                break
    except Exception as exc:  # the search's results stand without it
        log.warning("re-timing the front failed: %s: %s", type(exc).__name__, exc)
    return load_retimed(rundir)
