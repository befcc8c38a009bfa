"""Faults with real processes: a worker that dies, a driver killed with SIGKILL mid-study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from autocompress.recipe import Recipe
from autocompress.study.executor import MAX_RETRIES, RayExecutor
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest

pytestmark = pytest.mark.usefixtures("ray_cluster")


def die_on_int8(ctx: TrialContext, request: TrialRequest) -> TrialOutcome:
    """A trial that kills its own worker process for int8 recipes (like the OOM killer would)."""
    if request.recipe.quantization == "int8":
        os._exit(1)
    return TrialOutcome(request.number, error="ok: not built in this test")


def die_with_onednn(ctx: TrialContext, request: TrialRequest) -> TrialOutcome:
    """A trial that dies like TensorFlow's oneDNN memory corruption: only with oneDNN's ops on."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        os.abort()
    return TrialOutcome(request.number, error=f"ok: ran with pid {os.getpid()}")


def test_a_worker_crash_is_retried_once_with_onednn_off(tiny_task) -> None:
    """The trial function aborts its worker unless oneDNN is off: an outcome at all is the
    retry's, run with oneDNN off."""
    ctx = TrialContext(task=tiny_task, profiles=())
    with RayExecutor(ctx, trial_fn=die_with_onednn) as executor:
        executor.submit(TrialRequest(0, Recipe()))
        outcomes: list[TrialOutcome] = []
        deadline = time.monotonic() + 120
        while executor.in_flight and time.monotonic() < deadline:
            assert executor.pending_numbers() == [0]
            outcomes += executor.wait(timeout=1.0)
    assert [o.number for o in outcomes] == [0]
    assert outcomes[0].error.startswith("ok: ran"), outcomes[0].error


def test_dead_worker_is_a_bounded_failure_and_others_go_on(tiny_task) -> None:
    ctx = TrialContext(task=tiny_task, profiles=())
    with RayExecutor(ctx, trial_fn=die_on_int8) as executor:
        executor.submit(TrialRequest(0, Recipe(quantization="int8")))
        executor.submit(TrialRequest(1, Recipe(quantization="none")))
        outcomes: dict[int, TrialOutcome] = {}
        deadline = time.monotonic() + 120
        while executor.in_flight and time.monotonic() < deadline:
            for outcome in executor.wait(timeout=1.0):
                outcomes[outcome.number] = outcome
    assert set(outcomes) == {0, 1}  # the crash did not hang or retry forever
    assert "Worker" in outcomes[0].error or "died" in outcomes[0].error.lower()
    assert outcomes[1].error == "ok: not built in this test"


OOM_SCRIPT = r"""
import os, sys, time
from pathlib import Path

# Make Ray's memory monitor fire about 1.5 GiB above what the machine uses now.
info = dict(line.split(":") for line in open("/proc/meminfo"))
total, available = (int(info[k].split()[0]) * 1024 for k in ("MemTotal", "MemAvailable"))
os.environ["RAY_memory_usage_threshold"] = f"{(total - available + 1.5 * 2**30) / total:.4f}"
os.environ["RAY_memory_monitor_refresh_ms"] = "100"
import autocompress
from autocompress.recipe import Recipe
from autocompress.study.executor import RayExecutor
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest

ATTEMPTS = Path(sys.argv[1])

def hog(ctx, request):
    with open(ATTEMPTS, "a") as f:
        f.write("attempt\n")
    chunks = []
    for _ in range(48):  # up to 12 GiB, touched page by page
        chunk = bytearray(256 * 2**20)
        chunk[::4096] = b"x" * len(chunk[::4096])
        chunks.append(chunk)
        time.sleep(0.05)
    return TrialOutcome(request.number, error="survived: the memory monitor never fired")

ctx = TrialContext(task=None, profiles=())
with RayExecutor(ctx, trial_fn=hog) as executor:
    executor.submit(TrialRequest(0, Recipe()))
    deadline = time.monotonic() + 150
    outcomes = []
    while executor.in_flight and time.monotonic() < deadline:
        outcomes += executor.wait(timeout=1.0)
print("OUTCOME", outcomes[0].error if outcomes else "none: still retrying")
"""


def test_candidate_killed_for_memory_ends_after_bounded_attempts(tmp_path: Path) -> None:
    """Ray's memory monitor kills the worker of a candidate that always exhausts memory: the
    trial must end as a failure after 1 + MAX_RETRIES attempts, not be retried forever."""
    attempts = tmp_path / "attempts.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run(
        [sys.executable, "-c", OOM_SCRIPT, str(attempts)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = next(line for line in proc.stdout.splitlines() if line.startswith("OUTCOME"))
    assert "OutOfMemoryError" in outcome, outcome
    # Bounded, not forever (Ray retried memory kills 7 times in 2 minutes before the cap). When
    # other processes already hold much of the machine's memory, Ray's monitor can kill the
    # retry's worker before the trial body starts, so one attempt is also a bounded end.
    assert 1 <= attempts.read_text().count("attempt") <= 1 + MAX_RETRIES


def test_driver_killed_with_sigkill_resumes_without_loss(
    tmp_path: Path, task_files: Path, smoke_space_file: Path
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "autocompress",
        "search",
        "--task",
        str(task_files / "task.yaml"),
        "--space",
        str(smoke_space_file),
        "--trials",
        "6",
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    done_before: pd.DataFrame | None = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        csv = out / "trials.csv"
        if csv.exists() and csv.stat().st_size:
            t = pd.read_csv(csv)
            if "state" in t and (t["state"] == "COMPLETE").sum() >= 2:
                done_before = t[t["state"] == "COMPLETE"]
                break
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    proc.wait(30)
    assert done_before is not None, "the search did not complete two trials in time"

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = pd.read_csv(out / "trials.csv")
    assert list(after["trial"]) == list(range(len(after)))  # no number duplicated or skipped
    assert (after["state"].isin(["COMPLETE", "FAIL"])).all()  # nothing left RUNNING
    assert len(after) == 6  # the budget counts what was done before the kill
    kept = after.set_index("trial")
    for _, row in done_before.iterrows():
        assert kept.loc[row["trial"], "state"] == "COMPLETE"
        assert kept.loc[row["trial"], "accuracy"] == row["accuracy"]
        assert (out / row["model_path"]).is_file()
    for reason in after.loc[after["state"] == "FAIL", "error"]:
        assert reason.startswith("interrupted")
    # The resumed search ended by timing its front again with no trial running.
    front = pd.read_csv(out / "pareto.csv")
    assert after.set_index("trial").loc[front["trial"], "latency_retimed_cpu-host"].all()


def test_damaged_run_directory_gives_a_clear_message(first_run, tmp_path: Path) -> None:
    import shutil

    from autocompress import search
    from autocompress.errors import InputError

    _, out, task, *_ = first_run
    for damage in ("truncate", "garbled", "model"):
        copy = tmp_path / damage
        shutil.copytree(out, copy)
        journal = copy / "study.journal"
        data = journal.read_bytes()
        if damage == "truncate":  # a write cut off mid-record
            journal.write_bytes(data[: len(data) // 2])
        elif damage == "garbled":  # a record in the middle overwritten
            middle = data.index(b"\n", len(data) // 2) + 1
            journal.write_bytes(data[:middle] + b"#garbage#\n" + data[middle:])
        else:
            victim = pd.read_csv(copy / "trials.csv")["model_path"].dropna().iloc[0]
            (copy / victim).unlink()
        before = sorted(p.name for p in copy.iterdir())
        with pytest.raises(InputError) as info:
            search(task=task, trials=10, out=copy, profiles=("cpu-host", "edgetpu-usb"))
        message = str(info.value)
        assert ("damaged" in message or "incomplete record" in message) and "\n" not in message
        assert sorted(p.name for p in copy.iterdir()) == before  # nothing written over
