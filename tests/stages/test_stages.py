"""Each stage does what it claims, measured on its output; none of them touches its input."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.evaluate import accuracy, tensor_dtypes
from autocompress.records import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages._keras import kernels
from autocompress.stages.cluster import Cluster
from autocompress.stages.distill import Distill
from autocompress.stages.prune import Prune
from autocompress.stages.quantize import QuantizeAware
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
    tflite, records, _ = build_candidate(teacher, Recipe(quantization=mode, finetune_epochs=1), ctx)
    dtypes = tensor_dtypes(tflite)
    assert dtypes.get(dtype, 0) > 0
    assert records[-1].stage == "convert"
    if mode == "int8":  # full integer: no float tensor at all, int8 input and output
        assert "float32" not in dtypes
    assert accuracy(tflite, tiny_task.data.x_val, tiny_task.data.y_val) > 0.6


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
