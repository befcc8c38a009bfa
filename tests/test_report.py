"""The HTML report: written from a real run, self-contained, and rendered by a real headless
browser (Debian's chromium) with plots and no console error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.run.report import write_report

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


def test_every_front_member_is_drawn_whatever_its_mode(first_run) -> None:
    """int16x8 had no colour and was never drawn; a mode added later gets the fallback colour."""
    import pandas as pd

    from autocompress.run.report import _front_figure
    from autocompress.run.tables import front_frame

    _, out, *_ = first_run
    trials = pd.read_csv(out / "trials.csv")
    front = front_frame(trials, "cpu-host")
    modes = ["int16x8", "future_mode"]
    for i, trial in enumerate(front["trial"]):  # relabel the front members' modes
        trials.loc[trials["trial"] == trial, "quantization"] = modes[i % 2]
    figure = _front_figure(trials, "cpu-host")
    front_points = sum(
        len(trace.x) for trace in figure.data if str(trace.name).startswith("front:")
    )
    assert front_points == 2 * len(front)  # each member once per subplot


def test_front_members_below_the_floor_are_hidden_by_show(first_run, tmp_path, capsys) -> None:
    import pandas as pd

    from autocompress.run.tables import front_frame

    _, out, *_ = first_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    trials = pd.read_csv(run / "trials.csv")
    front = front_frame(trials, "cpu-host")
    smallest = int(front.sort_values("gzip_bytes").iloc[0]["trial"])
    trials.loc[trials["trial"] == smallest, "accuracy"] = 0.01  # still the smallest: on the front
    trials.to_csv(run / "trials.csv", index=False)
    assert smallest in set(front_frame(trials, "cpu-host")["trial"])
    assert main(["show", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "front member(s) below the validation accuracy floor" in lines[-1]
    shown = {int(line.split()[0]) for line in lines[2:-1]}
    assert smallest not in shown and shown
    assert main(["show", str(run), "--min-accuracy", "0.001"]) == 0
    assert "below the validation accuracy floor" not in capsys.readouterr().out
    assert main(["show", str(run), "--all"]) == 0
    assert "0.01" in capsys.readouterr().out


def test_a_run_from_before_the_new_dimensions_still_opens(run: Path) -> None:
    """A run whose trials.csv predates student_init, finetune_loss, resolution, input_shape
    and finishing runs: show, pick and the report read it (issue 39)."""
    import pandas as pd

    from tests.test_cli import cli

    new = ["student_init", "finetune_loss", "resolution", "input_shape", "finished_from"]
    for name in ("trials.csv", "pareto.csv"):
        table = pd.read_csv(run / name)
        table.drop(columns=[c for c in new if c in table.columns]).to_csv(run / name, index=False)
    assert cli("show", str(run)).returncode == 0
    picked = cli("pick", str(run), "--max-drop", "50%")
    assert picked.returncode == 0, picked.stderr
    assert cli("report", str(run)).returncode == 0
