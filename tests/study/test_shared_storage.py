"""A study shared by two drivers in a real PostgreSQL server (Debian's package, started here on
loopback in a temporary directory): trials are never duplicated, the budget counts both drivers'
trials and each driver's front is computed over all of them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest


def _pg(tool: str) -> str | None:
    """A server tool from Debian's package (not on PATH there), else from PATH."""
    for found in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
        return str(found)
    return shutil.which(tool)


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the package's ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _unavailable(reason: str) -> None:
    """Skip where PostgreSQL is missing by choice; in CI, where .ci/run installs it, a server
    that cannot be set up is a failure, not a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL setup failed in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _pg("initdb"), _pg("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("PostgreSQL server binaries not found (apt install postgresql)")
    # Not under pytest's private temporary directory: the server user must reach it.
    root = Path(tempfile.mkdtemp(prefix="autocompress-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = subprocess.run(
        _as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]),
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        _unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    start = subprocess.run(
        _as_server_user(
            [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"]
        ),
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        _unavailable(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_drivers_share_one_study(
    postgres_url: str, tmp_path: Path, task_files: Path, smoke_space_file: Path
) -> None:
    def driver(name: str, seed: int) -> subprocess.Popen:
        cmd = [
            sys.executable, "-m", "autocompress", "search",
            "--task", str(task_files / "task.yaml"), "--space", str(smoke_space_file),
            "--trials", "8", "--workers", "1", "--seed", str(seed),
            "--storage", postgres_url, "--out", str(tmp_path / name),
        ]  # fmt: skip
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [driver("a", 0), driver("b", 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=500)
        assert proc.returncode == 0, err[-3000:]

    import optuna

    study = optuna.load_study(study_name="autocompress", storage=postgres_url)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))  # never duplicated
    finished = [t for t in study.trials if t.state.is_finished()]
    built = [t for t in finished if "reused_from" not in t.user_attrs]  # repeats are free
    assert 8 <= len(built) <= 9  # the shared budget (a driver may start one at the edge)
    owners = {t.user_attrs.get("driver") for t in finished}
    assert len(owners) == 2  # both drivers worked on it
    for name in ("a", "b"):
        table = pd.read_csv(tmp_path / name / "trials.csv")
        assert set(table["trial"]) >= {t.number for t in finished if t.number < 6}
        front = pd.read_csv(tmp_path / name / "pareto.csv")
        assert len(front) >= 1
    final_a = pd.read_csv(tmp_path / "a" / "trials.csv")
    mine = final_a[final_a["driver"] == (tmp_path / "a" / ".driver-id").read_text().strip()]
    for path in mine.loc[mine["state"] == "COMPLETE", "model_path"].dropna():
        assert (tmp_path / "a" / path).is_file()

    from autocompress.errors import InputError
    from autocompress.run.report import write_report

    assert (tmp_path / "a" / "report.html").is_file()  # written at the end of the search
    with pytest.raises(InputError, match="pass --storage"):
        write_report(tmp_path / "b")
    assert write_report(tmp_path / "b", storage=postgres_url).is_file()


def test_unreachable_storage_is_a_clean_error(tmp_path: Path, capsys) -> None:
    from autocompress.cli import main

    url = "postgresql://user:secret@127.0.0.1:1/none"
    assert main(["search", "--storage", url, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--storage: cannot open" in err and "secret" not in err and err.count("\n") == 1
