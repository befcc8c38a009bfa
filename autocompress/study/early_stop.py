"""Stop hopeless candidates early, on top of a multi-objective study (Optuna's pruners are
single-objective only).

The rule, in one sentence: a candidate stops after the first epoch of any fine-tuning stage when
its validation quality (the task's metric) is more than ``margin`` (in the metric's units) worse
than that of a front member that is at least as compressed in every dimension, each by the order
its declaration gives (:func:`autocompress.recipe.at_least_as_compressed`: same quantization
mode, student no wider, sparsity no lower, clusters no more, ...) -- such a member is as small and
as fast, so the candidate could only join the front by gaining more than ``margin`` in the
remaining epochs.

The driver builds an :class:`EarlyStop` from the current front when it submits a trial; the
trial's fine-tuning stages call :meth:`EarlyStop.reason` through ``BuildContext.gate``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.recipe import Recipe, at_least_as_compressed

DEFAULT_MARGIN = 0.10


@dataclass(frozen=True)
class FrontMember:
    """What the rule needs to know of one front member."""

    trial: int
    recipe: Recipe
    quality: float


def front_members(front: pd.DataFrame, quality: Quality) -> tuple[FrontMember, ...]:
    """The rows of a front table (:func:`autocompress.run.tables.front_frame`) as members."""
    names = {f.name for f in dataclasses.fields(Recipe)}
    return tuple(
        FrontMember(
            trial=int(row["trial"]),
            recipe=Recipe.from_dict({k: v for k, v in row.items() if k in names}),
            quality=float(row[quality.column]),
        )
        for row in front.to_dict("records")
    )


@dataclass(frozen=True)
class EarlyStop:
    """The front as the driver saw it when the trial started, the margin and the metric."""

    front: tuple[FrontMember, ...]
    margin: float = DEFAULT_MARGIN
    metric: Quality = DEFAULT_QUALITY

    def for_recipe(self, recipe: Recipe) -> EarlyStop:
        """The rule for candidates of ``recipe`` alone: only the best front member at least as
        compressed as it can stop one (a worse member's drop is smaller), so that member is all
        a trial needs to carry; the whole front grows with the study."""
        q = self.metric
        for member in sorted(self.front, key=lambda m: -q.sign * m.quality):
            if at_least_as_compressed(member.recipe, recipe):
                return EarlyStop((member,), self.margin, self.metric)
        return EarlyStop((), self.margin, self.metric)

    def reason(self, recipe: Recipe, quality: float, stage: str) -> str | None:
        """Why a candidate with ``quality`` after its first ``stage`` epoch should stop, if it
        should; None to go on."""
        q = self.metric
        for member in sorted(self.front, key=lambda m: -q.sign * m.quality):
            if q.drop(member.quality, quality) > self.margin and at_least_as_compressed(
                member.recipe, recipe
            ):
                worse = "below" if q.maximize else "above"
                return (
                    f"hopeless: {q.name} {quality:.4f} after 1 {stage} epoch is more than "
                    f"{self.margin:g} {worse} front trial {member.trial} "
                    f"({member.quality:.4f}), which is at least as compressed"
                )
        return None
