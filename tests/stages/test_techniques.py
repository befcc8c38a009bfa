"""Latency-oriented techniques do what they claim on tiny models: 2:4 pattern in every group,
XNNPACK policy only where a subgraph qualifies, per-layer exclusions respected, SVD layers that
reproduce the original at full rank, int16x8 activations."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.hardware import read_tflite
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.lowrank import LowRank, factorize
from autocompress.stages.prune import Prune, is_2_4
from autocompress.stages.weight_facts import kernels
from autocompress.task import Task


@pytest.fixture(scope="module")
def teacher_ctx(tiny_task: Task):
    teacher = tiny_task.teacher.build()
    return teacher, BuildContext(tiny_task.data, teacher)


def test_is_2_4_checks_every_group() -> None:
    ok = np.array([[0, 0, 1, 2], [3, 0, 0, 4]], float).T  # (inputs=4, outputs=2)
    assert is_2_4(ok)
    bad = ok.copy()
    bad[0, 0] = 5.0  # the first output's group now has one zero
    assert not is_2_4(bad)


def test_2_4_pruning_holds_the_pattern_in_every_group(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    model, record = Prune().apply(
        teacher, Recipe(sparsity=0.5, prune_mode="2:4", finetune_epochs=1), ctx
    )
    ks = kernels(model)
    pruned = record.facts["2:4_layers"]
    assert set(pruned) == {name for name in ks if name not in record.facts["left_dense"]}
    assert pruned and all(is_2_4(ks[name]) for name in pruned)
    # The 3x3 convolution on one channel has 9 inputs per output: it stays dense, and says why.
    conv = next(name for name in ks if ks[name].ndim == 4)
    assert "not a multiple of 4" in record.facts["left_dense"][conv]
    # The int8 file keeps the pattern where the GPU simulator looks for it.
    from autocompress.stages.convert import convert

    tflite, _ = convert(model, Recipe(quantization="int8"), ctx)
    flagged = [op.sparse_2_4 for op in read_tflite(tflite).ops if op.macs]
    assert sum(flagged) == len(pruned) and len(flagged) == len(ks)


def test_xnnpack_mode_refuses_a_model_without_a_qualifying_subgraph(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    with pytest.raises(ValueError, match="no subgraph qualifies for XNNPACK"):
        Prune().apply(teacher, Recipe(sparsity=0.5, prune_mode="xnnpack"), ctx)


def test_xnnpack_mode_prunes_only_1x1_convolutions_and_keeps_them_sparse() -> None:
    import tf_keras as keras

    from autocompress.task import TaskData

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    data = TaskData(
        rng.random((64, 16, 16, 3), dtype=np.float32),
        rng.integers(0, 4, 64),
        rng.random((16, 16, 16, 3), dtype=np.float32),
        rng.integers(0, 4, 16),
    )
    ctx = BuildContext(data, model)
    recipe = Recipe(sparsity=0.8, prune_mode="xnnpack", finetune_epochs=1)
    tflite, records, pruned = build_candidate(model, recipe, ctx)
    facts = records[0].facts
    one_by_one = [
        layer.name
        for layer in pruned.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1)
    ]
    assert facts["xnnpack_pruned_layers"] == one_by_one
    assert facts["sparsity_per_layer"][one_by_one[0]] == pytest.approx(0.8, abs=0.02)
    assert records[-1].facts["sparse"] is True
    ops = read_tflite(tflite, "sparse").op_counts()
    assert ops.get("DENSIFY", 0) >= 1  # the 1x1 kernel is stored sparse, densified by the runtime
    assert (
        "DENSIFY" not in read_tflite(build_candidate(model, Recipe(), ctx).tflite, "d").op_counts()
    )


def test_exclusions_keep_first_and_last_layers_dense(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    model, record = Prune().apply(
        teacher, Recipe(sparsity=0.6, exclude="ends", finetune_epochs=1), ctx
    )
    per_layer = record.facts["sparsity_per_layer"]
    names = list(per_layer)
    assert per_layer[names[0]] == 0.0 and per_layer[names[-1]] == 0.0
    assert all(per_layer[n] == pytest.approx(0.6, abs=0.02) for n in names[1:-1])
    assert set(record.facts["left_dense"]) == {names[0], names[-1]}


def test_named_exclusion_keeps_that_layer_dense(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    weighted = list(kernels(teacher))
    named = weighted[1]
    _, record = Prune().apply(teacher, Recipe(sparsity=0.6, exclude=named, finetune_epochs=1), ctx)
    per_layer = record.facts["sparsity_per_layer"]
    assert per_layer[named] == 0.0
    assert all(per_layer[n] == pytest.approx(0.6, abs=0.02) for n in weighted if n != named)


def test_int8_conversion_keeps_excluded_layers_float(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    first, *middle, last = list(kernels(teacher))
    plain = read_tflite(build_candidate(teacher, Recipe(quantization="int8"), ctx).tflite)
    tflite, records, _ = build_candidate(teacher, Recipe(quantization="int8", exclude="ends"), ctx)
    convert = next(r for r in records if r.stage == "convert").facts
    assert convert["float_layers"] == sorted([first, last])
    graph = read_tflite(tflite)
    compute = [op.compute for op in graph.ops if op.macs]
    assert compute[0] == compute[-1] == "float32"
    assert set(compute[1:-1]) == {"int8"}
    assert {op.compute for op in plain.ops if op.macs} == {"int8"}
    # Inputs and outputs stay int8, as full-int8 conversion promises.
    assert graph.tensors[graph.inputs[0]].dtype == graph.tensors[graph.outputs[0]].dtype == "int8"
    assert "QUANTIZE" in graph.op_counts() and "DEQUANTIZE" in graph.op_counts()


def test_exclusions_keep_layers_out_of_clustering_and_qat(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    recipe = Recipe(clusters=4, quantization="qat", exclude="ends", finetune_epochs=1)
    _, records, final = build_candidate(teacher, recipe, ctx)
    cluster = next(r for r in records if r.stage == "cluster").facts
    uniques = cluster["unique_weights_per_layer"]
    first, *middle, last = list(uniques)
    assert uniques[first] > 4 and uniques[last] > 4 and all(uniques[m] <= 4 for m in middle)
    qat = next(r for r in records if r.stage == "qat").facts
    assert qat["excluded_layers"] == sorted([first, last])
    from autocompress.stages.quantize import KeepFloat

    configs = {
        layer.layer.name: type(layer.quantize_config).__name__
        for layer in final.layers
        if hasattr(layer, "quantize_config")
    }
    assert configs[first] == configs[last] == KeepFloat.__name__
    assert all(configs[m] != KeepFloat.__name__ for m in middle)


def test_svd_at_full_rank_reproduces_the_layer(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    factored, ranks, _ = factorize(teacher, energy=1.0, force=True)
    assert ranks and len(factored.layers) == len(teacher.layers) + len(ranks)
    x = ctx.data.x_val[:32]
    np.testing.assert_allclose(
        factored.predict(x, verbose=0), teacher.predict(x, verbose=0), atol=1e-5
    )


def test_svd_on_a_functional_model_with_a_residual_add() -> None:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((20,))
    h = keras.layers.Dense(64, activation="relu", name="a")(inputs)
    r = keras.layers.Dense(64, name="b")(h)
    h = keras.layers.Add()([h, r])
    outputs = keras.layers.Dense(3, name="out")(h)
    model = keras.Model(inputs, outputs)
    factored, ranks, _ = factorize(model, energy=1.0, force=True)
    x = np.random.default_rng(0).random((8, 20), dtype=np.float32)
    np.testing.assert_allclose(
        factored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert set(ranks) == {"a", "b", "out"}


def test_svd_of_1x1_convolutions_keeps_stride_and_output() -> None:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 12))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="k3")(inputs)
    h = keras.layers.Conv2D(24, 1, strides=2, activation="relu", name="pw")(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    factored, ranks, _ = factorize(model, energy=1.0, force=True)
    assert set(ranks) == {"pw", "out"}  # the 3x3 and the depthwise convolution stay
    layers = {layer.name: layer for layer in factored.layers}
    assert layers["pw_lowrank"].strides == (2, 2) and layers["pw"].strides == (1, 1)
    assert layers["pw_lowrank"].filters == ranks["pw"]["rank"] == 16
    x = np.random.default_rng(0).random((4, 9, 9, 12), dtype=np.float32)
    np.testing.assert_allclose(
        factored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4
    )
    # Below full rank it saves parameters and says which layers it left.
    small, low, left = factorize(model, energy=0.5)
    assert small.count_params() < model.count_params()
    assert "pw" in low and low["pw"]["rank"] < 16


def test_lowrank_stage_lowers_the_rank_and_the_parameters(teacher_ctx) -> None:
    teacher, ctx = teacher_ctx
    model, record = LowRank().apply(teacher, Recipe(rank_energy=0.5, finetune_epochs=1), ctx)
    facts = record.facts
    assert facts["params_after"] < facts["params_before"] == teacher.count_params()
    for info in facts["ranks"].values():
        assert info["rank"] < info["full_rank"]
        assert info["params"][1] < info["params"][0]
    assert model.count_params() == facts["params_after"]


def test_int16x8_quantization_keeps_int16_activations(teacher_ctx) -> None:
    from autocompress.evaluation.deployed import quality, tensor_dtypes
    from autocompress.metrics import ACCURACY

    teacher, ctx = teacher_ctx
    tflite, _, _ = build_candidate(teacher, Recipe(quantization="int16x8"), ctx)
    dtypes = tensor_dtypes(tflite)
    assert dtypes.get("int16", 0) > 0 and dtypes.get("int8", 0) > 0
    float_file = build_candidate(teacher, Recipe(), ctx).tflite
    x, y = ctx.data.x_val, ctx.data.y_val
    assert abs(quality(tflite, x, y, ACCURACY) - quality(float_file, x, y, ACCURACY)) <= 0.02
