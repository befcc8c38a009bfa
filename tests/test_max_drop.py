"""--max-drop and --confidence on a real run: every completed trial keeps its validation
evidence, the bound is never below the point drop, and pick returns the fastest member within
the tolerance; the search's own constraint against the teacher."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.evaluation.tolerance import MaxDrop
from autocompress.hardware import load_profile
from autocompress.records import LatencyResult, Measurement
from autocompress.run.results import load_front, pick, with_drops
from autocompress.study.constraints import Limits, constraint_values


def test_every_completed_trial_keeps_its_validation_evidence(first_run) -> None:
    _, out, *_ = first_run
    trials = pd.read_csv(out / "trials.csv")
    for n in trials[trials["state"] == "COMPLETE"]["trial"]:
        assert (out / "models" / f"trial_{int(n):04d}.val.npz").is_file()


def test_bound_is_never_below_the_drop_and_pick_takes_the_fastest_within(first_run) -> None:
    _, out, *_ = first_run
    front, _ = load_front(out)
    with_bound, base = with_drops(out, front, confidence=0.95)
    assert (with_bound["drop_bound"] >= with_bound["drop"] - 1e-12).all()
    lat = "latency_ms_cpu-host"
    limit = float(with_bound["drop"].max())  # every member within the point estimate
    chosen = pick(out, max_drop=MaxDrop(limit))
    assert chosen is not None and chosen[lat] == with_bound[lat].min()
    sure = pick(out, max_drop=MaxDrop(limit), confidence=0.95)
    accepted = with_bound[with_bound["drop_bound"] <= limit + 1e-12]
    if accepted.empty:
        assert sure is None
    else:
        assert sure is not None and sure[lat] == accepted[lat].min()
    smallest = pick(out, max_drop=MaxDrop(limit), prefer="size")
    assert smallest is not None and smallest["size_bytes"] == with_bound["size_bytes"].min()


def test_show_and_pick_print_the_drop_and_its_bound(first_run, tmp_path: Path, capsys) -> None:
    _, out, *_ = first_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    assert main(["show", str(run), "--max-drop", "100%", "--confidence", "0.95"]) == 0
    shown = capsys.readouterr().out
    assert "drop" in shown and "drop_bound" in shown
    assert main(["pick", str(run), "--max-drop", "1", "--confidence", "0.9"]) == 0
    assert "drop_bound" in capsys.readouterr().out
    assert main(["pick", str(run), "--confidence", "0.9"]) == 2
    assert "--confidence" in capsys.readouterr().err
    assert main(["pick", str(run), "--max-drop", "1%", "--confidence", "1.5"]) == 2
    for evidence in (run / "models").glob("*.val.npz"):
        evidence.unlink()  # a run from before the evidence was kept: a clear one-line error
    assert main(["pick", str(run), "--max-drop", "1%", "--confidence", "0.95"]) == 2
    assert "val.npz" in capsys.readouterr().err
    with pytest.raises(InputError):
        pick(run, max_drop=MaxDrop(0.01), confidence=0.95)


def test_search_constraint_is_the_drop_from_the_teacher_beyond_the_tolerance() -> None:
    lat = {"cpu-host": LatencyResult("cpu-host", 1.0, 1.0, 10, "measure")}
    m = Measurement(0.85, 1000, 800, lat, {})
    limits = Limits(max_drop=MaxDrop(0.01), baseline=0.90)
    values = constraint_values(m, (load_profile("cpu-host"),), limits)
    assert values["user.max_drop"] == pytest.approx(0.04)  # 0.05 worse, 0.01 allowed
    relative = Limits(max_drop=MaxDrop.parse("10%"), baseline=0.90)
    values = constraint_values(m, (load_profile("cpu-host"),), relative)
    assert values["user.max_drop"] == pytest.approx(-0.04)  # 0.09 allowed: feasible
