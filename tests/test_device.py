"""``autocompress measure``: timing a run's candidates on the device, from an install without
TensorFlow, tfmot, Ray, Optuna or pandas; resumable after a kill; read back as a profile."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from autocompress.cli import main
from autocompress.run.device import kept_candidates

HEAVY = (
    "tensorflow",
    "tf_keras",
    "keras",
    "tensorflow_model_optimization",
    "ray",
    "optuna",
    "pandas",
    "sklearn",
    "litert_quantizer",
)
# Runs the CLI with the heavy packages made unimportable, as on a device where they are not
# installed, and checks at the end that none of them was imported.
LIGHT = f"""
import sys
HEAVY = {HEAVY!r}

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}} (light install)")
        return None

sys.meta_path.insert(0, Absent())
from autocompress.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
assert not loaded, loaded
sys.exit(code)
"""


def light(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LIGHT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_measure_runs_without_the_heavy_packages(run: Path, capsys) -> None:
    proc = light("measure", str(run), "--as", "my-pi", "--min-seconds", "0.05")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    measured = rows(run / "profiles" / "my-pi.csv")
    assert sorted(int(r["trial"]) for r in measured) == [t for t, _ in kept_candidates(run)]
    assert all(float(r["latency_ms_my-pi"]) > 0 for r in measured)
    assert main(["show", str(run), "--profile", "my-pi"]) == 0
    assert "latency on my-pi" in capsys.readouterr().out


def test_measure_resumes_after_a_kill(run: Path) -> None:
    path = run / "profiles" / "dev.csv"
    candidates = kept_candidates(run)
    assert len(candidates) >= 2
    proc = light("measure", str(run), "--as", "dev", "--min-seconds", "1.5")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (path.is_file() and rows(path)):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    first = rows(path)
    assert 1 <= len(first) < len(candidates)  # killed half way, with complete rows only
    proc = light("measure", str(run), "--as", "dev", "--min-seconds", "0.05")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"({len(first)} from an earlier call)" in out
    after = rows(path)
    assert sorted(int(r["trial"]) for r in after) == [t for t, _ in candidates]
    assert after[: len(first)] == first  # what was measured before the kill is kept as it was


def test_measure_refuses_a_searched_profile_name(run: Path) -> None:
    proc = light("measure", str(run), "--as", "cpu-host")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "a profile the search measured" in err
    assert "Traceback" not in err
