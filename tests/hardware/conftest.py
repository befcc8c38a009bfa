from __future__ import annotations

import numpy as np


def to_tflite(model, mode: str = "none") -> bytes:
    """Convert like the convert stage does, calibrating int8 on random inputs."""
    from autocompress.stages.convert import to_tflite as convert

    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    return convert(model, mode, calibration)


def small_cnn(extra=None):
    """conv 3x3 (2->4 ch) on 8x8, depthwise 3x3, flatten, dense 256->10; optional extra layer."""
    import tf_keras as keras

    L = keras.layers
    layers = [
        L.Input((8, 8, 2), batch_size=1),
        L.Conv2D(4, 3, padding="same"),
        L.DepthwiseConv2D(3, padding="same"),
    ]
    if extra is not None:
        layers.append(extra)
    layers += [L.Flatten(), L.Dense(10)]
    model = keras.Sequential(layers)
    # Random non-zero biases: the converter would share or drop all-zero bias buffers.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model
