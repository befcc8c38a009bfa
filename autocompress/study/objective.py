"""One trial, pure: (context, recipe) -> outcome. No Optuna, no Ray; runs in any process.

This is what a Ray worker executes. Errors are caught and returned as a one-line reason so that
the driver records a FAIL trial and the search goes on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass

from autocompress.hardware import HardwareProfile
from autocompress.records import Recipe, TrialRecord
from autocompress.study.early_stop import EarlyStop
from autocompress.task import Task


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its recipe; sent to the workers once per search."""

    task: Task
    profiles: tuple[HardwareProfile, ...]
    seed: int = 0
    threads: int = 1
    cache_dir: str | None = None  # the stage cache, shared by all trials of the study
    cache_key: str = ""  # root key: hash of teacher, data and seed


@dataclass(frozen=True)
class TrialOutcome:
    """The result of one trial: a record and the ``.tflite`` bytes, or the reason it failed."""

    number: int
    record: TrialRecord | None = None
    tflite: bytes | None = None
    keras: bytes | None = None  # the final Keras model as a .keras file, when it round-trips
    error: str | None = None
    detail: str | None = None  # the traceback, for the log; never shown as the error line
    stopped: str | None = None  # why the candidate was stopped early as hopeless


def run_trial(
    ctx: TrialContext, number: int, recipe: Recipe, stop: EarlyStop | None = None
) -> TrialOutcome:
    """Build the candidate, convert it and measure the ``.tflite`` file on every profile.

    With ``stop``, fine-tuning stages end the candidate after their first epoch when the rule
    finds it hopeless (see :mod:`autocompress.study.early_stop`).
    """
    from autocompress.stages import CandidateStopped

    try:
        record, tflite, keras_file = _build_and_measure(ctx, recipe, stop)
    except CandidateStopped as exc:
        return TrialOutcome(number, stopped=str(exc))
    except Exception as exc:  # any failure of a candidate is that trial's FAIL, not the study's
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = f"{type(exc).__name__}: {reason}"[:300]
        return TrialOutcome(number, error=error, detail=traceback.format_exc())
    return TrialOutcome(number, record=record, tflite=tflite, keras=keras_file)


def _build_and_measure(
    ctx: TrialContext, recipe: Recipe, stop: EarlyStop | None
) -> tuple[TrialRecord, bytes, bytes | None]:
    import numpy as np
    import tf_keras

    from autocompress.audit import NOISE_SIGMA, compare, lineage, noisy
    from autocompress.evaluate import evaluate, predict
    from autocompress.stages import BuildContext, build_candidate
    from autocompress.stages._keras import keras_file_bytes
    from autocompress.stages.cache import StageCache

    _cap_threads(ctx.threads)
    start = time.perf_counter()
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(ctx.seed)
    teacher = ctx.task.teacher.build()
    gate = None
    if stop is not None:

        def gate(accuracy: float, stage: str) -> str | None:
            return stop.reason(recipe, accuracy, stage)

    build_ctx = BuildContext(data=ctx.task.data, teacher=teacher, seed=ctx.seed, gate=gate)
    cache = StageCache(ctx.cache_dir) if ctx.cache_dir else None
    tflite, stages, final = build_candidate(
        teacher, recipe, build_ctx, cache=cache, key=ctx.cache_key
    )
    keras_file = keras_file_bytes(final)
    data = ctx.task.data
    scores = predict(tflite, data.x_val)
    measurement = evaluate(tflite, data.x_val, data.y_val, ctx.profiles, scores=scores)
    x_noisy = noisy(data, NOISE_SIGMA, ctx.seed)
    audit = compare(
        candidate=np.argmax(scores, axis=-1),
        teacher=np.argmax(teacher.predict(data.x_val, batch_size=256, verbose=0), axis=-1),
        labels=data.y_val,
        candidate_noisy=np.argmax(predict(tflite, x_noisy), axis=-1),
        teacher_noisy=np.argmax(teacher.predict(x_noisy, batch_size=256, verbose=0), axis=-1),
        noise_sigma=NOISE_SIGMA,
    )
    audit = dataclasses.replace(audit, lineage=lineage(ctx.task, tflite, ctx.seed))
    tf_keras.backend.clear_session()
    record = TrialRecord(
        recipe=recipe,
        stages=stages,
        measurement=measurement,
        seconds=time.perf_counter() - start,
        audit=audit,
    )
    return record, tflite, keras_file


def _cap_threads(threads: int) -> None:
    """Keep TensorFlow to ``threads`` cores so that parallel workers do not oversubscribe.

    TensorFlow accepts this only before its runtime starts; a reused worker process already has
    the same setting, so a refusal then is harmless.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
