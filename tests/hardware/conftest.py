from __future__ import annotations

import numpy as np


def to_tflite(model, mode: str = "none") -> bytes:
    """Convert like the convert stage does (int8: full integer with int8 I/O)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.random((1, *shape), dtype=np.float32)] for _ in range(4)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


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
