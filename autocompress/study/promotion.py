"""The driver's side of multi-fidelity search: which level a trial builds, the rungs rebuilt
from the study on a resume, a lower level's build told PRUNED, and the promotion floor.

A new candidate is built at level 0; a promotion is queued as an enqueued trial with
``promoted_from`` and ``level``. Each level's build is its own trial; only a top-level build is
COMPLETE with values, a lower one is PRUNED with its record and ``level_values`` in user
attributes. The rungs are rebuilt from the study when the driver starts, so a killed search
resumes mid-rung: an interrupted promotion is promoted again.

The rule itself (levels, ranking, promotion) is pure numpy in :mod:`autocompress.study.fidelity`;
this mixin of :class:`autocompress.study.driver.Driver` only moves its inputs and decisions
between that rule and the Optuna study.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from autocompress.metrics import Quality
from autocompress.recipe import Recipe
from autocompress.records import TrialRecord
from autocompress.study.fidelity import Fidelity, Point, Rungs

if TYPE_CHECKING:
    from autocompress.study.objective import TrialContext

log = logging.getLogger("autocompress")


class Promotions:
    """Multi-fidelity steps of the driver (its study, running trials and rungs)."""

    study: optuna.Study
    running: dict[int, optuna.Trial]
    fidelity: Fidelity | None
    rungs: Rungs | None
    quality: Quality
    # and the driver's _tell_unfinished (a lower level's build is told PRUNED through it)

    def _at_level(self, trial: optuna.Trial, recipe: Recipe, promoted_from: object) -> Recipe:
        """What the trial builds: the recipe at its fidelity level (the recipe itself when the
        search has no levels). Records the candidate, the level and the last level this build
        counts for in the trial's user attributes."""
        if self.fidelity is None:
            return recipe
        from autocompress.stages.build import epoch_floors

        floors = epoch_floors(recipe)
        if promoted_from is None:
            candidate, level = trial.number, 0
        else:
            candidate, level = int(str(promoted_from)), int(str(trial.user_attrs["level"]))
        last = self.fidelity.last_same(recipe, level, floors)
        for key, value in (("candidate", candidate), ("level", level), ("last_level", last)):
            trial.set_user_attr(key, value)
        return self.fidelity.recipe_at(recipe, level, floors)

    def _rebuild_rungs(self) -> None:
        """The rungs from the study: every level result and every promotion issued. A promotion
        whose build a stopped driver interrupted stands: it is queued again."""
        if self.rungs is None:
            return
        issued: set[tuple[int, int]] = set()
        interrupted: dict[tuple[int, int], dict[str, object]] = {}
        for t in self.study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if "promoted_from" in attrs:
                step = (int(attrs["promoted_from"]), int(attrs["level"]))
                self.rungs.going_on(step[0], step[1] - 1)
                error = str(attrs.get("error", ""))
                if t.state == TrialState.FAIL and error.startswith("interrupted"):
                    interrupted[step] = t.params
                else:
                    issued.add(step)
            if "level_values" in attrs and "reused_from" not in attrs:
                point = self._point(attrs["level_values"])  # type: ignore[arg-type]
                self.rungs.add(
                    int(attrs["candidate"]), int(attrs["level"]), int(attrs["last_level"]), point
                )
        for (candidate, level), params in interrupted.items():
            if (candidate, level) not in issued:
                self._queue_promotion(candidate, level, params)

    def _promotion_waiting(self) -> bool:
        """Queue the promotion that is due now, if any; whether a queued promotion waits for a
        free worker (promotions do not use the budget)."""
        if self.rungs is None:
            return False
        due = self.rungs.next_promotion()
        if due is not None:
            candidate, level = due
            self.rungs.going_on(candidate, level)
            source = next(t for t in self.study.get_trials(deepcopy=False) if t.number == candidate)
            self._queue_promotion(candidate, level + 1, source.params)
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return any("promoted_from" in t.user_attrs for t in waiting)

    def _queue_promotion(self, candidate: int, level: int, params: dict[str, object]) -> None:
        """Queue ``candidate``'s build at ``level`` (the next free worker starts it)."""
        self.study.enqueue_trial(params, user_attrs={"promoted_from": candidate, "level": level})
        log.info("candidate %d promoted to level %d", candidate, level)

    def _record_level(
        self,
        number: int,
        record: TrialRecord,
        values: list[float],
        constraints: dict[str, float],
    ) -> bool:
        """Enter a multi-fidelity build into its rungs; a build below the top level is told
        PRUNED here, with its record and values (no model file: it is not a result). Whether
        the trial was told (False: a top-level or single-fidelity result, told as COMPLETE)."""
        trial = self.running.get(number)
        if self.rungs is None or trial is None or "candidate" not in trial.user_attrs:
            return False
        attrs = trial.user_attrs
        level, last = int(attrs["level"]), int(attrs["last_level"])
        trial.set_user_attr("level_values", values)
        self.rungs.add(int(attrs["candidate"]), level, last, self._point(values))
        if last == self.rungs.fidelity.top:
            return False
        trial.set_user_attr("record", record.to_dict())
        trial.set_user_attr("constraint_values", constraints)
        reason = f"fidelity level {last} of {self.rungs.fidelity.top}: goes on if promoted"
        self._tell_unfinished(number, TrialState.PRUNED, "stopped", reason)
        log.info("trial %d reached level %d: %s", number, last, record.recipe)
        return True

    def _point(self, values: list[float]) -> Point:
        """A build's (quality, latency, size) for the rungs, quality signed to be maximised."""
        return (self.quality.sign * values[0], values[1], values[2])


def chance(ctx: TrialContext) -> float | None:
    """The signed quality a build must beat to be told from guessing (the promotion floor)."""
    metric, data = ctx.task.metric, ctx.task.data
    outputs = ctx.task.teacher.io_shapes()[1]
    scored = metric.output if metric.output in outputs else next(iter(outputs))
    shape = outputs[scored] if len(outputs) == 1 or metric.output in outputs else ()
    classes = shape[-1] if shape else None
    value = metric.chance(data.y_train, data.y_val, classes)
    return None if value is None else metric.quality.sign * value


def chance_bound(ctx: TrialContext, teacher_quality: float) -> float | None:
    """The validation quality a candidate must beat to be on a front (constraints'
    ``user.above_chance``), in the metric's units; None where the metric has no such bound or
    the teacher itself does not beat it (then it would empty every front)."""
    signed = chance(ctx)
    if signed is None:
        return None
    sign = ctx.task.metric.quality.sign
    if sign * teacher_quality <= signed:
        log.warning(
            "the teacher's validation %s (%.4g) is not above what a constant answer scores "
            "(%.4g): candidates are not held to it",
            ctx.task.metric.name, teacher_quality, sign * signed,
        )  # fmt: skip
        return None
    return sign * signed
