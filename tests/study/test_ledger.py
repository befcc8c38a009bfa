"""The ledger's counts and recipe index over a study, on an in-memory Optuna study (issue 41:
the driver's bookkeeping has tests of its own)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autocompress.study.ledger import Ledger, recipe_key

optuna.logging.set_verbosity(optuna.logging.WARNING)
RECIPE = {"sparsity": 0.5}


def _told(study: optuna.Study, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for name, value in attrs.items():
        trial.set_user_attr(name, value)
    if state == TrialState.COMPLETE:
        return study.tell(trial, [1.0])
    return study.tell(trial, state=state)


def test_counts_and_the_earliest_trial_of_each_recipe() -> None:
    study = optuna.create_study(directions=["maximize"])
    ledger = Ledger(study, driver="me")
    first = _told(study, TrialState.COMPLETE, recipe=RECIPE, record={})
    ledger.note(first)
    ledger.note(_told(study, TrialState.COMPLETE, recipe=RECIPE, record={}, reused_from=0))
    ledger.note(_told(study, TrialState.PRUNED, recipe={"clusters": 8}))
    ledger.note(_told(study, TrialState.FAIL, recipe={"clusters": 4}, error="boom"))
    ledger.note(_told(study, TrialState.FAIL, recipe={"clusters": 2}, error="interrupted: x"))
    assert (ledger.finished, ledger.stopped, ledger.failed) == (4, 1, 2)  # the reuse is free
    assert ledger.built[recipe_key(RECIPE)].number == first.number
    assert recipe_key({"clusters": 8}) in ledger.stopped_by_recipe
    assert recipe_key({"clusters": 4}) in ledger.failed_by_recipe
    assert recipe_key({"clusters": 2}) not in ledger.failed_by_recipe  # built again on resume


def test_refresh_takes_in_what_other_drivers_told_and_counts_their_running_trials() -> None:
    study = optuna.create_study(directions=["maximize"])
    _told(study, TrialState.COMPLETE, recipe=RECIPE, record={})
    study.ask().set_user_attr("driver", "other")  # running elsewhere
    mine = study.ask()
    mine.set_user_attr("driver", "me")
    ledger = Ledger(study, driver="me")
    ledger.refresh()
    assert ledger.finished == 1 and ledger.others_running == 1
    ledger.note(study.tell(mine, [0.5]))
    ledger.refresh()  # a trial already noted is not counted twice
    assert ledger.finished == 2
