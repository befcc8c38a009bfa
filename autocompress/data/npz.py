"""One ``.npz`` file as a task's data: ``x_train, y_train, x_val, y_val`` (+ ``x_test, y_test``).

Read without pickled objects (a data file cannot run code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autocompress.errors import InputError

DATA_KEYS = ("x_train", "y_train", "x_val", "y_val")
TEST_KEYS = ("x_test", "y_test")  # optional: a split no choice of the search is tuned on


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays by name; one-line errors for a missing file, array or test half."""
    if not path.is_file():
        raise InputError(str(path), "data file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in DATA_KEYS if k not in npz.files]
            if missing:
                raise InputError(str(path), f"missing array {missing[0]!r} (needs {DATA_KEYS})")
            arrays = {k: npz[k] for k in DATA_KEYS}
            test = [k for k in TEST_KEYS if k in npz.files]
            if len(test) == 1:
                other = next(k for k in TEST_KEYS if k not in test)
                raise InputError(str(path), f"has {test[0]!r} but not {other!r}")
            arrays.update({k: npz[k] for k in test})
    except InputError:
        raise
    except Exception as exc:
        raise InputError(str(path), f"not a readable .npz file: {exc}") from None
    return arrays
