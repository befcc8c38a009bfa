"""Realistic benchmark tasks, built here from bundled data (no download), cached outside git.

Run: ``.venv/bin/python benchmarks/tasks/build.py [--out ~/.cache/autocompress-tasks]
[--only mobilenet_v2] [--epochs 30]``; prints each task's fp32 accuracy (validation and test),
size and training time, and writes ``OUT/<task>/{model.keras, data.npz, task.yaml}`` for
``autocompress search --task OUT/<task>/task.yaml``.

The data: scikit-learn's 1,797 bundled digits (8x8), made harder procedurally so that an fp32
model sits clearly below 100 % and compression shows in accuracy: each digit is scaled
(0.6-0.95 of the frame), rotated (+-15 degrees), shifted, coloured, and pasted onto a smooth
random colour background with Gaussian pixel noise (sigma 0.04); every image is drawn 3 times
with different draws (5,391 images), split 70/15/15 into train / validation / test by the
source digit, so no drawing of a test digit is seen in training.

The models, on architectures users compress, trained from scratch (keras.applications with
``weights=None``; BatchNormalization momentum set to 0.9, since the 0.999 of keras.applications
does not converge in a short training from scratch):

* ``mobilenet_v2``: MobileNetV2, alpha 0.35, 96x96x3, 10 classes (0.42 M parameters; the TinyML /
  Visual Wake Words size);
* ``resnet``: a ResNet-style network (3 stages of 2 basic blocks, 16/32/64 filters), 64x64x3.

And one task where uniform int8 hurts accuracy (issue 19), as many users' models do:

* ``tabular_raw``: scikit-learn's bundled breast-cancer data (569 samples, 30 features), split
  70/15/15 stratified; an MLP (64-32-2) that takes the *raw* features and normalises them in
  its first layer (a Keras ``Normalization`` layer adapted on the training split, the usual way
  to ship preprocessing inside the model). The raw features span 0.001 to 4,254, so one int8
  scale for the input tensor rounds the small-ranged features to a few levels.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)

DRAWS = 3
TASKS = {"mobilenet_v2": 96, "resnet": 64, "tabular_raw": 0}  # name -> image size


def split_by_source(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Source indices split 70/15/15 into train / val / test (no drawing of a validation or
    test digit is trained on)."""
    order = rng.permutation(n)
    n_train, n_val = int(0.7 * n), int(0.15 * n)
    return {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


def cluttered_digits(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The harder digits at ``size`` x ``size`` x 3 in [0, 1], split by source digit."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    parts = split_by_source(len(digits.images), rng)
    out: dict[str, np.ndarray] = {}
    for split, idx in parts.items():
        xs, ys = [], []
        for i in idx:
            for _ in range(DRAWS):
                xs.append(_draw(digits.images[i] / 16.0, size, rng, ndimage))
                ys.append(digits.target[i])
        out[f"x_{split}"] = np.stack(xs).astype("float32")
        out[f"y_{split}"] = np.asarray(ys, dtype="int64")
    return out


def _draw(digit: np.ndarray, size: int, rng: np.random.Generator, ndimage) -> np.ndarray:
    scale = rng.uniform(0.6, 0.95)
    side = max(8, int(size * scale))
    glyph = ndimage.zoom(digit, side / 8.0, order=1)
    glyph = np.clip(ndimage.rotate(glyph, rng.uniform(-15, 15), reshape=False, order=1), 0, 1)
    coarse = rng.uniform(0, 1, (4, 4, 3))  # a smooth random colour background
    background = np.stack([ndimage.zoom(coarse[..., c], size / 4.0, order=1) for c in range(3)], -1)
    background = 0.25 + 0.5 * background[:size, :size]
    image = background.copy()
    y0, x0 = rng.integers(0, size - glyph.shape[0] + 1, size=2)
    colour = rng.uniform(0, 1, 3)
    patch = image[y0 : y0 + glyph.shape[0], x0 : x0 + glyph.shape[1]]
    alpha = glyph[..., None]
    image[y0 : y0 + glyph.shape[0], x0 : x0 + glyph.shape[1]] = (1 - alpha) * patch + alpha * colour
    image += rng.normal(0, 0.04, image.shape)
    return np.clip(image, 0, 1)


def with_momentum(model, momentum: float = 0.9):
    """The same architecture with BatchNormalization momentum ``momentum``."""
    import tf_keras as keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = momentum
    return keras.Model.from_config(config)


def mobilenet_v2(size: int):
    import tf_keras as keras

    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, weights=None, classes=10
    )
    return with_momentum(base)


def resnet(size: int):
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(y))
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
            y = layers.BatchNormalization(momentum=0.9)(y)
            if stride != 1 or x.shape[-1] != filters:
                x = layers.BatchNormalization(momentum=0.9)(
                    layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
                )
            x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="resnet_digits")


def raw_breast_cancer(seed: int = 0) -> dict[str, np.ndarray]:
    """Unscaled breast-cancer features, split 70/15/15 stratified by class."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x, y = x.astype(np.float32), y.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_val": x_val,
        "y_val": y_val,
        "x_test": x_test,
        "y_test": y_test,
    }


def tabular_raw(x_train: np.ndarray):
    import tf_keras as keras

    layers = keras.layers
    norm = layers.Normalization()
    norm.adapt(x_train)
    inputs = keras.Input((x_train.shape[1],))
    x = layers.Dense(64, activation="relu")(norm(inputs))
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x), name="tabular_raw")


def build(name: str, root: Path, epochs: int) -> dict[str, object]:
    import tf_keras as keras

    size = TASKS[name]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    data = raw_breast_cancer() if name == "tabular_raw" else cluttered_digits(size)
    np.savez(folder / "data.npz", **data)
    keras.utils.set_random_seed(0)
    if name == "tabular_raw":
        model = tabular_raw(data["x_train"])
        epochs = max(epochs, 60)  # 398 samples: an epoch is a few milliseconds
    else:
        model = mobilenet_v2(size) if name == "mobilenet_v2" else resnet(size)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=epochs,
        batch_size=32,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    model.save(folder / "model.keras")
    (folder / "task.yaml").write_text(f"name: {name}\nmodel: model.keras\ndata: data.npz\n")
    _, val = model.evaluate(data["x_val"], data["y_val"], verbose=0)
    _, test = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    facts = {
        "task": name,
        "input": list(data["x_train"].shape[1:]),
        "params": int(model.count_params()),
        "train_val_test": [len(data["y_train"]), len(data["y_val"]), len(data["y_test"])],
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "val_accuracy": round(float(val), 4),
        "test_accuracy": round(float(test), 4),
    }
    (folder / "facts.json").write_text(json.dumps(facts, indent=1))
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache/autocompress-tasks")
    parser.add_argument("--only", choices=sorted(TASKS), default=None)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    for name in [args.only] if args.only else sorted(TASKS):
        print(json.dumps(build(name, args.out, args.epochs)))


if __name__ == "__main__":
    main()
