"""The package installs: a wheel built from the checkout carries the shipped profiles and spaces,
and the CLI finds them from a folder outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .`` of this checkout, unpacked: what ``pip install`` puts in site-packages."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("autocompress-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
    )


def test_wheel_ships_every_profile_and_space(unpacked_wheel: Path) -> None:
    package = unpacked_wheel / "autocompress"
    for folder in ("hardware_profiles", "search_spaces"):
        shipped = {p.name for p in (ROOT / folder).glob("*.yaml")}
        assert shipped
        assert {p.name for p in (package / folder).glob("*.yaml")} == shipped


def test_installed_cli_lists_profiles_and_searches_outside_checkout(
    unpacked_wheel: Path, tmp_path: Path, task_files: Path
) -> None:
    proc = run_installed(unpacked_wheel, tmp_path, "profiles")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {p.stem for p in (ROOT / "hardware_profiles").glob("*.yaml")} <= listed
    proc = run_installed(
        unpacked_wheel,
        tmp_path,
        "search",
        "--task",
        str(task_files / "task.yaml"),
        "--space",
        "smoke",
        "--trials",
        "2",
        "--workers",
        "1",
        "--no-warm-start",
        "--out",
        "run",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "pareto.csv").exists()


def test_installed_package_is_the_wheel(unpacked_wheel: Path, tmp_path: Path) -> None:
    """The tests above ran the wheel's code and data, not the checkout's (which an editable
    install would find)."""
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    code = (
        "import autocompress.space as s, autocompress.hardware.profile as p;"
        "print(s.__file__); print(s.SPACES_DIR); print(p.PROFILES_DIR)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert Path(line).is_relative_to(unpacked_wheel), line
