"""Low-rank factorisation of Dense layers and 1x1 convolutions: W (m x n) becomes two layers of
rank r from a truncated SVD, W ~ (U_r sqrt(S_r)) (sqrt(S_r) V_r^T), then fine-tuning.

A 1x1 convolution is a Dense layer applied at every pixel: its kernel (1, 1, m, n) factorises the
same way into a 1x1 convolution to r channels (with the original stride) and one back to n (with
the bias and activation). r is the smallest rank keeping ``recipe.rank_energy`` of the squared
singular values. A layer is factorised only where that saves parameters (r (m + n) < m n); the
others, and excluded layers, stay as they are and the record says why. Larger kernels, grouped,
depthwise and separable convolutions are left alone.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.training import Fit, excluded_layers, fine_tune, tuning_params, val_facts

SUFFIX = "_lowrank"


def rank_for(singular: np.ndarray, energy: float) -> int:
    """The smallest rank whose singular values hold ``energy`` of the total squared energy."""
    share = np.cumsum(singular**2) / np.sum(singular**2)
    return int(min(len(singular), np.searchsorted(share, energy - 1e-12) + 1))


def factorize(
    model: keras.Model,
    energy: float,
    skip: set[str] | frozenset[str] = frozenset(),
    force: bool = False,
) -> tuple[keras.Model, dict[str, Any], dict[str, str]]:
    """A new model with Dense layers factorised; (model, ranks by layer, layers left and why).

    ``force`` factorises even where it saves nothing (used to check the rewrite at full rank).
    """
    plans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ranks: dict[str, Any] = {}
    left: dict[str, str] = {}
    for layer in model.layers:
        if not factorable(layer):
            continue
        if layer.name in skip:
            left[layer.name] = "excluded"
            continue
        kernel = layer.kernel.numpy()
        m, n = kernel.shape[-2:]
        u, s, vt = np.linalg.svd(kernel.reshape(m, n), full_matrices=False)
        r = rank_for(s, energy)
        if r * (m + n) >= m * n and not force:
            left[layer.name] = f"rank {r} of {min(m, n)} saves no parameters"
            continue
        root = np.sqrt(s[:r])
        lead = kernel.shape[:-2]  # () for Dense, (1, 1) for a 1x1 convolution
        plans[layer.name] = (
            (u[:, :r] * root).reshape(*lead, m, r),
            (root[:, None] * vt[:r]).reshape(*lead, r, n),
        )
        ranks[layer.name] = {"rank": r, "full_rank": min(m, n), "params": [m * n, r * (m + n)]}
    if not plans:
        return model, ranks, left
    config = json.loads(model.to_json())
    layers = config["config"]["layers"]
    rewritten = []
    for entry in layers:
        name = entry["config"]["name"]
        if name in plans:
            first = copy.deepcopy(entry)
            width = int(plans[name][0].shape[-1])
            first["config"].update(name=name + SUFFIX, activation="linear", use_bias=False)
            if "units" in first["config"]:
                first["config"]["units"] = width
            else:  # 1x1 convolution: the first keeps the stride, the second runs at stride 1
                first["config"]["filters"] = width
                entry["config"]["strides"] = [1, 1]
            if "name" in first:  # functional: the new layer takes the old one's inputs
                first["name"] = name + SUFFIX
                entry["inbound_nodes"] = [[[name + SUFFIX, 0, 0, {}]]]
            first.pop("build_config", None)
            entry.pop("build_config", None)
            rewritten.append(first)
        rewritten.append(entry)
    config["config"]["layers"] = rewritten
    new = keras.models.model_from_json(json.dumps(config))
    old = {layer.name: layer for layer in model.layers}
    for layer in new.layers:
        if layer.name.endswith(SUFFIX) and layer.name[: -len(SUFFIX)] in plans:
            layer.set_weights([plans[layer.name[: -len(SUFFIX)]][0]])
        elif layer.name in plans:
            bias = old[layer.name].get_weights()[1:]  # the bias, when the layer has one
            layer.set_weights([plans[layer.name][1], *bias])
        elif layer.weights:
            layer.set_weights([w.copy() for w in old[layer.name].get_weights()])
    return new, ranks, left


def factorable(layer: keras.layers.Layer) -> bool:
    """Dense layers, and plain 1x1 convolutions (no groups, channels last)."""
    if type(layer) is keras.layers.Dense:
        return True
    if type(layer) is not keras.layers.Conv2D:  # not depthwise / separable subclasses either
        return False
    return (
        tuple(layer.kernel_size) == (1, 1)
        and getattr(layer, "groups", 1) == 1
        and layer.data_format == "channels_last"
    )


class LowRank(Stage):
    """Factorise Dense layers and 1x1 convolutions to the rank holding ``recipe.rank_energy``,
    then fine-tune."""

    name = "lowrank"
    epochs_field = "finetune_epochs"

    def __init__(self, lr: float = 3e-4) -> None:
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.rank_energy < 1.0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return {
            "energy": recipe.rank_energy,
            "layers": "dense+conv1x1",  # what is factorised: outputs of older versions differ
            "exclude": recipe.exclude,
            **tuning_params(recipe),
        }

    def architecture_params(self, recipe: Recipe) -> dict[str, object]:
        """The training does not change the architecture."""
        return {"energy": recipe.rank_energy, "layers": "dense+conv1x1", "exclude": recipe.exclude}

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        factored, ranks, left = factorize(
            model, recipe.rank_energy, skip=excluded_layers(model, recipe)
        )
        if factored is model:  # nothing to factorise: a clone, so the input stays untouched
            factored = keras.models.clone_model(model)
            factored.set_weights([w.copy() for w in model.get_weights()])
        fit = Fit()
        if ranks:
            fit = fine_tune(factored, ctx, recipe, self.lr, stage=self.name)
        facts = {
            "energy": recipe.rank_energy,
            **fit.facts(),
            "ranks": ranks,
            "left_full_rank": left,
            "params_before": int(model.count_params()),
            "params_after": int(factored.count_params()),
            **val_facts(factored, ctx),
        }
        return factored, facts
