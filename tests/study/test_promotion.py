"""The driver's multi-fidelity steps (:mod:`autocompress.study.promotion`) on a real in-memory
Optuna study, without Ray or a model: the rungs rebuilt on a resume, an interrupted promotion
queued again (once), a due promotion queued, a lower level's build told PRUNED."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from autocompress.metrics import DEFAULT_QUALITY
from autocompress.recipe import Recipe
from autocompress.records import Measurement, TrialRecord
from autocompress.study.fidelity import Fidelity, Rungs
from autocompress.study.promotion import Promotions

DIRECTIONS = ["maximize", "minimize", "minimize"]


class Host(Promotions):
    """The attributes of the driver that the mixin reads, and its way to tell a lower level."""

    def __init__(self, study: optuna.Study, fidelity: Fidelity) -> None:
        self.study = study
        self.running: dict[int, optuna.Trial] = {}
        self.fidelity = fidelity
        self.rungs = Rungs(fidelity)
        self.quality = DEFAULT_QUALITY
        self.told: list[tuple[int, TrialState]] = []

    def _tell_unfinished(self, number: int, state: TrialState, kind: str, reason: str) -> None:
        self.study.tell(number, state=state)
        self.told.append((number, state))


def level_build(study: optuna.Study, candidate: int, level: int, values: list[float], **attrs):
    """A build of ``candidate`` at ``level`` as the driver leaves it in the study."""
    trial = study.ask({"width": optuna.distributions.CategoricalDistribution([0.5, 1.0])})
    for key, value in {
        "candidate": candidate,
        "level": level,
        "last_level": level,
        **attrs,
    }.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("level_values", values)
    study.tell(trial, state=TrialState.PRUNED)
    return trial.number


@pytest.fixture()
def study() -> optuna.Study:
    return optuna.create_study(directions=DIRECTIONS)


def test_rungs_are_rebuilt_from_the_study(study) -> None:
    fidelity = Fidelity(levels=(0.0, 1.0), eta=2)
    for n, quality in enumerate([0.9, 0.5, 0.4, 0.3]):
        level_build(study, n, 0, [quality, 1.0, 1.0])
    host = Host(study, fidelity)
    host._rebuild_rungs()
    assert sorted(host.rungs.results[0]) == [0, 1, 2, 3]
    assert host.rungs.results[0][0] == (0.9, 1.0, 1.0)  # accuracy is maximised: sign +1
    # the best of the rung is due: queued as an enqueued trial promoted from candidate 0
    assert host._promotion_waiting()
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs == {"promoted_from": 0, "level": 1}
    assert 0 in host.rungs.promoted[0]
    promoted = study.ask()  # the next worker's trial builds the candidate's own recipe
    assert promoted.number == waiting.number
    assert promoted.suggest_categorical("width", [0.5, 1.0]) == study.trials[0].params["width"]


def test_an_interrupted_promotion_is_queued_again_once(study) -> None:
    fidelity = Fidelity(levels=(0.0, 1.0), eta=2)
    level_build(study, 0, 0, [0.9, 1.0, 1.0])
    level_build(study, 1, 0, [0.1, 1.0, 1.0])
    # the driver was killed while candidate 0's level-1 build ran: that trial ends FAIL
    study.enqueue_trial(study.trials[0].params, user_attrs={"promoted_from": 0, "level": 1})
    interrupted = study.ask()
    interrupted.set_user_attr("error", "interrupted: the driver stopped")
    study.tell(interrupted, state=TrialState.FAIL)
    host = Host(study, fidelity)
    host._rebuild_rungs()
    (again,) = study.get_trials(states=(TrialState.WAITING,))
    assert again.user_attrs == {"promoted_from": 0, "level": 1}
    assert 0 in host.rungs.promoted[0]
    assert host._promotion_waiting()  # it waits for a worker; nothing else is due
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_lower_levels_build_is_told_pruned_and_a_top_level_one_is_not(study) -> None:
    fidelity = Fidelity(levels=(0.0, 1.0), eta=2)
    host = Host(study, fidelity)
    pruned = Recipe(sparsity=0.5, finetune_epochs=10)
    low = study.ask()
    assert host._at_level(low, pruned, None).finetune_epochs < 10
    host.running[low.number] = low
    measurement = Measurement(quality=0.8, size_bytes=1, gzip_bytes=1, latency={}, tensor_dtypes={})
    record = TrialRecord(recipe=pruned, stages=[], measurement=measurement, seconds=0.0)
    assert host._record_level(low.number, record, [0.8, 1.0, 2.0], {})
    assert host.told == [(low.number, TrialState.PRUNED)]
    assert study.trials[low.number].user_attrs["level_values"] == [0.8, 1.0, 2.0]
    # its promotion, at the top level: counted in the rungs, left to the driver to tell COMPLETE
    study.enqueue_trial({}, user_attrs={"promoted_from": low.number, "level": 1})
    top = study.ask()
    assert host._at_level(top, pruned, low.number).finetune_epochs == 10
    host.running[top.number] = top
    assert not host._record_level(top.number, record, [0.85, 1.0, 2.0], {})
    assert host.rungs.results[1][low.number] == (0.85, 1.0, 2.0)
    assert host.told == [(low.number, TrialState.PRUNED)]
