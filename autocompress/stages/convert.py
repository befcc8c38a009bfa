"""Conversion to ``.tflite``: the only place that emits the deployed bytes."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from autocompress.records import Recipe, StageRecord
from autocompress.stages._base import BuildContext


def convert(model: keras.Model, recipe: Recipe, ctx: BuildContext) -> tuple[bytes, StageRecord]:
    """Convert with the recipe's quantization mode (see :func:`to_tflite`)."""
    start = time.perf_counter()
    rng = np.random.default_rng(ctx.seed)
    x = ctx.data.x_train
    calibration = x[rng.choice(len(x), size=min(ctx.calibration_samples, len(x)), replace=False)]
    sparse = recipe.prune_mode == "xnnpack"
    tflite = to_tflite(model, recipe.quantization, calibration, sparse=sparse)
    facts = {"quantization": recipe.quantization, "size_bytes": len(tflite), "sparse": sparse}
    return tflite, StageRecord("convert", time.perf_counter() - start, facts)


def to_tflite(
    model: keras.Model, mode: str, calibration: np.ndarray | None = None, sparse: bool = False
) -> bytes:
    """The ``.tflite`` bytes of ``model`` in quantization ``mode``.

    ``int8`` is full-integer post-training quantization (int8 inputs and outputs too, which the
    Edge TPU needs) calibrated on ``calibration`` samples; ``int16x8`` keeps activations in int16
    with int8 weights (float inputs and outputs), for accuracy-sensitive models; ``qat``
    converts a QAT model, whose quantization ranges were learned during fine-tuning;
    ``dynamic`` stores int8 weights; ``float16`` stores float16 weights. ``sparse`` keeps
    pruned weights in a sparse encoding that XNNPACK's sparse inference can use.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = [] if mode == "none" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ("int8", "int16x8"):
        if calibration is None or not len(calibration):
            raise ValueError(f"{mode} conversion needs calibration samples")
        samples = calibration.astype(np.float32)
        converter.representative_dataset = lambda: ([s[None]] for s in samples)
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            converter.target_spec.supported_ops = [ops]
    return converter.convert()
