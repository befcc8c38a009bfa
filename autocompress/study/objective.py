"""One trial, pure: (context, request) -> outcome. No Optuna, no Ray; runs in any process.

This is what a Ray worker executes. It reads nothing from the driver's filesystem: the context
(teacher, data, profiles) and the request (recipe, early-stop rule, the cached stage outputs it
can start from) arrive as arguments, and everything it produces (record, model bytes, new cache
entries) goes back in the outcome. Errors are caught and returned as a one-line reason so that
the driver records a FAIL trial and the search goes on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from autocompress.data.resize import Size, data_at, resized
from autocompress.evaluation.audit import TeacherReference
from autocompress.hardware import HardwareProfile, quiet
from autocompress.models.tflite import TfliteTeacher
from autocompress.recipe import Recipe
from autocompress.records import StageRecord, TrialRecord
from autocompress.study.early_stop import EarlyStop
from autocompress.task import Task

if TYPE_CHECKING:
    from autocompress.run.cache import StageCache


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its recipe; sent to the workers once per search."""

    task: Task
    profiles: tuple[HardwareProfile, ...]
    seed: int = 0
    threads: int = 1  # TensorFlow threads per trial (the CPUs Ray reserves for it)
    stage_cache: bool = True  # use and return stage cache entries
    cache_key: str = ""  # root key: hash of teacher, data and seed
    reference: TeacherReference | None = None  # the teacher's predictions; None: each trial's own
    sensitive: tuple[str, ...] = ()  # layer patterns, most sensitive to int8 first
    # The lineage every candidate shares (hashes of teacher and data: seconds on a real data
    # set), computed once per search; None: each trial's own.
    lineage: dict[str, Any] | None = None
    # The search's quiet window (autocompress.hardware.quiet): measured latencies wait for the
    # other trials on the node to give way; "" when no profile is measured.
    quiet_key: str = ""
    # A finishing run (autocompress.study.finish): each training keeps its best epoch and
    # stops after this many without a better one; 0 in a search.
    patience: int = 0

    @property
    def integer_io(self) -> bool:
        """Quantized files get integer inputs and outputs when a profile asks for them (the
        Edge TPU's do by default; a microcontroller's say so in their YAML)."""
        return any(p.integer_io for p in self.profiles)


@dataclass(frozen=True)
class TrialRequest:
    """One trial's own inputs."""

    number: int
    recipe: Recipe
    stop: EarlyStop | None = None  # the early-stop rule with the front as it was at submission
    cache_entries: dict[str, bytes] = field(default_factory=dict)  # by key, from the driver
    # False for a multi-fidelity build below the top level: only its validation quality, size
    # and latency rank it, so the test split, the audit and the .keras file are skipped.
    final: bool = True


@dataclass(frozen=True)
class TrialOutcome:
    """The result of one trial: a record and the ``.tflite`` bytes, or the reason it failed."""

    number: int
    record: TrialRecord | None = None
    tflite: bytes | None = None
    keras: bytes | None = None  # the final Keras model as a .keras file, when it round-trips
    # Where the final Keras model can be rebuilt from instead of a .keras file: "teacher" (it
    # is the teacher), or the stage cache key of its entry (the driver keeps the cache).
    keras_source: str | None = None
    error: str | None = None
    detail: str | None = None  # the traceback, for the log; never shown as the error line
    stopped: str | None = None  # why the candidate was stopped early as hopeless
    # per-sample validation scores (or outputs) for --confidence (evaluation.tolerance)
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    new_cache_entries: dict[str, bytes] = field(default_factory=dict)  # built by this trial
    node: str | None = None  # where it ran (set by the executor)
    began: float | None = None  # when the worker started and ended it (wall clock; likewise)
    ended: float | None = None


def run_trial(ctx: TrialContext, request: TrialRequest) -> TrialOutcome:
    """Build the candidate, convert it and measure the ``.tflite`` file on every profile.

    With ``request.stop``, fine-tuning stages end the candidate after their first epoch when the
    rule finds it hopeless (see :mod:`autocompress.study.early_stop`). Stage outputs built on
    the way are returned even when the candidate stops or fails: later trials can use them.
    """
    from autocompress.run.cache import MemoryCache
    from autocompress.stages import CandidateStopped

    number = request.number
    cache = MemoryCache(request.cache_entries) if ctx.stage_cache else None
    new = cache.added if cache is not None else {}
    try:
        with quiet.trial(ctx.quiet_key):
            record, tflite, keras, proof = _build_and_measure(ctx, request, cache)
    except CandidateStopped as exc:
        return TrialOutcome(number, stopped=str(exc), new_cache_entries=new)
    except Exception as exc:  # any failure of a candidate is that trial's FAIL, not the study's
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = f"{type(exc).__name__}: {reason}"[:300]
        return TrialOutcome(
            number, error=error, detail=traceback.format_exc(), new_cache_entries=new
        )
    return TrialOutcome(
        number,
        record=record,
        tflite=tflite,
        keras=keras.file,
        keras_source=keras.source,
        new_cache_entries=new,
        evidence=proof,
    )


class _KerasModel(NamedTuple):
    """The final Keras model as the driver keeps it: a ``.keras`` file, or where to rebuild it
    from (``teacher``, or its stage cache key); neither for a ``.tflite`` task."""

    file: bytes | None = None
    source: str | None = None


def _build_and_measure(
    ctx: TrialContext, request: TrialRequest, cache: StageCache | None
) -> tuple[TrialRecord, bytes, _KerasModel, dict[str, np.ndarray]]:
    from autocompress.evaluation.audit import NOISE_SIGMA, compare, teacher_reference
    from autocompress.evaluation.deployed import evaluate, predict
    from autocompress.evaluation.evidence import evidence
    from autocompress.evaluation.lineage import lineage

    start = time.perf_counter()
    laps = _Laps()
    recipe = request.recipe
    if ctx.task.teacher.trainable:
        tflite, stages, keras = _build_keras(ctx, request, cache, laps)
    else:
        (tflite, stages), keras = _build_tflite(ctx, recipe), _KerasModel()
    laps.lap("build")
    data, metric, size = ctx.task.data, ctx.task.metric, _input_size(ctx, recipe)
    if size is not None:  # the file takes smaller images: evaluated on them resized
        data = data_at(data, size, train=False)
    outputs = predict(tflite, data.x_val)
    score = metric.score(data.y_val, outputs)  # one scoring for the measurement, audit, evidence
    laps.lap("validation")
    measurement = evaluate(tflite, data.x_val, data.y_val, ctx.profiles, metric, outputs, score)
    window = quiet.current()
    if window is not None:  # waiting for a quiet window is not measuring
        laps.add("quiet_wait", window.waited_s)
    laps.lap("measure")
    if not request.final:
        record = TrialRecord(
            recipe, stages, measurement, time.perf_counter() - start, parts=laps.parts
        )
        return record, tflite, keras, {}
    if data.has_test:
        assert data.x_test is not None and data.y_test is not None
        test_quality = metric(data.y_test, predict(tflite, data.x_test))
        measurement = dataclasses.replace(measurement, test_quality=test_quality)
        laps.lap("test")
    ref = ctx.reference or teacher_reference(
        ctx.task.teacher.predict, data, ctx.seed, metric=metric
    )
    audit = compare(
        metric,
        labels=data.y_val,
        candidate=outputs,
        teacher=ref.clean,
        candidate_noisy=predict(tflite, _noisy_inputs(ctx, size)),
        teacher_noisy=ref.noisy,
        noise_sigma=NOISE_SIGMA,
        candidate_score=score,
        teacher_score=ref.score,
    )
    audit = dataclasses.replace(audit, lineage=lineage(ctx.task, tflite, ctx.seed, ctx.lineage))
    proof = evidence(metric, data.y_val, outputs, score)
    laps.lap("audit")
    record = TrialRecord(
        recipe=recipe,
        stages=stages,
        measurement=measurement,
        seconds=time.perf_counter() - start,
        audit=audit,
        parts=laps.parts,
    )
    return record, tflite, keras, proof


# What a worker process keeps between the trials of one search (Ray reuses it): the noisy
# validation inputs of the audit and the built teacher, under the search's root key (the
# hash of teacher, data and seed). One search at a time: a new key replaces the old entry.
_KEPT: dict[str, Any] = {}


def _kept(ctx: TrialContext, name: str, make: Callable[[], Any]) -> Any:
    """``make()``, once per worker process and search (by ``ctx.cache_key``; without a key,
    every time)."""
    if not ctx.cache_key:
        return make()
    if _KEPT.get("key") != ctx.cache_key:
        _KEPT.clear()
        _KEPT["key"] = ctx.cache_key
    if name not in _KEPT:
        _KEPT[name] = make()
    return _KEPT[name]


def _noisy_inputs(ctx: TrialContext, size: Size | None = None) -> Any:
    """The audit's noisy validation inputs (the same for every candidate of a search), resized
    to ``size`` for a candidate that takes smaller images."""
    from autocompress.evaluation.audit import NOISE_SIGMA, noisy

    x = _kept(ctx, "noisy", lambda: noisy(ctx.task.data, NOISE_SIGMA, ctx.seed))
    return x if size is None else resized(x, size)


def _input_size(ctx: TrialContext, recipe: Recipe) -> Size | None:
    """The (height, width) the candidate's file takes where its resolution is below 1.0."""
    if recipe.resolution >= 1.0:
        return None
    from autocompress.stages.resolution import input_size

    return input_size(_kept(ctx, "teacher", ctx.task.teacher.build), recipe.resolution)


class _Laps:
    """Seconds per part of a trial (:attr:`TrialRecord.parts`): each :meth:`lap` books the
    time since the previous one; a part timed inside another (``keras_file``, ``quiet_wait``,
    ``paused_for_others``: waits at yield points for another trial's measurement) is taken out
    of the enclosing lap."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._last = time.perf_counter()
        self._inner = 0.0
        window = quiet.current()  # time given way to others' measurements: its own part
        self._paused = window.paused_s if window is not None else 0.0

    def add(self, name: str, seconds: float) -> None:
        self.parts[name] = round(self.parts.get(name, 0.0) + seconds, 3)
        self._inner += seconds

    def lap(self, name: str) -> None:
        window = quiet.current()
        if window is not None and window.paused_s > self._paused:
            self.add("paused_for_others", window.paused_s - self._paused)
            self._paused = window.paused_s
        now = time.perf_counter()
        self.add(name, now - self._last - self._inner)
        self._inner = 0.0
        self._last = now


def _build_keras(
    ctx: TrialContext, request: TrialRequest, cache: StageCache | None, laps: _Laps
) -> tuple[bytes, list[StageRecord], _KerasModel]:
    """The Keras route: the recipe's stages on the teacher, then conversion.

    The worker builds the teacher once per search and keeps it (stages work on clones). A
    final model the driver can rebuild (the teacher itself, or a stage output in the stage
    cache) is not saved as a ``.keras`` file here: export rebuilds it when asked."""
    import tf_keras

    from autocompress.models.saving import keras_file_bytes
    from autocompress.stages import BuildContext, build_candidate
    from autocompress.stages.build import cache_plan

    loading = time.perf_counter()
    _cap_threads(ctx.threads)
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(ctx.seed)
    teacher = _kept(ctx, "teacher", ctx.task.teacher.build)
    laps.add("teacher", time.perf_counter() - loading)
    recipe, stop = request.recipe, request.stop
    gate = None
    if stop is not None:

        def gate(quality: float, stage: str) -> str | None:
            return stop.reason(recipe, quality, stage)

    build_ctx = BuildContext(
        data=ctx.task.data,
        teacher=teacher,
        seed=ctx.seed,
        gate=gate,
        integer_io=ctx.integer_io,
        sensitive=ctx.sensitive,
        metric=ctx.task.metric,
        loss=ctx.task.loss,
        calibration_samples=ctx.task.calibration_samples,
        keras_validation=False,  # the file's quality is measured; nothing reads the Keras one
        patience=ctx.patience,
    )
    tflite, stages, final = build_candidate(
        teacher, recipe, build_ctx, cache=cache, key=ctx.cache_key
    )
    saving = time.perf_counter()
    plan = cache_plan(recipe, ctx.cache_key)
    source = (plan[-1][1] if plan else "teacher") if cache is not None else None
    keras = _KerasModel()
    if request.final:
        keras = _KerasModel(source=source) if source else _KerasModel(keras_file_bytes(final))
    laps.add("keras_file", time.perf_counter() - saving)
    tf_keras.backend.clear_session()
    return tflite, stages, keras


def _build_tflite(ctx: TrialContext, recipe: Recipe) -> tuple[bytes, list[StageRecord]]:
    """The post-training route of a ``.tflite`` task: LiteRT Quantizer on the float file.

    Integer inputs and outputs only when a profile of the search needs them (the Edge TPU)."""
    from autocompress.litert.ptq import quantize_stage

    teacher = ctx.task.teacher
    assert isinstance(teacher, TfliteTeacher)
    tflite, record = quantize_stage(
        teacher.content,
        recipe,
        ctx.task.data.x_train,
        seed=ctx.seed,
        samples=ctx.task.calibration_samples,
        integer_io=ctx.integer_io,
        sensitive=ctx.sensitive,
    )
    return tflite, [record]


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
