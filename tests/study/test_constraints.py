"""One meaning of feasibility: profile P's front holds what meets the user's limits and P's own;
the sampler is steered by the user's limits and the first profile's."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from autocompress.hardware import load_profile
from autocompress.records import LatencyResult, Measurement
from autocompress.study.constraints import Limits, constraint_values, for_sampler
from autocompress.study.rundir import STUDY_NAME, RunDir


def measurement(deployable_on_tpu: bool) -> Measurement:
    lat = {
        "cpu-host": LatencyResult("cpu-host", 1.0, 1.0, 10, "measure"),
        "edgetpu-usb": LatencyResult("edgetpu-usb", 2.0, 2.0, 0, "edgetpu", deployable_on_tpu),
    }
    return Measurement(0.9, 1000, 800, lat, {})


PROFILES = (load_profile("cpu-host"), load_profile("edgetpu-usb"))


def test_sampler_sees_user_limits_and_first_profile_only() -> None:
    values = constraint_values(measurement(False), PROFILES, Limits(min_quality=0.95))
    assert values["edgetpu-usb.deployable"] == 1.0
    assert values["user.min_accuracy"] > 0
    seen = for_sampler(values, "cpu-host")
    assert "edgetpu-usb.deployable" not in seen and "user.min_accuracy" in seen
    assert all(k.startswith(("user.", "cpu-host.")) for k in seen)


def test_require_all_profiles_is_a_user_limit() -> None:
    limits = Limits(require_all_profiles=True)
    values = constraint_values(measurement(False), PROFILES, limits)
    assert for_sampler(values, "cpu-host")["user.deployable.edgetpu-usb"] == 1.0
    ok = constraint_values(measurement(True), PROFILES, limits)
    assert all(v <= 0 for v in for_sampler(ok, "cpu-host").values())


def test_sampler_front_and_pareto_csv_agree_with_two_profiles(first_run) -> None:
    _, out, *_ = first_run
    storage = JournalStorage(JournalFileBackend(str(RunDir(out).journal)))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    trials = pd.read_csv(out / "trials.csv").set_index("trial")
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert all(k.startswith(("user.", "cpu-host.")) for k in t.constraints)
        if trials.loc[t.number, "quantization"] != "int8":  # the Edge TPU cannot run it
            assert "edgetpu-usb.deployable" in str(trials.loc[t.number, "constraints_violated"])
    pareto = set(pd.read_csv(out / "pareto.csv")["trial"])
    best = {t.number for t in study.best_trials if "reused_from" not in t.user_attrs}
    assert best == pareto


def test_a_candidate_no_better_than_a_constant_answer_is_infeasible() -> None:
    at_chance = constraint_values(measurement(True), PROFILES, Limits(chance=0.9))  # quality 0.9
    assert at_chance["user.above_chance"] > 0  # a tie is not told apart
    assert "user.above_chance" in for_sampler(at_chance, "cpu-host")
    above = constraint_values(measurement(True), PROFILES, Limits(chance=0.5))
    assert above["user.above_chance"] <= 0
    assert "user.above_chance" not in constraint_values(measurement(True), PROFILES, Limits())


def test_a_chance_level_student_is_on_no_front(ray_cluster, task_files, tmp_path) -> None:
    """A scratch student after one epoch answers at chance on the tiny task: the search keeps
    it in trials.csv, says why, and no front holds it (issue 39, item 6)."""
    from tests.test_cli import search_here

    space = tmp_path / "space.yaml"
    space.write_text(
        "student_width: [0.25]\nstudent_init: [scratch]\ndistill_epochs: 1\nquantization: [none]\n"
    )
    out = tmp_path / "run"
    proc = search_here(task_files / "task.yaml", out, space=space, trials=1)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 1 and trials.loc[0, "accuracy"] < 0.2
    assert "user.above_chance" in trials.loc[0, "constraints_violated"]
    assert pd.read_csv(out / "pareto.csv").empty
