"""Edge TPU compiler rules: int8 only, mapping stops at the first unsupported op, SRAM cache."""

from __future__ import annotations

import dataclasses
import math

import pytest

from autocompress.hardware import latency, load_profile, read_tflite
from autocompress.hardware.edgetpu import map_ops
from tests.hardware.conftest import small_cnn, to_tflite


@pytest.fixture(scope="module")
def usb():
    return load_profile("edgetpu-usb")


@pytest.mark.parametrize("mode", ["none", "dynamic"])
def test_float_and_dynamic_models_are_not_deployable(usb, mode: str) -> None:
    r = latency(to_tflite(small_cnn(), mode), usb)
    assert r.deployable is False
    assert "int8" in r.details["reason"]
    assert math.isfinite(r.median_ms)  # host-only time, so the sampler gets a finite value


def test_int8_model_maps_entirely(usb) -> None:
    r = latency(to_tflite(small_cnn(), "int8"), usb)
    assert r.deployable is True
    assert r.details["share_mapped"] == 1.0 and r.details["break_op"] is None
    assert r.details["host_ms"] == 0.0 and r.median_ms > 0


def test_unsupported_op_moves_it_and_the_rest_to_the_host(usb) -> None:
    import tf_keras as keras

    data = to_tflite(small_cnn(extra=keras.layers.LeakyReLU()), "int8")
    graph = read_tflite(data)
    names = [op.name for op in graph.ops]
    assert "LEAKY_RELU" in names
    mapping = map_ops(graph)
    assert mapping.break_op == "LEAKY_RELU"
    assert [op.name for op in mapping.host][0] == "LEAKY_RELU"
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {op.name for op in mapping.tpu}
    assert "FULLY_CONNECTED" in {op.name for op in mapping.host}  # after the break: host
    r = latency(data, usb, graph)
    assert r.deployable and r.details["break_op"] == "LEAKY_RELU"
    assert 0 < r.details["share_mapped"] < 1 and r.details["host_ms"] > 0


def test_parameters_beyond_sram_stream_over_the_link(usb) -> None:
    import tf_keras as keras

    big = keras.Sequential([keras.layers.Input((4096,)), keras.layers.Dense(3072)])
    data = to_tflite(big, "int8")  # ~12.6 MB of int8 weights: more than the 8 MB cache
    r = latency(data, usb)
    params = read_tflite(data).weight_bytes
    assert r.details["cached_param_bytes"] == usb.edgetpu.sram_bytes
    assert r.details["streamed_param_bytes"] == params - usb.edgetpu.sram_bytes
    assert (
        r.details["link_ms"]
        >= r.details["streamed_param_bytes"] / usb.edgetpu.link_bytes_per_s * 1e3
    )
    bigger_cache = dataclasses.replace(
        usb, edgetpu=dataclasses.replace(usb.edgetpu, sram_bytes=64 << 20)
    )
    assert latency(data, bigger_cache).median_ms < r.median_ms
