"""The teacher's outputs as a training signal: the loss distillation trains a student with, and
the same loss in any stage's fine-tuning (the recipe's ``finetune_loss: distill``).

Output by output: a class output learns ``alpha`` x cross-entropy with the labels plus
(1 - ``alpha``) x T^2 x the KL divergence from the teacher's temperature-softened distribution
(Hinton et al., 2015); any other output ``alpha`` x the task's loss plus (1 - ``alpha``) x the
mean squared error to the teacher's output.

Inside Keras' ``fit`` (the fine-tuning stages need it: tfmot's pruning, clustering and QAT work
through its callbacks) the teacher's outputs travel as part of the targets: a class output's
target is ``[label, teacher log-probabilities...]`` along the last axis, any other's
``[target, teacher output]`` stacked on a new last axis; :func:`taught_loss` splits them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

TEMPERATURE = 4.0
ALPHA = 0.3  # weight of the task's own loss; the rest goes to the teacher


def log_probs(outputs: tf.Tensor, probabilities: bool) -> tf.Tensor:
    """Log-probabilities of a class output that is probabilities (softmax) or logits."""
    if probabilities:
        return tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))
    return tf.nn.log_softmax(outputs)


def distillation_loss(
    y: tf.Tensor, s_log: tf.Tensor, t_log: tf.Tensor, temperature: float, alpha: float
) -> tf.Tensor:
    """Hinton et al.'s loss from log-probabilities: ``alpha`` x cross-entropy with the labels +
    (1 - ``alpha``) x T^2 x KL(teacher || student) of the temperature-softened distributions."""
    hard = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=s_log))
    soft_t = tf.nn.softmax(t_log / temperature)
    kl = tf.reduce_mean(
        tf.reduce_sum(
            soft_t
            * (tf.nn.log_softmax(t_log / temperature) - tf.nn.log_softmax(s_log / temperature)),
            axis=-1,
        )
    )
    return alpha * hard + (1.0 - alpha) * temperature**2 * kl


def taught_targets(
    y: np.ndarray, taught: np.ndarray, is_class: bool, probabilities: bool
) -> np.ndarray:
    """One output's targets with the teacher's outputs ``taught`` packed beside them (see the
    module docstring)."""
    taught = np.asarray(taught, np.float32)
    if is_class:
        t_log = log_probs(taught, probabilities).numpy()
        labels = np.asarray(y).reshape(t_log.shape[:-1]).astype(np.float32)
        return np.concatenate([labels[..., None], t_log], axis=-1)
    values = np.asarray(y, np.float32).reshape(taught.shape)
    return np.stack([values, taught], axis=-1)


def output_loss(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    taught: tf.Tensor,
    is_class: bool,
    probabilities: bool,
    task_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
) -> tf.Tensor:
    """One output's loss with the teacher beside the task, the one formula distillation and
    fine-tuning share: on a class output the temperature-softened KL to the teacher's
    log-probabilities ``taught`` plus the hard-label loss (:func:`distillation_loss`); on any
    other, ``alpha`` of the task's loss plus the rest of the squared error to the teacher's
    output."""
    if is_class:
        return distillation_loss(
            y_true, log_probs(y_pred, probabilities), taught, temperature, alpha
        )
    mimic = tf.reduce_mean(tf.square(y_pred - taught))
    return alpha * tf.reduce_mean(task_loss(y_true, y_pred)) + (1.0 - alpha) * mimic


def taught_loss(
    task_loss: Any,
    is_class: bool,
    probabilities: bool,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A Keras loss for targets made by :func:`taught_targets`."""
    plain = keras.losses.get(task_loss)

    def loss(packed: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        if is_class:
            y_true, taught = tf.cast(packed[..., 0], tf.int32), packed[..., 1:]
        else:
            y_true, taught = packed[..., 0], packed[..., 1]
        return output_loss(
            y_true, y_pred, taught, is_class, probabilities, plain, temperature, alpha
        )

    loss.__name__ = "taught"
    return loss
