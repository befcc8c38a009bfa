"""The package installs: a wheel built from the checkout carries the shipped profiles and spaces,
and the CLI finds them from a folder outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .`` of this checkout, installed into a fresh virtual environment outside the
    checkout; returns that environment's site-packages.

    The dependencies come from the test's own environment through a ``.pth`` line, which adds
    its site-packages to the path without running its ``.pth`` files: the editable install's
    import finder stays out. (With it, a package the wheel lacks was found in the checkout:
    how a wheel without ``autocompress.data`` went unseen.)"""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("autocompress-*.whl")
    env = out / "env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120
    )
    python = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_deps.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script ``autocompress`` of the fresh environment."""
    script = site.parents[2] / "bin" / "autocompress"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
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
    """Every module of the installed package imports from the wheel, not from the checkout (which
    an editable install would find), and the shipped folders are the wheel's."""
    python = unpacked_wheel.parents[2] / "bin" / "python"
    code = (
        "import importlib, pkgutil, autocompress, autocompress.space as s, "
        "autocompress.hardware.profile as p\n"
        "for m in pkgutil.walk_packages(autocompress.__path__, 'autocompress.'):\n"
        "    if m.name != 'autocompress.__main__':  # importing it runs the command line\n"
        "        print(m.name, importlib.import_module(m.name).__file__)\n"
        "print('SPACES', s.SPACES_DIR); print('PROFILES', p.PROFILES_DIR)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    expected = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "autocompress").rglob("*.py")
    } - {"autocompress", "autocompress.__main__"}
    assert expected <= set(found), sorted(expected - set(found))
    for where in found.values():
        assert Path(where).is_relative_to(unpacked_wheel), where


def test_installed_cli_estimates_a_file(unpacked_wheel: Path, tmp_path: Path, tiny_task) -> None:
    from autocompress.stages.convert import to_tflite

    model = tmp_path / "model.tflite"
    model.write_bytes(to_tflite(tiny_task.teacher.build(), "none"))
    proc = run_installed(unpacked_wheel, tmp_path, "estimate", str(model), "--profile", "cpu-host")
    assert proc.returncode == 0, proc.stderr
    assert "latency" in proc.stdout.lower(), proc.stdout
    assert "XNNPACK" not in proc.stderr  # LiteRT's start-up line stays out of the terminal
