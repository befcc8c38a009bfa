"""What the stages share to train a candidate: cloning, loss choice, fine-tuning (with the
teacher, the early-stop gate, the quiet window's yield points, the best epoch, BatchNormalization
statistics estimated again) and calibration. The weight statistics a stage records are in
:mod:`autocompress.stages.weight_facts`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tf_keras as keras

from autocompress.data.arrays import Arrays, as_float32, count, keras_predict, ordered
from autocompress.data.resize import batches_with_originals
from autocompress.data.stream import Stream
from autocompress.hardware import quiet
from autocompress.models.graph import inbound_names, output_names
from autocompress.recipe import Recipe
from autocompress.stages._base import BuildContext, CandidateStopped
from autocompress.stages.batchnorm import CACHE_MARK, drawn_batches, reestimate
from autocompress.stages.teaching import taught_loss, taught_targets

# Layer types whose kernels the stages compress and whose width distillation scales.
WEIGHTED_LAYERS: tuple[type, ...] = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Dense,
)


def clone_with_weights(model: keras.Model) -> keras.Model:
    """A new model with new layer objects and copied weights.

    tfmot's wrappers reuse the layer objects of the model they are given, so fine-tuning a wrapped
    model changes the original. Every stage works on one of these clones instead.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights([w.copy() for w in model.get_weights()])
    return clone


def clone_wrapping(
    model: keras.Model, wrap: Callable[[keras.layers.Layer], keras.layers.Layer]
) -> keras.Model:
    """Clone ``model`` with ``wrap`` applied to each weighted layer (the input stays untouched).

    ``clone_model`` with a clone function does not copy weights, so the new model reuses the
    layers of a private clone (which has the weights) instead of creating fresh ones: ``wrap``
    may return its argument to leave a layer as it is.
    """
    private = clone_with_weights(model)

    def clone_fn(layer: keras.layers.Layer) -> keras.layers.Layer:
        return wrap(layer) if isinstance(layer, WEIGHTED_LAYERS) else layer

    return keras.models.clone_model(private, clone_function=clone_fn)


def excluded_layers(model: keras.Model, recipe: Recipe) -> set[str]:
    """Names of the weighted layers of ``model`` the recipe keeps out of compression.

    ``recipe.exclude`` is ``none`` or comma-separated tokens: ``ends`` (the first and last
    weighted layers) and layer names. Named layers the model does not have (the search checks
    them against the teacher before it starts) are ignored.
    """
    if recipe.exclude == "none":
        return set()
    weighted = [layer.name for layer in model.layers if isinstance(layer, WEIGHTED_LAYERS)]
    tokens = {t.strip() for t in recipe.exclude.split(",")}
    chosen = {name for name in weighted if name in tokens}
    if "ends" in tokens and weighted:
        chosen |= {weighted[0], weighted[-1]}
    return chosen


def output_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layer of each model output, in output order."""
    return [model.get_layer(name) for name in output_names(model)]


def head_layers(model: keras.Model) -> set[str]:
    """The weighted layers whose width is an output's: those an output reaches through no other
    weighted layer (a ``Dense(4)`` under a ``Reshape((1, 4))`` output, both sides of a
    concatenated output). Distillation keeps their widths."""
    found: set[str] = set()
    seen: set[str] = set()
    feeds = inbound_names(model)
    stack = output_names(model)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if isinstance(model.get_layer(name), WEIGHTED_LAYERS):
            found.add(name)
        else:
            stack.extend(feeds.get(name, []))
    return found


def outputs_probabilities(model: keras.Model, index: int = 0) -> bool:
    """Whether output ``index`` ends in a softmax (probabilities) rather than logits."""
    last = output_layers(model)[index]
    if isinstance(last, keras.layers.Softmax):
        return True
    return last.get_config().get("activation") == "softmax"


def io_names(ctx: BuildContext) -> tuple[list[str], list[str]]:
    """The teacher's input and output names: every candidate is fed and read in their order."""
    return list(ctx.teacher.input_names), list(ctx.teacher.output_names)


def targets(ctx: BuildContext, name: str) -> np.ndarray:
    """The training targets of output ``name``."""
    y = ctx.data.y_train
    return y[name] if isinstance(y, dict) else y


def class_output(ctx: BuildContext, name: str) -> bool:
    """Whether output ``name`` holds class scores for class-id targets (trained with
    cross-entropy, distilled with a softened KL): for the output the metric scores, whether
    the metric is a class metric; for any other, whether its targets are integers and it has
    a score per class."""
    outputs = io_names(ctx)[1]
    own = ctx.metric.targets == "outputs"  # targets made from the teacher: judged by dtype
    if (len(outputs) == 1 or name == ctx.metric.output) and not own:
        return ctx.metric.classification
    units = ctx.teacher.outputs[outputs.index(name)].shape[-1]
    return np.issubdtype(targets(ctx, name).dtype, np.integer) and (units or 0) >= 2


def loss_for(ctx: BuildContext) -> Any:
    """The loss of each output, in output order (one loss for one output): the task's
    (``ctx.loss``, a Keras loss name or one per output name), else cross-entropy for class
    outputs (:func:`class_output`) and mean squared error for others. A cross-entropy's
    ``from_logits`` is decided on the teacher: every candidate keeps its output layers, and
    wrapped models (prune, cluster, QAT) hide the activation."""
    outputs = io_names(ctx)[1]
    losses = [_one_loss(ctx, i, name) for i, name in enumerate(outputs)]
    return losses[0] if len(losses) == 1 else losses


def _one_loss(ctx: BuildContext, index: int, name: str) -> Any:
    chosen = ctx.loss.get(name) if isinstance(ctx.loss, dict) else ctx.loss
    from_logits = not outputs_probabilities(ctx.teacher, index)
    if chosen is None:
        if class_output(ctx, name):
            return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        return keras.losses.MeanSquaredError()
    if chosen.endswith("crossentropy"):  # the class of that name, with from_logits
        if chosen == "categorical_crossentropy" and np.issubdtype(
            targets(ctx, name).dtype, np.integer
        ):
            chosen = "sparse_categorical_crossentropy"  # the data holds class ids, not one-hot
        class_name = "".join(part.title() for part in chosen.split("_"))
        return keras.losses.get({"class_name": class_name, "config": {"from_logits": from_logits}})
    return keras.losses.get(chosen)


# Training batches a zero-epoch fine-tune shows the model (see fine_tune).
CALIBRATION_BATCHES = 10


@dataclass(frozen=True)
class Fit:
    """What a stage's training did, for its facts: the seconds the fit took (``fit_seconds``:
    the rest of a stage's time is wrapping, stripping and its facts) and, in a finishing run
    (:class:`BestEpoch`), the epoch kept and how many ran before the patience ran out."""

    seconds: float = 0.0
    best_epoch: int | None = None  # 1-based
    epochs_run: int | None = None

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fit_seconds": round(self.seconds, 3)}
        if self.best_epoch is not None:
            out.update(best_epoch=self.best_epoch, epochs_run=self.epochs_run)
        return out

    @classmethod
    def since(cls, start: float, best: BestEpoch | None = None) -> Fit:
        if best is None or best.best_epoch < 0:
            return cls(time.perf_counter() - start)
        return cls(time.perf_counter() - start, best.best_epoch + 1, best.epochs_run)


def fine_tune(
    model: keras.Model,
    ctx: BuildContext,
    recipe: Recipe,
    learning_rate: float,
    callbacks: list[Any] | None = None,
    stage: str = "fine-tune",
) -> Fit:
    """Compile and fit for the recipe's ``finetune_epochs`` on the task's training data with
    the task's loss (:func:`loss_for`), and with the teacher's outputs beside it where the
    recipe's ``finetune_loss`` is ``distill`` (:mod:`autocompress.stages.teaching`); returns
    what the fit did (:class:`Fit`: its seconds, and the epoch a finishing run kept).

    With ``ctx.gate``, the validation quality after the first epoch is handed to the gate, and
    :class:`CandidateStopped` ends the candidate there when the gate gives a reason.

    ``epochs=0`` is a calibration, not a no-op (see :func:`calibrate`). It is the lowest
    fidelity level of a multi-fidelity search (see :mod:`autocompress.study.fidelity`):
    compression applied, no recovery training.
    """
    start, epochs = time.perf_counter(), recipe.finetune_epochs
    if epochs == 0:
        calibrate(model, ctx, callbacks or [])
        return Fit.since(start)
    x, y = ctx.data.x_train, ctx.data.y_train
    extra = [GiveWay(), *([_Gate(model, ctx, stage)] if ctx.gate is not None else [])]
    best = BestEpoch(model, ctx) if ctx.patience else None
    if best is not None:  # a finishing run: stop when validation stops improving, keep the best
        extra.append(best)
    # Each output's (name, class output?, probabilities?), worked out once: what packing the
    # teacher's outputs beside the targets needs, batch after batch.
    taught_by = _taught_outputs(ctx) if recipe.finetune_loss == "distill" else None
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=_taught_losses(ctx, taught_by) if taught_by else loss_for(ctx),
    )
    inputs, outputs = io_names(ctx)
    if isinstance(x, Stream):  # batches read as the fit goes, shuffled per epoch
        model.fit(
            _stream_feed(x, ctx, inputs, outputs, taught_by),
            steps_per_epoch=steps_per_epoch(ctx),
            epochs=epochs,
            verbose=0,
            callbacks=[*(callbacks or []), *extra],
        )
        return _settled(model, ctx, start, best)
    if taught_by:
        taught = keras_predict(ctx.teacher, ctx.teacher_inputs(), (inputs, outputs))
        y = _with_teacher(taught_by, y, taught)
    model.fit(
        ordered(x, inputs),
        ordered(y, outputs),
        epochs=epochs,
        batch_size=ctx.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[*(callbacks or []), *extra],
    )
    return _settled(model, ctx, start, best)


def tuning_params(recipe: Recipe) -> dict[str, object]:
    """What every fine-tuning stage's output depends on besides its own technique, for its
    cache key: the epochs, what the loss learns from, and that BatchNormalization statistics
    are estimated again afterwards (outputs of versions before 2026-12-07 lack it)."""
    return {"epochs": recipe.finetune_epochs, "loss": recipe.finetune_loss, **CACHE_MARK}


def _settled(model: keras.Model, ctx: BuildContext, start: float, best: BestEpoch | None) -> Fit:
    """The fit's record, once the model's BatchNormalization statistics are its final
    weights' (:mod:`autocompress.stages.batchnorm`; a finishing run's best epoch got them when
    it was scored)."""
    if best is None or best.best_epoch < 0:
        reestimate(model, ctx)
    return Fit.since(start, best)


def calibrate(model: keras.Model, ctx: BuildContext, callbacks: list[Any]) -> None:
    """What a training epoch at learning rate 0 on :data:`CALIBRATION_BATCHES` training
    batches does, without tracing a training step: the model runs forward in training mode
    on each batch with the callbacks around it, so no weight moves but everything computed
    from data is set as training would set it -- BatchNorm moving statistics, pruning masks
    at their target (the pruning callback advances the step), QAT quantization ranges.

    A traced training step of a MobileNetV2 costs seconds to build; these forward passes run
    eagerly, and nothing needs gradients."""
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_begin(0)
    for step, batch in enumerate(drawn_batches(ctx, CALIBRATION_BATCHES * ctx.batch_size)):
        for callback in callbacks:
            callback.on_train_batch_begin(step)
        model(batch, training=True)
        for callback in callbacks:
            callback.on_train_batch_end(step)
    for callback in callbacks:
        callback.on_epoch_end(0)
        callback.on_train_end()


def _stream_feed(
    x: Stream,
    ctx: BuildContext,
    inputs: list[str],
    outputs: list[str],
    taught_by: list[tuple[str, bool, bool]] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Training batches of a stream, epoch after epoch (each shuffled by its own seed); with
    ``taught_by`` (:func:`_taught_outputs`), the teacher's outputs on each batch packed beside
    its targets."""
    epoch = 0
    while True:
        for xb, xt, yb in batches_with_originals(x, ctx.batch_size, ctx.seed + epoch):
            feed = ordered(as_float32(xb), inputs)
            if taught_by:
                taught = ctx.teacher.predict_on_batch(ordered(as_float32(xt), inputs))
                if isinstance(taught, list | tuple):
                    taught = dict(zip(outputs, taught))
                yb = _with_teacher(taught_by, yb, taught)
            yield feed, ordered(yb, outputs)
        epoch += 1


def _taught_outputs(ctx: BuildContext) -> list[tuple[str, bool, bool]]:
    """Each output's name, whether it is a class output, whether the teacher's is
    probabilities (rather than logits)."""
    outputs = io_names(ctx)[1]
    return [
        (name, class_output(ctx, name), outputs_probabilities(ctx.teacher, i))
        for i, name in enumerate(outputs)
    ]


def _taught_losses(ctx: BuildContext, taught_by: list[tuple[str, bool, bool]]) -> Any:
    """:func:`loss_for`'s losses, each taught by the teacher (one for one output)."""
    plain = loss_for(ctx)
    plain = plain if isinstance(plain, list) else [plain]
    losses = [taught_loss(loss, c, p) for loss, (_, c, p) in zip(plain, taught_by)]
    return losses[0] if len(losses) == 1 else losses


def _with_teacher(taught_by: list[tuple[str, bool, bool]], y: Arrays, taught: Arrays) -> Arrays:
    """Targets ``y`` with the teacher's outputs ``taught`` packed beside them, output by
    output (:func:`autocompress.stages.teaching.taught_targets`)."""
    first = taught_by[0][0]
    ys = y if isinstance(y, dict) else {first: y}
    ts = taught if isinstance(taught, dict) else {first: taught}
    packed = {name: taught_targets(ys[name], ts[name], c, p) for name, c, p in taught_by}
    return packed if isinstance(y, dict) else packed[first]


class GiveWay(keras.callbacks.Callback):
    """A yield point between training batches: another trial's latency measurement on this
    node waits for no batch of this one (:mod:`autocompress.hardware.quiet`)."""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        quiet.yield_point()


class BestEpoch(keras.callbacks.Callback):
    """The epoch with the best validation quality (the task's metric) is the one kept: training
    stops after ``ctx.patience`` epochs without a better one, and the model gets the best
    epoch's weights back (a finishing run, ``autocompress finish``)."""

    def __init__(self, target: keras.Model, ctx: BuildContext) -> None:
        super().__init__()
        self._target, self._ctx = target, ctx
        self.best: float | None = None
        self.best_epoch, self._weights, self.waited = -1, None, 0
        self.epochs_run = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.improved(epoch):
            return
        if self.waited >= self._ctx.patience:
            self._target.stop_training = True

    def improved(self, epoch: int) -> bool:
        """Score the model after ``epoch``; keep its weights when they are the best so far."""
        self.epochs_run = epoch + 1
        reestimate(self._target, self._ctx)  # scored as it will predict
        value = val_quality(self._target, self._ctx)
        if self.best is None or self._ctx.metric.quality.drop(self.best, value) < 0:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            self._weights = [w.copy() for w in self._target.get_weights()]
            return True
        self.waited += 1
        return False

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._weights is not None:
            self._target.set_weights(self._weights)


class _Gate(keras.callbacks.Callback):
    """Asks ``ctx.gate`` after the first epoch whether the candidate is worth finishing."""

    def __init__(self, target: keras.Model, ctx: BuildContext, stage: str) -> None:
        super().__init__()
        self._target, self._ctx, self._stage = target, ctx, stage

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch != 0 or self._ctx.gate is None:
            return
        reestimate(self._target, self._ctx)  # judged as it would predict
        reason = self._ctx.gate(val_quality(self._target, self._ctx), self._stage)
        if reason is not None:
            raise CandidateStopped(reason)


def steps_per_epoch(ctx: BuildContext) -> int:
    return int(np.ceil(count(ctx.data.x_train) / ctx.batch_size))


def val_quality(model: keras.Model, ctx: BuildContext) -> float:
    """Keras-side validation quality in the task's metric (the deployed file's is measured
    separately)."""
    return ctx.metric(ctx.data.y_val, keras_predict(model, ctx.data.x_val, io_names(ctx)))


def val_facts(model: keras.Model, ctx: BuildContext) -> dict[str, float]:
    """A stage's fact ``keras_val_<metric>``: its output's Keras-side validation quality, where
    ``ctx.keras_validation`` asks for it (a search does not: it measures the deployed file,
    and a pass over the validation split costs seconds per stage on a real network)."""
    if not ctx.keras_validation:
        return {}
    return {f"keras_val_{ctx.metric.name}": round(val_quality(model, ctx), 4)}
