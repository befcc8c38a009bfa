"""The weight statistics a compression stage records: how sparse its kernels are, how many
distinct values they hold (what pruning and clustering promise, measured on the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras as keras

from autocompress.stages.training import WEIGHTED_LAYERS


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """The kernel of every weighted layer, by layer name."""
    return {
        layer.name: layer.kernel.numpy()
        for layer in model.layers
        if isinstance(layer, WEIGHTED_LAYERS)
    }


def sparsity_facts(model: keras.Model) -> dict[str, Any]:
    """Measured fraction of zero kernel weights, per layer and overall."""
    ks = kernels(model)
    per_layer = {name: round(float(np.mean(k == 0)), 4) for name, k in ks.items()}
    total = sum(k.size for k in ks.values())
    zeros = sum(int(np.sum(k == 0)) for k in ks.values())
    return {"sparsity": round(zeros / total, 4) if total else 0.0, "sparsity_per_layer": per_layer}


def unique_weight_facts(model: keras.Model) -> dict[str, Any]:
    """Number of distinct kernel values per layer (what clustering bounds)."""
    per_layer = {name: int(np.unique(k).size) for name, k in kernels(model).items()}
    return {"unique_weights_per_layer": per_layer}
