"""The four MLPerf Tiny reference networks, built layer for layer after the benchmark's training
scripts (github.com/mlcommons/tiny, ``benchmark/training``), for the microcontroller profiles'
latency fit (``validate_mcu.py``). Latency does not depend on the weights' values, so the
networks are untrained; they are converted to full int8 exactly as the benchmark's files are.

* ``kws``: DS-CNN (keyword spotting, 49x10 MFCC, 12 classes);
* ``vww``: MobileNet v1, width 0.25, 96x96x3, 2 classes (visual wake words);
* ``ic``: ResNet-8 (CIFAR-10, 32x32x3, 10 classes);
* ``ad``: the fully connected autoencoder (ToyADMOS, 640 inputs, 128-unit layers, 8 bottleneck).
"""

from __future__ import annotations

import autocompress  # noqa: F401  (Keras-2 switch)


def _bn_relu(x):
    import tf_keras as keras

    x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation("relu")(x)


def ds_cnn():
    import tf_keras as keras

    inputs = keras.Input((49, 10, 1))
    x = keras.layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inputs)
    x = _bn_relu(x)
    for _ in range(4):
        x = keras.layers.DepthwiseConv2D((3, 3), padding="same")(x)
        x = _bn_relu(x)
        x = keras.layers.Conv2D(64, (1, 1), padding="same")(x)
        x = _bn_relu(x)
    x = keras.layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(12, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def mobilenet_v1_025():
    import tf_keras as keras

    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = _bn_relu(x)
    for filters, stride in [
        (16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
        (128, 1), (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1),
    ]:  # fmt: skip
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same")(x)
        x = _bn_relu(x)
        x = keras.layers.Conv2D(filters, 1, padding="same")(x)
        x = _bn_relu(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1_025")


def resnet8():
    import tf_keras as keras

    inputs = keras.Input((32, 32, 3))
    x = _bn_relu(keras.layers.Conv2D(16, 3, padding="same")(inputs))
    for filters, stride in [(16, 1), (32, 2), (64, 2)]:
        y = _bn_relu(keras.layers.Conv2D(filters, 3, strides=stride, padding="same")(x))
        y = keras.layers.BatchNormalization()(keras.layers.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = keras.layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    x = keras.layers.AveragePooling2D(pool_size=8)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def fc_autoencoder():
    import tf_keras as keras

    inputs = keras.Input((640,))
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = _bn_relu(keras.layers.Dense(units)(x))
    outputs = keras.layers.Dense(640)(x)
    return keras.Model(inputs, outputs, name="fc_autoencoder")


BUILDERS = {"kws": ds_cnn, "vww": mobilenet_v1_025, "ic": resnet8, "ad": fc_autoencoder}


def int8_file(benchmark: str) -> bytes:
    """The benchmark's network converted to full int8 (int8 inputs and outputs), calibrated on
    random inputs (latency and memory only)."""
    import numpy as np

    from autocompress.stages.convert import to_tflite

    model = BUILDERS[benchmark]()
    last = model.layers[-1]
    if getattr(last, "activation", None) is not None and last.activation.__name__ == "softmax":
        # Untrained logits barely vary, and TFLM's softmax refuses (aborts on) the degenerate
        # input scale that gives; a trained classifier's logits spread. Give them a spread.
        kernel, bias = last.get_weights()
        last.set_weights([kernel, np.linspace(-4.0, 4.0, bias.size, dtype=np.float32)])
    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    return to_tflite(model, "int8", calibration)
