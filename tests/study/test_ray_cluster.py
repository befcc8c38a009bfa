"""Which Ray a search runs on: a local instance of its own unless the user names a cluster, and a
named cluster that goes away mid-search ends the search in one line, its trials kept.

Each test starts a real Ray head with ``ray start --head --block`` (a process group this test
owns and ends: ``ray stop`` would stop every Ray on the machine, the test session's too).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

RAY = str(Path(sys.executable).parent / "ray")
# The tests' Ray runs without token authentication (a head and its clients must agree on it).
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONWARNINGS")},
    "RAY_AUTH_MODE": "disabled",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def other_cluster(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A Ray cluster started on this machine by someone else (``ray start --head``)."""
    port = _free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--num-cpus", "1", "--port", str(port),
         "--include-dashboard=false", "--disable-usage-stats"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None, "ray start failed"
            assert time.monotonic() < deadline, "ray start did not answer in 120 s"
            time.sleep(0.5)
    yield address, head
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGKILL)  # the head and every process it started
        head.wait(timeout=60)


def _node_of(address: str) -> str:
    code = (
        f"import ray; ray.init(address={address!r}, log_to_driver=False); "
        "print(ray.get_runtime_context().get_node_id())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()[-1]


def _search(task: Path, space: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "autocompress", "search", "--task", str(task), "--space",
        str(space), "--workers", "1", "--no-warm-start", "--out", str(out), *extra,
    ]  # fmt: skip


def test_a_default_search_runs_on_a_ray_of_its_own(
    other_cluster, tmp_path: Path, task_files: Path, smoke_space_file: Path
) -> None:
    address, _ = other_cluster
    theirs = _node_of(address)
    out = tmp_path / "run"
    proc = subprocess.run(
        _search(task_files / "task.yaml", smoke_space_file, out, "--trials", "1"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    nodes = set(pd.read_csv(out / "trials.csv")["node"].dropna())
    assert nodes and theirs not in nodes


def test_a_cluster_that_goes_away_ends_the_search_in_one_line(
    other_cluster, tmp_path: Path, task_files: Path
) -> None:
    address, head = other_cluster
    space = tmp_path / "space.yaml"  # trials long enough to be caught running
    space.write_text(
        "sparsity: [0.0, 0.25, 0.5, 0.75]\nquantization: [none]\nfinetune_epochs: 30\n"
    )
    out = tmp_path / "run"
    command = _search(task_files / "task.yaml", space, out, "--trials", "3")
    search = subprocess.Popen(
        [*command, "--ray-address", address],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "search.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "trial 0 complete" in log.read_text()):
        assert search.poll() is None, search.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no trial finished in 300 s"
        time.sleep(0.5)
    os.killpg(head.pid, signal.SIGKILL)  # the cluster goes away while trial 1 runs
    _, stderr = search.communicate(timeout=120)
    assert search.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("autocompress: error:")]
    assert len(lines) == 1, stderr[-2000:]
    assert "went away mid-search" in lines[0] and "run the same command again" in lines[0]
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() >= 1
    interrupted = trials[trials["state"] == "FAIL"]
    assert interrupted["error"].str.contains("interrupted").any(), trials.to_string()
    # Resuming is the same command again (a resume after a killed driver is tested in
    # test_faults.py): nothing is left RUNNING for it to trip on.
    assert not (trials["state"] == "RUNNING").any()
