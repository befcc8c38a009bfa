"""Pruning with tfmot during fine-tuning, then strip. Three modes:

* ``unstructured``: magnitude pruning of every Conv/Dense kernel, polynomial schedule to the
  target sparsity (shrinks the zipped file; dense kernels run no faster);
* ``2:4``: two zeros in every group of four consecutive input weights (``sparsity_m_by_n``),
  the pattern sparse tensor cores exploit; kernels whose input size is not a multiple of four
  are left dense and named in the record;
* ``xnnpack``: tfmot's ``PruneForLatencyOnXNNPack`` policy, which prunes only the 1x1
  convolutions of a subgraph XNNPACK's sparse inference can run; the converter then keeps them
  sparse. A model without such a subgraph fails with the policy's reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.training import (
    clone_with_weights,
    clone_wrapping,
    excluded_layers,
    fine_tune,
    steps_per_epoch,
    tuning_params,
    val_facts,
)
from autocompress.stages.weight_facts import kernels, sparsity_facts

sparsity_api = tfmot.sparsity.keras


def is_2_4(kernel: np.ndarray) -> bool:
    """Whether every group of 4 consecutive input weights of each output has >= 2 zeros."""
    per_output = kernel.reshape(-1, kernel.shape[-1]).T  # (outputs, inputs)
    if per_output.shape[1] % 4:
        return False
    groups = per_output.reshape(per_output.shape[0], -1, 4)
    return bool(np.all(np.sum(groups == 0, axis=-1) >= 2))


def xnnpack_unsupported(model: keras.Model) -> str | None:
    """Why the XNNPACK pruning policy cannot prune ``model`` (None when it can)."""
    try:
        sparsity_api.PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return None


def _xnnpack_wrapped(model: keras.Model, schedule: object) -> keras.Model:
    try:
        return sparsity_api.prune_low_magnitude(
            clone_with_weights(model),
            pruning_schedule=schedule,
            pruning_policy=sparsity_api.PruneForLatencyOnXNNPack(),
        )
    except ValueError as exc:
        raise ValueError(
            f"no subgraph qualifies for XNNPACK sparse inference: {str(exc).splitlines()[0]}"
        ) from None


def target_sparsity(recipe: Recipe) -> float:
    """The share of weights ``recipe``'s pruning zeroes: a ``2:4`` pattern's is its 50 %
    whatever the recipe's ``sparsity`` (two recipes differing only there build one model)."""
    return 0.5 if recipe.prune_mode == "2:4" else recipe.sparsity


class Prune(Stage):
    """Prune Conv/Dense kernels to ``recipe.sparsity`` while fine-tuning."""

    name = "prune"
    epochs_field = "finetune_epochs"
    keeps_architecture = True

    def __init__(self, lr: float = 3e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.sparsity > 0.0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {
            "sparsity": target_sparsity(recipe),
            "mode": recipe.prune_mode,
            "exclude": recipe.exclude,
            **tuning_params(recipe),
        }

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
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
        skip = excluded_layers(model, recipe)
        dense: dict[str, str] = {name: "excluded" for name in skip}
        if recipe.prune_mode == "xnnpack":
            wrapped = _xnnpack_wrapped(model, schedule)
        elif recipe.prune_mode == "2:4":
            constant = sparsity_api.ConstantSparsity(
                target_sparsity(recipe), begin_step=0, frequency=frequency
            )

            def wrap_2_4(layer: keras.layers.Layer) -> keras.layers.Layer:
                inputs = int(np.prod(layer.kernel.shape[:-1]))
                if layer.name in skip:
                    return layer
                if inputs % 4:
                    dense[layer.name] = f"input size {inputs} is not a multiple of 4"
                    return layer
                return sparsity_api.prune_low_magnitude(
                    layer, pruning_schedule=constant, sparsity_m_by_n=(2, 4)
                )

            wrapped = clone_wrapping(model, wrap_2_4)
        else:
            wrapped = clone_wrapping(
                model,
                lambda layer: (
                    layer
                    if layer.name in skip
                    else sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
                ),
            )
        fit = fine_tune(
            wrapped,
            ctx,
            recipe,
            self.lr,
            callbacks=[sparsity_api.UpdatePruningStep()],
            stage=self.name,
        )
        pruned = sparsity_api.strip_pruning(wrapped)
        facts = {
            "mode": recipe.prune_mode,
            **fit.facts(),
            "target_sparsity": target_sparsity(recipe),
            **sparsity_facts(pruned),
            "left_dense": dense,
            **val_facts(pruned, ctx),
        }
        if recipe.prune_mode == "2:4":
            facts["2:4_layers"] = sorted(
                name for name, k in kernels(pruned).items() if name not in dense and is_2_4(k)
            )
        if recipe.prune_mode == "xnnpack":
            facts["xnnpack_pruned_layers"] = sorted(
                n for n, v in facts["sparsity_per_layer"].items() if v > 0
            )
        return pruned, facts
