"""What a Keras model file says about itself, read as plain JSON: nothing is deserialised, so
nothing in the file can run.

The loaders (:mod:`autocompress.models.loading`, :mod:`autocompress.models.keras3`) read the
stored architecture first to refuse a file that needs code, to find the image input size of an
image-folder task, and to take the loss the model was compiled with.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from autocompress.errors import InputError


def stored_config(path: Path) -> Any:
    """The architecture as stored in a ``.keras`` / ``.h5`` file (None: a SavedModel, or no
    architecture stored)."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is None:
                    return None
                return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception as exc:  # not a zip / not HDF5 / no JSON
        raise InputError(str(path), f"cannot be loaded as a Keras model: {exc}") from None
    return None  # SavedModel: graphs of TensorFlow ops, no Python code


def layers_needing_code(config: Any) -> list[str]:
    """Lambda layers and classes that are not built into Keras, anywhere in the architecture.

    The training configuration (``compile_config``: optimizer, loss, metrics) is skipped: models
    are loaded with ``compile=False``, so it is never deserialised.
    """
    import tf_keras

    builtin = set(dir(tf_keras.layers)) | {
        "Functional",
        "Sequential",
        "Model",
        "TFOpLambda",
        "SlicingOpLambda",
    }
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str) and "config" in node and isinstance(node["config"], dict):
                is_layer = "name" in node["config"] or "layers" in node["config"]
                if name == "Lambda" or (is_layer and name not in builtin):
                    found.append(f"{node['config'].get('name', '?')!r} of type {name}")
            for key, value in node.items():
                if key != "compile_config":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def compiled_loss(path: Path) -> str | dict[str, str] | None:
    """The loss the model was compiled with in its file: one Keras loss by name, or one per
    output name (None: not compiled, or a loss that is not a built-in)."""
    try:
        config = stored_config(path)
    except InputError:
        return None
    if not isinstance(config, dict):
        return None
    compiled = config.get("compile_config") or {}
    loss = compiled.get("loss") if isinstance(compiled, dict) else None
    if isinstance(loss, dict) and "class_name" not in loss:  # one loss per output name
        named = {str(k): _loss_name(v) for k, v in loss.items()}
        return named if all(v is not None for v in named.values()) else None  # type: ignore[return-value]
    return _loss_name(loss)


def _loss_name(loss: Any) -> str | None:
    """A stored loss (a name, or a serialised loss object) as a Keras loss name, if built in."""
    if isinstance(loss, dict):  # a serialised loss object
        loss = loss.get("config", {}).get("name") or loss.get("class_name")
    if not isinstance(loss, str):
        return None
    import tf_keras

    try:
        tf_keras.losses.get(loss)
    except (ValueError, TypeError):
        return None
    return loss
