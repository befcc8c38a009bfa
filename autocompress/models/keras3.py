"""Keras 3 model files, rebuilt as tf_keras models so that every technique applies to them.

tfmot works on tf_keras (Keras 2) models only and will not support Keras 3
(tensorflow/model-optimization#1119). A ``.keras`` / ``.h5`` file saved by Keras 3 is therefore
loaded with Keras 3 itself, its architecture translated to a tf_keras config for an allow-list of
built-in layers, rebuilt with tf_keras, and given the Keras 3 weights layer by layer (by name).
A parity gate then compares the two models' outputs on the task's data: a translation that
changed what the model computes is refused, naming the first layer whose output differs.

Differences handled (Keras 3.15 -> tf_keras 2.21):

* ``InputLayer.batch_shape`` -> ``batch_input_shape``; ``dtype`` as a ``DTypePolicy`` dict -> its
  name; serialised objects (initializers, regularizers) lose their ``module`` keys and the new
  arguments tf_keras does not know when those are unset (``input_axes``, ``quantization_config``);
* ``inbound_nodes`` in the ``{"args": [...], "kwargs": {...}}`` form with ``__keras_tensor__``
  references -> tf_keras's ``[[name, node, tensor, kwargs], ...]`` lists;
* Keras 3 *operations* recorded in a functional graph (``x + 3.0``, ``x * (1 / 6)`` in
  MobileNetV3) -> ``Rescaling`` layers (tensor and scalar) or merge layers (two tensors);
* activations tf_keras lacks or defines differently -> built-in layers: ``hard_silu`` /
  ``hard_swish`` is ``x * clip(x / 6 + 0.5, 0, 1)`` (Rescaling, ReLU(max 1), Multiply); Keras 3's
  ``hard_sigmoid`` is ``clip(x / 6 + 0.5, 0, 1)`` where tf_keras's is ``clip(0.2 x + 0.5)``;
  ``silu`` -> ``swish``; ``relu6`` -> ``ReLU(max_value=6)``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress.errors import InputError
from autocompress.models.configs import (
    NEW_ARGUMENTS,
    dtype_name,
    plain,
    renamed,
    sequential_as_functional,
)
from autocompress.models.parity import _TAIL, TFLITE_HINT, check_parity
from autocompress.models.stored import stored_config

if TYPE_CHECKING:
    import tf_keras

# Layers whose Keras 3 config (after the generic rules above) means the same in tf_keras.
LAYERS = frozenset(
    {
        "InputLayer", "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D",
        "Conv2DTranspose", "BatchNormalization", "LayerNormalization", "Activation", "ReLU",
        "LeakyReLU", "PReLU", "ELU", "Softmax", "Add", "Subtract", "Multiply", "Average",
        "Maximum", "Minimum", "Concatenate", "Flatten", "Reshape", "Permute", "Dropout",
        "SpatialDropout2D", "GaussianNoise", "ZeroPadding2D", "Cropping2D", "UpSampling2D",
        "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "Rescaling", "Normalization", "Identity",
    }
)  # fmt: skip
MODELS = frozenset({"Functional", "Sequential"})
# Keras 3 operations that a functional graph may record (``x + y`` on tensors). A ``.keras`` /
# ``.h5`` file names them by the module Keras 3 defines them in, which is all the file says of
# them: this is the file format's string, not an import (no public name exists for it). The
# MobileNetV3 round trip in tests/models/test_keras3.py (its ``x + 3.0`` nodes) fails if it moves.
OPS_MODULE = "keras.src.ops"
OPERATIONS = frozenset({"Add", "Subtract", "Multiply", "Divide", "TrueDivide"})
# Activations tf_keras knows under the same name with the same meaning.
SAME_ACTIVATIONS = frozenset(
    {"linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus", "softsign",
     "gelu", "swish", "exponential", "mish"}
)  # fmt: skip
RENAMED_ACTIVATIONS = {"silu": "swish"}
EXPANDED_ACTIVATIONS = frozenset({"hard_silu", "hard_swish", "hard_sigmoid", "relu6"})


def is_keras3_file(path: Path) -> bool:
    """Whether a ``.keras`` / ``.h5`` file was saved by Keras 3 (its stored ``keras_version``)."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                version = json.loads(archive.read("metadata.json")).get("keras_version", "")
        elif path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("keras_version", "")
                version = raw.decode() if isinstance(raw, bytes) else str(raw)
        else:
            return False
    except Exception:  # not a zip / HDF5 file: the Keras 2 loader says what is wrong
        return False
    return str(version).startswith("3.")


def load_keras3(path: Path, x_check: Any) -> tf_keras.Model:
    """Load a Keras 3 file and return the equivalent tf_keras model, checked on ``x_check``.

    Raises :class:`InputError` (naming ``path``) for a layer outside the allow-list, a file Keras
    3 cannot load, or a rebuilt model whose outputs differ from the original's.
    """
    source = str(path)
    _check_allowed(source, stored_config(path))
    import keras

    try:
        original = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad or unsafe file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(source, f"Keras 3 cannot load it: {reason}") from None
    rebuilt = translate(original, source)
    check_parity(original, rebuilt, x_check, source)
    return rebuilt


def translate(original: Any, source: str = "<model>") -> tf_keras.Model:
    """A tf_keras model with the architecture and weights of the Keras 3 model ``original``."""
    import tf_keras

    kind = type(original).__name__
    if kind not in MODELS:
        raise InputError(source, f"a subclassed model ({kind}) cannot be translated; {TFLITE_HINT}")
    config = {"class_name": kind, "config": original.get_config()}
    translator = _Translator(source)
    translated = translator.model(config)
    try:
        model = tf_keras.models.model_from_json(json.dumps(translated))
    except InputError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise InputError(
            source, f"tf_keras cannot rebuild the translated model: {reason}"
        ) from None
    _copy_weights(original, model, source, translator.renamed)
    return model


def _copy_weights(
    original: Any, rebuilt: tf_keras.Model, source: str, renamed: dict[str, str] | None = None
) -> None:
    """Copy weights layer by layer, by name (``renamed``: the top-level layers renamed after the
    keys of dict inputs / outputs), into nested models too."""
    renamed = renamed or {}
    for layer in original.layers:
        weights = layer.get_weights()
        target = rebuilt.get_layer(renamed.get(layer.name, layer.name))
        if type(layer).__name__ in MODELS:
            _copy_weights(layer, target, source)
            continue
        if not weights:
            continue
        try:
            target.set_weights([np.asarray(w) for w in weights])
        except ValueError as exc:
            reason = str(exc).splitlines()[0][:160]
            raise InputError(
                source, f"layer {layer.name!r}: weights do not fit: {reason}"
            ) from None


def _check_allowed(source: str, config: Any) -> None:
    """Refuse, before anything is deserialised, a layer this module cannot translate."""
    if not isinstance(config, dict):
        raise InputError(source, "holds no model architecture")
    top = config.get("class_name")
    if top not in MODELS:
        raise InputError(source, f"a subclassed model ({top}) cannot be translated; {TFLITE_HINT}")

    def walk(model_config: dict[str, Any]) -> None:
        for entry in model_config.get("layers", []):
            name = entry.get("class_name")
            layer = entry.get("config", {}).get("name", entry.get("name", "?"))
            is_op = str(entry.get("module", "")).startswith(OPS_MODULE)
            if name in MODELS:
                walk(entry.get("config", {}))
            elif (is_op and name not in OPERATIONS) or (not is_op and name not in LAYERS):
                what = "operation" if is_op else "layer"
                raise InputError(
                    source,
                    f"{what} {layer!r} of type {name} cannot be translated to tf_keras (which "
                    f"tfmot needs); {TFLITE_HINT}",
                )

    walk(config.get("config", {}))


class _Translator:
    """Keras 3 config -> tf_keras config, one model (and its nested models) at a time."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.renamed: dict[str, str] = {}  # top-level layer -> the dict key it now carries

    # -- models ------------------------------------------------------------------------------
    def model(self, entry: dict[str, Any], top: bool = True) -> dict[str, Any]:
        """A model entry as a tf_keras Functional config (a Sequential becomes a chain)."""
        config = entry["config"]
        if entry["class_name"] == "Sequential":
            config = sequential_as_functional(config)
        functional = self._functional(config)
        if top:
            functional = self._named_by_keys(config, functional)
        elif any(isinstance(config.get(k), dict) for k in ("input_layers", "output_layers")):
            raise InputError(
                self.source,
                f"nested model {config.get('name')!r} has dict inputs or outputs, which the "
                f"translation takes only at the top level; {TFLITE_HINT}",
            )
        return {"class_name": "Functional", "config": functional}

    def _named_by_keys(self, config: dict[str, Any], functional: dict[str, Any]) -> dict[str, Any]:
        """Dict inputs / outputs (``keras.Model({"image": x}, {"cls": c, "box": b})``) as lists
        in the dict's order whose layers carry the keys as names: the rest of the package
        knows a model's inputs and outputs by layer name (tf_keras's ``input_names`` /
        ``output_names``, the converted file's signature), and the keys are the names the
        user's data, metric and application use."""
        wanted: dict[str, str] = {}  # tf_keras layer -> key
        for kind in ("input_layers", "output_layers"):
            refs = config.get(kind)
            if not isinstance(refs, dict):
                continue
            for key, ref, end in zip(refs, refs.values(), functional[kind]):
                layer = end[0]
                if end[2] != 0 or wanted.get(layer, key) != key:
                    raise InputError(
                        self.source,
                        f"{kind.split('_')[0]} {key!r} is not the only output of layer "
                        f"{ref[0]!r}: the translation names a layer after its dict key; "
                        f"{TFLITE_HINT}",
                    )
                wanted[layer] = str(key)
        if not wanted:
            return functional
        taken = {layer["name"] for layer in functional["layers"]} - set(wanted)
        clashes = {key for key in wanted.values() if key in taken}
        renames = dict(wanted)
        for name in sorted(clashes):  # a layer already called like a key makes way for it
            n = 1
            while f"{name}_{n}" in taken or f"{name}_{n}" in wanted.values():
                n += 1
            renames[name] = f"{name}_{n}"
            taken.add(f"{name}_{n}")
        self.renamed = {old: new for old, new in renames.items() if old != new}
        return renamed(functional, self.renamed)

    def _functional(self, config: dict[str, Any]) -> dict[str, Any]:
        layers: list[dict[str, Any]] = []
        alias: dict[str, str] = {}  # Keras 3 layer name -> tf_keras layer producing its output
        nested: set[str] = set()  # nested models: in tf_keras their node 0 is their own graph
        for entry in config["layers"]:
            name = entry.get("name") or entry["config"]["name"]
            nodes = [
                self._node(node, alias, nested, name) for node in entry.get("inbound_nodes", [])
            ]
            if entry["class_name"] in MODELS:
                nested.add(name)
            expanded = self._expand(entry)
            for position, (_, layer) in enumerate(expanded):
                inputs = layer.pop("_inputs", None)
                if position == 0:
                    layer["inbound_nodes"] = nodes
                    continue
                if len(nodes) > 1:
                    raise InputError(self.source, f"layer {name!r} is shared; expand it first")
                refs: list[list[Any]] = []
                for ref in inputs or [expanded[position - 1][0]]:
                    refs.extend(nodes[0] if ref == "$in" else [[ref, 0, 0, {}]])
                layer["inbound_nodes"] = [refs]
            layers.extend(layer for _, layer in expanded)
            alias[name] = expanded[-1][0]

        def ends(refs: Any) -> list[list[Any]]:
            if isinstance(refs, dict):  # dict inputs / outputs: in the dict's order
                refs = list(refs.values())
            refs = [refs] if refs and isinstance(refs[0], str) else refs
            return [[alias.get(r[0], r[0]), r[1] + (r[0] in nested), r[2]] for r in refs]

        return {
            "name": config["name"],
            "layers": layers,
            "input_layers": ends(config["input_layers"]),
            "output_layers": ends(config["output_layers"]),
        }

    def _node(
        self, node: Any, alias: dict[str, str], nested: set[str], name: str
    ) -> list[list[Any]]:
        """One inbound node in tf_keras form: a list of [layer, node, tensor, kwargs]."""
        if isinstance(node, list):  # tf_keras form already (a chained Sequential)
            return [[alias.get(r[0], r[0]), *r[1:]] for r in node]
        refs: list[list[Any]] = []

        def collect(value: Any) -> None:
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                source, index, tensor = value["config"]["keras_history"]
                index += 1 if source in nested else 0
                refs.append([alias.get(source, source), index, tensor, {}])
            elif isinstance(value, list | tuple):
                for item in value:
                    collect(item)

        collect(node.get("args", []))
        if not refs:
            raise InputError(self.source, f"layer {name!r} has no tensor input")
        return refs

    # -- layers ------------------------------------------------------------------------------
    def _expand(self, entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The tf_keras layer(s) standing for one Keras 3 layer entry, in order: the first keeps
        the original name (and the weights) and takes the original inputs, the last produces
        the output; ``_inputs`` names a later layer's inputs ("$in": the original ones)."""
        kind = entry["class_name"]
        name = entry.get("name") or entry["config"]["name"]
        if kind in MODELS:
            return [(name, {**self.model(entry, top=False), "name": name})]
        if str(entry.get("module", "")).startswith(OPS_MODULE):
            return [self._operation(entry, name)]
        config = self._layer_config(kind, entry["config"], name)
        if kind == "InputLayer":
            return [(name, {"class_name": kind, "config": config, "name": name})]
        activation = config.get("activation")
        if kind == "Activation":
            return self._activation(activation, name, config.get("dtype", "float32"))
        layer = {"class_name": kind, "config": config, "name": name}
        if isinstance(activation, str) and activation in EXPANDED_ACTIVATIONS:
            config["activation"] = "linear"
            tail = self._activation(activation, f"{name}{_TAIL}", config.get("dtype", "float32"))
            tail[0][1]["_inputs"] = [name]
            if len(tail) == 3:  # x * gate(x): x is this layer's own output
                tail[2][1]["_inputs"] = [name, tail[1][0]]
            return [(name, layer), *tail]
        return [(name, layer)]

    def _activation(self, activation: Any, name: str, dtype: str) -> list:
        """An Activation layer, or the built-in layers that compute it in tf_keras."""
        base = {"dtype": dtype, "trainable": True}

        def layer(kind: str, lname: str, **config: Any) -> tuple[str, dict[str, Any]]:
            entry = {"class_name": kind, "config": {"name": lname, **base, **config}}
            return lname, {**entry, "name": lname}

        if activation == "relu6":
            return [layer("ReLU", name, max_value=6.0)]
        if activation in ("hard_sigmoid", "hard_silu", "hard_swish"):
            # clip(x / 6 + 0.5, 0, 1) == relu6(x + 3) / 6
            gate_name = name if activation == "hard_sigmoid" else f"{name}_gate"
            scale = layer("Rescaling", f"{name}_scale", scale=1.0 / 6.0, offset=0.5)
            gate = layer("ReLU", gate_name, max_value=1.0)
            if activation == "hard_sigmoid":
                return [scale, gate]
            multiply = layer("Multiply", name)
            multiply[1]["_inputs"] = ["$in", gate[0]]
            return [scale, gate, multiply]
        activation = RENAMED_ACTIVATIONS.get(activation, activation)
        if not isinstance(activation, str) or activation not in SAME_ACTIVATIONS:
            raise InputError(
                self.source, f"layer {name!r}: activation {activation!r} has no tf_keras equivalent"
            )
        return [layer("Activation", name, activation=activation)]

    def _operation(self, entry: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
        """A Keras 3 operation node: tensor op scalar -> Rescaling; tensor op tensor -> merge."""
        kind = entry["class_name"]
        nodes = entry.get("inbound_nodes") or [{}]
        args = nodes[0].get("args", []) if isinstance(nodes[0], dict) else []
        scalars = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        tensors = [a for a in args if isinstance(a, dict)]
        base = {"name": name, "dtype": "float32", "trainable": True}
        if len(nodes) == 1 and len(tensors) == 1 and len(scalars) == 1:
            c = float(scalars[0])
            tensor_first = isinstance(args[0], dict)
            rescale = {
                "Add": (1.0, c),
                "Multiply": (c, 0.0),
                "Subtract": (1.0, -c) if tensor_first else (-1.0, c),
                "Divide": (1.0 / c, 0.0) if tensor_first and c else None,
                "TrueDivide": (1.0 / c, 0.0) if tensor_first and c else None,
            }[kind]
            if rescale is not None:
                config = {**base, "scale": rescale[0], "offset": rescale[1]}
                return name, {"class_name": "Rescaling", "config": config, "name": name}
        if len(tensors) == 2 and not scalars and kind in ("Add", "Subtract", "Multiply"):
            return name, {"class_name": kind, "config": base, "name": name}
        raise InputError(
            self.source, f"operation {name!r} ({kind} of {args!r:.80}) cannot be translated"
        )

    def _layer_config(self, kind: str, config: dict[str, Any], name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in config.items():
            if key in NEW_ARGUMENTS:
                if value not in (None, False):
                    raise InputError(
                        self.source,
                        f"layer {name!r}: Keras 3 option {key}={value!r} has no tf_keras "
                        "equivalent",
                    )
                continue
            out[key] = plain(value)
        if "dtype" in out:
            out["dtype"] = dtype_name(config["dtype"])
        if kind == "InputLayer" and "batch_shape" in out:
            out["batch_input_shape"] = out.pop("batch_shape")
        activation = out.get("activation")
        if isinstance(activation, dict):  # a serialised built-in function
            activation = activation.get("config", activation.get("class_name"))
            out["activation"] = activation
        if isinstance(activation, str):
            out["activation"] = RENAMED_ACTIVATIONS.get(activation, activation)
        if kind != "Activation" and isinstance(out.get("activation"), str):
            act = out["activation"]
            if act not in SAME_ACTIVATIONS and act not in EXPANDED_ACTIVATIONS:
                raise InputError(
                    self.source, f"layer {name!r}: activation {act!r} has no tf_keras equivalent"
                )
        return out
