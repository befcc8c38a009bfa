"""Keras 3 model configs rewritten as plain dicts for tf_keras (no Keras object involved): the
parts of :mod:`autocompress.models.keras3`'s translation that only move JSON around."""

from __future__ import annotations

from typing import Any

from autocompress.errors import InputError

# Keras 3 arguments tf_keras lacks, dropped when unset (any other value is refused).
NEW_ARGUMENTS = frozenset({"quantization_config", "input_axes", "output_axes", "lora_rank",
                           "lora_alpha", "optional"})  # fmt: skip


def renamed(functional: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """A tf_keras Functional config with layers renamed, references to them included."""

    def ref(r: list[Any]) -> list[Any]:
        return [renames.get(r[0], r[0]), *r[1:]]

    layers = []
    for layer in functional["layers"]:
        name = renames.get(layer["name"], layer["name"])
        config = {**layer["config"], "name": name} if "name" in layer["config"] else layer["config"]
        nodes = [[ref(r) for r in node] for node in layer.get("inbound_nodes", [])]
        layers.append({**layer, "name": name, "config": config, "inbound_nodes": nodes})
    return {
        **functional,
        "layers": layers,
        "input_layers": [ref(r) for r in functional["input_layers"]],
        "output_layers": [ref(r) for r in functional["output_layers"]],
    }


def sequential_as_functional(config: dict[str, Any]) -> dict[str, Any]:
    """A Sequential config as a chain of layers in functional form (tf_keras inbound nodes)."""
    entries = [dict(e) for e in config["layers"]]
    if not entries or entries[0]["class_name"] != "InputLayer":
        shape = config.get("build_input_shape")
        if shape is None:
            raise InputError(config.get("name", "?"), "a Sequential model with no input shape")
        name = f"{config['name']}_input"
        entries.insert(
            0, {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": name}}
        )
    previous = None
    for entry in entries:
        entry["name"] = entry.get("name") or entry["config"]["name"]
        entry["inbound_nodes"] = [] if previous is None else [[[previous, 0, 0, {}]]]
        previous = entry["name"]
    return {
        "name": config["name"],
        "layers": entries,
        "input_layers": [[entries[0]["name"], 0, 0]],
        "output_layers": [[previous, 0, 0]],
    }


def dtype_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("config", {}).get("name", "float32"))
    return str(value) if value else "float32"


def plain(value: Any) -> Any:
    """A serialised Keras 3 object (initializer, regularizer, constraint) in tf_keras form."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        config = value["config"]
        if isinstance(config, dict):
            config = {
                k: plain(v)
                for k, v in config.items()
                if not (k in NEW_ARGUMENTS and v in (None, False))
            }
        return {"class_name": value["class_name"], "config": config}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
