"""The quiet window: a latency measurement waits for the trials beside it to reach a yield point,
and no trial computes while it times; with nobody beside it, it waits for nothing."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
import uuid
from pathlib import Path

from autocompress.hardware import quiet


def _work(key: str, out: str, seconds: float, ready: str) -> None:
    """A trial beside the measurement: 20 ms units of CPU work, a yield point after each."""
    units = []
    with quiet.trial(key) as window:
        Path(ready).write_text("go")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            began = time.monotonic()
            while time.monotonic() - began < 0.02:
                pass
            units.append((began, time.monotonic()))
            quiet.yield_point()
        paused = window.paused_s if window is not None else 0.0
    Path(out).write_text(json.dumps({"units": units, "paused": paused}))


def test_a_measurement_waits_for_its_neighbours_and_they_wait_for_it(tmp_path: Path) -> None:
    key = f"test-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    workers = []
    for i in range(2):
        args = (key, str(tmp_path / f"w{i}.json"), 3.0, str(tmp_path / f"ready{i}"))
        workers.append(ctx.Process(target=_work, args=args))
        workers[-1].start()
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # both are mid-work
    with quiet.trial(key) as window:
        assert window is not None
        with quiet.measuring() as calm:
            began = time.monotonic()
            time.sleep(0.4)  # "timing a file"
            ended = time.monotonic()
        waited = window.waited_s
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert calm
    for i in range(2):
        done = json.loads((tmp_path / f"w{i}.json").read_text())
        assert done["units"], "the neighbour did no work"
        overlapping = [u for u in done["units"] if u[0] < ended and u[1] > began]
        assert not overlapping, overlapping  # nothing computed while the file was timed
        assert done["paused"] >= 0.35  # it gave way for the measurement
    assert 0.0 < waited < 1.0  # for the units in flight, not for the whole neighbour


def test_alone_a_measurement_does_not_wait(tmp_path: Path) -> None:
    with quiet.trial(f"test-{uuid.uuid4().hex[:8]}") as window:
        assert window is not None
        quiet.yield_point()
        with quiet.measuring() as calm:
            pass
        assert calm and window.waited_s < 0.1
    assert quiet.current() is None  # outside a trial nothing is coordinated
    with quiet.trial(None) as none:  # no measured profile: nothing to coordinate
        assert none is None
