"""A .tflite file with two named outputs is run through its signature: outputs come back by the
Keras output layer's name, never by position, and match the Keras model's."""

from __future__ import annotations

import numpy as np


def test_two_output_file_gives_outputs_by_name() -> None:
    import tf_keras as keras

    from autocompress.evaluation.deployed import predict
    from autocompress.stages.convert import to_tflite

    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((6,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    boxes = keras.layers.Dense(4, name="boxes")(hidden)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(hidden)
    model = keras.Model(inp, [boxes, classes])
    x = np.random.default_rng(0).normal(size=(70, 6)).astype("float32")  # 70: a partial batch
    out = predict(to_tflite(model, "none"), x)
    assert isinstance(out, dict) and set(out) == {"boxes", "classes"}
    want_boxes, want_classes = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["boxes"], want_boxes, atol=1e-5)
    np.testing.assert_allclose(out["classes"], want_classes, atol=1e-5)
    named = predict(to_tflite(model, "none"), {"features": x})
    np.testing.assert_allclose(named["boxes"], want_boxes, atol=1e-5)
