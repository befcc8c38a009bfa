"""The trials table and the front read from it (autocompress/run/tables.py)."""

from __future__ import annotations

import pandas as pd

from autocompress.run.tables import front_columns, front_frame


def _row(trial: int, state: str, accuracy: float, latency: float, gzip: int) -> dict:
    return {
        "trial": trial,
        "state": state,
        "accuracy": accuracy,
        "latency_ms_cpu-host": latency,
        "gzip_bytes": gzip,
        "size_bytes": gzip * 2,
        "constraints_violated": "",
        "reused_from": None,
        "model_path": "",
    }


def test_no_completed_trial_yet_gives_an_empty_front_with_its_columns() -> None:
    """A multi-fidelity search whose first finished build is a lower level's (PRUNED, with
    values): the front is empty, not a KeyError (an empty list once selected no columns)."""
    trials = pd.DataFrame([_row(2, "PRUNED", 0.8, 1.0, 100), _row(0, "RUNNING", None, None, 0)])
    front = front_frame(trials, "cpu-host")
    assert front.empty
    assert {"trial", "accuracy", "gzip_bytes", "latency_ms_cpu-host"} <= set(front.columns)
    assert set(front_columns()) & set(trials.columns) <= set(front.columns)


def test_front_keeps_the_non_dominated_feasible_completed_trials() -> None:
    trials = pd.DataFrame(
        [
            _row(0, "COMPLETE", 0.90, 2.0, 300),
            _row(1, "COMPLETE", 0.80, 1.0, 100),
            _row(2, "COMPLETE", 0.70, 1.5, 200),  # dominated by trial 1
            _row(3, "PRUNED", 0.95, 0.5, 50),  # a lower level's build: not a result
            {**_row(4, "COMPLETE", 0.99, 0.1, 10), "constraints_violated": "cpu-host.latency"},
        ]
    )
    assert list(front_frame(trials, "cpu-host")["trial"]) == [0, 1]


def test_front_does_not_rank_by_latencies_within_their_measured_spread() -> None:
    """Re-timed figures with a 15 % spread (``latency_spread_*``): a candidate 6 % faster and
    less accurate is not on the front for that difference; without spreads it is."""
    rows = [_row(0, "COMPLETE", 0.90, 1.00, 100), _row(1, "COMPLETE", 0.85, 0.94, 100)]
    assert list(front_frame(pd.DataFrame(rows), "cpu-host")["trial"]) == [0, 1]
    spread = [{**r, "latency_spread_cpu-host": 0.15} for r in rows]
    assert list(front_frame(pd.DataFrame(spread), "cpu-host")["trial"]) == [0]
    other = [{**r, "latency_spread_pixel2-cpu": 0.15} for r in rows]  # another profile's
    assert list(front_frame(pd.DataFrame(other), "cpu-host")["trial"]) == [0, 1]
