"""The end of a search times its front again, with no trial running: every front member of every
measured profile and the candidates within the margin of it, one file per op signature, in
interleaved rounds; ``trials.csv`` shows those figures (and the search's beside them)."""

from __future__ import annotations

import json

import pandas as pd

from autocompress.hardware.profile import load_profile
from autocompress.metrics import Quality
from autocompress.run.rundir import RunDir
from autocompress.study import retime as retime_module
from autocompress.study.retime import MARGIN, MAX_ROUNDS, ROUNDS, TOLERANCE, near_front, retime


def test_a_search_ends_with_its_front_retimed(first_run) -> None:
    _, out, *_ = first_run
    document = json.loads((out / "retimed.json").read_text())
    assert document["rounds"] == ROUNDS and set(document["profiles"]) == {"cpu-host"}
    trials = pd.read_csv(out / "trials.csv").set_index("trial")
    front = pd.read_csv(out / "pareto.csv")
    assert trials.loc[front["trial"], "latency_retimed_cpu-host"].all()
    built = trials[(trials["state"] == "COMPLETE") & trials["reused_from"].isna()]
    assert built["latency_retimed_cpu-host"].astype(bool).all()  # the rest too, within budget
    again = trials[trials["latency_retimed_cpu-host"].astype(bool)]
    for _, row in again.iterrows():  # the search's own figure is kept beside the new one
        assert row["latency_search_ms_cpu-host"] > 0 and row["latency_ms_cpu-host"] > 0
    for result in document["profiles"]["cpu-host"].values():
        details = result["details"]
        rounds = len(details["round_medians_ms"])
        assert ROUNDS <= rounds <= MAX_ROUNDS
        assert details["unsure"] == (details["spread"] > TOLERANCE)
        if rounds < MAX_ROUNDS:  # it stopped early because the rounds agreed
            assert not details["unsure"]
    assert "latency_retimed_edgetpu-usb" not in trials.columns  # simulated: nothing to re-time


def test_near_front_takes_what_a_lower_latency_would_put_on_it() -> None:
    table = pd.DataFrame(
        {
            "trial": [0, 1, 2, 3],
            "state": ["COMPLETE"] * 4,
            "accuracy": [0.9, 0.9, 0.9, 0.8],
            "latency_ms_cpu-host": [1.0, 1.05, 1.5, 2.0],
            "gzip_bytes": [100, 100, 100, 100],
            "model_path": [f"models/trial_{i}.tflite" for i in range(4)],
        }
    )
    near = near_front(table, "cpu-host", Quality(), MARGIN)
    assert near == [0, 1]  # 1 is 5 % slower than 0: noise could have put it there; 2, 3 not


def _table(latencies: list[float], accuracies: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial": list(range(len(latencies))),
            "state": ["COMPLETE"] * len(latencies),
            "accuracy": accuracies,
            "latency_ms_cpu-host": latencies,
            "gzip_bytes": [100] * len(latencies),
            "model_path": [f"models/trial_{i}.tflite" for i in range(len(latencies))],
        }
    )


def test_the_front_is_retimed_first_then_the_rest_while_the_budget_lasts(
    tmp_path, monkeypatch
) -> None:
    """Near the front first (one interleaved set), then the other candidates in batches,
    fastest first, each op signature once; a spent budget leaves the rest with the search's
    figures; a second call (a resumed search) times only what is left."""
    batches: list[list[str]] = []

    def fake(rundir, todo, profile):
        batches.append(list(todo))
        return {s: {"median_ms": 1.0, "details": {"spread": 0.0}} for s in todo}

    monkeypatch.setattr(retime_module, "_interleaved", fake)
    monkeypatch.setattr(retime_module, "BATCH", 2)
    # trial 0 is the front; 1 is within the margin of it; 2-6 are far behind it
    table = _table([1.0, 1.05, 3.0, 2.5, 4.0, 2.0, 3.5], [0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5])
    signatures = {0: "a", 1: "b", 2: "c", 3: "d", 4: "e", 5: "c", 6: "f"}  # 5 has 2's ops
    rundir, profiles = RunDir(tmp_path), [load_profile("cpu-host")]
    monkeypatch.setattr(retime_module, "REST_BUDGET_S", -1.0)  # spent before the rest
    assert retime(rundir, table, signatures, profiles, Quality()) == 2
    assert batches == [["a", "b"]]
    monkeypatch.setattr(retime_module, "REST_BUDGET_S", 60.0)
    assert retime(rundir, table, signatures, profiles, Quality()) == 4
    assert batches[1:] == [["c", "d"], ["f", "e"]]  # 2.0 (trial 5, ops c), 2.5, 3.5, 4.0
    assert set(json.loads((tmp_path / "retimed.json").read_text())["profiles"]["cpu-host"]) == {
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
    }
