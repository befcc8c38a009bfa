"""Each stage does what it claims, measured on its output; none of them touches its input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autocompress.evaluation.deployed import quality, tensor_dtypes
from autocompress.metrics import ACCURACY
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.cluster import Cluster
from autocompress.stages.distill import Distill
from autocompress.stages.prune import Prune
from autocompress.stages.quantize import QuantizeAware
from autocompress.stages.weight_facts import kernels
from autocompress.task import Task


@pytest.fixture()
def teacher_and_ctx(tiny_task: Task):
    teacher = tiny_task.teacher.build()
    return teacher, BuildContext(data=tiny_task.data, teacher=teacher)


def snapshot(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def unchanged(model, before: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_distill_scales_widths_and_learns(teacher_and_ctx) -> None:
    teacher, ctx = teacher_and_ctx
    before = snapshot(teacher)
    student, record = Distill().apply(teacher, Recipe(student_width=0.5, distill_epochs=20), ctx)
    widths = {
        layer.name: layer.get_config().get("filters") or layer.get_config().get("units")
        for layer in student.layers
        if layer.weights
    }
    assert list(widths.values()) == [4, 16, 10]  # conv 8->4, dense 32->16, output keeps 10
    assert record.facts["student_params"] < record.facts["teacher_params"]
    assert record.facts["keras_val_accuracy"] > 0.5  # far above the 0.1 of chance on 10 classes
    assert unchanged(teacher, before)


@pytest.mark.parametrize("target", [0.5, 0.8])
def test_prune_reaches_target_sparsity(teacher_and_ctx, target: float) -> None:
    teacher, ctx = teacher_and_ctx
    before = snapshot(teacher)
    pruned, record = Prune().apply(teacher, Recipe(sparsity=target, finetune_epochs=2), ctx)
    for name, kernel in kernels(pruned).items():
        assert abs(np.mean(kernel == 0) - target) < 0.02, name
    assert abs(record.facts["sparsity"] - target) < 0.02
    assert unchanged(teacher, before)


def test_cluster_bounds_unique_weights_per_layer(teacher_and_ctx) -> None:
    teacher, ctx = teacher_and_ctx
    before = snapshot(teacher)
    clustered, record = Cluster().apply(teacher, Recipe(clusters=6, finetune_epochs=1), ctx)
    for name, kernel in kernels(clustered).items():
        assert np.unique(kernel).size <= 6, name
    assert max(record.facts["unique_weights_per_layer"].values()) <= 6
    assert unchanged(teacher, before)


def test_cluster_after_prune_keeps_sparsity(teacher_and_ctx) -> None:
    teacher, ctx = teacher_and_ctx
    recipe = Recipe(sparsity=0.5, clusters=8, finetune_epochs=1)
    pruned, _ = Prune().apply(teacher, recipe, ctx)
    clustered, record = Cluster().apply(pruned, recipe, ctx)
    assert record.facts["sparsity_preserving"] is True
    assert record.facts["sparsity"] >= 0.49
    assert max(record.facts["unique_weights_per_layer"].values()) <= 8


@pytest.mark.parametrize(
    ("mode", "dtype"), [("int8", "int8"), ("float16", "float16"), ("qat", "int8")]
)
def test_quantized_files_hold_quantized_tensors(teacher_and_ctx, tiny_task, mode, dtype) -> None:
    teacher, ctx = teacher_and_ctx
    ctx = dataclasses.replace(ctx, integer_io=True)  # as for an Edge TPU profile
    tflite, records, _ = build_candidate(teacher, Recipe(quantization=mode, finetune_epochs=1), ctx)
    dtypes = tensor_dtypes(tflite)
    assert dtypes.get(dtype, 0) > 0
    assert records[-1].stage == "convert"
    if mode == "int8":  # full integer: no float tensor at all, int8 input and output
        assert "float32" not in dtypes
    assert quality(tflite, tiny_task.data.x_val, tiny_task.data.y_val, ACCURACY) > 0.6


def test_qat_scheme_preserves_earlier_stages(teacher_and_ctx) -> None:
    teacher, ctx = teacher_and_ctx
    recipe = Recipe(sparsity=0.5, clusters=8, quantization="qat", finetune_epochs=1)
    _, record = QuantizeAware().apply(teacher, recipe, ctx)
    assert record.facts["scheme"] == "cluster+sparsity-preserving"


def test_full_pipeline_leaves_teacher_unchanged(teacher_and_ctx) -> None:
    teacher, ctx = teacher_and_ctx
    before = snapshot(teacher)
    recipe = Recipe(
        student_width=0.5,
        sparsity=0.5,
        clusters=8,
        quantization="qat",
        distill_epochs=1,
        finetune_epochs=1,
    )
    tflite, records, _ = build_candidate(teacher, recipe, ctx)
    assert [r.stage for r in records] == ["distill", "prune", "cluster", "qat", "convert"]
    assert tflite[4:8] == b"TFL3"
    assert unchanged(teacher, before)


@pytest.mark.parametrize("mode", ["dynamic", "float16", "int8", "int16x8"])
@pytest.mark.parametrize("integer_io", [False, True])
def test_litert_quantizer_files_match_the_converters(teacher_and_ctx, mode, integer_io) -> None:
    """Post-training modes now come from LiteRT Quantizer on the float file: the same kind of
    file as the TF converter's (compute kinds of the weighted ops), at the same accuracy."""
    from autocompress.hardware import read_tflite
    from autocompress.stages.convert import convert

    teacher, ctx = teacher_and_ctx
    ctx = dataclasses.replace(ctx, integer_io=integer_io)
    recipe = Recipe(quantization=mode)
    new, records, _ = build_candidate(teacher, recipe, ctx)
    assert records[-1].facts["quantizer"] == "litert-quantizer"
    old, _ = convert(teacher, recipe, ctx)

    def kinds(tflite: bytes) -> set[str]:
        return {op.compute for op in read_tflite(tflite).ops if op.macs}

    assert kinds(new) == kinds(old)
    inputs = read_tflite(new)
    io_dtype = inputs.tensors[inputs.inputs[0]].dtype
    if mode == "int8":
        assert io_dtype == ("int8" if integer_io else "float32")
    x, y = ctx.data.x_val, ctx.data.y_val
    assert abs(quality(new, x, y, ACCURACY) - quality(old, x, y, ACCURACY)) <= 0.02


def test_second_mode_of_a_stage_output_reuses_its_float_file(teacher_and_ctx) -> None:
    from autocompress.run.cache import MemoryCache

    teacher, ctx = teacher_and_ctx
    cache = MemoryCache()
    recipe = Recipe(sparsity=0.5, finetune_epochs=1)
    _, first, _ = build_candidate(
        teacher, dataclasses.replace(recipe, quantization="int8"), ctx, cache=cache, key="k"
    )
    _, second, _ = build_candidate(
        teacher, dataclasses.replace(recipe, quantization="dynamic"), ctx, cache=cache, key="k"
    )
    assert first[-1].facts["float_file_reused"] is False
    assert second[-1].facts["float_file_reused"] is True
    assert second[0].reused  # the pruned model came from the cache too


def test_distillation_loss_by_hand() -> None:
    """alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T), on numbers worked
    out with numpy; the KL term vanishes when the student equals the teacher."""
    from autocompress.stages.teaching import distillation_loss

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    t_log = log_softmax(np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]))
    s_log = log_softmax(np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]]))
    y = np.array([0, 2])
    temp, alpha = 4.0, 0.3
    hard = -np.mean(s_log[np.arange(2), y])
    pt, lpt, lps = (
        np.exp(log_softmax(t_log / temp)),
        log_softmax(t_log / temp),
        log_softmax(s_log / temp),
    )
    kl = np.mean(np.sum(pt * (lpt - lps), axis=-1))
    expected = alpha * hard + (1 - alpha) * temp**2 * kl
    got = float(distillation_loss(y, s_log.astype("float32"), t_log.astype("float32"), temp, alpha))
    assert got == pytest.approx(expected, rel=1e-5)
    assert kl > 0
    same = float(distillation_loss(y, t_log.astype("float32"), t_log.astype("float32"), temp, 0.0))
    assert same == pytest.approx(0.0, abs=1e-6)


def test_zero_epochs_is_a_calibration_not_a_no_op(teacher_and_ctx) -> None:
    """Level 0 of a multi-fidelity search: compression applied, no weight trained."""
    teacher, ctx = teacher_and_ctx
    pruned, record = Prune().apply(teacher, Recipe(sparsity=0.5, finetune_epochs=0), ctx)
    assert record.facts["sparsity"] == pytest.approx(0.5, abs=0.02)  # masks set by calibration
    for name, k in kernels(pruned).items():
        kept = k != 0
        assert np.array_equal(k[kept], kernels(teacher)[name][kept])  # the rest did not move
    clustered, _ = Cluster().apply(teacher, Recipe(clusters=8, finetune_epochs=0), ctx)
    assert all(np.unique(k).size <= 8 for k in kernels(clustered).values())
    tflite, _ = build_candidate(teacher, Recipe(quantization="qat", finetune_epochs=0), ctx)[:2]
    assert quality(tflite, ctx.data.x_val, ctx.data.y_val, ACCURACY) > 0.8  # ranges calibrated


def test_a_student_keeps_the_width_of_every_layer_an_output_is_shaped_from() -> None:
    """A box head ``Dense(4)`` under a ``Reshape((1, 4))`` output keeps its 4 units (the output
    is the Reshape, not the Dense); the layers before it narrow."""
    import json

    import tf_keras as keras

    from autocompress.stages.distill import student_config

    inp = keras.Input((8,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inp)
    boxes = keras.layers.Reshape((1, 4), name="boxes")(
        keras.layers.Dense(4, name="box_head")(hidden)
    )
    scores = keras.layers.Dense(3, activation="softmax", name="scores")(hidden)
    config, widths = student_config(keras.Model(inp, [boxes, scores]), 0.5)
    assert widths == {"hidden": 16}
    student = keras.models.model_from_json(config)
    assert [tuple(t.shape[1:]) for t in student.outputs] == [(1, 4), (3,)]
    assert json.loads(config)["config"]["output_layers"][0][0] == "boxes"
