"""Adding a simulated profile to a finished run: every kept candidate estimated, the front
recomputed for it, pick honouring its limits; the study and trials.csv never changed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.hardware import latency, load_profile
from autocompress.hardware.profile import PROFILES_DIR
from autocompress.run.results import load_front
from autocompress.run.retarget import retarget
from tests.conftest import digest

SIMULATED = sorted(
    p.stem for p in PROFILES_DIR.glob("*.yaml") if load_profile(p.stem).backend != "measure"
)


def test_every_shipped_simulated_profile_is_added(run: Path, capsys) -> None:
    before = {name: digest(run / name) for name in ("trials.csv", "study.journal", "pareto.csv")}
    added = [p for p in SIMULATED if p != "edgetpu-usb"]  # edgetpu-usb was searched
    assert added
    assert main(["retarget", str(run), *(a for p in added for a in ("--profile", p))]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(added)
    trials = pd.read_csv(run / "trials.csv")
    for profile in added:
        front, chosen = load_front(run, profile)
        assert chosen == profile and len(front) >= 1
        row = front.iloc[0]
        tflite = (run / row["model_path"]).read_bytes()
        expected = latency(tflite, load_profile(profile))
        assert row[f"latency_ms_{profile}"] == pytest.approx(expected.median_ms)
    assert {name: digest(run / name) for name in before} == before  # nothing rewritten
    assert len(trials) == len(pd.read_csv(run / "trials.csv"))


def test_pick_honours_the_new_profile(run: Path, capsys) -> None:
    retarget(run, "pixel2-cpu")
    front, _ = load_front(run, "pixel2-cpu")
    limit = float(front["latency_ms_pixel2-cpu"].min())
    assert main(["pick", str(run), "--profile", "pixel2-cpu", "--max-latency-ms", str(limit)]) == 0
    chosen = int(capsys.readouterr().out.splitlines()[1].split()[0])
    assert front.set_index("trial").loc[chosen, "latency_ms_pixel2-cpu"] <= limit
    assert main(["show", str(run), "--profile", "pixel2-cpu"]) == 0
    assert "latency on pixel2-cpu" in capsys.readouterr().out


def test_edge_tpu_front_of_an_added_profile_holds_only_integer_files(run: Path) -> None:
    retarget(run, "edgetpu-devboard")
    front, _ = load_front(run, "edgetpu-devboard")
    trials = pd.read_csv(run / "trials.csv").set_index("trial")
    for trial in front["trial"]:
        assert trials.loc[trial, "quantization"] == "int8"


def test_measured_or_searched_profiles_are_refused(run: Path) -> None:
    with pytest.raises(InputError, match="is measured, not simulated"):
        retarget(run, "cpu-host")
    with pytest.raises(InputError, match="was measured by the search"):
        retarget(run, "edgetpu-usb")


def test_a_resumed_search_keeps_the_added_profile(run: Path, task_files, smoke_space_file) -> None:
    from autocompress import search

    retarget(run, "pixel3-gpu")
    search(
        task=str(task_files / "task.yaml"),
        space=smoke_space_file,
        trials=4,  # the budget of the first run: nothing new is built
        out=run,
        profiles=("cpu-host", "edgetpu-usb"),
    )
    front, _ = load_front(run, "pixel3-gpu")
    assert len(front) >= 1


def test_report_draws_the_added_profiles_front(run: Path) -> None:
    from autocompress.run.report import write_report

    retarget(run, "jetson-nano-trt")
    page = write_report(run).read_text()
    assert "Pareto front on jetson-nano-trt" in page
