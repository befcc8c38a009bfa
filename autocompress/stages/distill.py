"""Knowledge distillation into a narrower student derived from the teacher's own architecture.

The student is the teacher with every Conv/Dense width scaled by ``student_width`` (the output
layers keep their widths). Where its weights start is the recipe's ``student_init``:

* ``teacher`` (the default): the teacher's most important channels of every layer it narrows,
  chosen and cut as channel pruning does (:mod:`autocompress.stages.channels`: how much each
  channel varies over training inputs, residual groups kept aligned, depthwise and
  concatenations followed), then distilled -- pruning
  then distillation, as NVIDIA's Minitron does. A group the channel-pruning graph handling must
  leave whole keeps its width, and the record says why;
* ``scratch``: the narrowed config, randomly initialised.

It is then trained output by output on a mix of cross-entropy to the labels and a
temperature-softened KL divergence to the teacher (Hinton et al., 2015) for class outputs, and of
the task's loss and mean squared error to the teacher's output for any other. Its
BatchNormalization statistics are then estimated again for its final weights
(:mod:`autocompress.stages.batchnorm`: 0.875 -> 0.908 for a width-0.5 ResNet student).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from autocompress.data.arrays import Arrays, as_float32, count, keras_predict, ordered
from autocompress.data.resize import batches_with_originals
from autocompress.data.stream import Stream
from autocompress.hardware import quiet
from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.batchnorm import CACHE_MARK, reestimate
from autocompress.stages.channels import choose_channels, importance_of, prune_channels
from autocompress.stages.teaching import ALPHA, TEMPERATURE, log_probs, output_loss
from autocompress.stages.training import (
    BestEpoch,
    Fit,
    class_output,
    clone_with_weights,
    head_layers,
    io_names,
    loss_for,
    outputs_probabilities,
    val_facts,
)

_WIDTH_KEYS = {"Conv1D": "filters", "Conv2D": "filters", "Dense": "units"}


def student_config(teacher: keras.Model, width: float) -> tuple[str, dict[str, int]]:
    """The teacher's JSON config with scaled widths, and the new width of each scaled layer."""
    config = copy.deepcopy(json.loads(teacher.to_json()))
    output_names = head_layers(teacher)
    widths: dict[str, int] = {}
    for layer in config["config"]["layers"]:
        key = _WIDTH_KEYS.get(layer["class_name"])
        name = layer["config"].get("name")
        if key is None or name in output_names:
            continue
        new = max(1, int(round(layer["config"][key] * width)))
        layer["config"][key] = new
        widths[name] = new
    return json.dumps(config), widths


def teacher_channels(
    teacher: keras.Model, width: float, importance: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The teacher's channels a student of ``width`` keeps (channel pruning's choice, by
    ``importance`` where given), and what that student is: the new width of each narrowed
    layer, the layers left whole with why."""
    kept, left = choose_channels(teacher, 1.0 - width, importance=importance)
    widths = {name: len(channels) for name, channels in kept.items()}
    return kept, {"init": "teacher", "widths": widths, "left": left}


class Distill(Stage):
    """Train a narrower student to mimic the teacher."""

    name = "distill"
    epochs_field = "distill_epochs"
    min_epochs = 1
    # A student trained from scratch is at chance after a share of its epochs (MobileNetV2
    # 0.35/96: 0.10-0.24 after 1-2 of 6 epochs, 0.37-0.68 after all; benchmarks/README.md), so
    # the levels screen only the stages after it and the distilled student is cached once.
    scaled_by_levels = False

    # Adam's learning rate: a width-0.5 student from the teacher's channels on MobileNetV2
    # 0.35/96 reached 0.23 / 0.40 / 0.57 / 0.64 / 0.51 validation accuracy after 4 epochs at
    # 3e-4 / 1e-3 / 3e-3 / 6e-3 / 1e-2 (the teacher: 0.62; benchmarks/README.md, teacher_init).
    def __init__(
        self, temperature: float = TEMPERATURE, alpha: float = ALPHA, lr: float = 6e-3
    ) -> None:
        self.temperature = temperature
        self.alpha = alpha  # weight of the hard-label loss; the rest goes to the teacher
        self.lr = lr

    def applies(self, recipe: Recipe) -> bool:
        return recipe.student_width < 1.0

    def cache_params(self, recipe: Recipe) -> dict[str, object]:
        return self._trained(recipe, recipe.distill_epochs)

    def _trained(self, recipe: Recipe, epochs: int) -> dict[str, object]:
        """The cache parameters of ``recipe``'s student after ``epochs``."""
        params = {**self.architecture_params(recipe), "epochs": epochs, **CACHE_MARK}
        if recipe.student_init == "teacher":
            params["importance"] = "activation"  # which channels it starts from
        return params

    def architecture_params(self, recipe: Recipe) -> dict[str, object]:
        """The training does not change the architecture; the init may (a group channel
        pruning leaves whole keeps its width in a teacher-initialised student)."""
        return {"student_width": recipe.student_width, "init": recipe.student_init}

    def student(
        self,
        teacher: keras.Model,
        recipe: Recipe,
        seed: int,
        importance: dict[str, np.ndarray] | None = None,
    ) -> tuple[keras.Model, dict[str, Any]]:
        """The untrained student of ``recipe`` and what it is (widths; layers left whole); from
        the teacher, the channels ``importance`` ranks first (channel pruning's
        :func:`~autocompress.stages.channels.importance_of`; without it, kernel L1 norms)."""
        plan, made = self._plan(teacher, recipe, importance)
        if recipe.student_init == "teacher":
            return prune_channels(teacher, plan)[0], made
        keras.utils.set_random_seed(seed)
        return keras.models.model_from_json(plan), made

    def _plan(
        self,
        teacher: keras.Model,
        recipe: Recipe,
        importance: dict[str, np.ndarray] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """The student of ``recipe`` before it is built -- the teacher's channels it keeps, or
        its config from scratch -- and what it is."""
        if recipe.student_init == "teacher":
            return teacher_channels(teacher, recipe.student_width, importance)
        config_json, widths = student_config(teacher, recipe.student_width)
        return config_json, {"init": "scratch", "widths": widths}

    def build(
        self, model: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        importance = importance_of(model, ctx) if recipe.student_init == "teacher" else None
        student, made = self.student(model, recipe, ctx.seed, importance)
        keras.utils.set_random_seed(ctx.seed)
        start = time.perf_counter()
        fit = Fit.since(start, self.train(student, ctx, recipe.distill_epochs))
        facts = self._facts(model, student, recipe, ctx)
        return student, {**facts, **fit.facts(), **made}

    def shorter(self, recipe: Recipe) -> list[tuple[int, dict[str, Any]]]:
        """The same student trained for fewer epochs (a lower fidelity level's)."""
        return [(e, self._trained(recipe, e)) for e in range(recipe.distill_epochs - 1, 0, -1)]

    def continue_build(
        self, done: keras.Model, epochs_done: int, recipe: Recipe, ctx: BuildContext
    ) -> tuple[keras.Model, dict[str, Any]]:
        """The remaining epochs on a copy of ``done`` (a fresh optimizer: Adam's moments are
        not cached, so the result is close to, not equal to, an unbroken training)."""
        student = clone_with_weights(done)
        keras.utils.set_random_seed(ctx.seed + epochs_done)
        start = time.perf_counter()
        fit = Fit.since(start, self.train(student, ctx, recipe.distill_epochs - epochs_done))
        made = self._plan(ctx.teacher, recipe)[1]  # what the student is (not built again)
        facts = self._facts(ctx.teacher, student, recipe, ctx)
        return student, {**facts, **fit.facts(), **made}

    def _facts(
        self, teacher: keras.Model, student: keras.Model, recipe: Recipe, ctx: BuildContext
    ) -> dict[str, Any]:
        return {
            "student_width": recipe.student_width,
            "teacher_params": int(teacher.count_params()),
            "student_params": int(student.count_params()),
            **val_facts(student, ctx),
        }

    def train(
        self,
        student: keras.Model,
        ctx: BuildContext,
        epochs: int,
        after_epoch: Callable[[int], None] | None = None,
    ) -> BestEpoch | None:
        """``epochs`` of distillation (``after_epoch(epoch)`` called after each: a benchmark's
        learning curve), BatchNormalization statistics estimated again for the weights each
        time the student is read (:mod:`autocompress.stages.batchnorm`). Output by output: on a
        class output, temperature-softened KL to the teacher plus the hard-label loss; on any
        other, mean squared error to the teacher's output plus the task's loss. The student
        keeps the teacher's output layers, so a teacher output that is probabilities is one in
        the student too.

        In-memory data: the teacher's outputs are computed once; a stream's (an image folder):
        batch by batch, with the batch."""
        outputs = io_names(ctx)[1]
        probs = [outputs_probabilities(ctx.teacher, i) for i in range(len(outputs))]
        classes = [class_output(ctx, name) for name in outputs]

        def targets_of(taught: list[np.ndarray]) -> tuple:
            return tuple(
                log_probs(t, p).numpy() if c else t for t, p, c in zip(taught, probs, classes)
            )

        task_losses = loss_for(ctx)
        task_losses = task_losses if isinstance(task_losses, list) else [task_losses]
        temp, alpha = self.temperature, self.alpha
        optimizer = keras.optimizers.Adam(self.lr)

        @tf.function(reduce_retracing=True)
        def step(xb: tuple, yb: tuple, tb: tuple) -> None:
            with tf.GradientTape() as tape:
                out = student(list(xb) if len(xb) > 1 else xb[0], training=True)
                outs = out if isinstance(out, list | tuple) else [out]
                loss = tf.constant(0.0)
                for o, yt, t_log, p, c, task_loss in zip(outs, yb, tb, probs, classes, task_losses):
                    loss += output_loss(yt, o, t_log, c, p, task_loss, temp, alpha)
            grads = tape.gradient(loss, student.trainable_variables)
            optimizer.apply_gradients(zip(grads, student.trainable_variables))

        best = BestEpoch(student, ctx) if ctx.patience else None

        def stop_after(epoch: int) -> bool:
            stop = False
            if best is not None:  # it scores the epoch with the statistics estimated again
                stop = not best.improved(epoch) and best.waited >= ctx.patience
            elif after_epoch is not None or epoch == epochs - 1:
                reestimate(student, ctx)  # whenever the student is read (stages.batchnorm)
            if after_epoch is not None:
                after_epoch(epoch)
            return stop

        self._epochs(ctx, epochs, step, targets_of, stop_after)
        if best is not None:
            best.on_train_end()  # the best epoch's weights
        return best

    def _epochs(
        self,
        ctx: BuildContext,
        epochs: int,
        step: Callable[[tuple, tuple, tuple], None],
        targets_of: Callable[[list[np.ndarray]], tuple],
        stop_after: Callable[[int], bool],
    ) -> None:
        """The training passes: in-memory data with the teacher's outputs computed once, a
        stream's batch by batch (the teacher on the full-size batch)."""
        inputs, outputs = io_names(ctx)
        x_train = ctx.data.x_train
        if isinstance(x_train, Stream):
            for epoch in range(epochs):
                seed = ctx.seed + epoch
                for xb, xt, yb in batches_with_originals(x_train, ctx.batch_size, seed):
                    quiet.yield_point()
                    xs = tuple(_listed(as_float32(xb), inputs))
                    ts = _listed(as_float32(xt), inputs)
                    taught = ctx.teacher.predict_on_batch(ts if len(ts) > 1 else ts[0])
                    taught = taught if isinstance(taught, list) else [taught]
                    step(xs, tuple(_listed(yb, outputs)), targets_of(taught))
                if stop_after(epoch):
                    break
            return
        x = _listed(as_float32(x_train), inputs)
        y = _listed(ctx.data.y_train, outputs)
        taught = _listed(
            keras_predict(ctx.teacher, ctx.teacher_inputs(), (inputs, outputs)), outputs
        )
        dataset = (
            tf.data.Dataset.from_tensor_slices((tuple(x), tuple(y), targets_of(taught)))
            .shuffle(count(x_train), seed=ctx.seed)
            .batch(ctx.batch_size)
        )
        for epoch in range(epochs):
            for xb, yb, tb in dataset:
                quiet.yield_point()
                step(xb, yb, tb)
            if stop_after(epoch):
                break


def _listed(a: Arrays, names: list[str]) -> list[np.ndarray]:
    """``a`` as a list in the order of ``names`` (one array: a list of one)."""
    feed = ordered(a, names)
    return feed if isinstance(feed, list) else [feed]
