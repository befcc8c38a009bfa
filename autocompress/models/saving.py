"""A built model as the bytes of a ``.keras`` file, for the run directory and exports."""

from __future__ import annotations

import tf_keras as keras


def keras_file_bytes(model: keras.Model) -> bytes | None:
    """The model as a ``.keras`` file, or None when it does not load back.

    QAT models built with tfmot's cluster/prune-preserving schemes save but do not load again
    (their wrappers store more variables than they declare), so they get no Keras file.
    """
    import tempfile
    from pathlib import Path

    from tensorflow_model_optimization.quantization.keras import quantize_scope

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        try:
            with quantize_scope():
                model.save(path)
                keras.models.load_model(path, compile=False)
        except Exception:  # the round trip is the test: any failure means "no Keras file"
            return None
        return path.read_bytes()
