"""Float files without the converter: a converted file of the same architecture, refilled.

The TF converter's graph passes cost 13-22 s on a MobileNetV2 whatever the weights, and pruning
and clustering keep the teacher's architecture, as does every student, channel-pruned or
low-rank model of an architecture converted before. Their float files differ from that earlier
file only in the bytes of the weight buffers: same ops, same tensors (names, shapes, dtypes).

A :class:`Template` is that earlier file with a map from each of its float weight tensors to
what the Keras model holds (:func:`sources`): a kernel in the file's layout (OHWI for a
convolution, ``(1, H, W, C*M)`` for a depthwise one, ``(out, in)`` for a dense layer), or that
kernel and its bias with the BatchNormalization after it folded in, as the converter folds it
(``kernel * gamma / sqrt(var + eps)``, ``(bias - mean) * scale + beta``). The map is found by
value on the model the file was converted from, and a tensor is mapped only where exactly one
source matches it. :func:`refill` writes a new model's sources into a copy of the file and
then proves it: the refilled file must reproduce the Keras model's outputs on real samples as
closely as the converter's own file reproduced its model's. Anything else (another
architecture, an ambiguous map, outputs that disagree) returns the reason, and the caller runs
the converter.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tf_keras as keras

    from autocompress.data.arrays import Arrays

# How closely a source must equal a tensor of the converter's file to be its origin (relative
# to the tensor's largest value: the converter folds BatchNorm in float32, in its own order).
MATCH_TOLERANCE = 1e-4
# A refilled file passes when its outputs are within this factor of the converter's own error
# on its model, or within ERROR_FLOOR of the outputs' scale (float32 round-off).
ERROR_FACTOR = 10.0
ERROR_FLOOR = 1e-5
# Samples the proof runs on.
PROOF_SAMPLES = 8


@dataclass(frozen=True)
class Template:
    """A converted float file, the architecture it belongs to, and its weight map."""

    architecture: str  # see :func:`architecture_digest`
    tflite: bytes
    slots: tuple[tuple[int, str], ...]  # (buffer index, source name) per mapped weight tensor
    error: float  # relative output error of the converter's file on its own model

    def encode(self) -> bytes:
        """One blob (``.npz``, no pickled objects), for the stage cache."""
        buffer = io.BytesIO()
        meta = {"architecture": self.architecture, "slots": self.slots, "error": self.error}
        np.savez(
            buffer,
            meta_json=np.array(json.dumps(meta)),
            tflite=np.frombuffer(self.tflite, np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def decode(cls, blob: bytes) -> Template | None:
        """The template in ``blob``; None where it is unreadable (the converter then runs)."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta_json"]))
                tflite = npz["tflite"].tobytes()
            slots = tuple((int(b), str(s)) for b, s in meta["slots"])
            return cls(str(meta["architecture"]), tflite, slots, float(meta["error"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None


def architecture_digest(model: keras.Model) -> str:
    """Identifies the model's architecture (its JSON config: layers, shapes, names), not its
    weights; equal digests convert to the same graph."""
    return hashlib.sha256(model.to_json().encode()).hexdigest()[:32]


def _flat_layers(model: keras.Model) -> Iterator[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.weights:  # a nested model: its layers
            yield from _flat_layers(layer)
        else:
            yield layer


def _kernel_layout(layer: Any) -> tuple[np.ndarray, int] | None:
    """The layer's kernel as the converted file holds it, and the axis of its output channels;
    None for a layer without such a kernel."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        return layer.kernel.numpy().transpose(3, 0, 1, 2), 0
    if kind == "DepthwiseConv2D":
        k = layer.depthwise_kernel.numpy()
        return k.reshape(1, k.shape[0], k.shape[1], -1), 3
    if kind == "Dense":
        return layer.kernel.numpy().T, 0
    if kind == "Conv2DTranspose":
        return layer.kernel.numpy().transpose(2, 0, 1, 3), 0
    return None


def _bn_affine(bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inference-time BatchNormalization as ``x * scale + offset``."""
    mean = bn.moving_mean.numpy().astype(np.float64)
    var = bn.moving_variance.numpy().astype(np.float64)
    gamma = bn.gamma.numpy() if bn.gamma is not None else np.ones_like(mean)
    beta = bn.beta.numpy() if bn.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _consumers(model: keras.Model) -> dict[str, list[str]]:
    """The layers reading each layer's output, from this model's own config (a layer object
    may also sit in other models, whose nodes it then keeps too)."""
    out: dict[str, list[str]] = {}
    names = [layer.name for layer in model.layers]
    config = model.get_config()
    layers = config.get("layers", []) if isinstance(config, dict) else []
    if not layers or "inbound_nodes" not in layers[0]:  # Sequential: a chain
        return {a: [b] for a, b in zip(names, names[1:])}
    for layer in layers:
        for node in layer["inbound_nodes"]:
            for inbound in node if isinstance(node, list) else []:
                out.setdefault(str(inbound[0]), []).append(layer["config"]["name"])
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.weights:
            out.update(_consumers(layer))
    return out


def _next_batch_norm(layer: Any, model: keras.Model, consumers: dict[str, list[str]]) -> Any:
    """The BatchNormalization that alone reads ``layer``'s linear output (the converter folds
    it into the layer's kernel and bias), if any."""
    if getattr(layer, "activation", None) is not None and layer.activation.__name__ != "linear":
        return None
    after = consumers.get(layer.name, [])
    if len(after) != 1:
        return None
    bn = _find(model, after[0])
    if type(bn).__name__ != "BatchNormalization":
        return None
    axis = bn.axis[0] if isinstance(bn.axis, list | tuple) else bn.axis
    return bn if axis in (-1, len(bn.input_shape) - 1) else None


def _find(model: keras.Model, name: str) -> Any:
    return next((layer for layer in _flat_layers(model) if layer.name == name), None)


def sources(model: keras.Model) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Every array of the converted file that the model's weights determine, by name, in the
    file's layout, with the layer names it comes from (tensor names in the file carry them).

    A source of a layer followed by BatchNormalization exists twice: folded (as the converter
    does where it can) and plain (with the BatchNorm's own ``scale`` / ``offset``)."""
    out: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    consumers = _consumers(model)
    for layer in _flat_layers(model):
        if not layer.weights:
            continue
        kernel = _kernel_layout(layer)
        bias = layer.bias.numpy() if getattr(layer, "bias", None) is not None else None
        if kernel is not None:
            k, axis = kernel
            out[f"{layer.name}:kernel"] = (k, (layer.name,))
            if bias is not None:
                out[f"{layer.name}:bias"] = (bias, (layer.name,))
            bn = _next_batch_norm(layer, model, consumers)
            if bn is not None:
                scale, offset = _bn_affine(bn)
                shape = [1] * k.ndim
                shape[axis] = -1
                names = (layer.name, bn.name)
                out[f"{layer.name}+{bn.name}:kernel"] = (k * scale.reshape(shape), names)
                if bias is not None:  # (without one, the folded bias is the BatchNorm's offset)
                    out[f"{layer.name}+{bn.name}:bias"] = (bias * scale + offset, names)
        elif type(layer).__name__ == "BatchNormalization":
            scale, offset = _bn_affine(layer)
            out[f"{layer.name}:scale"] = (scale, (layer.name,))
            out[f"{layer.name}:offset"] = (offset, (layer.name,))
        else:  # any other weight, as Keras holds it
            for i, weight in enumerate(layer.weights):
                out[f"{layer.name}:w{i}"] = (weight.numpy(), (layer.name,))
    return out


def _buffers(tflite: bytes) -> Iterator[tuple[int, int, str, tuple[int, ...], int, int, int]]:
    """(tensor index, buffer index, tensor name, shape, tensor type, data start, data length)
    of every constant tensor of the main subgraph whose data lie in the file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(tflite, 0)
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.Offset() > 0:  # data outside the flatbuffer (> 2 GB files)
            continue
        field = buffer._tab.Offset(4)  # the ``data`` vector
        if field == 0:
            continue
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        start, length = buffer._tab.Vector(field), buffer._tab.VectorLen(field)
        yield i, tensor.Buffer(), tensor.Name().decode(), shape, tensor.Type(), start, length


def _float_tensors(tflite: bytes) -> Iterator[tuple[int, str, np.ndarray, int]]:
    """(buffer, name, values, data start) of the file's float32 constant tensors."""
    for _, buffer, name, values, start in _float_constants(tflite):
        yield buffer, name, values, start


def _float_constants(tflite: bytes) -> Iterator[tuple[int, int, str, np.ndarray, int]]:
    from ai_edge_litert import schema_py_generated as schema

    for index, buffer, name, shape, kind, start, length in _buffers(tflite):
        if kind != schema.TensorType.FLOAT32 or length != 4 * int(np.prod(shape, dtype=int)):
            continue
        values = np.frombuffer(tflite, np.float32, length // 4, start).reshape(shape)
        yield index, buffer, name, values, start


# The operands of these ops that hold weights (kernel, bias): each must map to a source, or the
# file holds a weight computed some other way (a linear Dense's bias folded into the next).
WEIGHT_OPERANDS = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}


def _weight_operands(tflite: bytes) -> set[int]:
    from autocompress.hardware.flatbuffer import read_tflite

    return {
        op.inputs[i]
        for op in read_tflite(tflite).ops
        for i in WEIGHT_OPERANDS.get(op.name, ())
        if i < len(op.inputs) and op.inputs[i] >= 0
    }


def _matches(source: np.ndarray, values: np.ndarray) -> bool:
    if source.size != values.size:
        return False
    scale = max(float(np.abs(values).max()) if values.size else 0.0, 1e-12)
    diff = np.abs(source.reshape(-1).astype(np.float64) - values.reshape(-1))
    return bool(diff.max() <= MATCH_TOLERANCE * scale) if diff.size else True


def weight_map(model: keras.Model, tflite: bytes) -> tuple[tuple[int, str], ...] | str:
    """Which source fills each float weight tensor of ``tflite`` (converted from ``model``):
    (buffer index, source name) pairs, or why no map can be trusted."""
    found = sources(model)
    weights = _weight_operands(tflite)
    slots: list[tuple[int, str]] = []
    owner: dict[int, str] = {}
    for index, buffer, name, values, _ in _float_constants(tflite):
        hits = [key for key, (array, _) in found.items() if _matches(array, values)]
        if len(hits) > 1:  # equal values (zero biases; a bias-free kernel's folded bias is
            # the BatchNorm's offset): the tensor's name decides, the most layers it names
            named = {k: sum(f"/{n}/" in name for n in found[k][1]) for k in hits}
            best = max(named.values())
            hits = [k for k in hits if named[k] == best]
        if len(hits) > 1:
            return f"tensor {name!r} matches {len(hits)} weights of the model"
        if not hits and index in weights:
            return f"weight tensor {name!r} matches no weight of the model"
        if not hits:
            continue  # a constant of the architecture (a Rescaling's scale, ...)
        if buffer in owner and owner[buffer] != hits[0]:
            return f"buffer {buffer} holds two different weights"
        owner[buffer] = hits[0]
        slots.append((buffer, hits[0]))
    return tuple(slots)


def output_error(tflite: bytes, model: keras.Model, samples: Arrays) -> float:
    """Largest |file - Keras| over the outputs on ``samples``, relative to the outputs' scale."""
    from autocompress.data.arrays import keras_predict
    from autocompress.evaluation.deployed import predict

    ours, theirs = predict(tflite, samples), keras_predict(model, samples)
    if isinstance(ours, dict) != isinstance(theirs, dict) or (
        isinstance(ours, dict) and isinstance(theirs, dict) and set(ours) != set(theirs)
    ):
        return float("inf")  # outputs that cannot be paired: nothing is proved
    pairs = (
        [(ours[k], theirs[k]) for k in theirs]
        if isinstance(theirs, dict) and isinstance(ours, dict)
        else [(ours, theirs)]
    )
    worst = 0.0
    for a, b in pairs:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(float(np.abs(b).max()), 1e-12)
        worst = max(worst, float(np.abs(a - b).max()) / scale)
    return worst


def derive(model: keras.Model, tflite: bytes, samples: Arrays) -> Template | str:
    """The template of the converter's float file ``tflite`` of ``model``, or why none."""
    slots = weight_map(model, tflite)
    if isinstance(slots, str):
        return slots
    if not slots:
        return "no weight tensor of the file matches the model"
    error = output_error(tflite, model, samples)
    if not math.isfinite(error):
        return "the file's outputs do not pair with the model's"
    return Template(architecture_digest(model), tflite, slots, error)


def refill(template: Template, model: keras.Model, samples: Arrays) -> bytes | str:
    """``model``'s float file: the template with ``model``'s weights written into its buffers,
    proved on ``samples``; or why it cannot be (the converter must run)."""
    if architecture_digest(model) != template.architecture:
        return "another architecture"
    found = sources(model)
    data = bytearray(template.tflite)
    places = {buffer: (start, values.shape) for buffer, _, values, start in _float_tensors(data)}
    for buffer, source in template.slots:
        if source not in found or buffer not in places:
            return f"the model has no {source}"
        start, shape = places[buffer]
        array = np.asarray(found[source][0], np.float32)
        if array.size != int(np.prod(shape, dtype=int)):
            return f"{source} does not fit its tensor"
        data[start : start + array.nbytes] = array.reshape(shape).tobytes()
    tflite = bytes(data)
    error = output_error(tflite, model, samples)
    if error > max(ERROR_FACTOR * template.error, ERROR_FLOOR):
        return f"outputs differ from the model's by {error:.2g} (converter: {template.error:.2g})"
    return tflite
