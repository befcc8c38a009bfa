"""Channel pruning on the graphs users have: residual Add, Concatenate, BatchNormalization,
depthwise convolutions, Flatten into Dense. Stated widths hold, and where the removed channels
carried nothing the outputs are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.channels import (
    ChannelPrune,
    channel_importance,
    choose_channels,
    prune_channels,
    read_at,
)

L = keras.layers


def residual_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    a = L.BatchNormalization(name="bn")(a)
    a = L.ReLU()(a)
    b = L.DepthwiseConv2D(3, padding="same", name="dw")(a)
    b = L.Conv2D(8, 1, name="pw")(b)
    x = L.Add(name="add")([a, b])  # stem and pw must keep the same channels
    c = L.Conv2D(4, 1, activation="relu", name="side")(x)
    x = L.Concatenate(name="cat")([x, c])
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(16, activation="relu", name="hidden")(x)
    outputs = L.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")  # non-trivial statistics so that slicing them is checked
    rng = np.random.default_rng(1)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8),
                    rng.uniform(0.5, 1.5, 8)])  # fmt: skip
    return model


def test_add_group_shares_channels_and_output_layer_is_kept() -> None:
    model = residual_model()
    kept, left = choose_channels(model, 0.5)
    assert np.array_equal(kept["stem"], kept["pw"]) and len(kept["stem"]) == 4
    assert len(kept["side"]) == 2 and len(kept["hidden"]) == 8
    assert "out" not in kept and "model output" in left["out"]


def test_pruned_model_has_the_stated_widths_and_runs() -> None:
    model = residual_model()
    kept, _ = choose_channels(model, 0.5)
    narrow, widths = prune_channels(model, kept)
    assert widths == {"stem": [8, 4], "pw": [8, 4], "side": [4, 2], "hidden": [16, 8]}
    for name, (_, after) in widths.items():
        assert narrow.get_layer(name).kernel.shape[-1] == after
    assert narrow.get_layer("dw").depthwise_kernel.shape[2] == 4  # follows its input
    assert narrow.get_layer("out").kernel.shape[0] == 8
    assert narrow.count_params() < model.count_params()
    narrow.predict(np.zeros((2, 8, 8, 3), "float32"), verbose=0)


@pytest.mark.parametrize("by", ["l1", "activation"])
def test_removing_channels_that_carry_nothing_keeps_the_outputs(by: str) -> None:
    """Zero the filters pruning will remove (so the channels are exactly 0 after ReLU): both
    importances choose exactly them, and the narrow model computes the very same outputs."""
    model = residual_model()
    drop = {"stem": [1, 5], "pw": [1, 5], "side": [3], "hidden": [0, 7, 9, 12]}
    for name, channels in drop.items():
        layer = model.get_layer(name)
        w = layer.get_weights()
        w[0][..., channels] = 0.0
        w[1][channels] = 0.0
        layer.set_weights(w)
    bn = model.get_layer("bn")  # make the BN output of the dropped stem channels exactly 0
    g, beta, mean, var = bn.get_weights()
    beta[[1, 5]] = 0.0
    mean[[1, 5]] = 0.0
    bn.set_weights([g, beta, mean, var])
    x = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32)
    expected = model.predict(x, verbose=0)
    expected_kept = {
        name: np.setdiff1d(np.arange(model.get_layer(name).kernel.shape[-1]), channels)
        for name, channels in drop.items()
    }
    if by == "l1":
        kept, _ = choose_channels(model, 0.25)  # the L1-smallest quarter: exactly the zeroed ones
        assert {n: list(k) for n, k in kept.items()} == {
            n: list(k) for n, k in expected_kept.items()
        }
    else:  # the zeroed ones or others that carry nothing on x (a ReLU unit dead on x)
        importance = channel_importance(model, x, model.input_names)
        kept, _ = choose_channels(model, 0.25, importance=importance)
        for name, channels in kept.items():
            removed = np.setdiff1d(np.arange(len(importance[name])), channels)
            assert len(removed) == len(drop[name]) and not importance[name][removed].any()
    narrow, _ = prune_channels(model, kept)
    np.testing.assert_allclose(narrow.predict(x, verbose=0), expected, atol=1e-5)


def test_importance_is_read_after_the_batch_normalization() -> None:
    """A filter with a large kernel whose BatchNormalization scales it to almost nothing is the
    least important by activation and the most important by kernel L1 norm: the activation
    importance, read at the BN (``read_at``), removes it."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2), name="image")
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.BatchNormalization(name="conv_bn")(x)
    x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(2, name="out")(x))
    conv, bn = model.get_layer("conv"), model.get_layer("conv_bn")
    kernel, bias = conv.get_weights()
    kernel[..., 3] *= 100.0
    conv.set_weights([kernel, bias])
    bn.set_weights([np.array([1.0, 1.0, 1.0, 1e-4]), np.zeros(4), np.zeros(4), np.ones(4)])
    assert read_at(model) == {"conv": "conv_bn", "out": "out"}
    samples = np.random.default_rng(0).normal(size=(40, 6, 6, 2)).astype("float32")
    importance = channel_importance(model, samples, ["image"])
    assert int(np.argmin(importance["conv"])) == 3
    assert 3 not in choose_channels(model, 0.25, importance=importance)[0]["conv"]
    assert 3 in choose_channels(model, 0.25)[0]["conv"]  # by L1 it stays


def test_importance_is_each_channels_standard_deviation_at_every_resolution() -> None:
    """Layers of different spatial sizes (here 8x8 and 4x4) each get their channels' standard
    deviation over every sample and position, whatever the batch split."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    a = L.Conv2D(3, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(5, 3, padding="same", name="b")(L.MaxPooling2D(name="pool")(a))
    model = keras.Model(inputs, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(b)))
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(10, 8, 8, 2)).astype("float32")
    importance = channel_importance(model, x, model.input_names, batch_size=4)
    for name in ("a", "b"):
        out = keras.Model(inputs, model.get_layer(name).output).predict(x, verbose=0)
        expected = out.reshape(-1, out.shape[-1]).std(0)
        np.testing.assert_allclose(importance[name], expected, rtol=1e-4)


def test_unknown_consumer_leaves_its_group_whole_and_says_why() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, name="conv")(inputs)
    x = L.Reshape((-1, 8))(x)
    x = L.GlobalAveragePooling1D()(x)
    outputs = L.Dense(2, name="out")(x)
    kept, left = choose_channels(keras.Model(inputs, outputs), 0.5)
    assert "conv" not in kept and "Reshape" in left["conv"]


def test_stage_on_the_tiny_task(tiny_task) -> None:
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(tiny_task.data, teacher)
    model, record = ChannelPrune().apply(
        teacher, Recipe(channel_fraction=0.5, exclude="ends", finetune_epochs=1), ctx
    )
    facts = record.facts
    conv, hidden = teacher.layers[0].name, teacher.layers[-2].name  # names vary with the session
    assert facts["left"][conv] == "excluded"  # the first layer stays whole
    assert facts["widths"][hidden] == [32, 16]
    assert facts["params_after"] < facts["params_before"]
    assert facts["keras_val_accuracy"] > 0.5
    assert [w.shape for w in teacher.get_weights()] == [
        w.shape for w in tiny_task.teacher.build().get_weights()
    ]  # the input model is untouched


@pytest.mark.parametrize("fraction", [0.25, 0.75])
def test_sequential_models_prune_through_flatten(fraction: float, tiny_task) -> None:
    teacher = tiny_task.teacher.build()
    kept, _ = choose_channels(teacher, fraction)
    narrow, widths = prune_channels(teacher, kept)
    assert widths[teacher.layers[0].name][1] == max(1, round(8 * (1 - fraction)))
    narrow.predict(tiny_task.data.x_val[:4], verbose=0)
