"""The stage interface: one compression technique, applied to a clone, reporting what it did."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autocompress.metrics import ACCURACY, Metric
from autocompress.records import record_since

if TYPE_CHECKING:
    import tf_keras

    from autocompress.data.arrays import Inputs
    from autocompress.recipe import Recipe
    from autocompress.records import StageRecord
    from autocompress.task import TaskData


@dataclass(frozen=True)
class BuildContext:
    """What every stage may read besides its input model: the data, the teacher and the seed."""

    data: TaskData
    teacher: tf_keras.Model
    seed: int = 0
    batch_size: int = 32
    calibration_samples: int = 100
    # Integer inputs and outputs for post-training int8 / int16x8 files (the Edge TPU needs
    # them); otherwise the quantized files keep float inputs and outputs.
    integer_io: bool = False
    # Layer patterns, most sensitive to int8 first (see autocompress.litert.sensitivity): a
    # recipe's keep_sensitive keeps the first k float.
    sensitive: tuple[str, ...] = ()
    # Called with (validation quality in the task's metric, stage name) after the first epoch
    # of every fine-tuning stage; a returned reason stops the candidate (see
    # autocompress.study.early_stop).
    gate: Callable[[float, str], str | None] | None = None
    # The task's quality measure and its Keras loss name (None: chosen from the metric).
    metric: Metric = ACCURACY
    loss: str | None = None
    # Each stage's Keras-side validation quality as a fact (``keras_val_<metric>``).
    keras_validation: bool = True
    # The full-size training inputs where ``data`` holds them resized (a recipe's resolution
    # below 1.0, :mod:`autocompress.data.resize`): what the teacher's outputs are computed on.
    teacher_x_train: Inputs | None = None
    # A finishing run's patience: every training stops after this many epochs without a better
    # validation quality and keeps its best epoch (0: every epoch runs, the last is kept).
    patience: int = 0

    def teacher_inputs(self) -> Inputs:
        """The training inputs as the teacher takes them (same samples, same order)."""
        return self.data.x_train if self.teacher_x_train is None else self.teacher_x_train


class CandidateStopped(Exception):
    """Raised inside a stage when ``BuildContext.gate`` judges the candidate hopeless."""


class Stage(abc.ABC):
    """One step of the candidate pipeline (see :mod:`autocompress.stages.build` for the order).

    ``applies`` says whether a recipe asks for this stage at all; ``build`` returns a *new* model
    (the input model is never modified) and the facts measured on it; :meth:`apply` times it and
    makes the :class:`StageRecord`. ``cache_params`` names the recipe values the output depends
    on: trials that agree on them (and on every earlier stage) share one cached output.
    """

    name: str
    # The recipe field holding this stage's training epochs (None: the stage does not train),
    # and the fewest epochs it can run: 0 is a calibration (see ``training.fine_tune``); a student
    # trained from scratch needs 1. A multi-fidelity search scales these epochs per level.
    epochs_field: str | None = None
    min_epochs: int = 0
    # Whether a multi-fidelity level may train this stage for a share of its epochs. Off where
    # a short run says nothing of the full one: a stage is then trained in full at every level.
    scaled_by_levels: bool = True
    # Whether the output has its input's architecture (only weights change): then its float
    # file is the input architecture's, refilled (see autocompress.litert.refill).
    keeps_architecture: bool = False

    @abc.abstractmethod
    def applies(self, recipe: Recipe) -> bool:
        """Whether this recipe asks for this stage."""

    @abc.abstractmethod
    def build(
        self, model: tf_keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[tf_keras.Model, dict[str, Any]]:
        """Build this stage's output from ``model`` without changing ``model``; return it with
        the facts measured on it."""

    def apply(
        self, model: tf_keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[tf_keras.Model, StageRecord]:
        """:meth:`build`, timed, with its :class:`StageRecord`."""
        start = time.perf_counter()
        output, facts = self.build(model, recipe, ctx)
        return output, record_since(self.name, start, facts)

    def cache_params(self, recipe: Recipe) -> dict[str, Any]:
        """The recipe values this stage's output depends on (default: all of them)."""
        return recipe.to_dict()

    def architecture_params(self, recipe: Recipe) -> dict[str, Any]:
        """The recipe values the output's architecture depends on (default: all of them):
        trials that agree on them share a float-file template."""
        return self.cache_params(recipe)

    def shorter(self, recipe: Recipe) -> list[tuple[int, dict[str, Any]]]:
        """Shorter trainings this stage can continue from, longest first: (epochs done, the
        ``cache_params`` of that output). Default none; a stage that offers some implements
        :meth:`continue_build`. A candidate promoted to a higher fidelity level continues from
        its lower level's output instead of training from scratch."""
        return []

    def continue_build(
        self, done: tf_keras.Model, epochs_done: int, recipe: Recipe, ctx: BuildContext
    ) -> tuple[tf_keras.Model, dict[str, Any]]:
        """Train ``done`` (this stage's output after ``epochs_done`` epochs) to the recipe's."""
        raise NotImplementedError(f"stage {self.name} cannot continue a shorter training")

    def apply_continued(
        self, done: tf_keras.Model, epochs_done: int, recipe: Recipe, ctx: BuildContext
    ) -> tuple[tf_keras.Model, StageRecord]:
        """:meth:`continue_build`, timed (only the added epochs), with its record."""
        start = time.perf_counter()
        output, facts = self.continue_build(done, epochs_done, recipe, ctx)
        return output, record_since(self.name, start, {**facts, "continued_from": epochs_done})
