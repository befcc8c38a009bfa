"""The driver's tally of the study's trials, kept from the trials that changed.

The driver asks the study the same questions for every trial it starts: how many trials count
against the budget, how many run, whether this recipe was built (or stopped, or failed) before.
Answered by a pass over the whole study each, they made the driver's cost per trial grow with the
study (``benchmarks/scaling.py --noop-only``). The ledger answers them from tallies: it reads a
trial when it finishes (the driver notes its own tells at once, :meth:`Ledger.note`) and, once
per loop of the driver, looks at the trials that are new or were still open (:meth:`refresh`:
one pass of Optuna's over the list, which other drivers of a shared study add to).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def recipe_key(recipe: dict[str, object]) -> str:
    return json.dumps(recipe, sort_keys=True)


@dataclass
class Ledger:
    """Counts and a recipe index over one study's trials."""

    study: optuna.Study
    driver: str  # this driver's id: its own running trials are counted by the driver itself
    finished: int = 0  # built (or failed, or stopped) candidates: what the budget counts
    failed: int = 0
    stopped: int = 0
    others_running: int = 0  # other drivers' running candidates (a shared study)
    _seen: int = 0  # how many of the study's trials have been looked at
    _open: dict[int, int] = field(default_factory=dict)  # unfinished: number -> position
    _done: set[int] = field(default_factory=set)
    # recipe key -> the earliest trial of that recipe: built (with a record), stopped, failed
    built: dict[str, FrozenTrial] = field(default_factory=dict)
    stopped_by_recipe: dict[str, FrozenTrial] = field(default_factory=dict)
    failed_by_recipe: dict[str, FrozenTrial] = field(default_factory=dict)

    def refresh(self) -> None:
        """Take in the trials added since the last look and those that were still open."""
        trials = self.study.get_trials(deepcopy=False)
        for position in range(self._seen, len(trials)):
            self._open[trials[position].number] = position
        self._seen = len(trials)
        others = 0
        for position in list(self._open.values()):
            t = trials[position]
            if t.state in FINISHED:
                self._take(t)
            elif t.state == TrialState.RUNNING and t.user_attrs.get("driver") != self.driver:
                others += "promoted_from" not in t.user_attrs
        self.others_running = others

    def note(self, frozen: FrozenTrial) -> None:
        """Take in one trial this driver has just told (what ``study.tell`` returned)."""
        if frozen.state in FINISHED:
            self._take(frozen)

    def _take(self, t: FrozenTrial) -> None:
        self._open.pop(t.number, None)
        if t.number in self._done:
            return
        self._done.add(t.number)
        attrs = t.user_attrs
        if "reused_from" not in attrs and "promoted_from" not in attrs:
            self.finished += 1
        recipe = attrs.get("recipe")
        key = recipe_key(recipe) if isinstance(recipe, dict) else None
        if t.state == TrialState.COMPLETE:
            if key is not None and "record" in attrs:
                _earliest(self.built, key, t)
        elif t.state == TrialState.PRUNED:
            self.stopped += 1
            if key is not None:
                _earliest(self.stopped_by_recipe, key, t)
        else:
            self.failed += 1
            interrupted = str(attrs.get("error", "")).startswith("interrupted")
            if key is not None and not interrupted:
                _earliest(self.failed_by_recipe, key, t)


def _earliest(index: dict[str, FrozenTrial], key: str, t: FrozenTrial) -> None:
    if key not in index or t.number < index[key].number:
        index[key] = t
