"""A finishing run: one chosen candidate rebuilt with longer training (issue 39, item 5).

A search trains each candidate briefly, so that many fit its budget; the candidate a user picks
deserves its full training. ``autocompress finish RUN --trial N`` (or ``search(...,
finish=Finish(N))``) rebuilds trial N's recipe with every training length multiplied, each
training stopping once validation stops improving and keeping its best epoch
(:class:`autocompress.stages.training.BestEpoch`), and measures it as every candidate is measured
(validation, test, size, latency on every profile of the run, audit). It is one more trial of
the run's study, marked ``finished_from: N``: ``show``, ``pick``, ``export``, ``retarget`` and
the report see it as any other candidate.

It runs through the search itself, with the run's own arguments: the stage cache is reused (a
student continues from the search's shorter training of it), progress is shown, and a killed
finishing run resumes when started again (its finished stages come from the cache).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from autocompress.errors import InputError
from autocompress.recipe import EPOCH_FIELDS, Recipe
from autocompress.records import TrialRecord
from autocompress.space import Param, SearchSpace
from autocompress.study.ledger import Ledger
from autocompress.study.options import SearchOptions

FINISHED_FROM = "finished_from"  # the user attribute (and trials.csv column) that marks one


@dataclass(frozen=True)
class Finish:
    """Which trial to finish, how much longer to train it, and the patience of each training."""

    trial: int
    multiplier: int = 3
    patience: int = 2

    def check(self) -> None:
        if self.multiplier < 1:
            raise InputError("--multiplier", f"must be at least 1, got {self.multiplier}")
        if self.patience < 1:
            raise InputError("--patience", f"must be at least 1, got {self.patience}")


def finished_recipe(study: optuna.Study, finish: Finish) -> Recipe:
    """Trial ``finish.trial``'s recipe with its training lengths multiplied; one-line errors
    for a trial without a model or one that trains nothing."""
    from autocompress.stages.build import default_stages

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    trial = trials.get(finish.trial)
    record = trial.user_attrs.get("record") if trial is not None else None
    if trial is None or trial.state != TrialState.COMPLETE or record is None:
        raise InputError("--trial", f"trial {finish.trial} has no completed model in this run")
    recipe = TrialRecord.from_dict(record).recipe
    trains = [s for s in default_stages() if s.applies(recipe) and s.epochs_field is not None]
    if not trains:
        raise InputError(
            "--trial", f"trial {finish.trial} trains nothing (post-training only): it is final"
        )
    longer = {f: getattr(recipe, f) * finish.multiplier for f in EPOCH_FIELDS}
    return dataclasses.replace(recipe, **longer)


def prepare(
    study: optuna.Study, space: SearchSpace, options: SearchOptions, finish: Finish
) -> tuple[SearchSpace, SearchOptions, int]:
    """The space that samples nothing but the finished recipe, the options of a run that
    builds it alone (no warm start, no early stop, no fidelity levels), and the budget: one
    candidate more than the study has built. The trial is queued with its mark."""
    finish.check()
    recipe = finished_recipe(study, finish)
    fixed = tuple(Param(name, choices=(value,)) for name, value in recipe.to_dict().items())
    options = dataclasses.replace(
        options, warm_start=False, enqueue=(), stop_margin=None, fidelity=None
    )
    space = dataclasses.replace(space, params=fixed, fidelity=None)
    ledger = Ledger(study, driver="")
    ledger.refresh()
    mine = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(FINISHED_FROM) == finish.trial
    ]
    if any(
        t.state == TrialState.COMPLETE and t.user_attrs.get("recipe") == recipe.to_dict()
        for t in mine
    ):
        return space, options, ledger.finished  # finished already: nothing to build
    if not any(t.state == TrialState.WAITING for t in mine):
        study.enqueue_trial({}, user_attrs={"enqueued": "finish", FINISHED_FROM: finish.trial})
    # A killed finishing run left its trial RUNNING: the driver fails it as interrupted before
    # it starts, and that FAIL counts as built; one more builds this one.
    killed = sum(t.state == TrialState.RUNNING for t in mine)
    return space, options, ledger.finished + killed + 1
