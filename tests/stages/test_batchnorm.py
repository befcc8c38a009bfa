"""BatchNormalization statistics estimated again for the final weights (stages.batchnorm): plain
averages of the batches' statistics, nested layers found, and every training stage's output
predicting with them."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.batchnorm import SAMPLES, batchnorm_layers, reestimate
from autocompress.stages.build import default_stages
from autocompress.stages.distill import Distill
from autocompress.task import Task, TaskData

L = keras.layers


def _bn_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    h = L.Dense(3, name="dense")(inputs)
    h = L.BatchNormalization(momentum=0.9, name="bn")(h)
    return keras.Model(inputs, L.Dense(2, activation="softmax", name="out")(L.ReLU()(h)))


def _ctx(model: keras.Model, x: np.ndarray, batch_size: int) -> BuildContext:
    y = np.zeros(len(x), "int64")
    data = TaskData(x_train=x, y_train=y, x_val=x[:8], y_val=y[:8])
    return BuildContext(data=data, teacher=model, batch_size=batch_size)


def test_moving_statistics_are_the_plain_average_of_the_batches() -> None:
    """Two batches with different statistics: the moving mean is the average of the two batch
    means (an exponential average would weigh the last one 0.9 at this momentum), the moving
    variance the average of the batch variances; the layer's momentum is left as it was."""
    model = _bn_model()
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (64, 4)), rng.normal(3, 2, (64, 4))]).astype("float32")
    ctx = _ctx(model, x, batch_size=64)
    order = np.random.default_rng(ctx.seed).permutation(len(x))  # the draw reestimate makes
    pre = keras.Model(model.input, model.get_layer("dense").output).predict(x, verbose=0)
    batches = [pre[order[:64]], pre[order[64:]]]
    assert reestimate(model, ctx) == 1
    bn = model.get_layer("bn")
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-4, atol=1e-5
    )
    variances = [b.var(0, ddof=d) for b in batches for d in (0, 1)]  # Keras: either estimator
    low, high = np.min(variances, 0), np.max(variances, 0)
    assert np.all(bn.moving_variance.numpy() >= low * 0.99)
    assert np.all(bn.moving_variance.numpy() <= high * 1.01)
    assert bn.momentum == 0.9


def test_layers_inside_nested_models_are_found_and_a_model_without_any_is_left_alone() -> None:
    inner = _bn_model()
    inputs = keras.Input((4,), name="x")
    outer = keras.Model(inputs, inner(inputs))
    assert [layer.name for layer in batchnorm_layers(outer)] == ["bn"]
    plain = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    x = np.ones((8, 4), "float32")
    assert reestimate(plain, _ctx(plain, x, 4)) == 0


def test_a_frozen_layer_keeps_its_statistics() -> None:
    """A BatchNormalization its owner froze runs in inference mode whatever it is called with:
    it is left as it is, not reset to statistics nothing would average."""
    model = _bn_model()
    bn = model.get_layer("bn")
    bn.moving_mean.assign([0.5, -0.5, 2.0])
    bn.trainable = False
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    assert reestimate(model, _ctx(model, x, 16)) == 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), [0.5, -0.5, 2.0])


@pytest.fixture(scope="module")
def bn_teacher(tiny_task: Task) -> keras.Model:
    """A Conv-BatchNormalization classifier trained one epoch on the tiny task's digits."""
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(8, 3, padding="same"),
            L.BatchNormalization(momentum=0.9),
            L.ReLU(),
            L.GlobalAveragePooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    )
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(tiny_task.data.x_train, tiny_task.data.y_train, epochs=1, verbose=0)
    return teacher


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(student_width=0.5, distill_epochs=1),
        Recipe(channel_fraction=0.5, finetune_epochs=1),
        Recipe(sparsity=0.5, finetune_epochs=1),
        Recipe(clusters=8, finetune_epochs=1),
        Recipe(quantization="qat", finetune_epochs=1),
    ],
    ids=["distill", "channels", "sparsity", "clusters", "qat"],
)
def test_a_trained_candidate_predicts_with_statistics_of_its_final_weights(
    tiny_task: Task, bn_teacher: keras.Model, recipe: Recipe
) -> None:
    """After a stage trains, the model's moving statistics are the ones its final weights give
    (estimating them again changes nothing), not the trailing averages training leaves."""
    ctx = BuildContext(data=tiny_task.data, teacher=bn_teacher)
    (stage,) = [s for s in default_stages() if s.applies(recipe) and s.epochs_field]
    model, _ = stage.apply(bn_teacher, recipe, ctx)
    (bn,) = batchnorm_layers(model)
    after = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    reestimate(model, ctx)
    # QAT's quantizers move their ranges in training mode, which moves the statistics by about
    # 1e-4 here; the averages training leaves are 5e-3 off.
    atol = 5e-4 if recipe.quantization == "qat" else 1e-6
    np.testing.assert_allclose(bn.moving_mean.numpy(), after[0], rtol=1e-5, atol=atol)
    np.testing.assert_allclose(bn.moving_variance.numpy(), after[1], rtol=1e-5, atol=atol)


def test_a_finishing_distillation_estimates_each_epochs_statistics_once(
    tiny_task: Task, bn_teacher: keras.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finishing run (patience) scores every epoch with its statistics estimated again, once
    per epoch (each estimate is a quarter of an epoch's forward passes), and keeps the best
    epoch's weights with those statistics."""
    import autocompress.stages.distill as distill_module
    import autocompress.stages.training as training_module

    calls: list[int] = []

    def counted(model: keras.Model, ctx: BuildContext, samples: int = SAMPLES) -> int:
        calls.append(1)
        return reestimate(model, ctx, samples)

    monkeypatch.setattr(distill_module, "reestimate", counted)
    monkeypatch.setattr(training_module, "reestimate", counted)
    ctx = BuildContext(data=tiny_task.data, teacher=bn_teacher, patience=2)
    student, _ = Distill().apply(bn_teacher, Recipe(student_width=0.5, distill_epochs=2), ctx)
    assert len(calls) == 2
    (bn,) = batchnorm_layers(student)
    after = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    reestimate(student, ctx)
    np.testing.assert_allclose(bn.moving_mean.numpy(), after[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), after[1], rtol=1e-5, atol=1e-6)
