"""Shared fixtures: a tiny trained classifier on real data, and one Ray cluster per test session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)
from autocompress.task import Task, TaskData, TeacherSpec


def tiny_data() -> TaskData:
    """Digits at their native 8x8, a fixed split: real data, tiny."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype("float32") / 16.0)[..., None]
    y = d.target.astype("int64")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    tr, va = idx[:600], idx[600:800]
    return TaskData(x_train=x[tr], y_train=y[tr], x_val=x[va], y_val=y[va])


def tiny_model():
    import tf_keras as keras

    return keras.Sequential(
        [
            keras.layers.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def train_tiny(data: TaskData, epochs: int = 8):
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_task() -> Task:
    data = tiny_data()
    model = train_tiny(data)
    return Task(name="tiny", teacher=TeacherSpec.from_model(model), data=data, source="tiny")


@pytest.fixture(scope="session")
def task_files(tmp_path_factory: pytest.TempPathFactory, tiny_task: Task) -> Path:
    """The tiny task written as a user would: model.keras + data.npz + task.yaml."""
    root = tmp_path_factory.mktemp("task")
    tiny_task.teacher.build().save(root / "model.keras")
    d = tiny_task.data
    np.savez(root / "data.npz", x_train=d.x_train, y_train=d.y_train, x_val=d.x_val, y_val=d.y_val)
    (root / "task.yaml").write_text("name: tiny\nmodel: model.keras\ndata: data.npz\n")
    return root


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for all tests that search (starting one costs seconds)."""
    import ray

    ray.init(
        address="local",  # never a cluster someone else started on the machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def smoke_space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small space so that search tests finish in seconds."""
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(
        "student_width: [1.0, 0.5]\n"
        "sparsity: {low: 0.0, high: 0.5, step: 0.5}\n"
        "clusters: [0, 4]\n"
        "quantization: [none, dynamic, int8]\n"
        "distill_epochs: 1\n"
        "finetune_epochs: 1\n"
    )
    return path


@pytest.fixture()
def run(first_run, tmp_path: Path) -> Path:
    """A private copy of the shared run directory, for tests that add to it."""
    import shutil

    _, out, *_ = first_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return copy


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def first_run(tmp_path_factory, ray_cluster, task_files: Path, smoke_space_file: Path):
    """One real 4-trial search on the tiny task, shared by the tests that read a run."""
    from autocompress import search
    from autocompress.task import load_task

    out = tmp_path_factory.mktemp("run") / "exp"
    model_hash = digest(task_files / "model.keras")
    task = load_task(task_files / "task.yaml")
    before = [w.copy() for w in task.teacher.weights]
    result = search(
        task=task,
        space=smoke_space_file,
        trials=4,
        workers=2,
        out=out,
        seed=0,
        profiles=("cpu-host", "edgetpu-usb"),
    )
    return result, out, task, before, model_hash
