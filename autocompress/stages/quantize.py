"""Quantization-aware training with tfmot, preserving sparsity / clusters from earlier stages.

Only the ``qat`` mode trains here; the post-training modes (dynamic, float16, int8) are pure
conversion settings and live in :mod:`autocompress.stages.convert`.
"""

from __future__ import annotations

from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.training import (
    clone_with_weights,
    excluded_layers,
    fine_tune,
    tuning_params,
    val_facts,
)

quant_api = tfmot.quantization.keras


class KeepFloat(quant_api.QuantizeConfig):
    """A quantize config that quantizes nothing: the layer stays float in the QAT model."""

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
        pass

    def set_quantize_activations(self, layer: keras.layers.Layer, activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def get_config(self) -> dict:
        return {}


def _annotate(layer: keras.layers.Layer, keep_float: bool) -> keras.layers.Layer:
    """Annotate a layer (of a private clone) for QAT; excluded layers get :class:`KeepFloat`."""
    if isinstance(layer, keras.layers.InputLayer):
        return layer
    config = KeepFloat() if keep_float else None
    return quant_api.quantize_annotate_layer(layer, quantize_config=config)


def unsupported_layers(model: keras.Model, scheme: Any) -> set[str]:
    """Layers the scheme's registry cannot quantize (``Rescaling`` in every scheme,
    ``Conv2DTranspose`` in the sparsity- and cluster-preserving ones): they stay float in the
    QAT model, with quantize / dequantize ops around them in the file, instead of failing the
    candidate."""
    registry = scheme.get_quantize_registry()
    out = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            supported = registry.supports(layer)
        except Exception:  # a registry that cannot even look at the layer
            supported = False
        if not supported:
            out.add(layer.name)
    return out


def qat_scheme(recipe: Recipe) -> tuple[str, object]:
    """The tfmot scheme that keeps what earlier stages achieved (clusters, sparsity)."""
    if recipe.clusters > 0:
        preserve = recipe.sparsity > 0.0
        name = "cluster+sparsity-preserving" if preserve else "cluster-preserving"
        return name, tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=preserve
        )
    if recipe.sparsity > 0.0:
        return "sparsity-preserving", quant_api.collab_opts.Default8BitPrunePreserveQuantizeScheme()
    return "default-8bit", quant_api.default_8bit.Default8BitQuantizeScheme()


class QuantizeAware(Stage):
    """Insert fake-quantization and fine-tune; the converter then emits an int8 model."""

    name = "qat"
    epochs_field = "finetune_epochs"

    def __init__(self, lr: float = 1e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.quantization == "qat"

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {
            "scheme": qat_scheme(recipe)[0],
            **tuning_params(recipe),
            "exclude": recipe.exclude,
        }

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        scheme_name, scheme = qat_scheme(recipe)
        excluded = excluded_layers(model, recipe)
        unsupported = unsupported_layers(model, scheme)
        keep = excluded | unsupported
        annotated = keras.models.clone_model(
            clone_with_weights(model),
            clone_function=lambda layer: _annotate(layer, keep_float=layer.name in keep),
        )
        with quant_api.quantize_scope({"KeepFloat": KeepFloat}):
            qat_model = quant_api.quantize_apply(annotated, scheme)
        fit = fine_tune(qat_model, ctx, recipe, self.lr, stage=self.name)
        facts = {
            "scheme": scheme_name,
            **fit.facts(),
            "excluded_layers": sorted(excluded),
            "float_unsupported": sorted(unsupported),
            **val_facts(qat_model, ctx),
        }
        return qat_model, facts
