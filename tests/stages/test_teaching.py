"""Fine-tuning with the teacher beside the task's loss (issue 39, item 3): the packed targets
give the loss distillation uses, output by output, and every fine-tuning stage trains with it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.build import default_stages
from autocompress.stages.teaching import distillation_loss, taught_loss, taught_targets
from autocompress.task import Task


def test_a_class_output_gets_distillations_loss() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=8)
    teacher = tf.nn.softmax(rng.normal(size=(8, 5))).numpy()
    student = tf.nn.softmax(rng.normal(size=(8, 5))).numpy()
    packed = taught_targets(labels, teacher, is_class=True, probabilities=True)
    assert packed.shape == (8, 6) and np.array_equal(packed[:, 0], labels)
    got = taught_loss("sparse_categorical_crossentropy", True, True, temperature=3.0, alpha=0.4)(
        tf.constant(packed), tf.constant(student, tf.float32)
    )
    want = distillation_loss(
        labels, np.log(student).astype("float32"), np.log(teacher).astype("float32"), 3.0, 0.4
    )
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_any_other_output_mixes_the_task_loss_and_the_teachers_output() -> None:
    y = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    teacher = np.array([[1.5, 2.0], [3.0, 5.0]], "float32")
    student = np.array([[1.0, 2.5], [2.0, 4.0]], "float32")
    packed = taught_targets(y, teacher, is_class=False, probabilities=False)
    got = float(taught_loss("mean_squared_error", False, False, alpha=0.25)(packed, student))
    task = np.mean((student - y) ** 2)
    mimic = np.mean((student - teacher) ** 2)
    assert got == pytest.approx(0.25 * task + 0.75 * mimic, rel=1e-6)


@pytest.mark.parametrize("stage", ["channels", "lowrank", "prune", "cluster", "qat"])
def test_every_fine_tuning_stage_learns_from_the_teacher(tiny_task: Task, stage: str) -> None:
    """Each stage that fine-tunes runs with ``finetune_loss: distill``, records it in its cache
    key, and keeps the candidate close to the teacher."""
    recipe = {
        "channels": Recipe(channel_fraction=0.25),
        "lowrank": Recipe(rank_energy=0.8),
        "prune": Recipe(sparsity=0.5),
        "cluster": Recipe(clusters=8),
        "qat": Recipe(quantization="qat"),
    }[stage]
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(data=tiny_task.data, teacher=teacher)
    (chosen,) = [s for s in default_stages() if s.applies(recipe)]
    taught = Recipe(**{**recipe.to_dict(), "finetune_loss": "distill", "finetune_epochs": 1})
    assert chosen.cache_params(taught)["loss"] != chosen.cache_params(recipe)["loss"]
    _, record = chosen.apply(teacher, taught, ctx)
    assert record.facts["keras_val_accuracy"] > 0.6  # the teacher: 0.84; chance 0.1
