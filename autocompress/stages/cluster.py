"""Weight clustering with tfmot: share ``clusters`` values per kernel, keeping zeros when pruned."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.training import (
    clone_wrapping,
    excluded_layers,
    fine_tune,
    tuning_params,
    val_facts,
)
from autocompress.stages.weight_facts import sparsity_facts, unique_weight_facts

clustering_api = tfmot.clustering.keras


class Cluster(Stage):
    """Cluster every Conv/Dense kernel to ``recipe.clusters`` centroids, then fine-tune."""

    name = "cluster"
    epochs_field = "finetune_epochs"
    keeps_architecture = True

    def __init__(self, lr: float = 1e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.clusters > 0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {
            "clusters": recipe.clusters,
            **tuning_params(recipe),
            "preserve_sparsity": recipe.sparsity > 0.0,
            "exclude": recipe.exclude,
        }

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        preserve = recipe.sparsity > 0.0
        skipped: list[str] = []
        excluded = excluded_layers(model, recipe)

        def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
            if layer.name in excluded:
                return layer
            kernel = layer.kernel.numpy()
            # k-means++ needs at least as many distinct candidate values as clusters; a tiny or
            # heavily pruned kernel has nothing to share and is left as it is (and reported).
            candidates = kernel[kernel != 0] if preserve else kernel
            if np.unique(candidates).size <= recipe.clusters:
                skipped.append(layer.name)
                layer.trainable = False  # fine-tuning would regrow its pruned weights
                return layer
            return clustering_api.cluster_weights(
                layer,
                number_of_clusters=recipe.clusters,
                cluster_centroids_init=clustering_api.CentroidInitialization.KMEANS_PLUS_PLUS,
                preserve_sparsity=preserve,
            )

        wrapped = clone_wrapping(model, wrap)
        fit = fine_tune(wrapped, ctx, recipe, self.lr, stage=self.name)
        clustered = clustering_api.strip_clustering(wrapped)
        for layer in clustered.layers:
            if layer.name in skipped:
                layer.trainable = True  # frozen only for this stage's fine-tuning
        facts = {
            "clusters": recipe.clusters,
            **fit.facts(),
            "sparsity_preserving": preserve,
            "skipped_layers": skipped,
            "excluded_layers": sorted(excluded),
            **unique_weight_facts(clustered),
            **sparsity_facts(clustered),
            **val_facts(clustered, ctx),
        }
        return clustered, facts
