"""Layer sensitivity and the keep_sensitive dimension (mixed precision with LiteRT Quantizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.hardware import read_tflite
from autocompress.litert.sensitivity import layer_pattern, measure_sensitivity
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.convert import to_tflite
from autocompress.task import Task

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def measured(tiny_task: Task):
    d = tiny_task.data
    float_file = to_tflite(tiny_task.teacher.build(), "none")
    return measure_sensitivity(float_file, d.x_train[:50], d.x_val, d.y_val)


@pytest.fixture(scope="module")
def ranked(measured):
    """The weighted layers only, in their order: the kept-layer tests count weighted ops."""
    return [s for s in measured if s.op in WEIGHTED]


def test_every_layer_is_measured_once(measured, tiny_task: Task) -> None:
    teacher = tiny_task.teacher.build()
    weighted = [layer.name for layer in teacher.layers if layer.weights]
    assert len({s.pattern for s in measured}) == len(measured)
    assert [s.drop for s in measured] == sorted((s.drop for s in measured), reverse=True)
    for name in weighted:  # each Keras layer is found by its pattern
        assert sum(f"/{name}/" in s.pattern.replace("\\", "") for s in measured) == 1
    # Layers without weights are layers too (their int8 activations can do the damage).
    assert {"MAX_POOL_2D", "SOFTMAX"} <= {s.op for s in measured}
    assert not {"QUANTIZE", "DEQUANTIZE", "RESHAPE"} & {s.op for s in measured}


def test_in_model_normalization_of_wide_ranged_inputs_is_found_and_kept() -> None:
    """The case uniform int8 breaks: a Normalization layer inside the model takes raw features
    of very different ranges, and one int8 scale for its input rounds the informative
    small-ranged feature away. Sensitivity ranks that layer first; keeping it float (k = 1)
    gives the float model's accuracy back in an otherwise int8 file."""
    import numpy as np
    import tf_keras as keras

    from autocompress.evaluation.deployed import quality
    from autocompress.litert.ptq import quantize_tflite
    from autocompress.metrics import ACCURACY

    rng = np.random.default_rng(0)
    n = 1200
    y = rng.integers(0, 2, n)
    informative = (y + rng.normal(0, 0.15, n)) * 0.01  # spans ~0.02
    loud = rng.uniform(0, 1000, n)  # spans 1000, carries nothing
    x = np.stack([informative, loud], axis=1).astype(np.float32)
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(x[:800])
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="relu")(norm(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:800], y[:800], epochs=30, verbose=0)
    float_file = to_tflite(model, "none")
    x_val, y_val = x[800:], y[800:]
    ranked = measure_sensitivity(float_file, x[:100], x_val, y_val)
    assert "normalization" in ranked[0].pattern and ranked[0].drop > 0.2
    float_acc = quality(float_file, x_val, y_val, ACCURACY)
    int8 = quantize_tflite(float_file, "int8", x[:100])
    kept = quantize_tflite(float_file, "int8", x[:100], keep_float=(ranked[0].pattern,))
    assert float_acc > 0.9 and quality(int8, x_val, y_val, ACCURACY) < float_acc - 0.2
    assert quality(kept, x_val, y_val, ACCURACY) >= float_acc - 0.02
    assert {op.compute for op in read_tflite(kept).ops if op.name == "FULLY_CONNECTED"} == {"int8"}


def test_layer_pattern_finds_the_layer_in_any_model_name() -> None:
    import re

    pattern = layer_pattern("sequential/dense_1/MatMul;sequential/dense_1/BiasAdd")
    assert re.search(pattern, "student/dense_1/MatMul")
    assert not re.search(pattern, "sequential/dense_11/MatMul")
    assert layer_pattern("args_0_quantized") == "^args_0_quantized$"


def test_keep_sensitive_leaves_the_most_sensitive_layers_float(ranked, tiny_task: Task) -> None:
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(
        data=tiny_task.data, teacher=teacher, sensitive=tuple(s.pattern for s in ranked)
    )
    plain, _, _ = build_candidate(teacher, Recipe(quantization="int8"), ctx)
    mixed, records, _ = build_candidate(teacher, Recipe(quantization="int8", keep_sensitive=1), ctx)
    assert records[-1].facts["kept_float"] == [ranked[0].pattern]
    weighted = lambda f: [op.compute for op in read_tflite(f).ops if op.macs]  # noqa: E731
    assert set(weighted(plain)) == {"int8"}
    assert sorted(weighted(mixed)) == sorted(["float32"] + ["int8"] * (len(ranked) - 1))


def test_search_measures_sensitivity_once_and_reports_it(
    ray_cluster, tiny_task: Task, tmp_path: Path, measured
) -> None:
    from autocompress import search
    from autocompress.run.report import write_report
    from autocompress.space import SearchSpace

    space = SearchSpace.from_dict(
        {"quantization": ["int8"], "keep_sensitive": [0, 1, 2]}, source="inline"
    )
    out = tmp_path / "run"
    search(task=tiny_task, space=space, trials=3, workers=1, out=out)
    stored = json.loads((out / "sensitivity.json").read_text())
    assert len(stored["ops"]) == len(measured)
    trials = pd.read_csv(out / "trials.csv")
    assert set(trials[trials["state"] == "COMPLETE"]["keep_sensitive"]) == {0, 1, 2}
    assert "Layer sensitivity" in write_report(out).read_text()


def test_kept_layers_as_a16w8_get_int16_activations(ranked, tiny_task: Task) -> None:
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(
        data=tiny_task.data, teacher=teacher, sensitive=tuple(s.pattern for s in ranked)
    )
    recipe = Recipe(quantization="int8", keep_sensitive=1, keep_as="a16w8")
    mixed, records, _ = build_candidate(teacher, recipe, ctx)
    assert records[-1].facts["kept_as"] == "a16w8"
    weighted = [op.compute for op in read_tflite(mixed).ops if op.macs]
    assert sorted(weighted) == sorted(["int16x8"] + ["int8"] * (len(ranked) - 1))
    # A w4a8 file has int8 activations too: its kept layer is widened the same way, and its
    # other convolutions and fully connected layers carry int4 weights.
    w4a8 = Recipe(quantization="w4a8", keep_sensitive=1, keep_as="a16w8")
    w4_file, w4a8_records, _ = build_candidate(teacher, w4a8, ctx)
    assert w4a8_records[-1].facts["kept_as"] == "a16w8"
    graph = read_tflite(w4_file)
    weights = {graph.tensors[op.inputs[1]].dtype for op in graph.ops if op.compute == "int8"
               and op.name in ("CONV_2D", "FULLY_CONNECTED")}  # fmt: skip
    assert weights == {"int4"} and "int16x8" in {op.compute for op in graph.ops}
    # Outside an int8 file there are no int8 activations to widen: the kept layer stays float.
    w4 = Recipe(quantization="weight_int4", keep_sensitive=1, keep_as="a16w8")
    _, w4_records, _ = build_candidate(teacher, w4, ctx)
    assert w4_records[-1].facts["kept_as"] == "float"


@pytest.mark.parametrize("mode", ["int8", "int16x8", "weight_int8", "weight_int4"])
@pytest.mark.parametrize("algorithm", ["mse", "octav", "gptq"])
def test_every_algorithm_quantizes_every_mode_it_serves(
    tiny_task: Task, mode: str, algorithm: str
) -> None:
    """Same kind of file as min-max, accuracy within 0.03 of the float file on the demo."""
    from autocompress.evaluation.deployed import quality
    from autocompress.litert.ptq import quantize_tflite
    from autocompress.metrics import ACCURACY

    d = tiny_task.data
    float_file = to_tflite(tiny_task.teacher.build(), "none")
    plain = quantize_tflite(float_file, mode, d.x_train[:100])
    other = quantize_tflite(float_file, mode, d.x_train[:100], algorithm=algorithm)

    def kinds(tflite: bytes, ops: tuple[str, ...]) -> list[str]:
        return [op.compute for op in read_tflite(tflite).ops if op.macs and op.name in ops]

    assert other != plain
    assert kinds(other, ("FULLY_CONNECTED",)) == kinds(plain, ("FULLY_CONNECTED",))
    if algorithm == "gptq" and mode in ("int8", "int16x8"):
        # LiteRT Quantizer 0.11's GPTQ serves fully connected layers only: convolutions of a
        # static file stay float (what a candidate's file then holds, measured as such).
        assert set(kinds(other, ("CONV_2D",))) == {"float32"}
    elif algorithm != "gptq":  # (GPTQ weight-only files keep their convolutions' weights float)
        assert kinds(other, ("CONV_2D",)) == kinds(plain, ("CONV_2D",))
        # The same ops as the min-max file: the ops MSE does not serve (all but the weight
        # ops) get min-max ranges, not a float island between DEQUANTIZE / QUANTIZE pairs.
        assert read_tflite(other).op_counts() == read_tflite(plain).op_counts()
    assert (
        quality(other, d.x_val, d.y_val, ACCURACY)
        >= quality(float_file, d.x_val, d.y_val, ACCURACY) - 0.03
    )


def test_algorithm_names_agree_with_the_space() -> None:
    from autocompress.litert.ptq import ALGORITHMS
    from autocompress.recipe import PTQ_ALGORITHMS

    assert tuple(ALGORITHMS) == PTQ_ALGORITHMS


def test_profiled_calibration_records_the_ranges_of_the_full_one(tiny_task: Task) -> None:
    """The fast (profiler-based) calibration that min-max files use gives every tensor the
    ranges that keeping every tensor gives, within float round-off."""
    from litert_quantizer import quantizer, recipe
    from litert_quantizer.calibrator import CalibrationMode

    from autocompress.litert.ptq import _calibrate, calibration_feeds

    float_file = to_tflite(tiny_task.teacher.build(), "none")
    feeds = calibration_feeds(float_file, tiny_task.data.x_train[:100])
    ranges = []
    for profiled in (True, False):
        qt = quantizer.Quantizer(bytearray(float_file))
        qt.load_quantization_recipe(
            recipe.static_wi8_ai8(recipe.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
        )
        if profiled:  # the mode itself, so that a fall-back cannot pass for it
            ranges.append(qt.calibrate(feeds, mode=CalibrationMode.CALIBRATION_PROFILER_BASED))
        else:
            ranges.append(_calibrate(qt, feeds, profiled=False))
    fast, full = ranges
    assert set(fast) == set(full) and full
    for name in full:
        for bound in ("min", "max"):
            a, b = np.ravel(fast[name][bound]), np.ravel(full[name][bound])
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
