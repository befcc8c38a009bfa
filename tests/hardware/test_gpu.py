"""The GPU runtimes: fusion into kernels, precisions, 2:4 sparse tensor cores, the GPU delegate's
partition and CPU fallback, and each target's deployability rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.hardware import latency, load_profile, read_tflite
from autocompress.hardware.flatbuffer import Graph
from autocompress.hardware.gpu import kernels
from autocompress.hardware.gpu_delegate import partitions
from autocompress.hardware.profile import HardwareProfile
from tests.hardware.conftest import to_tflite


def _residual():
    """conv -> conv -> add(first conv's output, second's) -> relu -> pool -> dense."""
    import tf_keras as keras

    L = keras.layers
    x = keras.Input((16, 16, 8), batch_size=1)
    y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    z = L.Conv2D(8, 3, padding="same")(y)
    out = L.ReLU()(L.Add()([y, z]))
    out = L.Dense(4)(L.GlobalAveragePooling2D()(out))
    model = keras.Model(x, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def files() -> dict[str, Graph]:
    model = _residual()
    return {mode: read_tflite(to_tflite(model, mode)) for mode in ("none", "int8", "int16x8")}


def test_an_elementwise_op_joins_the_kernel_that_writes_its_only_input(files) -> None:
    g = files["none"]
    names = [op.name for op in g.ops]
    assert "ADD" in names
    ks = kernels(g, g.ops, lambda op: "float16")
    (add_kernel,) = [k for k in ks if any(op.name == "ADD" for op in k.ops)]
    assert [op.name for op in add_kernel.ops] == ["CONV_2D", "ADD"]  # the second conv's kernel
    conv_out = add_kernel.ops[0].outputs[0]
    assert conv_out not in add_kernel.writes  # the fused intermediate never reaches memory
    first_conv_out = g.ops[names.index("CONV_2D")].outputs[0]
    assert first_conv_out in add_kernel.reads  # the skip input (two readers) is read
    assert len(ks) == len([op for op in g.ops if op.name != "RESHAPE"]) - 1


def test_tensorrt_runs_a_float_file_in_fp16_and_an_int8_file_in_int8(files) -> None:
    a100 = load_profile("a100-trt")
    float_run = latency(b"", a100, files["none"])
    int8_run = latency(b"", a100, files["int8"])
    assert set(float_run.details["kernels_by_precision"]) == {"float16"}
    assert "int8" in int8_run.details["kernels_by_precision"]
    assert float_run.deployable


def test_tensorrt_int8_rules(files) -> None:
    t4, nano = load_profile("t4-trt"), load_profile("jetson-nano-trt")
    # The converter's int8 activations are asymmetric: TensorRT's int8 takes zero points 0.
    on_t4 = latency(b"", t4, files["int8"])
    assert not on_t4.deployable and "zero point" in on_t4.details["reason"]
    symmetric = dataclasses.replace(
        files["int8"],
        tensors=[dataclasses.replace(t, zero_point=0) for t in files["int8"].tensors],
    )
    assert latency(b"", t4, symmetric).deployable
    # A Maxwell GPU has no int8 kernels at all.
    on_nano = latency(b"", nano, symmetric)
    assert not on_nano.deployable and "no int8 kernels" in on_nano.details["reason"]
    # No int16 type in TensorRT.
    on_t4_16 = latency(b"", t4, files["int16x8"])
    assert not on_t4_16.deployable and "int16" in on_t4_16.details["reason"]
    assert latency(b"", nano, files["none"]).deployable


def _with_op(graph: Graph, index: int, name: str) -> Graph:
    ops = list(graph.ops)
    ops[index] = dataclasses.replace(ops[index], name=name)
    return dataclasses.replace(graph, ops=ops)


def test_an_op_without_a_tensorrt_layer_is_not_deployable(files) -> None:
    g = _with_op(files["none"], 1, "CUSTOM:MyOp")
    result = latency(b"", load_profile("t4-trt"), g)
    assert not result.deployable
    assert "CUSTOM:MyOp" in result.details["reason"] and "no layer" in result.details["reason"]


def test_the_gpu_delegate_runs_the_largest_partition_and_leaves_the_rest_to_the_cpu(files) -> None:
    pixel3 = load_profile("pixel3-gpu")
    g = files["none"]
    whole = latency(b"", pixel3, g)
    assert whole.details["runs_fully"] and whole.details["gpu_partitions"] == 1
    # An op the delegate does not take splits the graph; the default runs one partition.
    middle = next(op.index for op in g.ops if op.name == "ADD")
    split = _with_op(g, middle, "CUMPROD")
    gpu_parts, cpu = partitions(split, max_partitions=1)
    assert len(gpu_parts) == 1 and len(cpu) >= 2
    result = latency(b"", pixel3, split)
    assert not result.details["runs_fully"]
    assert f"op {middle} CUMPROD: CUMPROD is not supported" in result.details["fallback"]
    assert result.deployable  # TFLite runs the rest on the CPU
    # The ops left over run on the host CPU: a slower host slows the split graph only.
    slow = dataclasses.replace(
        pixel3,
        host=dataclasses.replace(pixel3.host, elementwise_per_s=1e3, op_overhead_s=1.0),
    )
    assert latency(b"", slow, split).median_ms > result.median_ms + 1000.0
    assert latency(b"", slow, g).median_ms == pytest.approx(whole.median_ms)
    # Two partitions allowed: both run on the GPU, with a copy across the CPU op between.
    two = dataclasses.replace(pixel3, gpu=dataclasses.replace(pixel3.gpu, max_partitions=2))
    both = latency(b"", two, split)
    assert both.details["gpu_partitions"] == 2
    assert both.details["copy_bytes"] > whole.details["copy_bytes"]


def test_the_gpu_delegate_computes_an_int8_file_in_fp16_and_leaves_int16_to_the_cpu(files):
    pixel3 = load_profile("pixel3-gpu")
    int8 = latency(b"", pixel3, files["int8"])
    assert int8.details["runs_fully"]
    int16 = latency(b"", pixel3, files["int16x8"])
    assert not int16.details["runs_fully"] and "int16" in int16.details["fallback"]


def _compute_bound(speedup: dict[str, float] | None) -> HardwareProfile:
    gpu = {"macs_per_s": {"float16": 1e9, "int8": 1e9}, "bandwidth_bytes_per_s": 1e15}
    if speedup:
        gpu["sparse_2_4_speedup"] = speedup
    return HardwareProfile.from_dict({"name": "g", "backend": "tensorrt", "gpu": gpu})


def test_2_4_weights_run_faster_only_on_sparse_tensor_cores() -> None:
    from tests.hardware.test_roofline import _model

    dense, sparse = (read_tflite(to_tflite(_model(p), "none")) for p in ("dense", "sparse"))
    plain, cores = _compute_bound(None), _compute_bound({"float16": 2.0})
    assert latency(b"", plain, sparse).median_ms == pytest.approx(
        latency(b"", plain, dense).median_ms
    )
    assert latency(b"", cores, sparse).median_ms == pytest.approx(
        latency(b"", cores, dense).median_ms / 2, rel=0.05
    )
    # The shipped profiles: A100 has sparse tensor cores, the T4 does not.
    assert load_profile("a100-trt").gpu.sparse_2_4_speedup
    assert not load_profile("t4-trt").gpu.sparse_2_4_speedup


@pytest.mark.parametrize(
    ("old", "new"),
    [("gpu-t4", "t4-trt"), ("gpu-jetson-nano", "jetson-nano-trt"), ("gpu-a100-trt", "a100-trt")],
)
def test_an_old_profile_name_names_its_successor(old: str, new: str) -> None:
    with pytest.raises(InputError, match=f"now '{new}'"):
        load_profile(old)


def test_channels_are_padded_to_the_kernels_multiple() -> None:
    """The delegate slices tensors into 4 channels: 3 and 4 input channels cost the same."""
    import tf_keras as keras

    def conv(channels: int) -> Graph:
        model = keras.Sequential(
            [keras.layers.Input((32, 32, channels), batch_size=1), keras.layers.Conv2D(16, 3)]
        )
        return read_tflite(to_tflite(model, "none"))

    pixel3 = load_profile("pixel3-gpu")
    unpadded = dataclasses.replace(
        pixel3, gpu=dataclasses.replace(pixel3.gpu, channel_multiple={}, copy_bytes_per_s=1e15)
    )
    padded = dataclasses.replace(pixel3, gpu=dataclasses.replace(pixel3.gpu, copy_bytes_per_s=1e15))
    three, four = conv(3), conv(4)
    assert latency(b"", padded, three).median_ms == pytest.approx(
        latency(b"", padded, four).median_ms, rel=1e-6
    )
    assert latency(b"", unpadded, three).median_ms < latency(b"", unpadded, four).median_ms
