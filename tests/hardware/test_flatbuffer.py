"""The .tflite reader: op counts, MACs known by hand, weights, peak memory, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.hardware.flatbuffer import read_tflite
from tests.hardware.conftest import small_cnn, to_tflite


@pytest.fixture(scope="module")
def float_file() -> bytes:
    return to_tflite(small_cnn())


def test_op_counts_and_macs_by_hand(float_file: bytes) -> None:
    g = read_tflite(float_file)
    counts = g.op_counts()
    assert counts["CONV_2D"] == 1 and counts["DEPTHWISE_CONV_2D"] == 1
    assert counts["FULLY_CONNECTED"] == 1
    macs = {op.name: op.macs for op in g.ops if op.macs}
    assert macs["CONV_2D"] == 8 * 8 * 4 * (3 * 3 * 2)  # out pixels x out ch x kernel x in ch
    assert macs["DEPTHWISE_CONV_2D"] == 8 * 8 * 4 * (3 * 3)
    assert macs["FULLY_CONNECTED"] == 10 * 256
    assert g.macs == 4608 + 2304 + 2560
    assert all(op.compute == "float32" for op in g.ops if op.macs)


def test_weights_and_peak_memory(float_file: bytes) -> None:
    g = read_tflite(float_file)
    params = (4 * 3 * 3 * 2 + 4) + (3 * 3 * 4 + 4) + (256 * 10 + 10)
    assert g.weight_bytes == params * 4 + 2 * 4  # + the int32 target shape of the reshape
    # Largest live set: an 8x8x4 float activation read while the next one is written.
    assert g.peak_activation_bytes() == 2 * 8 * 8 * 4 * 4
    assert g.peak_ram_bytes() == g.peak_activation_bytes() + g.weight_bytes


def test_int8_file_is_int8_compute() -> None:
    g = read_tflite(to_tflite(small_cnn(), "int8"))
    assert {op.compute for op in g.ops if op.macs} == {"int8"}
    conv = next(op for op in g.ops if op.name == "CONV_2D")
    assert conv.weight_bytes == 4 * 3 * 3 * 2 + 4 * 4  # int8 kernel + int32 bias


def test_dynamic_range_file_is_hybrid() -> None:
    import tf_keras as keras

    model = keras.Sequential([keras.layers.Input((1024,)), keras.layers.Dense(256)])
    g = read_tflite(to_tflite(model, "dynamic"))
    assert [op.compute for op in g.ops if op.macs] == ["hybrid"]


def test_zero_fraction_of_pruned_weights() -> None:
    import tf_keras as keras

    model = keras.Sequential([keras.layers.Input((64,)), keras.layers.Dense(32)])
    kernel, bias = model.get_weights()
    kernel[:, :24] = 0.0  # 75 % zeros
    model.set_weights([kernel, bias])
    g = read_tflite(to_tflite(model))
    fractions = [t.zero_fraction for t in g.tensors if t.constant and t.elements == 64 * 32]
    assert fractions == [pytest.approx(0.75)]


def test_not_a_tflite_file() -> None:
    with pytest.raises(InputError, match="no TFL3 identifier"):
        read_tflite(b"PK\x03\x04 not a model", "x.tflite")


def test_fuzzed_files_never_crash(float_file: bytes) -> None:
    """Truncations and random byte flips of a real file: a Graph or one clean InputError."""
    rng = np.random.default_rng(0)
    corpus = [float_file[:n] for n in (8, 16, 64, 300, len(float_file) // 2)]
    for _ in range(300):
        data = bytearray(float_file)
        for pos in rng.integers(8, len(data), size=rng.integers(1, 20)):
            data[pos] = rng.integers(0, 256)
        corpus.append(bytes(data))
    clean = 0
    for data in corpus:
        try:
            read_tflite(data, "fuzz.tflite")
            clean += 1
        except InputError as exc:
            assert str(exc).startswith("fuzz.tflite: ") and "\n" not in str(exc)
    assert clean < len(corpus)  # the corpus does exercise the error path


def test_transposed_convolution_computes_in_its_data_type() -> None:
    """TRANSPOSE_CONV's first input is its output shape (int32, computed at run time when the
    batch is dynamic); the compute type comes from the data input, so an int8 file maps."""
    import tf_keras as keras

    from autocompress.hardware.edgetpu import deployability

    L = keras.layers
    inputs = keras.Input((4, 4, 3))  # dynamic batch: the output shape is a run-time tensor
    model = keras.Model(inputs, L.Conv2DTranspose(5, 3, strides=2, padding="same")(inputs))
    int8 = read_tflite(to_tflite(model, "int8"))
    (op,) = [op for op in int8.ops if op.name == "TRANSPOSE_CONV"]
    assert int8.tensors[op.inputs[0]].dtype == "int32" and not int8.tensors[op.inputs[0]].constant
    assert op.compute == "int8" and op.macs == (4 * 4 * 3) * (5 * 3 * 3)  # each input to 3x3x5
    assert deployability(int8) is None
    (fop,) = [op for op in read_tflite(to_tflite(model)).ops if op.name == "TRANSPOSE_CONV"]
    assert fop.compute == "float32"


def test_graph_round_trips_through_its_plain_form(float_file: bytes) -> None:
    import json

    from autocompress.hardware.flatbuffer import Graph

    g = read_tflite(float_file)
    assert Graph.from_dict(json.loads(json.dumps(g.to_dict()))) == g
