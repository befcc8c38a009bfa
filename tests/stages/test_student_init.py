"""Students that start from the teacher (issue 39, item 2): the teacher's most important channels
of every layer the student narrows, through residual groups, depthwise convolutions and
concatenations, so that before any training the student is already close to the teacher."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.distill import Distill, student_config
from autocompress.task import Task
from tests.stages.test_channels import residual_model


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


@pytest.mark.parametrize("width", [0.75, 0.5])
def test_a_teacher_initialised_student_keeps_the_teachers_answers(
    tiny_task: Task, width: float
) -> None:
    """Untrained, a teacher-initialised student agrees with the teacher far more often than a
    scratch one of the same widths (which answers at chance)."""
    teacher = tiny_task.teacher.build()
    x = tiny_task.data.x_val
    expected = teacher.predict(x, verbose=0)
    made = {}
    for init in ("teacher", "scratch"):
        student, facts = Distill().student(
            teacher, Recipe(student_width=width, student_init=init), 0
        )
        made[init] = (_agreement(student.predict(x, verbose=0), expected), facts)
    assert made["teacher"][1]["widths"] == made["scratch"][1]["widths"]  # the same architecture
    assert made["teacher"][0] > made["scratch"][0] + 0.3, made
    assert made["scratch"][0] < 0.4


def test_residual_depthwise_and_concatenated_graphs() -> None:
    """On a graph with an Add group, a depthwise convolution and a Concatenate, the teacher's
    channels are kept aligned: the student runs, has the scratch student's widths and is closer
    to the teacher's outputs than a scratch one."""
    teacher = residual_model()
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    expected = teacher.predict(x, verbose=0)
    recipe = Recipe(student_width=0.5)
    student, facts = Distill().student(teacher, recipe, 0)
    assert facts["init"] == "teacher"
    assert facts["widths"] == student_config(teacher, 0.5)[1] == {
        "stem": 4, "pw": 4, "side": 2, "hidden": 8
    }  # fmt: skip
    assert student.get_layer("dw").depthwise_kernel.shape[2] == 4
    scratch, _ = Distill().student(teacher, Recipe(student_width=0.5, student_init="scratch"), 0)
    gap = np.abs(student.predict(x, verbose=0) - expected).mean()
    scratch_gap = np.abs(scratch.predict(x, verbose=0) - expected).mean()
    assert gap < scratch_gap, (gap, scratch_gap)


def test_a_group_channel_pruning_must_leave_whole_keeps_its_width() -> None:
    """A layer the graph handling does not know (here a Reshape) leaves its producer whole in a
    teacher-initialised student, and the stage's record says why."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    x = keras.layers.Reshape((16, 8), name="r")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(6, name="hidden")(x)
    out = keras.layers.Dense(2, activation="softmax", name="out")(x)
    student, facts = Distill().student(keras.Model(inputs, out), Recipe(student_width=0.5), 0)
    assert facts["widths"] == {"hidden": 3}
    assert "Reshape" in facts["left"]["a"]
    assert student.get_layer("a").kernel.shape[-1] == 8


def test_one_epoch_of_distillation_from_the_teacher_beats_one_from_scratch(tiny_task: Task) -> None:
    """The same epoch of distillation: the teacher-initialised student ends far above chance
    (the tiny teacher: 0.84), the scratch one near it (0.07 when measured)."""
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(data=tiny_task.data, teacher=teacher)
    accuracy = {}
    for init in ("teacher", "scratch"):
        recipe = Recipe(student_width=0.5, distill_epochs=1, student_init=init)
        student, record = Distill().apply(teacher, recipe, ctx)
        assert record.facts["init"] == init
        assert student.count_params() < teacher.count_params()
        accuracy[init] = record.facts["keras_val_accuracy"]
    assert accuracy["teacher"] > accuracy["scratch"] + 0.3, accuracy


def test_runs_before_student_init_read_as_scratch() -> None:
    assert Recipe.from_dict({"student_width": 0.5}).student_init == "scratch"
    assert Recipe.from_dict({"student_width": 0.5, "student_init": "teacher"}).student_init == (
        "teacher"
    )
    assert Recipe().student_init == "teacher"
