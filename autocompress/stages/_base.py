"""The stage interface: one compression technique, applied to a clone, reporting what it did."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tf_keras

    from autocompress.records import Recipe, StageRecord
    from autocompress.task import TaskData


@dataclass(frozen=True)
class BuildContext:
    """What every stage may read besides its input model: the data, the teacher and the seed."""

    data: TaskData
    teacher: tf_keras.Model
    seed: int = 0
    batch_size: int = 32
    calibration_samples: int = 100


class Stage(abc.ABC):
    """One step of the candidate pipeline (see :mod:`autocompress.stages.build` for the order).

    ``applies`` says whether a recipe asks for this stage at all; ``apply`` returns a *new* model
    (the input model is never modified) and a :class:`StageRecord` of facts measured on it.
    """

    name: str

    @abc.abstractmethod
    def applies(self, recipe: Recipe) -> bool:
        """Whether this recipe asks for this stage."""

    @abc.abstractmethod
    def apply(
        self, model: tf_keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[tf_keras.Model, StageRecord]:
        """Build this stage's output from ``model`` without changing ``model``."""
