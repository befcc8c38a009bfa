"""The HTML report: written from a real run, self-contained, and rendered by a real headless
browser (Debian's chromium) with plots and no console error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(first_run, tmp_path_factory) -> Path:
    _, out, *_ = first_run
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(out, run)
    return write_report(run)


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert "Plotly.newPlot" in page or "Plotly.newPlot" in page.replace(" ", "")
    assert "<script src=" not in page  # plotly.js is inlined: the page opens offline
    for heading in ("Pareto front on cpu-host", "Pareto front on edgetpu-usb", "Hypervolume"):
        assert heading in page
    assert "baseline (fp32 teacher)" in page and "max_class_drop" in page
    png = report.parent / "report_front.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_and_empty_run(first_run, tmp_path: Path, capsys) -> None:
    _, out, *_ = first_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(InputError, match="not a run directory"):
        write_report(tmp_path / "nowhere")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path) -> None:
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if "error" in line.lower() or "uncaught" in line.lower()]
    assert not errors, errors
    dom = proc.stdout
    assert dom.count('class="main-svg"') >= 3  # plotly drew the figures
    assert "scatterlayer" in dom  # with points in them
