"""One ``.npz`` file as a task's data: ``x_train, y_train, x_val, y_val`` (+ ``x_test, y_test``),
or inputs alone (``x_train, x_val`` (+ ``x_test``), no ``y_*``): data without labels, whose
targets are the model's own outputs (:mod:`autocompress.data.targets`).

A model with several inputs or outputs has one array per input or output, named
``x_train.NAME`` / ``y_train.NAME`` (likewise ``_val``, ``_test``) with NAME the Keras input /
output layer name; which names the model needs is checked against the model
(:func:`autocompress.task.check_task`). Read without pickled objects (a data file cannot run
code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autocompress.data.arrays import Arrays, unflatten
from autocompress.errors import InputError

DATA_KEYS = ("x_train", "y_train", "x_val", "y_val")
TEST_KEYS = ("x_test", "y_test")  # optional: a split no choice of the search is tuned on


def read_npz(path: Path) -> dict[str, Arrays]:
    """The arrays by split key (a dict by name where the file holds ``KEY.NAME`` arrays);
    one-line errors for a missing file, array or test half."""
    if not path.is_file():
        raise InputError(str(path), "data file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise InputError(str(path), f"not a readable .npz file: {exc}") from None
    arrays: dict[str, Arrays] = {}
    for key in DATA_KEYS + TEST_KEYS:
        found = unflatten(entries, key)
        if found is not None:
            arrays[key] = found
    if not any(k.startswith("y_") for k in arrays):  # inputs alone: no labels
        missing = [k for k in DATA_KEYS if k.startswith("x_") and k not in arrays]
        if missing:
            raise InputError(
                str(path),
                f"missing array {missing[0]!r} (needs x_train and x_val, with y_train and "
                "y_val when the data has labels)",
            )
        return arrays
    missing = [k for k in DATA_KEYS if k not in arrays]
    if missing:
        raise InputError(
            str(path),
            f"missing array {missing[0]!r} (needs {', '.join(DATA_KEYS)}, or KEY.NAME per "
            "model input / output)",
        )
    test = [k for k in TEST_KEYS if k in arrays]
    if len(test) == 1:
        other = next(k for k in TEST_KEYS if k not in test)
        raise InputError(str(path), f"has {test[0]!r} but not {other!r}")
    return arrays
