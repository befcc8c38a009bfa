"""Loading a Keras model file (tf_keras, or Keras 3 rebuilt in tf_keras) as a tf_keras model,
refusing, before anything is deserialised, a file that would run code unless the user trusts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.data.arrays import Arrays
from autocompress.errors import InputError
from autocompress.models import keras3
from autocompress.models.stored import layers_needing_code, stored_config

if TYPE_CHECKING:
    import tf_keras

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

log = logging.getLogger("autocompress")


@contextmanager
def model_errors(source: str, step: str = "cannot be loaded") -> Iterator[None]:
    """Where an unexpected exception from a user's model file becomes one line.

    Every path that reads a model file, or first runs what it holds before any trial (loading,
    translating, checking, converting, ranking its layers), runs inside this: an
    :class:`InputError` passes as it is; any other exception is logged with its traceback (to
    ``DIR/search.log`` in a search) and raised again as an :class:`InputError` naming
    ``source`` -- so the next construct no loader supports ends in the same clean line."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:  # anything a loader, translator or runtime raises
        log.error("%s: %s", source, step, exc_info=True)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            source,
            f"{step}: {type(exc).__name__}: {reason} (a part autocompress does not support; "
            "the traceback is in the run's search.log)",
        ) from None


def load_model(path: Path, trust: bool = False, x_check: Arrays | None = None) -> tf_keras.Model:
    """Load a ``.keras`` / ``.h5`` file or SavedModel directory as a tf_keras model.

    A file saved by Keras 3 is rebuilt in tf_keras (see :mod:`autocompress.models.keras3`) and
    must compute the same outputs on ``x_check`` (the validation inputs).

    Loading can run code: a Lambda layer stores Python bytecode, a custom layer names a class to
    import, and HDF5 files ignore Keras's safe mode. Unless ``trust`` is set, the stored
    architecture is read first, without deserialising anything, and a model that needs code to
    load is refused with a message naming ``--trust-model``.
    """
    import tf_keras

    if not path.exists():
        raise InputError(str(path), "model file not found")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(str(path), "directory is not a SavedModel (no saved_model.pb)")
    elif path.suffix not in MODEL_SUFFIXES:
        raise InputError(
            str(path),
            f"unsupported model file type {path.suffix!r} (use .keras, .h5, .tflite or a "
            "SavedModel)",
        )
    if path.is_file() and keras3.is_keras3_file(path):
        if x_check is None:
            raise InputError(str(path), "a Keras 3 model needs data to check its translation")
        return keras3.load_keras3(path, x_check)
    if not trust:
        needs_code = layers_needing_code(stored_config(path))
        if needs_code:
            raise InputError(
                str(path),
                f"loading it would run code (layer {needs_code[0]}); "
                "pass --trust-model if you trust this file",
            )
    try:
        kwargs: dict[str, Any] = {"compile": False}
        if path.suffix == ".keras":
            kwargs["safe_mode"] = not trust
        model = tf_keras.models.load_model(str(path), **kwargs)
    except Exception as exc:  # the loaders raise many unrelated types for a bad file
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(str(path), f"cannot be loaded as a Keras model: {reason}") from None
    if not isinstance(model, tf_keras.Model):
        raise InputError(str(path), "did not load as a Keras model")
    return model
