"""A float .tflite file as the model: post-training quantization with LiteRT Quantizer, searched
and measured like every other candidate; training-time techniques refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.errors import InputError
from autocompress.evaluation.deployed import quality, tensor_dtypes
from autocompress.litert.ptq import LITERT_MODES, quantize_tflite
from autocompress.metrics import ACCURACY
from autocompress.models.tflite import TfliteTeacher
from autocompress.task import Task
from tests.test_cli import assert_clean_error, run_cli, search_cli


@pytest.fixture(scope="module")
def float_tflite(tiny_task: Task) -> bytes:
    """The tiny teacher as a float .tflite file, as any converter would hand it over."""
    from autocompress.stages.convert import to_tflite

    return to_tflite(tiny_task.teacher.build(), "none")


@pytest.fixture(scope="module")
def int8_tflite(float_tflite: bytes, tiny_task: Task) -> bytes:
    """The float file in plain int8 (100 calibration samples): what other modes are held to."""
    return quantize_tflite(float_tflite, "int8", tiny_task.data.x_train[:100])


@pytest.fixture(scope="module")
def tflite_task(tmp_path_factory: pytest.TempPathFactory, float_tflite: bytes, task_files) -> Path:
    root = tmp_path_factory.mktemp("tflite_task")
    (root / "model.tflite").write_bytes(float_tflite)
    (root / "task.yaml").write_text(f"model: model.tflite\ndata: {task_files / 'data.npz'}\n")
    return root


@pytest.mark.parametrize("mode", LITERT_MODES)
def test_each_mode_gives_its_kind_of_file(mode: str, float_tflite: bytes, tiny_task: Task) -> None:
    d = tiny_task.data
    floor = quality(float_tflite, d.x_val, d.y_val, ACCURACY) - 0.05
    quantized = quantize_tflite(float_tflite, mode, d.x_train[:100])
    dtypes = tensor_dtypes(quantized)
    expected = {
        "dynamic": "int8",
        "float16": "float16",
        "int8": "int8",
        "int8_symmetric": "int8",
        "int16x8": "int16",
        "w4a8": "int8",  # int8 activations; its int4 weights: test_w4a8_...
        "weight_int8": "int8",
        "weight_int4": "int8",  # int4 weights are stored packed in int8 buffers
    }[mode]
    assert expected in dtypes, dtypes
    assert len(quantized) < len(float_tflite)
    assert quality(quantized, d.x_val, d.y_val, ACCURACY) >= floor
    from ai_edge_litert.interpreter import Interpreter

    inp = Interpreter(model_content=quantized).get_input_details()[0]
    assert np.dtype(inp["dtype"]) == np.float32  # float I/O unless asked otherwise


def test_int4_weights_are_smaller_than_int8(float_tflite: bytes) -> None:
    int8 = quantize_tflite(float_tflite, "weight_int8")
    int4 = quantize_tflite(float_tflite, "weight_int4")
    assert len(int4) < len(int8)


def test_w4a8_has_int4_weights_int8_activations(
    float_tflite: bytes, int8_tflite: bytes, tiny_task: Task
) -> None:
    from autocompress.hardware import latency, load_profile, read_tflite

    d = tiny_task.data
    w4a8 = quantize_tflite(float_tflite, "w4a8", d.x_train[:100])
    int8 = int8_tflite
    graph = read_tflite(w4a8)
    for op in graph.ops:
        if op.name in ("CONV_2D", "FULLY_CONNECTED"):
            assert op.compute == "int8"
            weight = graph.tensors[op.inputs[1]]
            assert weight.dtype == "int4" and weight.data_bytes <= (weight.elements + 1) // 2
    assert len(w4a8) < len(int8)
    assert (
        quality(w4a8, d.x_val, d.y_val, ACCURACY)
        >= quality(float_tflite, d.x_val, d.y_val, ACCURACY) - 0.03
    )
    tpu = latency(w4a8, load_profile("edgetpu-usb"))  # the Edge TPU takes 8-bit weights only
    assert not tpu.deployable and "int4 weights" in tpu.details["reason"]
    assert latency(int8, load_profile("edgetpu-usb")).deployable


def test_int8_symmetric_is_the_int8_tensorrt_takes(
    float_tflite: bytes, int8_tflite: bytes, tiny_task: Task
) -> None:
    from autocompress.hardware import latency, load_profile, read_tflite

    d = tiny_task.data
    symmetric = quantize_tflite(float_tflite, "int8_symmetric", d.x_train[:100])
    int8 = int8_tflite
    graph = read_tflite(symmetric)
    softmax = {t for op in graph.ops if op.name == "SOFTMAX" for t in op.outputs}
    assert softmax and all(graph.tensors[t].zero_point == -128 for t in softmax)  # TFLite fixes it
    quantized = [
        t for t in graph.tensors if t.dtype == "int8" and not t.constant and t.index not in softmax
    ]
    assert quantized and all(t.zero_point == 0 for t in quantized)
    assert any(t.zero_point != 0 for t in read_tflite(int8).tensors if t.dtype == "int8")
    t4 = load_profile("t4-trt")
    assert latency(symmetric, t4).deployable
    assert not latency(int8, t4).deployable
    assert (
        quality(symmetric, d.x_val, d.y_val, ACCURACY)
        >= quality(float_tflite, d.x_val, d.y_val, ACCURACY) - 0.05
    )


def test_integer_io_on_request(float_tflite: bytes, tiny_task: Task) -> None:
    from ai_edge_litert.interpreter import Interpreter

    quantized = quantize_tflite(float_tflite, "int8", tiny_task.data.x_train[:50], integer_io=True)
    inp = Interpreter(model_content=quantized).get_input_details()[0]
    assert np.dtype(inp["dtype"]) == np.int8


def test_keras_route_offers_weight_only_modes(tiny_task: Task) -> None:
    from autocompress.stages.convert import to_tflite

    d = tiny_task.data
    model = tiny_task.teacher.build()
    int4 = to_tflite(model, "weight_int4")
    assert len(int4) < len(to_tflite(model, "none"))
    assert quality(int4, d.x_val, d.y_val, ACCURACY) > 0.5
    w4a8 = to_tflite(model, "w4a8", d.x_train[:50])
    assert quality(w4a8, d.x_val, d.y_val, ACCURACY) > 0.5


def test_search_of_a_tflite_model(tflite_task: Path, tmp_path: Path) -> None:
    profiles = ("--profile", "cpu-host", "--profile", "edgetpu-usb")
    proc = search_cli(tflite_task / "task.yaml", tmp_path / "run", *profiles, trials=4)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) >= 4  # repeats of a built recipe are answered free, beyond the budget
    assert set(done["quantization"]) <= {
        "none", "dynamic", "float16", "int8", "int8_symmetric", "int16x8", "w4a8", "weight_int8",
        "weight_int4",
    }  # fmt: skip
    assert (done["accuracy"] > 0.5).all()
    assert (tmp_path / "run" / "pareto.csv").exists()
    proc = run_cli("show", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr


def test_training_technique_on_a_tflite_model_is_one_line(
    tflite_task: Path, tmp_path: Path, smoke_space_file: Path
) -> None:
    proc = search_cli(tflite_task / "task.yaml", tmp_path / "run", space=smoke_space_file)
    assert_clean_error(proc, str(smoke_space_file), "needs a trainable model", "--space tflite")


def test_quantized_or_broken_tflite_is_refused(
    tmp_path: Path, float_tflite: bytes, tiny_task: Task
) -> None:
    quantized = tmp_path / "q.tflite"
    quantized.write_bytes(
        quantize_tflite(float_tflite, "int8", tiny_task.data.x_train[:20], integer_io=True)
    )
    with pytest.raises(InputError, match="input is int8: give the float model"):
        TfliteTeacher.from_file(quantized)
    broken = tmp_path / "b.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(InputError, match="LiteRT cannot load it"):
        TfliteTeacher.from_file(broken)


def test_fixed_batch_file_is_run_in_its_batch(tiny_task: Task) -> None:
    """litert-torch exports batch 1 with reshapes that assume it: never resized."""
    import tensorflow as tf
    import tf_keras as keras

    from autocompress.evaluation.deployed import predict

    teacher = tiny_task.teacher.build()
    inp = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Reshape((1, 64))(inp)  # a reshape that bakes in the batch of 1
    x = keras.layers.Reshape((8, 8, 1))(x)
    fixed = keras.Model(inp, teacher(x))
    content = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()
    d = tiny_task.data
    want = teacher.predict(d.x_val[:7], verbose=0)
    got = predict(content, d.x_val[:7])
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4
    quantized = quantize_tflite(content, "int8", d.x_train[:20])
    assert predict(quantized, d.x_val[:7]).shape == want.shape
