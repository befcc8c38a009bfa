"""The parity gate of a Keras 3 translation: the rebuilt tf_keras model must compute what the
Keras 3 model does on the task's data, else a one-line error naming the first layer that
differs (see :mod:`autocompress.models.keras3`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress.data.arrays import Arrays, as_float32, take
from autocompress.errors import InputError

if TYPE_CHECKING:
    import tf_keras

PARITY_TOLERANCE = 1e-4
TFLITE_HINT = (
    "export it to a float .tflite instead (model.export('m.tflite', format='litert')) and give "
    "that file as the task's model: the post-training route takes any model"
)
_TAIL = "__out"  # suffix of the last layer of an expanded activation


def check_parity(original: Any, rebuilt: tf_keras.Model, x: Arrays, source: str) -> float:
    """Max |difference| of the two models' outputs on ``x`` (one array, or a dict by input
    name), output by output; over the tolerance, an error naming the first layer (in graph
    order) whose output differs."""
    x = as_float32(x)
    try:
        want = _listed(original.predict(x, batch_size=64, verbose=0), rebuilt.output_names)
    except Exception as exc:  # Keras 3 raises many types for data that does not fit
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            source, f"the model cannot run on the validation data: {type(exc).__name__}: {reason}"
        ) from None
    got = _listed(rebuilt.predict(x, batch_size=64, verbose=0), rebuilt.output_names)
    diff = max(
        (float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf"))
        for a, b in zip(want, got)
    )
    if len(want) != len(got):
        diff = float("inf")
    if diff <= PARITY_TOLERANCE:
        return diff
    layer, layer_diff = _first_differing_layer(original, rebuilt, take(x, slice(16)))
    where = f"layer {layer!r} (max |diff| {layer_diff:.3g})" if layer else "the model output"
    raise InputError(
        source,
        f"the tf_keras rebuild does not compute what the Keras 3 model does: outputs differ by "
        f"{diff:.3g} (> {PARITY_TOLERANCE}), first at {where}; {TFLITE_HINT}",
    )


def _listed(outputs: Any, names: list[str]) -> list[np.ndarray]:
    """A predict result as a list of arrays in output order (a dict in the order of ``names``)."""
    if isinstance(outputs, dict):
        keys = names if set(names) == set(outputs) else list(outputs)
        return [np.asarray(outputs[k]) for k in keys]
    if isinstance(outputs, list | tuple):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def _first_differing_layer(original: Any, rebuilt: tf_keras.Model, x: np.ndarray) -> tuple:
    """The first top-level layer whose output differs between the two models, if any."""
    import keras
    import tf_keras

    names = [
        layer.name
        for layer in original.layers
        if type(layer).__name__ != "InputLayer" and has_layer(rebuilt, layer.name)
    ]
    if not names or type(original).__name__ != "Functional":
        return None, float("nan")
    probe_a = keras.Model(original.inputs, [original.get_layer(n).output for n in names])
    probe_b = tf_keras.Model(rebuilt.inputs, [_output(rebuilt, n) for n in names])
    outs_a = probe_a.predict(x, verbose=0)
    outs_b = probe_b.predict(x, verbose=0)
    for name, a, b in zip(names, outs_a, outs_b):
        a, b = np.asarray(a), np.asarray(b)
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
        if diff > PARITY_TOLERANCE:
            return name, diff
    return None, float("nan")


def has_layer(model: tf_keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _output(model: tf_keras.Model, name: str) -> Any:
    """The output tensor standing for Keras 3 layer ``name``: its expansion's last layer."""
    tail = f"{name}{_TAIL}"
    return model.get_layer(tail if has_layer(model, tail) else name).output
