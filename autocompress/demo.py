"""The built-in demo task: a small CNN on scikit-learn's bundled digits, upsampled to 32x32.

The digits ship inside scikit-learn, so nothing is downloaded. Upsampling makes the convolutions
large enough that latency differences between candidates are measurable. The trained teacher is
cached in the output directory so that a resumed search compresses the very same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autocompress.models.loading import load_model
from autocompress.task import Task, TaskData, TeacherSpec

UPSAMPLE = 4
TEACHER_FILE = "teacher.keras"


def demo_data(seed: int = 0) -> TaskData:
    """Digits 8x8 -> 32x32 in [0, 1], a stratified 70/15/15 train / validation / test split fixed
    by ``seed``; the test split is only reported, never searched on."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype("float32") / 16.0
    x = np.kron(x, np.ones((UPSAMPLE, UPSAMPLE), dtype="float32"))[..., None]
    y = digits.target.astype("int64")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.15, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.15 / 0.85, random_state=seed, stratify=y_rest
    )
    return TaskData(x_train, y_train, x_val, y_val, x_test=x_test, y_test=y_test)


def demo_model(input_shape: tuple[int, ...] = (32, 32, 1), classes: int = 10):  # noqa: ANN201
    """The demo teacher's architecture (untrained, ``weights=None`` in spirit)."""
    import tf_keras as keras

    layers = keras.layers
    return keras.Sequential(
        [
            layers.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPool2D(),
            layers.Conv2D(96, 3, padding="same", activation="relu"),
            layers.MaxPool2D(),
            layers.Conv2D(96, 3, padding="same", activation="relu"),
            layers.MaxPool2D(),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(classes, activation="softmax"),
        ],
        name="digits_cnn",
    )


def demo_task(cache_dir: str | Path | None = None, epochs: int = 12, seed: int = 0) -> Task:
    """Train (or load from ``cache_dir``) the demo teacher and return the task."""
    import tf_keras as keras

    data = demo_data(seed)
    cached = Path(cache_dir) / TEACHER_FILE if cache_dir is not None else None
    if cached is not None and cached.exists():
        model = load_model(cached)
    else:
        keras.utils.set_random_seed(seed)
        model = demo_model(data.x_train.shape[1:])
        model.compile(
            keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        model.fit(
            data.x_train,
            data.y_train,
            epochs=epochs,
            batch_size=32,
            verbose=0,
            callbacks=[_epoch_bar(epochs, "training the demo teacher (once)")],
        )
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.stem + ".tmp.keras")
            model.save(tmp)
            tmp.replace(cached)
    return Task(name="digits-demo", teacher=TeacherSpec.from_model(model), data=data, source="demo")


def _epoch_bar(epochs: int, description: str) -> Any:
    """A Keras callback showing epochs as a tqdm bar; silent when stderr is not a terminal."""
    import tf_keras as keras
    from tqdm import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.bar = tqdm(total=epochs, desc=description, unit="epoch", disable=None)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.bar.update(1)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            self.bar.close()

    return EpochBar()
