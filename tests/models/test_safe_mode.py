"""The safe-mode adapter (the one private tf_keras name the package uses) still does its job on
the pinned tf_keras: code in a model's configuration is refused with safe mode on, built with it
off."""

from __future__ import annotations

import pytest

from autocompress.models.safe_mode import safe_mode


def _lambda_config() -> str:
    import tf_keras as keras

    model = keras.Sequential(
        [keras.layers.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0, name="doubler")]
    )
    return model.to_json()


def test_safe_mode_refuses_a_lambda_layers_code() -> None:
    import tf_keras as keras

    config = _lambda_config()
    with pytest.raises(ValueError, match="unsafe|safe_mode|Lambda"), safe_mode(True):
        keras.models.model_from_json(config)
    with safe_mode(False):
        model = keras.models.model_from_json(config)
    import numpy as np

    assert float(model(np.ones((1, 4), dtype="float32"))[0, 0]) == 2.0
