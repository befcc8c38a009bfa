"""A data pipeline as a task's data: ``data: pipe.py:splits`` returning tf.data datasets (the
training one shuffled), read in batches by every stage; the order check of the validation
split, and the one-line errors of a pipeline that cannot be read twice or lacks a split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocompress.data.pipeline import Pipeline
from autocompress.errors import InputError
from autocompress.recipe import Recipe
from autocompress.study.objective import TrialContext, TrialRequest, run_trial
from autocompress.task import load_task

PIPE = """
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits


def arrays():
    d = load_digits()
    return (d.images / 16.0).astype("float32")[..., None], d.target.astype("int64")


def splits():
    x, y = arrays()
    train = tf.data.Dataset.from_tensor_slices((x[:600], y[:600])).shuffle(600, seed=0).batch(50)
    val = tf.data.Dataset.from_tensor_slices((x[600:800], y[600:800])).batch(64)
    return {"train": train, "val": val}


def shuffled_val():
    x, y = arrays()
    val = tf.data.Dataset.from_tensor_slices((x[600:800], y[600:800])).shuffle(200).batch(64)
    return {"train": [(x[:100], y[:100])], "val": val}


def once():
    x, y = arrays()
    return {"train": iter([(x[:100], y[:100])]), "val": [(x[600:700], y[600:700])]}


def no_val():
    x, y = arrays()
    return {"train": [(x[:100], y[:100])]}
"""


@pytest.fixture(scope="module")
def pipe_task(tmp_path_factory: pytest.TempPathFactory, tiny_task) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("pipe")
    (root / "pipe.py").write_text(PIPE)
    tiny_task.teacher.build().save(root / "model.keras")
    (root / "task.yaml").write_text("model: model.keras\ndata: pipe.py:splits\n")
    return root


def test_a_pipeline_is_read_in_batches_by_every_stage(pipe_task: Path) -> None:
    from sklearn.datasets import load_digits

    task = load_task(pipe_task / "task.yaml")
    d = task.data
    assert isinstance(d.x_train, Pipeline) and isinstance(d.x_val, Pipeline)
    assert len(d.x_train) == 600 and len(d.x_val) == 200 and not d.has_test
    np.testing.assert_array_equal(d.y_val, load_digits().target[600:800])
    first = d.x_val.samples(np.array([3, 150]))
    assert first.shape == (2, 8, 8, 1)
    ctx = TrialContext(task=task, profiles=())
    for recipe in (
        Recipe(quantization="int8"),
        Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8"),
        Recipe(student_width=0.5, distill_epochs=6),
    ):
        outcome = run_trial(ctx, TrialRequest(0, recipe))
        assert outcome.error is None, outcome.detail
        assert outcome.record is not None
    assert outcome.record.measurement.quality > 0.2  # the student learnt from batches (chance: 0.1)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("shuffled_val", "the val pipeline yields its samples in another order on each pass"),
        ("once", "is an iterator, read once"),
        ("no_val", "must return a dict with 'train' and 'val'"),
        ("missing", "has no function 'missing'"),
    ],
)
def test_pipeline_errors_are_one_line(pipe_task: Path, function: str, message: str) -> None:
    (pipe_task / f"{function}.yaml").write_text(f"model: model.keras\ndata: pipe.py:{function}\n")
    with pytest.raises(InputError, match=message) as info:
        load_task(pipe_task / f"{function}.yaml")
    assert "\n" not in str(info.value)


def test_an_entry_point_task_with_pipeline_data(pipe_task: Path) -> None:
    (pipe_task / "entry.py").write_text(
        "from pathlib import Path\n"
        "import tf_keras\n"
        "from autocompress.task import Task, TaskData, TeacherSpec\n\n"
        "def make():\n"
        "    here = Path(__file__).parent\n"
        "    model = tf_keras.models.load_model(here / 'model.keras', compile=False)\n"
        "    data = TaskData.from_pipeline(str(here / 'pipe.py') + ':splits')\n"
        "    return Task('piped', TeacherSpec.from_model(model), data)\n"
    )
    (pipe_task / "entry.yaml").write_text("entry_point: entry:make\ncalibration_samples: 30\n")
    task = load_task(pipe_task / "entry.yaml")
    assert isinstance(task.data.x_train, Pipeline) and task.calibration_samples == 30
