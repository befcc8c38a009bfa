"""A task's inputs or targets: one array, or a dict of arrays by input / output name.

A model with one input (output) takes (gives) one array; a model with several takes dicts keyed
by the Keras input / output layer names, which are also the names of the converted file's
signature tensors. Every module that splits, samples, stores or hashes data goes through these
helpers, so that neither case is special anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autocompress.data.stream import Stream

Arrays = np.ndarray | dict[str, np.ndarray]
# A split's inputs: in memory, or read in batches (an image folder, a data pipeline).
Inputs = Arrays | Stream


def count(a: Inputs) -> int:
    """Number of samples (the first dimension; every array of a dict has the same)."""
    if isinstance(a, dict):
        return len(next(iter(a.values())))
    return len(a)


def take(a: Inputs, index: Any) -> Arrays:
    """The samples at ``index`` (a slice or integer array) of every array (of a stream: read
    from it, a few at a time)."""
    if isinstance(a, Stream):
        return a.samples(np.arange(len(a))[index])
    if isinstance(a, dict):
        return {k: v[index] for k, v in a.items()}
    return a[index]


def concat(parts: list[Arrays]) -> Arrays:
    """Batches joined back into one split."""
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # type: ignore[index]
    return np.concatenate(parts)  # type: ignore[arg-type]


def as_float32(a: Arrays) -> Arrays:
    """Float inputs as float32 (what Keras and the converted files compute in); integer inputs
    (token ids) stay as they are."""

    def one(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        return v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v

    if isinstance(a, dict):
        return {k: one(v) for k, v in a.items()}
    return one(a)


def named(a: Arrays, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``a`` as a dict by ``names`` (one array: the only name's)."""
    if isinstance(a, dict):
        return dict(a)
    if len(names) != 1:
        raise ValueError(f"one array given for {len(names)} tensors {list(names)}")
    return {names[0]: a}


def flatten(prefix: str, a: Arrays) -> dict[str, np.ndarray]:
    """The ``.npz`` entries of ``a``: ``prefix`` for one array, ``prefix.NAME`` for each of a
    dict (the layout a task's data file uses)."""
    if isinstance(a, dict):
        return {f"{prefix}.{k}": v for k, v in a.items()}
    return {prefix: a}


def unflatten(entries: Mapping[str, np.ndarray], prefix: str) -> Arrays | None:
    """The arrays stored under ``prefix`` by :func:`flatten` (None: none stored)."""
    if prefix in entries:
        return np.asarray(entries[prefix])
    found = {
        k[len(prefix) + 1 :]: np.asarray(v)
        for k, v in entries.items()
        if k.startswith(prefix + ".")
    }
    return found or None


def ordered(a: Arrays, names: Sequence[str]) -> np.ndarray | list[np.ndarray]:
    """``a`` as Keras takes it positionally: one array, or a list in the order of ``names``.

    Stages feed models by position, not by name: tfmot's wrappers rename the layers they wrap
    (``prune_low_magnitude_boxes``), so a pruned model's output names are not the data's, while
    its outputs keep the teacher's order."""
    if not isinstance(a, dict):
        return a
    if len(a) == 1 and len(names) == 1:
        return next(iter(a.values()))
    return [a[name] for name in names]


def from_keras(outputs: Any, output_names: Sequence[str]) -> Arrays:
    """A Keras ``predict`` result by output name: Keras gives a list for several outputs."""
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    if isinstance(outputs, list | tuple):
        if len(outputs) == 1:
            return np.asarray(outputs[0])
        return {name: np.asarray(v) for name, v in zip(output_names, outputs)}
    return np.asarray(outputs)


def keras_predict(
    model: Any,
    x: Inputs,
    names: tuple[Sequence[str], Sequence[str]] | None = None,
    batch_size: int = 256,
) -> Arrays:
    """A Keras model's outputs on ``x``: one array, or a dict by output name.

    ``names`` are the (input, output) names of the teacher ``model`` was made from: inputs are
    fed and outputs named by position in that order (see :func:`ordered`); default the model's
    own. A stream is predicted batch by batch."""
    inputs, outputs = names if names is not None else (model.input_names, model.output_names)
    if not isinstance(x, Stream):
        feed = ordered(x, inputs)
        return from_keras(model.predict(feed, batch_size=batch_size, verbose=0), outputs)
    parts = [
        from_keras(model.predict_on_batch(ordered(xb, inputs)), outputs)
        for xb in x.inputs(batch_size)
    ]
    return concat(parts)
