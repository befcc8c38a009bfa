"""Deserialise a model configuration with tf_keras' safe mode on or off, for one call.

The one use of a private tf_keras name in the package, and why: safe mode is what makes tf_keras
refuse the Python code a Lambda layer carries in a model file (the ``--trust-model`` switch), and
tf_keras has no public way to scope it around one deserialisation -- its public
``deserialize_keras_object`` does not take ``model_from_json``'s configuration as it is, and Keras
3's global ``enable_unsafe_deserialization`` is not tf_keras'. ``tests/models/test_safe_mode.py``
fails if a new tf_keras moves the name or stops refusing code under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def safe_mode(enabled: bool) -> Iterator[None]:
    """tf_keras' safe mode on (code in a file refused) or off inside the block."""
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(safe_mode=enabled):
        yield
