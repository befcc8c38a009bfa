"""How repeatable is a measured latency, and which statistic to rank by? (issue 38, item 2)

Files of four sizes (the digits CNN of the tests, the demo's CNN, MobileNetV2 0.35 at 96x96 and
a ResNet-style network at 64x64; untrained: timing does not need weights that mean anything),
fp32 and int8, each timed ``--repeats`` times as ``cpu-host`` times it (its warm-up, minimum
runs and seconds), first with nothing else running, then beside a neighbour that keeps the
other core busy with a training loop (what a second worker does). For each statistic of a
measurement's runs -- the median (what ``cpu-host`` records), the 10th percentile and the
minimum -- it prints:

* repeatability, quiet: the spread of the repeated figures, (max - min) / median, per file;
* inflation under load: the loaded median of that statistic over the quiet one.

    .venv/bin/python benchmarks/latency_repeatability.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
import pandas as pd

STATS = {
    "median": lambda t: float(np.median(t)),
    "p10": lambda t: float(np.percentile(t, 10)),
    "min": lambda t: float(np.min(t)),
}


def models() -> dict[str, object]:
    import tf_keras as keras

    def cnn(shape: tuple[int, int, int], filters: tuple[int, ...]) -> object:
        inp = keras.Input(shape)
        x = inp
        for f in filters:
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPool2D()(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))

    def resnet() -> object:
        inp = keras.Input((64, 64, 3))
        x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
        for f in (16, 32, 64):
            for _ in range(2):
                y = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
                y = keras.layers.Conv2D(f, 3, padding="same")(y)
                if x.shape[-1] != f:
                    x = keras.layers.Conv2D(f, 1)(x)
                x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
            x = keras.layers.MaxPool2D()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))

    mobilenet = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    return {
        "digits CNN 8x8": cnn((8, 8, 1), (8,)),
        "demo CNN 32x32": cnn((32, 32, 1), (16, 32)),
        "ResNet 64x64": resnet(),
        "MobileNetV2 0.35/96": mobilenet,
    }


def files() -> dict[str, bytes]:
    from autocompress.stages.convert import to_tflite

    out = {}
    for name, model in models().items():
        shape = (64, *model.inputs[0].shape[1:])
        calibration = np.random.default_rng(0).random(shape).astype("float32")
        out[f"{name} fp32"] = to_tflite(model, "none")
        out[f"{name} int8"] = to_tflite(model, "int8", calibration)
    return out


def _neighbour(stop: mp.Event) -> None:
    """A training loop on the other core, as a second worker runs one."""
    import os

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = tf.keras.Sequential(
        [tf.keras.Input((32, 32, 3)), tf.keras.layers.Conv2D(32, 3), tf.keras.layers.Flatten(),
         tf.keras.layers.Dense(10)]
    )  # fmt: skip
    model.compile("adam", "mse")
    x, y = np.random.random((256, 32, 32, 3)), np.random.random((256, 10))
    while not stop.is_set():
        model.train_on_batch(x[:32], y[:32])


def timings(content: bytes) -> np.ndarray:
    """The runs of one measurement, as cpu-host takes it."""
    from ai_edge_litert.interpreter import Interpreter

    from autocompress.hardware import load_profile
    from autocompress.hardware.measure import run_times

    s = load_profile("cpu-host").measure
    interpreter = Interpreter(model_content=content, num_threads=s.threads)
    interpreter.allocate_tensors()
    return run_times(interpreter, s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    contents = files()
    figures: dict[tuple[str, str], dict[str, list[float]]] = {}
    for load in ("quiet", "loaded"):
        stop = mp.get_context("spawn").Event()
        neighbour = None
        if load == "loaded":
            neighbour = mp.get_context("spawn").Process(target=_neighbour, args=(stop,))
            neighbour.start()
            time.sleep(15)  # TensorFlow started, the loop running
        for _ in range(args.repeats):  # interleaved: a slow moment falls on every file
            for name, content in contents.items():
                runs = timings(content)
                for stat, fn in STATS.items():
                    figures.setdefault((name, load), {}).setdefault(stat, []).append(fn(runs))
        if neighbour is not None:
            stop.set()
            neighbour.join(30)
    rows = []
    for name in contents:
        row: dict[str, object] = {"file": name}
        quiet_median = float(np.median(figures[(name, "quiet")]["median"]))
        row["quiet median ms"] = round(quiet_median, 4)
        for stat in STATS:
            q = np.asarray(figures[(name, "quiet")][stat])
            loaded = np.asarray(figures[(name, "loaded")][stat])
            row[f"{stat} spread"] = round(float((q.max() - q.min()) / np.median(q)), 3)
            row[f"{stat} inflation"] = round(float(np.median(loaded) / np.median(q)), 3)
        rows.append(row)
    print(f"{args.repeats} repeats per file and load, interleaved; cpu-host settings")
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
