"""Multi-fidelity search in the driver: levels, promotions, PRUNED lower levels, resume."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from optuna.trial import TrialState

from autocompress import search
from autocompress.run.report import write_report
from autocompress.task import Task

pytestmark = pytest.mark.usefixtures("ray_cluster")

SPACE = """
student_width: [1.0, 0.5]
sparsity: {low: 0.0, high: 0.6, step: 0.3}
clusters: [0, 8]
quantization: [none, int8]
distill_epochs: 3
finetune_epochs: 3
fidelity: {levels: [0.0, 0.34, 1.0], eta: 2}
"""


def _run(tmp_path: Path, task: Task, trials: int, **options: Any):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    kwargs: dict[str, Any] = {"sampler": "random", "seed": 0, "workers": 2, **options}
    return search(task=task, space=space, out=tmp_path / "run", trials=trials, **kwargs)


def test_candidates_climb_the_levels_and_only_the_top_is_complete(
    tmp_path: Path, tiny_task: Task
) -> None:
    data = tiny_task.data
    with_test = dataclasses.replace(data, x_test=data.x_val[:40], y_test=data.y_val[:40])
    result = _run(tmp_path, dataclasses.replace(tiny_task, data=with_test), trials=8)
    trials = result.study.get_trials(deepcopy=False)
    new = [t for t in trials if "promoted_from" not in t.user_attrs]
    assert sum("reused_from" not in t.user_attrs for t in new if t.state.is_finished()) == 8
    promoted = [t for t in trials if "promoted_from" in t.user_attrs]
    assert promoted, "no candidate was promoted"
    for t in trials:
        attrs = t.user_attrs
        if t.state == TrialState.COMPLETE and "reused_from" not in attrs:
            assert attrs["last_level"] == 2  # a result is built with the full training
            assert attrs["record"]["measurement"]["test_quality"] is not None
            assert attrs["record"]["audit"] is not None
        if t.state == TrialState.PRUNED and "level_values" in attrs:
            assert attrs["last_level"] < 2 and t.values is None
            assert attrs["stopped"].startswith(f"fidelity level {attrs['last_level']}")
            # Below the top only validation accuracy, size and latency: no test-split peek,
            # no audit, no model file.
            assert attrs["record"]["measurement"]["test_quality"] is None
            assert attrs["record"]["audit"] is None
            assert not (tmp_path / "run" / "models" / f"trial_{t.number:04d}.keras").exists()
    by_number = {t.number: t for t in trials}
    for t in promoted:
        source = by_number[t.user_attrs["promoted_from"]]
        assert t.params == source.params  # the same candidate, built again with more training
        below = [  # the build it was promoted from: the candidate's, ending one level lower
            u
            for u in trials
            if u.user_attrs.get("candidate") == source.number
            and u.user_attrs.get("last_level") == t.user_attrs["level"] - 1
        ]
        assert len(below) == 1 and below[0].state == TrialState.PRUNED
        if t.state == TrialState.COMPLETE:
            full = t.user_attrs["record"]["recipe"]
            assert full["finetune_epochs"] == 3 or full["sparsity"] == full["clusters"] == 0
    # Level 0 of a training recipe: no fine-tuning epoch (a calibration); a student is
    # distilled in full at every level, and a student alone is built once, at the top.
    for t in new:
        attrs = t.user_attrs
        if "record" in attrs and attrs.get("last_level") == 0:
            built = attrs["record"]["recipe"]
            assert built["finetune_epochs"] == 0
            assert built["distill_epochs"] == 3
        if "record" in attrs and attrs.get("level") == 0:
            built = attrs["record"]["recipe"]
            if built["student_width"] < 1 and built["sparsity"] == built["clusters"] == 0:
                assert attrs["last_level"] == 2
    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    lower = table[(table["state"] == "PRUNED") & table["accuracy"].notna()]
    assert not lower.empty and lower["level"].notna().all()  # lower levels' values are visible
    front = pd.read_csv(tmp_path / "run" / "pareto.csv")
    complete = set(table.loc[table["state"] == "COMPLETE", "trial"])
    assert set(front["trial"]) <= complete
    page = write_report(tmp_path / "run").read_text()
    assert "Multi-fidelity levels" in page and "val_accuracy L1" in page


def test_training_free_recipes_go_to_the_top_at_once(tmp_path: Path, tiny_task: Task) -> None:
    result = _run(tmp_path, tiny_task, trials=3, warm_start=False, enqueue=None)
    baseline = result.study.get_trials(deepcopy=False)[0]  # the fp32 baseline trains nothing
    assert baseline.state == TrialState.COMPLETE
    assert baseline.user_attrs["level"] == 0 and baseline.user_attrs["last_level"] == 2


def test_a_candidate_proposed_while_its_twin_builds_is_built_once(
    tmp_path: Path, tiny_task: Task
) -> None:
    """Two workers and a space of one training recipe: the second proposal waits on the
    first's level-0 build, then is answered from it instead of being built a second time."""
    space = tmp_path / "one.yaml"
    space.write_text(
        "sparsity: [0.5]\nquantization: [int8]\nfinetune_epochs: 2\n"
        "fidelity: {levels: [0.0, 1.0], eta: 2}\n"
    )
    result = search(
        task=tiny_task, space=space, out=tmp_path / "run", trials=3, workers=2,
        sampler="random", seed=0, warm_start=False,
    )  # fmt: skip
    trials = result.study.get_trials(deepcopy=False)
    assert [t.number for t in trials if "level_values" in t.user_attrs] == [0]
    assert trials[1].user_attrs["reused_from"] == 0  # proposed while trial 0 was building
    assert trials[1].state == TrialState.PRUNED


def test_fidelity_off_builds_every_candidate_once(tmp_path: Path, tiny_task: Task) -> None:
    result = _run(tmp_path, tiny_task, trials=4, fidelity="off")
    for t in result.study.get_trials(deepcopy=False):
        assert "level" not in t.user_attrs and "promoted_from" not in t.user_attrs


def _promotions_running(t: pd.DataFrame) -> pd.Series:
    """Rows of promoted builds still running (a promoted build is not its own candidate)."""
    return (t["state"] == "RUNNING") & t["candidate"].notna() & (t["candidate"] != t["trial"])


def test_driver_killed_mid_rung_resumes_without_loss(tmp_path: Path, task_files: Path) -> None:
    """SIGKILL while a promoted build runs: on resume every lower-level result stands, the
    interrupted promotion is promoted again, and nothing is left running."""
    space = tmp_path / "space.yaml"
    # promoted builds long enough (9 epochs at the top) for the kill to land in one
    space.write_text(SPACE.replace("finetune_epochs: 3", "finetune_epochs: 9"))
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "autocompress", "search",
        "--task", str(task_files / "task.yaml"), "--space", str(space),
        "--trials", "10", "--workers", "2", "--sampler", "random", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    before: pd.DataFrame | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        csv = out / "trials.csv"
        if csv.exists() and csv.stat().st_size:
            t = pd.read_csv(csv)
            if "candidate" in t and _promotions_running(t).any():
                before = t
                break
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    proc.wait(30)
    assert before is not None, "no promoted build was seen running"
    interrupted = before[_promotions_running(before)]

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = pd.read_csv(out / "trials.csv").set_index("trial")
    assert not (after["state"] == "RUNNING").any()
    for _, row in before[before["state"].isin(["PRUNED", "COMPLETE"])].iterrows():
        kept = after.loc[row["trial"]]
        assert kept["state"] == row["state"]
        if pd.notna(row.get("accuracy")):
            assert kept["accuracy"] == row["accuracy"]
    for _, row in interrupted.iterrows():
        assert after.loc[row["trial"], "error"].startswith("interrupted")
        again = after[
            (after["candidate"] == row["candidate"])
            & (after["level"] == row["level"])
            & (after.index > row["trial"])
        ]
        assert not again.empty, f"candidate {row['candidate']} was not promoted again"
    new = after[after["level"].isna() | (after["candidate"] == after.index)]
    assert (new["state"] != "RUNNING").all() and len(new) >= 10
