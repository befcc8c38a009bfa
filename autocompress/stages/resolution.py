"""Input resolution: the model at a share of its input size (MobileNet's resolution multiplier),
fine-tuned on the task's images resized to it.

A convolutional network up to a global pooling has weights that do not depend on the input
size: the same layers, rebuilt for a smaller input, take the teacher's weights as they are and
compute a fraction of the multiply-adds (about the square of the resolution). A model whose
weights or output shape follow the input size (a Flatten or Reshape before a Dense layer, a
per-pixel output) cannot, and :func:`resolution_problem` says why before a search starts.

The candidate's file takes the smaller input: the application resizes its images to it
(:mod:`autocompress.data.resize`), and ``show``, ``pick``, ``export`` and the report give it.
"""

from __future__ import annotations

import json
from typing import Any

import tf_keras as keras

from autocompress.data.resize import Size, scaled_size
from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.training import fine_tune, tuning_params, val_facts


def image_shape(model: keras.Model) -> tuple[int, int, int]:
    """The (H, W, C) of the model's one image input; ValueError naming why it has none."""
    if len(model.inputs) != 1:
        raise ValueError(
            f"it has {len(model.inputs)} inputs: resolution applies to one image input"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(f"its input {shape} is not an image of fixed size (height, width, C)")
    return int(shape[0]), int(shape[1]), int(shape[2])


def input_size(model: keras.Model, resolution: float) -> Size:
    """The (height, width) a candidate of ``resolution`` takes: the model's own, scaled."""
    return scaled_size(image_shape(model), resolution)


def at_input_size(model: keras.Model, size: Size) -> keras.Model:
    """The same layers and weights, built for images of ``size``; ValueError naming the layer
    whose weights or output follow the input size."""
    config = json.loads(model.to_json())
    entries = config["config"]["layers"]
    first = next(e for e in entries if "batch_input_shape" in e["config"])
    shape = first["config"]["batch_input_shape"]
    first["config"]["batch_input_shape"] = [shape[0], size[0], size[1], shape[3]]
    for entry in entries:
        entry.pop("build_config", None)
    try:
        new = keras.models.model_from_json(json.dumps(config))
    except Exception as exc:  # a layer that cannot take the new size (Reshape, Cropping, ...)
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"it cannot be built for {size[0]}x{size[1]} inputs: {reason}") from None
    for old, fresh in zip(model.layers, new.layers):
        weights = old.get_weights()
        shapes = [w.shape for w in weights]
        if shapes != [tuple(w.shape) for w in fresh.weights]:
            raise ValueError(
                f"the weights of {type(old).__name__} {old.name} depend on the input size "
                "(a Flatten or Reshape before it): it needs a global pooling instead"
            )
        fresh.set_weights(weights)
    for before, after in zip(model.outputs, new.outputs):
        if tuple(before.shape[1:]) != tuple(after.shape[1:]):
            raise ValueError(
                f"its output {tuple(before.shape[1:])} follows the input size "
                f"({tuple(after.shape[1:])} at {size[0]}x{size[1]})"
            )
    return new


def resolution_problem(model: keras.Model) -> str | None:
    """Why ``model`` cannot run at a smaller input size, or None when it can."""
    try:
        at_input_size(model, input_size(model, 0.5))
    except ValueError as exc:
        return str(exc)
    return None


class Resolution(Stage):
    """Rebuild for ``recipe.resolution`` of the input size and fine-tune on resized images
    (the build context's data is resized already: see ``stages.build.build_candidate``)."""

    name = "resolution"
    epochs_field = "finetune_epochs"

    def __init__(self, lr: float = 3e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.resolution < 1.0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {
            "resolution": recipe.resolution,
            **tuning_params(recipe),
        }

    def architecture_params(self, recipe: Recipe) -> dict[str, object]:
        """The training does not change the architecture."""
        return {"resolution": recipe.resolution}

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        size = input_size(model, recipe.resolution)
        small = at_input_size(model, size)
        fit = fine_tune(small, ctx, recipe, self.lr, stage=self.name)
        facts = {
            "resolution": recipe.resolution,
            "input_size": f"{size[0]}x{size[1]}",
            **fit.facts(),
            **val_facts(small, ctx),
        }
        return small, facts
