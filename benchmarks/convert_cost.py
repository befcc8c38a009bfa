"""The fixed cost of a candidate: what a second quantization mode of one stage output costs.

Run: ``.venv/bin/python benchmarks/convert_cost.py [--model mobilenet_v2|demo] [--repeats 3]``

Side by side, in one process, on the same Keras model and data:

1. *bare*: one TF-converter int8 conversion (100 calibration samples) plus a LiteRT evaluation of
   the validation set and the cpu-host latency measurement -- the floor of a candidate before
   this change, paid again for every quantization mode of the same stage output;
2. *first mode*: what the convert stage does now for the first post-training mode of a stage
   output: a float conversion (cached), LiteRT Quantizer int8 on it, the same evaluation;
3. *second mode*: another mode (dynamic, then weight_int4) of the same stage output: the cached
   float file, LiteRT Quantizer, the same evaluation.

``mobilenet_v2`` is keras.applications MobileNetV2 (alpha 0.35, 96x96x3, 10 classes, untrained:
conversion and quantization cost do not depend on the weights) on digits upscaled to 96x96 RGB;
``demo`` is the demo CNN. Prints medians over ``--repeats`` and the ratio second / bare (the goal
of issue 18: at most 0.25).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)
from autocompress.evaluation.deployed import evaluate
from autocompress.hardware import load_profile
from autocompress.metrics import ACCURACY
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.convert import convert, convert_from_float
from autocompress.task import TaskData


def mobilenet_task() -> tuple[object, TaskData]:
    import tf_keras as keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images.astype("float32") / 16.0, np.ones((12, 12), "float32"))
    x = np.repeat(x[..., None], 3, axis=-1)
    y = digits.target.astype("int64")
    idx = np.random.default_rng(0).permutation(len(x))
    tr, va = idx[:1400], idx[1400:]
    data = TaskData(x[tr], y[tr], x[va], y[va])
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    return model, data


def demo() -> tuple[object, TaskData]:
    from autocompress.demo import demo_data, demo_model

    data = demo_data()
    return demo_model(data.x_train.shape[1:]), data


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=["mobilenet_v2", "demo"], default="mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, data = mobilenet_task() if args.model == "mobilenet_v2" else demo()
    ctx = BuildContext(data=data, teacher=model)
    profiles = [load_profile("cpu-host")]

    def measure(tflite: bytes) -> None:
        evaluate(tflite, data.x_val, data.y_val, profiles, ACCURACY)

    rows: dict[str, list[float]] = {"bare": [], "first": [], "dynamic": [], "weight_int4": []}
    for _ in range(args.repeats):
        seconds, (tflite, _) = timed(lambda: convert(model, Recipe(quantization="int8"), ctx))
        rows["bare"].append(seconds + timed(lambda t=tflite: measure(t))[0])
        seconds, out = timed(
            lambda: convert_from_float(model, Recipe(quantization="int8"), ctx, None)
        )
        tflite, _, float_file = out
        rows["first"].append(seconds + timed(lambda t=tflite: measure(t))[0])
        for mode in ("dynamic", "weight_int4"):
            recipe = Recipe(quantization=mode)
            seconds, out = timed(
                lambda r=recipe, f=float_file: convert_from_float(model, r, ctx, f)
            )
            rows[mode].append(seconds + timed(lambda t=out[0]: measure(t))[0])
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{args.model}: {len(data.x_val)} validation samples, {args.repeats} repeats (median s)")
    print(f"  bare TF-converter int8 + evaluation:        {med['bare']:7.2f}")
    print(f"  first mode (float convert + LiteRT int8):   {med['first']:7.2f}")
    for mode in ("dynamic", "weight_int4"):
        ratio = med[mode] / med["bare"]
        print(f"  second mode {mode:12s} (cached float):   {med[mode]:7.2f}   {ratio:.2f}x bare")


if __name__ == "__main__":
    main()
