"""Layer sensitivity and the keep_sensitive dimension (mixed precision with LiteRT Quantizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autocompress.hardware import read_tflite
from autocompress.records import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.convert import to_tflite
from autocompress.stages.sensitivity import layer_pattern, measure_sensitivity
from autocompress.task import Task


@pytest.fixture(scope="module")
def ranked(tiny_task: Task):
    d = tiny_task.data
    float_file = to_tflite(tiny_task.teacher.build(), "none")
    return measure_sensitivity(float_file, d.x_train[:50], d.x_val, d.y_val)


def test_every_weighted_layer_is_measured_once(ranked, tiny_task: Task) -> None:
    teacher = tiny_task.teacher.build()
    weighted = [layer.name for layer in teacher.layers if layer.weights]
    assert len(ranked) == len(weighted)
    assert [s.accuracy_drop for s in ranked] == sorted(
        (s.accuracy_drop for s in ranked), reverse=True
    )
    for name in weighted:  # each Keras layer is found by its pattern
        assert sum(f"/{name}/" in s.pattern.replace("\\", "") for s in ranked) == 1


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
    ray_cluster, tiny_task: Task, tmp_path: Path
) -> None:
    from autocompress import search
    from autocompress.report import write_report
    from autocompress.space import SearchSpace

    space = SearchSpace.from_dict(
        {"quantization": ["int8"], "keep_sensitive": [0, 1, 2]}, source="inline"
    )
    out = tmp_path / "run"
    search(task=tiny_task, space=space, trials=3, workers=1, out=out)
    stored = json.loads((out / "sensitivity.json").read_text())
    assert len(stored["ops"]) == 3
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
    from autocompress.evaluate import accuracy
    from autocompress.stages.ptq import quantize_tflite

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
    else:
        assert kinds(other, ("CONV_2D",)) == kinds(plain, ("CONV_2D",))
    assert accuracy(other, d.x_val, d.y_val) >= accuracy(float_file, d.x_val, d.y_val) - 0.03


def test_algorithm_names_agree_with_the_space() -> None:
    from autocompress.space import PTQ_ALGORITHMS
    from autocompress.stages.ptq import ALGORITHMS

    assert tuple(ALGORITHMS) == PTQ_ALGORITHMS
