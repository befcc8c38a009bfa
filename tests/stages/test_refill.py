"""Float files without the converter: a refilled file is the converter's file of the same model
(same ops, same tensors, weights and outputs within float round-off) for every technique that
keeps the architecture, and wherever that cannot be shown the converter runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tf_keras as keras

from autocompress.evaluation.deployed import predict
from autocompress.hardware.flatbuffer import read_tflite
from autocompress.litert.refill import (
    Template,
    _float_tensors,
    architecture_digest,
    derive,
    refill,
    weight_map,
)
from autocompress.recipe import Recipe
from autocompress.run.cache import MemoryCache
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.channels import ChannelPrune
from autocompress.stages.cluster import Cluster
from autocompress.stages.convert import to_tflite
from autocompress.stages.distill import Distill
from autocompress.stages.prune import Prune
from autocompress.task import Task, TaskData, TeacherSpec

L = keras.layers


def mobile_model() -> keras.Model:
    """What a MobileNet is made of: convolutions and a depthwise one with BatchNorm after them
    (the converter folds those), a residual Add with a BatchNorm of its own, a dense head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    a = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    a = L.ReLU()(L.BatchNormalization(name="stem_bn")(a))
    b = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(a)
    b = L.ReLU()(L.BatchNormalization(name="dw_bn")(b))
    b = L.Conv2D(8, 1, name="pw")(b)  # with a bias: folded with its BatchNorm
    b = L.BatchNormalization(name="pw_bn")(b)
    x = L.BatchNormalization(name="add_bn")(L.Add(name="add")([a, b]))  # nothing to fold into
    x = L.GlobalAveragePooling2D()(L.ReLU()(x))
    x = L.Dense(16, activation="relu", name="hidden")(x)
    outputs = L.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def mobile(tiny_task: Task) -> tuple[keras.Model, BuildContext, bytes]:
    """The model trained a little (BatchNorm statistics of its own), its context and the
    converter's float file of it."""
    data: TaskData = tiny_task.data
    model = mobile_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    task = Task(name="mobile", teacher=TeacherSpec.from_model(model), data=data, source="t")
    teacher = task.teacher.build()
    return teacher, BuildContext(data=data, teacher=teacher), to_tflite(teacher, "none")


def same_file(refilled: bytes, converted: bytes) -> None:
    """The refilled file is the converter's: the same ops on the same tensors (names, shapes,
    dtypes; the converter may number them differently), weights within round-off."""
    a, b = read_tflite(refilled), read_tflite(converted)

    def ops(g) -> list[tuple]:
        named = [(t.name, t.shape, t.dtype) for t in g.tensors]
        return [
            (o.name, [named[i] for i in o.inputs if i >= 0], [named[i] for i in o.outputs])
            for o in g.ops
        ]

    assert ops(a) == ops(b)
    assert sorted((t.name, t.shape, t.dtype) for t in a.tensors) == sorted(
        (t.name, t.shape, t.dtype) for t in b.tensors
    )

    def weights(tflite: bytes) -> dict[tuple, np.ndarray]:
        return {(name, v.shape): v for _, name, v, _ in _float_tensors(tflite)}

    ours, theirs = weights(refilled), weights(converted)
    assert ours.keys() == theirs.keys() and ours
    for key, values in theirs.items():
        scale = max(float(np.abs(values).max()), 1e-12)
        assert np.abs(ours[key] - values).max() <= 1e-5 * scale, key


TECHNIQUES = {
    "pruning": [Prune()],
    "pruning 2:4": [Prune()],
    "clustering": [Cluster()],
    "pruning + clustering": [Prune(), Cluster()],
}
RECIPES = {
    "pruning": Recipe(sparsity=0.5, finetune_epochs=1),
    "pruning 2:4": Recipe(sparsity=0.5, prune_mode="2:4", finetune_epochs=1),
    "clustering": Recipe(clusters=8, finetune_epochs=1),
    "pruning + clustering": Recipe(sparsity=0.5, clusters=8, finetune_epochs=1),
}


def test_the_map_covers_every_weight_tensor_and_reproduces_the_file(mobile) -> None:
    teacher, ctx, converted = mobile
    slots = weight_map(teacher, converted)
    assert isinstance(slots, tuple)
    assert {b for b, _ in slots} == {b for b, *_ in _float_tensors(converted)}
    sources = {s for _, s in slots}
    assert "stem+stem_bn:kernel" in sources and "pw+pw_bn:bias" in sources  # folded
    assert "add_bn:scale" in sources  # a BatchNorm with nothing before it to fold into
    template = derive(teacher, converted, ctx.data.x_val[:8])
    assert isinstance(template, Template) and template.error < 1e-5
    assert Template.decode(template.encode()) == template


@pytest.mark.parametrize("technique", list(TECHNIQUES))
def test_refilled_file_is_the_converters_for_a_technique_keeping_the_architecture(
    mobile, technique: str
) -> None:
    teacher, ctx, converted = mobile
    template = derive(teacher, converted, ctx.data.x_val[:8])
    assert isinstance(template, Template)
    model, recipe = teacher, RECIPES[technique]
    for stage in TECHNIQUES[technique]:
        model, _ = stage.apply(model, recipe, ctx)
    assert architecture_digest(model) == template.architecture
    refilled = refill(template, model, ctx.data.x_val[:8])
    assert isinstance(refilled, bytes), refilled
    real = to_tflite(model, "none")
    same_file(refilled, real)
    x = ctx.data.x_val
    np.testing.assert_allclose(predict(refilled, x), predict(real, x), rtol=1e-4, atol=1e-5)
    assert not np.allclose(predict(refilled, x), predict(converted, x), atol=1e-3)  # new weights


@pytest.mark.parametrize("stage", [Distill(), ChannelPrune()], ids=["student", "channels"])
def test_models_of_one_architecture_convert_once(mobile, stage) -> None:
    """Two students of one width (or two channel prunings of one fraction) trained for
    different epochs: the second's file is the first's, refilled."""
    teacher, ctx, _ = mobile
    recipe = Recipe(student_width=0.5, channel_fraction=0.25, distill_epochs=1, finetune_epochs=1)
    first, _ = stage.apply(teacher, recipe, ctx)
    longer = dataclasses.replace(recipe, distill_epochs=2, finetune_epochs=2)
    second, _ = stage.apply(teacher, longer, ctx)
    template = derive(first, to_tflite(first, "none"), ctx.data.x_val[:8])
    assert isinstance(template, Template)
    refilled = refill(template, second, ctx.data.x_val[:8])
    assert isinstance(refilled, bytes), refilled
    same_file(refilled, to_tflite(second, "none"))


def test_another_architecture_or_an_unproved_map_falls_back(mobile) -> None:
    teacher, ctx, converted = mobile
    template = derive(teacher, converted, ctx.data.x_val[:8])
    assert isinstance(template, Template)
    student, _ = Distill().apply(teacher, Recipe(student_width=0.5, distill_epochs=1), ctx)
    assert refill(template, student, ctx.data.x_val[:8]) == "another architecture"
    # a map that misses one weight leaves that tensor stale: the proof on samples catches it
    pruned, _ = Prune().apply(teacher, Recipe(sparsity=0.5, finetune_epochs=1), ctx)
    partial = dataclasses.replace(
        template, slots=tuple(s for s in template.slots if s[1] != "pw+pw_bn:kernel")
    )
    reason = refill(partial, pruned, ctx.data.x_val[:8])
    assert isinstance(reason, str) and reason.startswith("outputs differ")


def test_a_weight_the_converter_computes_otherwise_leaves_no_template(tiny_task: Task) -> None:
    """A linear Dense before another: the converter folds the first's bias into the second's,
    a weight no source gives, so the file gets no template (the converter runs each time)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = L.Dense(16, bias_initializer="random_normal", name="linear")(L.Flatten()(inputs))
    model = keras.Model(inputs, L.Dense(10, bias_initializer="random_normal")(hidden))
    reason = derive(model, to_tflite(model, "none"), tiny_task.data.x_val[:8])
    assert isinstance(reason, str) and "matches no weight" in reason


def test_a_search_converts_the_teachers_architecture_once(mobile) -> None:
    """Through the stage cache, as trials see it: the first float-file recipe converts and
    leaves its architecture's template; pruned and clustered ones refill it; a recipe the
    converter must make (int8 with layers kept float) still runs it."""
    teacher, ctx, _ = mobile
    cache = MemoryCache()

    def convert_facts(recipe: Recipe) -> dict:
        tflite, records, _ = build_candidate(teacher, recipe, ctx, cache=cache, key="k")
        assert read_tflite(tflite).ops
        return records[-1].facts

    assert convert_facts(Recipe())["float_file"] == "converted"  # the baseline, float
    assert convert_facts(Recipe(quantization="int8"))["float_file"] == "cached"
    pruned = convert_facts(Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8"))
    assert pruned["float_file"] == "refilled" and "no_refill" not in pruned
    clustered = convert_facts(Recipe(clusters=8, finetune_epochs=1, quantization="dynamic"))
    assert clustered["float_file"] == "refilled"
    student = convert_facts(Recipe(student_width=0.5, distill_epochs=1, quantization="int8"))
    assert student["float_file"] == "converted"  # a new architecture: its own template
    kept = Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8", exclude="ends")
    assert "float_file" not in convert_facts(kept)


def test_a_two_output_model_is_refilled_output_by_output(tiny_task: Task) -> None:
    """Several outputs: the proof pairs them by name (the file's signature names are the
    model's output names)."""

    def two_heads(bias: str) -> keras.Model:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        x = L.Conv2D(8, 3, use_bias=False, name="conv")(inputs)
        x = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization(name="bn")(x)))
        boxes = L.Dense(4, activation="sigmoid", bias_initializer=bias, name="boxes")(x)
        classes = L.Dense(10, activation="softmax", bias_initializer=bias, name="classes")(x)
        model = keras.Model(inputs, {"boxes": boxes, "classes": classes})
        if bias != "zeros":  # trained BatchNorm statistics, not the initial ones
            rng = np.random.default_rng(1)
            gamma, var = rng.uniform(0.5, 1.5, 8), rng.uniform(0.5, 1.5, 8)
            model.get_layer("bn").set_weights(
                [gamma, rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8), var]
            )
        return model

    x_val = tiny_task.data.x_val[:8]
    model = two_heads("random_normal")  # a trained model's biases are not zero
    template = derive(model, to_tflite(model, "none"), x_val)
    assert isinstance(template, Template), template
    changed = keras.models.clone_model(model)
    changed.set_weights([w * 0.5 + 0.01 for w in model.get_weights()])
    refilled = refill(template, changed, x_val)
    assert isinstance(refilled, bytes), refilled
    real = to_tflite(changed, "none")
    same_file(refilled, real)
    ours, theirs = predict(refilled, x_val), predict(real, x_val)
    assert set(ours) == {"boxes", "classes"}
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-5)
    # The converter drops all-zero biases: such a file has no tensor for the new model's
    # biases, and the proof sends that model to the converter.
    fresh = two_heads("zeros")
    zero_template = derive(fresh, to_tflite(fresh, "none"), x_val)
    assert isinstance(zero_template, Template)
    trained = keras.models.clone_model(fresh)
    trained.set_weights([w * 0.5 + 0.01 for w in fresh.get_weights()])
    reason = refill(zero_template, trained, x_val)
    assert isinstance(reason, str) and reason.startswith("outputs differ")


def test_a_template_that_fails_its_proof_is_replaced(mobile) -> None:
    """A template made from a model with a zero bias (as initialised; the converter drops
    it) cannot serve the trained model: that trial converts, and its file becomes the
    architecture's template, which the next trial refills."""
    from autocompress.stages.build import template_key

    teacher, ctx, _ = mobile
    initial = keras.models.clone_model(teacher)
    initial.set_weights(teacher.get_weights())
    head = initial.get_layer("out")
    head.set_weights([head.get_weights()[0], np.zeros(10, "float32")])  # as initialised
    stale = derive(initial, to_tflite(initial, "none"), ctx.data.x_val[:8])
    assert isinstance(stale, Template)
    cache = MemoryCache()
    pruned = Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8")
    key = template_key(pruned, "k")
    assert key is not None
    cache.put(key, stale.encode())
    facts = build_candidate(teacher, pruned, ctx, cache=cache, key="k")[1][-1].facts
    assert facts["float_file"] == "converted" and facts["no_refill"].startswith("outputs differ")
    assert cache.get(key) != stale.encode()  # replaced by the trained model's
    clustered = Recipe(clusters=8, finetune_epochs=1, quantization="int8")
    again = build_candidate(teacher, clustered, ctx, cache=cache, key="k")[1][-1].facts
    assert again["float_file"] == "refilled"
