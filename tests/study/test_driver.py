"""The driver's own steps (:mod:`autocompress.study.driver`), without Ray: an executor that only
records what it is given stands in, and trials are told by hand where workers would answer."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from autocompress.hardware import load_profile
from autocompress.records import Measurement, TrialRecord
from autocompress.run.rundir import RunDir
from autocompress.space import SearchSpace
from autocompress.study.driver import Driver
from autocompress.study.objective import TrialContext, TrialRequest
from autocompress.study.options import SearchOptions
from autocompress.study.storage import open_study


class Recorder:
    """The executor's surface the driver's submit path uses."""

    def __init__(self) -> None:
        self.submitted: list[TrialRequest] = []

    def submit(self, request: TrialRequest) -> None:
        self.submitted.append(request)

    @property
    def in_flight(self) -> int:
        return len(self.submitted)


SPACE = {
    "student_width": [1.0, 0.5],
    "sparsity": [0.0, 0.5],
    "clusters": [0],
    "quantization": ["none", "int8"],
    "distill_epochs": 1,
    "finetune_epochs": 1,
}


@pytest.fixture()
def driver(tmp_path, tiny_task):
    def make(**options) -> Driver:
        rundir = RunDir(tmp_path / "run")
        rundir.path.mkdir(exist_ok=True)
        opened = open_study(rundir, "cpu-host", optuna.samplers.RandomSampler(seed=0))
        return Driver(
            opened,
            SearchSpace.from_dict(SPACE),
            TrialContext(task=tiny_task, profiles=(load_profile("pixel2-cpu"),)),
            rundir,
            budget=10,
            timeout=None,
            workers=2,
            on_progress=None,
            options=SearchOptions(**options),
        )

    return make


def _queued(d: Driver) -> list[tuple[str, tuple]]:
    """The enqueued trials in order: origin and (width, sparsity, clusters, quantization)."""
    out = []
    while d.study.get_trials(states=(TrialState.WAITING,)):
        trial = d.study.ask()
        r = d.space.sample(trial)
        out.append(
            (
                trial.user_attrs["enqueued"],
                (r.student_width, r.sparsity, r.clusters, r.quantization),
            )
        )
    return out


def test_first_trials_are_the_baseline_the_well_known_recipes_the_space_has_and_the_users(
    driver,
) -> None:
    user = {"student_width": 0.5, "sparsity": 0.5, "clusters": 0, "quantization": "int8"}
    d = driver(enqueue=(user, {**user}))  # the same recipe twice: queued once
    d._enqueue_first()
    assert _queued(d) == [
        ("baseline", (1.0, 0.0, 0, "none")),
        # of the well-known recipes, those this space can express (no clusters, no float16)
        ("well-known", (1.0, 0.0, 0, "int8")),
        ("well-known", (1.0, 0.5, 0, "int8")),
        ("well-known", (0.5, 0.0, 0, "int8")),
        ("user", (0.5, 0.5, 0, "int8")),
    ]


def test_without_warm_start_only_the_baseline_and_the_users(driver) -> None:
    d = driver(warm_start=False)
    d._enqueue_first()
    assert _queued(d) == [("baseline", (1.0, 0.0, 0, "none"))]


def _complete(d: Driver, request: TrialRequest) -> None:
    """Tell a submitted trial COMPLETE as the driver would with its worker's record."""
    trial = d.running.pop(request.number)
    m = Measurement(quality=0.9, size_bytes=10, gzip_bytes=5, latency={}, tensor_dtypes={})
    record = TrialRecord(recipe=request.recipe, stages=[], measurement=m, seconds=1.0)
    trial.set_user_attr("record", record.to_dict())
    trial.set_user_attr("model_path", f"models/trial_{request.number}.tflite")
    trial.set_user_attr("constraint_values", {})
    d.building.pop(request.number, None)
    d.ledger.note(d.study.tell(trial, [0.9, 1.0, 10.0]))


def test_a_repeated_recipe_is_answered_from_the_earlier_trial_without_a_worker(driver) -> None:
    d = driver(warm_start=False)
    params = {"student_width": 1.0, "sparsity": 0.5, "clusters": 0, "quantization": "int8"}
    executor = Recorder()
    d.study.enqueue_trial(params)
    d._submit(executor)
    (first,) = executor.submitted
    _complete(d, first)
    d.study.enqueue_trial(params)
    d._submit(executor)
    assert len(executor.submitted) == 1  # no second build
    again = d.study.trials[-1]
    assert again.state == TrialState.COMPLETE and again.user_attrs["reused_from"] == first.number
    assert again.values == [0.9, 1.0, 10.0]


def test_a_trial_that_needs_what_a_running_trial_builds_waits_for_it(driver) -> None:
    d = driver(warm_start=False)
    params = {"student_width": 0.5, "sparsity": 0.0, "clusters": 0, "quantization": "none"}
    executor = Recorder()
    d.study.enqueue_trial(params)
    d.study.enqueue_trial({**params, "quantization": "int8"})  # the same student, then int8
    d._submit(executor)
    d._submit(executor)
    assert len(executor.submitted) == 1 and len(d.held) == 1  # the student is built once
    _complete(d, executor.submitted[0])
    d._release(executor)
    assert len(executor.submitted) == 2 and not d.held
    assert executor.submitted[1].recipe.quantization == "int8"
