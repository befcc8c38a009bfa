"""Conversion to ``.tflite``: the only place that emits the deployed bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras

from autocompress.records import Recipe, StageRecord
from autocompress.stages._base import BuildContext


def convert(model: keras.Model, recipe: Recipe, ctx: BuildContext) -> tuple[bytes, StageRecord]:
    """Convert with the recipe's quantization mode.

    ``int8`` is full-integer post-training quantization (int8 inputs and outputs too, which the
    Edge TPU needs) calibrated on training samples; ``qat`` converts a QAT model, whose
    quantization ranges were learned during fine-tuning.
    """
    start = time.perf_counter()
    mode = recipe.quantization
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.representative_dataset = lambda: _calibration(ctx)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    tflite = converter.convert()
    facts = {"quantization": mode, "size_bytes": len(tflite)}
    return tflite, StageRecord("convert", time.perf_counter() - start, facts)


def _calibration(ctx: BuildContext) -> Iterator[list[np.ndarray]]:
    x = ctx.data.x_train
    rng = np.random.default_rng(ctx.seed)
    idx = rng.choice(len(x), size=min(ctx.calibration_samples, len(x)), replace=False)
    for i in idx:
        yield [x[i : i + 1].astype(np.float32)]
