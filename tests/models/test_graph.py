"""The layer graph read from tf_keras' public config (autocompress.models.graph): the one
adapter for what tf_keras keeps private. Checked on the graphs the stages handle; a change in
tf_keras' config layout fails here, not silently in channel pruning or distillation."""

from __future__ import annotations

import tf_keras as keras

from autocompress.models.graph import inbound_names, output_names
from tests.conftest import tiny_model
from tests.stages.test_channels import residual_model
from tests.study.test_multi_io import two_io_model


def test_a_functional_graph_with_add_and_concatenate() -> None:
    model = residual_model()
    feeds = inbound_names(model)
    relu = next(layer.name for layer in model.layers if isinstance(layer, keras.layers.ReLU))
    assert feeds["add"] == [relu, "pw"] and feeds[relu] == ["bn"] and feeds["bn"] == ["stem"]
    assert feeds["cat"][0] == "add" and feeds["cat"][1] == "side"
    assert feeds["dw"] and feeds["pw"] == ["dw"]
    assert output_names(model) == ["out"]
    assert not feeds[model.layers[0].name]  # the input layer


def test_a_sequential_model_is_a_chain() -> None:
    model = tiny_model()
    feeds = inbound_names(model)
    names = [layer.name for layer in model.layers]
    for before, after in zip(names, names[1:]):
        assert feeds[after] == [before]
    assert len(feeds[names[0]]) == 1  # the input layer Sequential keeps out of model.layers
    assert output_names(model) == [names[-1]]


def test_several_outputs_in_order_and_mobilenet_v2() -> None:
    assert output_names(two_io_model()) == ["boxes", "classes"]
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10
    )
    feeds = inbound_names(mobilenet)
    adds = [layer for layer in mobilenet.layers if isinstance(layer, keras.layers.Add)]
    assert adds and all(len(feeds[layer.name]) == 2 for layer in adds)
    assert output_names(mobilenet) == ["predictions"]
