"""The public search API: :func:`search` with its settings as one dataclass.

Everything a user can get wrong is checked here, before any trial runs (settings, the space, the
profiles, the task and how they fit together); then the study is opened
(:mod:`autocompress.study.storage`) and the driver (:mod:`autocompress.study.driver`) runs it.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from autocompress._files import atomic_write_bytes
from autocompress.errors import InputError
from autocompress.evaluation.tolerance import MaxDrop
from autocompress.hardware import HardwareProfile, load_profile
from autocompress.metrics import Metric, from_function, get_metric
from autocompress.run.rundir import RunDir
from autocompress.run.tables import front_frame, trials_frame
from autocompress.space import SearchSpace, load_recipes, resolve_space
from autocompress.study.constraints import Limits
from autocompress.study.driver import Driver, Progress, SearchOptions
from autocompress.study.early_stop import DEFAULT_MARGIN
from autocompress.study.finish import Finish, prepare
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest
from autocompress.study.plan import narrowed, teacher_limits, trial_context
from autocompress.study.samplers import make_sampler
from autocompress.study.storage import exclusive, open_study
from autocompress.task import Task, check_task, load_task

log = logging.getLogger("autocompress")

FIDELITY_CHOICES = ("auto", "off")
# The logger of Ray's start-up notices (token authentication) that belong in search.log.
RAY_NOTICES_LOGGER = "ray._private.authentication"


@dataclass(frozen=True)
class SearchSettings:
    """How a search runs. Every field is also a keyword argument of :func:`search`.

    Attributes:
        trials: total budget of candidates built, counting earlier (resumed) runs; repeats of a
            built recipe are answered free; with multi-fidelity levels, a candidate's
            promotions to higher levels come on top (they do not use the budget).
        timeout: seconds after which no new trial starts (running ones finish).
        workers: trials in flight at once; more than the cluster's free CPUs queue in Ray.
        out: the run directory (resumed if it holds a study).
        seed: seeds the sampler, the data split of the demo and every trial's training.
        sampler: ``tpe``, ``tpe-multivariate``, ``nsga2`` or ``random``.
        ray_address: an existing Ray cluster to use instead of starting a local one. Trials get
            everything through Ray's object store; only this process writes ``out``.
        stage_cache: reuse stage outputs (distilled, pruned, clustered models) across trials
            through ``out/cache``; False builds every stage of every trial.
        warm_start: try the well-known recipes (int8; 50 % sparsity + int8; 16 clusters + int8;
            30 % sparsity + float16; width 0.5 + int8) first, after the baseline.
        enqueue: a YAML list of the user's own (partial) recipes to try first.
        max_latency_ms, min_quality, max_size_kb: constraints (latency on the first profile,
            validation quality in the task's metric -- at least this good, i.e. at most this
            for an error such as ``mae`` --, ``.tflite`` size); a candidate breaking one is a
            completed but infeasible trial, kept in ``trials.csv`` and off the front.
        trust_model: allow a task model file that needs code to load (Lambda, custom layers).
        stop_margin: stop a candidate after its first fine-tuning epoch when its quality is
            more than this (in the metric's units) worse than a front member that is at least
            as compressed in every dimension (see :mod:`autocompress.study.early_stop`); None
            never stops early.
        cpus_per_trial, gpus_per_trial: what Ray reserves for each trial; TensorFlow in the
            trial uses that many threads.
        require_all_profiles: every listed profile must be able to run a candidate for it to
            stand on any front (default: each profile's front holds what that profile runs,
            and the sampler is steered by the first profile; see
            :mod:`autocompress.study.constraints`).
        fidelity: ``auto`` builds every candidate first with a share of its training and
            promotes the most promising to full training, with the levels and promotion rate of
            the space file's ``fidelity:`` entry (see :mod:`autocompress.study.fidelity`; it
            supersedes ``stop_margin``); ``off``, or a space without the entry, builds every
            candidate once at full training.
        storage: an Optuna storage URL (e.g. ``postgresql://user@host/db``) holding a study that
            several drivers share, each with its own ``out`` and Ray workers; the budget and
            the front count every driver's trials. Default: a journal file in ``out``.
    """

    trials: int = 40
    timeout: float | None = None
    workers: int = 2
    out: str | Path = "runs/demo"
    seed: int = 0
    sampler: str = "tpe"
    ray_address: str | None = None
    stage_cache: bool = True
    warm_start: bool = True
    enqueue: str | Path | None = None
    max_latency_ms: float | None = None
    min_quality: float | None = None
    max_drop: str | None = None  # e.g. "0.01" or "1%": at most this worse than the teacher
    max_size_kb: float | None = None
    trust_model: bool = False
    stop_margin: float | None = DEFAULT_MARGIN
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    storage: str | None = None
    require_all_profiles: bool = False
    fidelity: str = "auto"
    quiet_latency: bool = True  # False: --plain-latency

    def check(self) -> None:
        """One-line errors, naming the option, for values no search can run with."""
        if self.trials < 1:
            raise InputError("--trials", f"must be at least 1, got {self.trials}")
        if self.workers < 1:
            raise InputError("--workers", f"must be at least 1, got {self.workers}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise InputError("--cpus-per-trial", f"must be positive, got {self.cpus_per_trial}")
        if not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise InputError("--gpus-per-trial", f"must be 0 or more, got {self.gpus_per_trial}")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise InputError("--timeout", f"must be a positive duration, got {self.timeout}")
        for option, value in (
            ("--max-latency-ms", self.max_latency_ms),
            ("--max-size-kb", self.max_size_kb),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(option, f"must be a positive number, got {value}")
        if self.max_drop is not None:
            MaxDrop.parse(self.max_drop)
        if self.min_quality is not None and not math.isfinite(self.min_quality):
            raise InputError("--min-quality", f"must be a number, got {self.min_quality}")
        if self.fidelity not in FIDELITY_CHOICES:
            raise InputError("--fidelity", f"must be one of {', '.join(FIDELITY_CHOICES)}")
        margin = self.stop_margin
        if margin is not None and not (math.isfinite(margin) and margin >= 0):
            raise InputError("--stop-margin", f"must be 0 or more, got {margin}")

    @property
    def limits(self) -> Limits:
        return Limits(
            self.max_latency_ms,
            self.min_quality,
            self.max_size_kb,
            self.require_all_profiles,
            max_drop=MaxDrop.parse(self.max_drop) if self.max_drop is not None else None,
        )


@dataclass
class SearchResult:
    """What a search returns: the front and all trials as DataFrames, and the Optuna study."""

    front: pd.DataFrame
    trials: pd.DataFrame
    study: optuna.Study
    out_dir: Path
    profile: str


def search(
    task: Task | str | Path | None = None,
    space: SearchSpace | str | Path | None = None,
    profiles: Sequence[str | HardwareProfile] = ("cpu-host",),
    settings: SearchSettings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    trial_fn: Callable[[TrialContext, TrialRequest], TrialOutcome] | None = None,
    metric: str | Callable[[Any, Any], Any] | Metric | None = None,
    direction: str | None = None,
    finish: Finish | None = None,
    **overrides: Any,
) -> SearchResult:
    """Run (or resume) a compression search and return its Pareto front.

    Args:
        task: a :class:`Task`, a task YAML path, or None for the built-in digits demo.
        space: a :class:`SearchSpace`, a YAML path or the name of a shipped space; None:
            ``default``, or ``tflite`` for a ``.tflite`` model (post-training choices only).
        profiles: hardware profiles to measure; the first one's latency is the objective.
        settings: how the search runs (:class:`SearchSettings`); ``overrides`` replace fields
            of it (``search(task, trials=60, workers=2)``).
        on_progress: called after every finished trial and about once a second.
        trial_fn: what each Ray task runs instead of the real trial (benchmarks measure the
            driver's own cost with a no-op trial); None: the real trial.
        metric, direction: the quality measure, replacing the task's: a built-in name, a
            ``file.py:function`` / ``module:function``, a :class:`~autocompress.metrics.Metric`
            or a callable ``(y_true, y_pred) -> float`` (then ``direction`` is required).
        finish: instead of searching, rebuild one trial of the run with longer training
            (:mod:`autocompress.study.finish`); the other arguments must be the search's.
    """
    try:
        s = dataclasses.replace(settings or SearchSettings(), **overrides)
    except TypeError as exc:
        raise TypeError(f"search(): {exc}") from None
    s.check()
    if not profiles:
        raise InputError("--profile", "at least one hardware profile is needed")
    space_spec = _space(space) if space is not None else None
    hw = tuple(p if isinstance(p, HardwareProfile) else load_profile(p) for p in profiles)
    sampler = make_sampler(s.sampler, s.seed)
    rundir = RunDir(s.out)
    rundir.path.mkdir(parents=True, exist_ok=True)
    with exclusive(rundir), _log_to(rundir.path / "search.log"):
        task_obj = _resolve_task(task, rundir, s.seed, s.trust_model)
        if metric is not None:
            task_obj = dataclasses.replace(task_obj, metric=_metric(metric, direction))
            check_task(task_obj)
        rundir.write_quality(task_obj.metric.quality, task_obj.metric.spec, task_obj.metric.output)
        if space_spec is None:
            space_spec = _space("default" if task_obj.teacher.trainable else "tflite")
        space_spec = narrowed(space_spec, task_obj, hw[0])
        fidelity = space_spec.fidelity if s.fidelity == "auto" else None
        if not task_obj.teacher.trainable:
            fidelity = None  # post-training quantization only: nothing to train less
        options = SearchOptions(
            warm_start=s.warm_start,
            enqueue=tuple(load_recipes(s.enqueue, space_spec)) if s.enqueue is not None else (),
            limits=s.limits,
            stop_margin=s.stop_margin if fidelity is None else None,
            fidelity=fidelity,
            cpus_per_trial=s.cpus_per_trial,
            gpus_per_trial=s.gpus_per_trial,
            trial_fn=trial_fn,
            quiet_latency=s.quiet_latency,
        )
        opened = open_study(rundir, hw[0].name, sampler, s.storage, task_obj.metric.quality)
        _keep_validation(rundir, task_obj)
        ctx = trial_context(
            task_obj,
            space_spec,
            hw,
            rundir,
            s.seed,
            threads=max(1, math.ceil(s.cpus_per_trial)),
            stage_cache=s.stage_cache,
            quiet=s.quiet_latency and any(p.backend == "measure" for p in hw),
        )
        limits = teacher_limits(options.limits, ctx)
        options, budget = dataclasses.replace(options, limits=limits), s.trials
        if finish is not None:
            space_spec, options, budget = prepare(opened.study, space_spec, options, finish)
            ctx = dataclasses.replace(ctx, patience=finish.patience)
        driver = Driver(
            opened, space_spec, ctx, rundir, budget, s.timeout, s.workers, on_progress, options
        )
        driver.run(s.ray_address)
        quality = task_obj.metric.quality
        table = trials_frame(opened.study, quality, driver.retimed)  # as trials.csv has it
        return SearchResult(
            front=front_frame(table, hw[0].name, quality),
            trials=table,
            study=opened.study,
            out_dir=rundir.path,
            profile=hw[0].name,
        )


def _space(space: SearchSpace | str | Path) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace.from_yaml(resolve_space(space))


# Validation inputs kept of a streamed split (an image folder): what the ONNX check runs on.
VALIDATION_KEPT = 512


def _keep_validation(rundir: RunDir, task: Task) -> None:
    """``DIR/validation.npz``: the validation data, which ``export --format onnx`` reads to
    check the ONNX file against the ``.tflite`` file on the data the search measured."""
    if rundir.validation.is_file():
        return
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **task.data.entries(("x_val", "y_val"), VALIDATION_KEPT))
    atomic_write_bytes(rundir.validation, buffer.getvalue())


def _metric(metric: str | Callable[[Any, Any], Any] | Metric, direction: str | None) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return get_metric(metric, direction, where="metric")
    if direction is None:
        raise InputError("metric", "a metric function needs direction='maximize' or 'minimize'")
    return from_function(metric, direction)


def _resolve_task(
    task: Task | str | Path | None, rundir: RunDir, seed: int, trust_model: bool
) -> Task:
    if isinstance(task, Task):
        return task
    if task is None:
        from autocompress.demo import demo_task

        return demo_task(cache_dir=rundir.path, seed=seed)
    return load_task(task, trust_model=trust_model)


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Send the package's log, and Ray's start-up notices, to ``path`` while a search runs: the
    terminal shows the progress line; details go to the file.

    ``ray.init`` empties the handlers of the ``ray`` logger, after which Ray's warnings reach
    the terminal through Python's last-resort handler; a handler on the sub-logger that emits
    the token-authentication notice survives that.
    """
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    ray_log = logging.getLogger(RAY_NOTICES_LOGGER)
    ray_log.addHandler(handler)
    ray_log.propagate = False
    try:
        yield
    finally:
        ray_log.propagate = True
        ray_log.removeHandler(handler)
        log.propagate = True
        log.removeHandler(handler)
        handler.close()
