"""Three tasks that are not classifiers, built here without download, each searched with its own
metric (issue 27, item 7): the front against the fp32 baseline, on validation and test.

Run: ``.venv/bin/python benchmarks/tasks/any_model.py [--out ~/.cache/autocompress-any]
[--only detection] [--trials 12] [--workers 1]``. Builds ``OUT/<task>/{model.keras, data.npz,
task.yaml}``, searches each with ``search_spaces/default.yaml`` (``OUT/<task>/run``), and prints
the teacher's figures, then every front member with its validation and test metric, size and
simulated latency on the profile.

All three draw scikit-learn's bundled 8x8 digits onto a 32x32 canvas (scaled 1.5-3x, shifted,
on a noisy random-grey background), train-validation-test split 70/15/15 by source digit:

* ``detection``: one digit per image; two outputs, ``boxes`` (its box, (y0, x0, y1, x1) in
  [0, 1]) and ``classes`` (10 softmax scores); metric ``map50`` (box IoU >= 0.5 and the right
  class). A small CNN with a flattening head (boxes need where, not only what).
* ``segmentation``: two digits per image; per-pixel classes (0 background, 1 the first digit's
  pixels, 2 the second's, by which is larger); metric ``miou``. An encoder-decoder: two stride-2
  convolutions down, two ``Conv2DTranspose`` up, a 1x1 softmax head -- the shape Edge TPU users
  run.
* ``regression``: one digit rotated by a random angle in [-45, 45] degrees; the target is the
  angle / 45; metric ``mae`` (so 0.1 is 4.5 degrees). A CNN with one linear output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)

SIZE = 32
TASKS = ("detection", "segmentation", "regression")
DRAWS = 2  # each source digit drawn this many times


def _canvas(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(0.0, 0.4)
    return np.clip(grey + rng.normal(0.0, 0.05, (SIZE, SIZE)), 0.0, 1.0)


def _scaled(digit: np.ndarray, rng: np.random.Generator, angle: float = 0.0) -> np.ndarray:
    from scipy import ndimage

    img = digit / 16.0
    if angle:
        img = ndimage.rotate(img, angle, reshape=False, order=1)
    zoom = rng.uniform(1.5, 3.0)
    return np.clip(ndimage.zoom(img, zoom, order=1), 0.0, 1.0)


def _paste(canvas: np.ndarray, glyph: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    h, w = glyph.shape
    y, x = int(rng.integers(0, SIZE - h + 1)), int(rng.integers(0, SIZE - w + 1))
    region = canvas[y : y + h, x : x + w]
    canvas[y : y + h, x : x + w] = np.maximum(region, glyph)
    return y, x


def build_data(task: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The task's arrays, as the data file stores them (``x_train``, ``y_train.boxes``, ...)."""
    from sklearn.datasets import load_digits

    from build import split_by_source  # benchmarks/tasks/build.py

    digits = load_digits()
    rng = np.random.default_rng(seed)
    parts = split_by_source(len(digits.images), rng)
    out: dict[str, np.ndarray] = {}
    for split, idx in parts.items():
        xs, targets = [], []
        for i in np.repeat(idx, DRAWS):
            canvas = _canvas(rng)
            if task == "detection":
                glyph = _scaled(digits.images[i], rng)
                y, x = _paste(canvas, glyph, rng)
                h, w = glyph.shape
                box = [y / SIZE, x / SIZE, (y + h) / SIZE, (x + w) / SIZE]
                targets.append((box, digits.target[i]))
            elif task == "segmentation":
                j = int(rng.choice(idx))
                mask = np.zeros((SIZE, SIZE), np.int64)
                glyphs = sorted(
                    (_scaled(digits.images[k], rng) for k in (i, j)), key=lambda g: -g.size
                )
                for label, glyph in enumerate(glyphs, start=1):
                    y, x = _paste(canvas, glyph, rng)
                    h, w = glyph.shape
                    on = glyph > 0.3
                    mask[y : y + h, x : x + w][on] = label
                targets.append(mask)
            else:
                angle = float(rng.uniform(-45.0, 45.0))
                _paste(canvas, _scaled(digits.images[i], rng, angle), rng)
                targets.append(angle / 45.0)
            xs.append(canvas)
        out[f"x_{split}"] = np.asarray(xs, np.float32)[..., None]
        if task == "detection":
            out[f"y_{split}.boxes"] = np.asarray([t[0] for t in targets], np.float32)[:, None]
            out[f"y_{split}.classes"] = np.asarray([t[1] for t in targets], np.int64)[:, None]
        elif task == "segmentation":
            out[f"y_{split}"] = np.asarray(targets, np.int64)
        else:
            out[f"y_{split}"] = np.asarray(targets, np.float32)[:, None]
    return out


def build_model(task: str):  # type: ignore[no-untyped-def]
    import tf_keras as keras

    L = keras.layers
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    if task == "segmentation":
        x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
        x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
        x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
        x = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
        out = L.Conv2D(3, 1, activation="softmax", name="mask")(x)
        return keras.Model(inp, out)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = L.MaxPool2D()(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.MaxPool2D()(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.MaxPool2D()(x)
    x = L.Flatten()(x)
    x = L.Dense(64, activation="relu")(x)
    if task == "detection":
        boxes = L.Reshape((1, 4), name="boxes")(L.Dense(4, activation="sigmoid")(x))
        classes = L.Reshape((1, 10), name="classes")(L.Dense(10, activation="softmax")(x))
        return keras.Model(inp, [boxes, classes])
    return keras.Model(inp, L.Dense(1, name="angle")(x))


COMPILE = {
    "detection": ({"boxes": "mean_squared_error", "classes": "sparse_categorical_crossentropy"},
                  "map50"),
    "segmentation": ("sparse_categorical_crossentropy", "miou"),
    "regression": ("mean_absolute_error", "mae"),
}  # fmt: skip


def _fit_arrays(data: dict[str, np.ndarray], split: str) -> tuple:
    ys = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith(f"y_{split}.")}
    return data[f"x_{split}"], ys or data[f"y_{split}"]


def build(task: str, root: Path, epochs: int) -> None:
    import tf_keras as keras

    from autocompress.metrics import get_metric

    out = root / task
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = build_data(task)
    keras.utils.set_random_seed(0)
    model = build_model(task)
    loss, metric_name = COMPILE[task]
    model.compile(keras.optimizers.Adam(2e-3), loss=loss)
    x, y = _fit_arrays(data, "train")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(out / "model.keras")
    np.savez(out / "data.npz", **data)
    (out / "task.yaml").write_text(
        f"name: {task}\nmodel: model.keras\ndata: data.npz\nmetric: {metric_name}\n"
    )
    metric = get_metric(metric_name)
    figures = []
    for split in ("val", "test"):
        xs, ys = _fit_arrays(data, split)
        pred = model.predict(xs, verbose=0)
        pred = dict(zip(model.output_names, pred)) if isinstance(pred, list) else pred
        figures.append(f"{split} {metric_name} {metric(ys, pred):.4f}")
    print(
        f"{task}: {model.count_params()} parameters, {len(x)} training images, "
        f"{', '.join(figures)}, trained in {time.perf_counter() - start:.0f} s"
    )


def search_task(task: str, root: Path, trials: int, workers: int, profile: str) -> None:
    import pandas as pd

    from autocompress import search
    from autocompress.run.results import baseline_row, load_trials, run_quality
    from autocompress.run.tables import latency_column

    run = root / task / "run"
    start = time.perf_counter()
    search(
        task=root / task / "task.yaml",
        trials=trials,
        out=run,
        workers=workers,
        profiles=[profile],
        seed=0,
    )
    quality = run_quality(run)
    trials_table = pd.read_csv(run / "trials.csv")
    front = pd.read_csv(run / "pareto.csv")
    lat = latency_column(profile)
    base = baseline_row(load_trials(run))
    print(
        f"\n{task}: {trials} trials in {time.perf_counter() - start:.0f} s, "
        f"{int((trials_table['state'] == 'COMPLETE').sum())} complete; front on {profile}:"
    )
    cols = ["trial", "student_width", "sparsity", "clusters", "quantization"]
    shown = [*cols, quality.column, quality.test_column, "size_bytes", lat]
    if base is not None:
        print("baseline (fp32):")
        print(base[shown].to_frame().T.to_string(index=False))
    print(front[shown].to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "autocompress-any")
    parser.add_argument("--only", choices=TASKS, default=None)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", default="edgetpu-usb")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    tasks = [args.only] if args.only else list(TASKS)
    for task in tasks:
        build(task, args.out, args.epochs)
    if args.build_only:
        return
    for task in tasks:
        search_task(task, args.out, args.trials, args.workers, args.profile)


if __name__ == "__main__":
    main()
