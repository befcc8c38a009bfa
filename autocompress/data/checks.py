"""Whether a task's data fits its model, split by split: one array per model input and output
by name, numbers only, nothing empty or NaN, class ids in range. One-line errors name the
array the way a data file names it (``x_train``, ``y_val.boxes``); :func:`autocompress.task.
check_task` runs these for every split."""

from __future__ import annotations

import numpy as np

from autocompress.data.arrays import Arrays
from autocompress.errors import InputError


def by_name(
    src: str, key: str, value: Arrays, names: list[str], kind: str
) -> dict[str, np.ndarray]:
    """The arrays of one split key by the model's input / output names; a one-line error for
    an array the model needs but the data lacks, or one it has no tensor for."""
    if not isinstance(value, dict):
        if len(names) != 1:
            wanted = ", ".join(f"{key}.{n}" for n in names)
            raise InputError(src, f"the model has {len(names)} {kind}s: give {wanted}")
        return {names[0]: value}
    missing = [n for n in names if n not in value]
    if missing:
        raise InputError(
            src, f"missing array '{key}.{missing[0]}' for the model's {kind} {missing[0]!r}"
        )
    extra = sorted(set(value) - set(names))
    if extra:
        raise InputError(
            src,
            f"array '{key}.{extra[0]}' names no {kind} of the model (its {kind}s: "
            f"{', '.join(names)})",
        )
    return {n: value[n] for n in names}


def keyed(key: str, arrays: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(data-file name, array) pairs: ``key`` for one array, ``key.NAME`` for several."""
    if len(arrays) == 1:
        return [(key, next(iter(arrays.values())))]
    return [(f"{key}.{n}", a) for n, a in arrays.items()]


def check_array(src: str, key: str, arr: np.ndarray) -> None:
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        raise InputError(src, f"data array {key} is empty")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(src, f"data array {key} has non-numeric dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InputError(src, f"data array {key} contains NaN or infinite values")


def check_classes(src: str, out_shape: tuple, labels: list[np.ndarray]) -> None:
    """Class ids in range of the output's class scores (last axis; one unit: a sigmoid)."""
    if len(out_shape) < 1 or out_shape[-1] is None:
        raise InputError(src, f"the model output {out_shape} is not a vector of class scores")
    n_classes = max(int(out_shape[-1]), 2)
    top = int(max(np.max(y) for y in labels))
    if min(int(np.min(y)) for y in labels) < 0 or top >= n_classes:
        raise InputError(src, f"labels range up to {top} but the model outputs {n_classes} classes")
