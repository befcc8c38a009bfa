"""BatchNormalization statistics estimated again for a trained model's final weights.

A BatchNormalization layer normalises with the batch's own statistics while it trains and with
its moving averages when it predicts. Those averages mix the statistics of the last steps'
batches, each computed with that step's weights, so after a short training at a high learning
rate (distillation's 6e-3 Adam) they describe weights the model no longer has, and it predicts
worse than it is. Measured on the ResNet task (benchmarks/README.md, teacher_init.py; its
BatchNormalization momentum is 0.9): a width-0.5 student distilled 4 epochs scored 0.875
validation accuracy with the averages training left, 0.908 once they were estimated again.

:func:`reestimate` replaces them by plain averages over training batches run forward in
training mode with the final weights (no weight moves), what stochastic weight averaging does
for the same reason (Izmailov et al., 2018).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from autocompress.data.arrays import as_float32, count, ordered, take
from autocompress.hardware import quiet
from autocompress.stages._base import BuildContext

# Training samples the averages are estimated on, at most: the whole training set of the realistic
# tasks (3,771 images; about a quarter of an epoch's time, forward passes only). On the ResNet
# task's width-0.5 student, 1,024 of them gave 0.903 validation accuracy, all of them 0.908
# (one run each of a throwaway script).
SAMPLES = 4096


# In a stage's cache key: its output's statistics were estimated again (outputs of versions
# before 2026-12-07 were not).
CACHE_MARK = {"batchnorm": "reestimated"}


def drawn_batches(ctx: BuildContext, samples: int) -> Iterator[Any]:
    """``samples`` training inputs (a draw seeded by ``ctx.seed``) in ``ctx.batch_size``
    batches, float32 and in the teacher's input order, each after a quiet-window yield point:
    what a forward pass in training mode without moving weights reads (here, and calibration's
    zero-epoch fine-tune)."""
    x = ctx.data.x_train
    pick = np.random.default_rng(ctx.seed).permutation(count(x))[:samples]
    inputs = list(ctx.teacher.input_names)  # the order every candidate is fed in
    for first in range(0, len(pick), ctx.batch_size):
        quiet.yield_point()
        yield ordered(as_float32(take(x, pick[first : first + ctx.batch_size])), inputs)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNormalization layers, nested models and tfmot's wrappers searched."""
    found: list[keras.layers.BatchNormalization] = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a tfmot wrapper holds its layer
        if isinstance(inner, keras.layers.BatchNormalization):
            found.append(inner)
        elif isinstance(inner, keras.Model):
            found.extend(batchnorm_layers(inner))
    return found


def reestimate(model: keras.Model, ctx: BuildContext, samples: int = SAMPLES) -> int:
    """Set every BatchNormalization layer's moving mean and variance of ``model`` to their
    averages over ``samples`` training samples (a seeded draw, in ``ctx.batch_size`` batches)
    run through the model in training mode; returns the number of layers set (0: none, and
    nothing was run). A frozen layer (``trainable=False``) is left as it is."""
    # A layer its owner froze runs in inference mode even when called in training mode (Keras'
    # rule for BatchNormalization): it would never be averaged, so it keeps what it has.
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    try:
        for k, batch in enumerate(drawn_batches(ctx, samples)):
            for layer in layers:  # the k-th batch weighs 1/(k+1): a plain average
                layer.momentum = k / (k + 1.0)
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)
