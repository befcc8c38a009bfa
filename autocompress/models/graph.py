"""The layer graph of a tf_keras model, read from its public config.

tf_keras has no public accessor for the layers feeding a layer or for the layer behind a model
output (``layer._inbound_nodes`` and ``tensor._keras_history`` are private). ``Model.get_config``
holds the same graph as JSON -- each layer's ``inbound_nodes`` and the model's
``output_layers`` in a Functional model, the order of the layers in a Sequential one -- and is
what ``model_from_json`` rebuilds from, so it is stable across versions. This module is the one
reader of it (``tests/models/test_graph.py`` checks it on the graphs the stages handle).
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras


def inbound_names(model: keras.Model) -> dict[str, list[str]]:
    """The names of the layers feeding each layer (its first call), by layer name; an input
    layer has none."""
    config = model.get_config()
    layers = config.get("layers", [])
    if isinstance(model, keras.Sequential) or not all("inbound_nodes" in e for e in layers):
        names = [e["config"]["name"] for e in layers]
        return {name: names[i - 1 : i] for i, name in enumerate(names)}
    out: dict[str, list[str]] = {}
    for entry in layers:
        nodes = entry["inbound_nodes"]
        out[entry["name"]] = [_layer_of(ref) for ref in nodes[0]] if nodes else []
    return out


def output_names(model: keras.Model) -> list[str]:
    """The layer behind each model output, in output order."""
    config = model.get_config()
    refs = config.get("output_layers")
    if refs is None:  # a Sequential model: its last layer
        return [model.layers[-1].name]
    if refs and isinstance(refs[0], str):  # one output written as one reference
        refs = [refs]
    return [_layer_of(ref) for ref in refs]


def _layer_of(ref: Any) -> str:
    """The layer name of a ``[name, node_index, tensor_index, ...]`` reference."""
    return str(ref[0])
