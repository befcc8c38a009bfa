"""The end of a search times its front again, with no trial running: every front member of every
measured profile and the candidates within the margin of it, one file per op signature, in
interleaved rounds; ``trials.csv`` shows those figures (and the search's beside them)."""

from __future__ import annotations

import json

import pandas as pd

from autocompress.metrics import Quality
from autocompress.study.retime import MARGIN, MAX_ROUNDS, ROUNDS, TOLERANCE, near_front


def test_a_search_ends_with_its_front_retimed(first_run) -> None:
    _, out, *_ = first_run
    document = json.loads((out / "retimed.json").read_text())
    assert document["rounds"] == ROUNDS and set(document["profiles"]) == {"cpu-host"}
    trials = pd.read_csv(out / "trials.csv").set_index("trial")
    front = pd.read_csv(out / "pareto.csv")
    assert trials.loc[front["trial"], "latency_retimed_cpu-host"].all()
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
