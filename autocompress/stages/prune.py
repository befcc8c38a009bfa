"""Magnitude pruning with tfmot: a polynomial sparsity schedule during fine-tuning, then strip."""

from __future__ import annotations

import time

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from autocompress.records import Recipe, StageRecord
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages._keras import (
    clone_wrapping,
    fine_tune,
    sparsity_facts,
    steps_per_epoch,
    val_accuracy,
)

sparsity_api = tfmot.sparsity.keras


class Prune(Stage):
    """Prune Conv/Dense kernels to ``recipe.sparsity`` while fine-tuning."""

    name = "prune"

    def __init__(self, lr: float = 3e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.sparsity > 0.0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {"sparsity": recipe.sparsity, "epochs": recipe.finetune_epochs}

    def apply(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, StageRecord]:
        start = time.perf_counter()
        total = steps_per_epoch(ctx) * recipe.finetune_epochs
        # Update the masks ~20 times, reaching the target after 60 % of the steps, so that the
        # remaining 40 % recover accuracy at the final sparsity (the mask is then fixed).
        frequency = max(1, total // 20)
        end_step = max(frequency, int(0.6 * total) // frequency * frequency)
        schedule = sparsity_api.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=recipe.sparsity,
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
        wrapped = clone_wrapping(
            model, lambda layer: sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
        )
        fine_tune(
            wrapped,
            ctx,
            recipe.finetune_epochs,
            self.lr,
            callbacks=[sparsity_api.UpdatePruningStep()],
            stage=self.name,
        )
        pruned = sparsity_api.strip_pruning(wrapped)
        facts = {
            "target_sparsity": recipe.sparsity,
            **sparsity_facts(pruned),
            "keras_val_accuracy": round(val_accuracy(pruned, ctx), 4),
        }
        return pruned, StageRecord(self.name, time.perf_counter() - start, facts)
