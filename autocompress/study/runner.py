"""The search driver: an Optuna ask-and-tell loop that alone writes the study and run directory.

Trials run on Ray (see :mod:`autocompress.study.executor`); this module decides what to try next,
records what came back, and keeps ``trials.csv`` / ``pareto.csv`` current after every trial.
Running the same search again on the same directory resumes the study: finished trials are
kept and the ``trials`` budget counts them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autocompress.audit import audit_document
from autocompress.errors import InputError
from autocompress.hardware import HardwareProfile, load_profile
from autocompress.models.tflite import check_space
from autocompress.records import Recipe, TrialRecord
from autocompress.space import SearchSpace, exclude_names, load_recipes, resolve_space
from autocompress.study.early_stop import DEFAULT_MARGIN, EarlyStop, FrontMember
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest
from autocompress.study.rundir import STUDY_NAME, RunDir, atomic_write_bytes, atomic_write_text
from autocompress.study.tables import (
    RECIPE_COLUMNS,
    front_frame,
    objective_columns,
    trials_frame,
)
from autocompress.task import Task, load_task

if TYPE_CHECKING:
    from autocompress.study.executor import RayExecutor

log = logging.getLogger("autocompress")

SAMPLERS = ("tpe", "tpe-multivariate", "nsga2", "random")
_EPOCH_PARAMS = ("distill_epochs", "finetune_epochs")
BASELINE = Recipe()  # fp32 teacher, converted unchanged: the reference every candidate is judged by
# The logger of Ray's start-up notices (token authentication) that belong in search.log.
RAY_NOTICES_LOGGER = "ray._private.authentication"
# Proposals in a row that repeat built recipes before the search stops as exhausted.
MAX_REPEATS_IN_ROW = 30
# Well-known recipes tried first (after the baseline), so the front is good from the first minutes.
WELL_KNOWN = (
    Recipe(quantization="int8"),
    Recipe(sparsity=0.5, quantization="int8"),
    Recipe(clusters=16, quantization="int8"),
    Recipe(sparsity=0.3, quantization="float16"),
    Recipe(student_width=0.5, quantization="int8"),
)


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running search, for progress displays."""

    done: int
    budget: int
    failed: int
    stopped: int
    running: int
    front_size: int
    elapsed_s: float
    time_left_s: float | None = None  # until no new trial starts (with a timeout)


@dataclass(frozen=True)
class SearchOptions:
    """How the driver steers the study beyond the budget."""

    warm_start: bool = True  # try the baseline and the well-known recipes first
    enqueue: tuple[dict[str, object], ...] = ()  # the user's recipes to try first
    max_latency_ms: float | None = None  # limits that make a candidate infeasible
    min_accuracy: float | None = None
    max_size_kb: float | None = None
    stop_margin: float | None = DEFAULT_MARGIN  # early stop of hopeless candidates; None: off


@dataclass
class SearchResult:
    """What a search returns: the front and all trials as DataFrames, and the Optuna study."""

    front: pd.DataFrame
    trials: pd.DataFrame
    study: optuna.Study
    out_dir: Path
    profile: str


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler, always explicit: Optuna 5 changed the multi-objective default."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    if name == "tpe-multivariate":
        # Optuna 5 turns multivariate TPE on by default for one objective only; here it models
        # the recipe's parameters jointly (width and sparsity trade off against each other).
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=12)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError("--sampler", f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")


def search(
    task: Task | str | Path | None = None,
    space: SearchSpace | str | Path | None = None,
    profiles: Sequence[str | HardwareProfile] = ("cpu-host",),
    trials: int = 40,
    timeout: float | None = None,
    workers: int = 2,
    out: str | Path = "runs/demo",
    seed: int = 0,
    sampler: str = "tpe",
    ray_address: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stage_cache: bool = True,
    warm_start: bool = True,
    enqueue: str | Path | None = None,
    max_latency_ms: float | None = None,
    min_accuracy: float | None = None,
    max_size_kb: float | None = None,
    trust_model: bool = False,
    stop_margin: float | None = DEFAULT_MARGIN,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    storage: str | None = None,
) -> SearchResult:
    """Run (or resume) a compression search and return its Pareto front.

    Args:
        task: a :class:`Task`, a task YAML path, or None for the built-in digits demo.
        space: a :class:`SearchSpace`, a YAML path or the name of a shipped space; None:
            ``default``, or ``tflite`` for a ``.tflite`` model (post-training choices only).
        profiles: hardware profiles to measure; the first one's latency is the objective.
        trials: total trial budget of the study, counting trials of earlier (resumed) runs.
        timeout: seconds after which no new trial starts (running ones finish).
        workers: trials in flight at once; more than the cluster's free CPUs queue in Ray.
        out: the run directory.
        seed: seeds the sampler, the data split of the demo and every trial's training.
        sampler: ``tpe``, ``nsga2`` or ``random``.
        ray_address: an existing Ray cluster to use instead of starting a local one. Trials get
            everything through Ray's object store; only this process writes ``out``.
        on_progress: called after every finished trial and about once a second.
        stage_cache: reuse stage outputs (distilled, pruned, clustered models) across trials
            through ``out/cache``; False builds every stage of every trial.
        warm_start: try the well-known recipes (int8; 50 % sparsity + int8; 16 clusters + int8;
            30 % sparsity + float16; width-0.5 student + int8) right after the baseline.
        enqueue: a YAML list of the user's own (partial) recipes to try first.
        max_latency_ms, min_accuracy, max_size_kb: constraints; a candidate that breaks one is a
            completed but infeasible trial, kept in ``trials.csv`` and off the front.
        trust_model: allow a task model file that needs code to load (Lambda, custom layers).
        stop_margin: stop a candidate after its first fine-tuning epoch when its accuracy is
            more than this below a front member that is at least as compressed in every
            dimension (see :mod:`autocompress.study.early_stop`); None never stops early.
        cpus_per_trial, gpus_per_trial: what Ray reserves for each trial; TensorFlow in the
            trial uses that many threads.
        storage: an Optuna storage URL (e.g. ``postgresql://user@host/db``) holding a study that
            several drivers share, each with its own ``out`` and Ray workers; the budget and
            the front count every driver's trials. Default: a journal file in ``out``.
    """
    if trials < 1:
        raise InputError("--trials", f"must be at least 1, got {trials}")
    if workers < 1:
        raise InputError("--workers", f"must be at least 1, got {workers}")
    if not (math.isfinite(cpus_per_trial) and cpus_per_trial > 0):
        raise InputError("--cpus-per-trial", f"must be positive, got {cpus_per_trial}")
    if not (math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
        raise InputError("--gpus-per-trial", f"must be 0 or more, got {gpus_per_trial}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise InputError("--timeout", f"must be a positive duration, got {timeout}")
    if not profiles:
        raise InputError("--profile", "at least one hardware profile is needed")
    space_spec = _space(space) if space is not None else None
    hw = tuple(p if isinstance(p, HardwareProfile) else load_profile(p) for p in profiles)
    chosen_sampler = make_sampler(sampler, seed)
    options = SearchOptions(
        warm_start=warm_start,
        max_latency_ms=_limit("--max-latency-ms", max_latency_ms),
        min_accuracy=_limit("--min-accuracy", min_accuracy),
        max_size_kb=_limit("--max-size-kb", max_size_kb),
        stop_margin=_margin(stop_margin),
    )
    rundir = RunDir(out)
    rundir.path.mkdir(parents=True, exist_ok=True)
    with _exclusive(rundir), _log_to(rundir.path / "search.log"):
        task_obj = _resolve_task(task, rundir, seed, trust_model)
        if space_spec is None:
            space_spec = _space("default" if task_obj.teacher.trainable else "tflite")
        if task_obj.teacher.trainable:
            space_spec = _drop_unsupported(space_spec, task_obj)
            _check_exclusions(space_spec, task_obj)
        else:
            check_space(space_spec, task_obj.source)
        if enqueue is not None:
            options = dataclasses.replace(options, enqueue=tuple(load_recipes(enqueue, space_spec)))
        study = _open_study(rundir, hw[0].name, chosen_sampler, storage)
        _keep_validation(rundir, task_obj)
        from autocompress.audit import teacher_reference
        from autocompress.stages.cache import root_key

        ctx = TrialContext(
            task=task_obj,
            profiles=hw,
            seed=seed,
            threads=max(1, math.ceil(cpus_per_trial)),
            stage_cache=stage_cache,
            cache_key=root_key(task_obj, seed),
            reference=teacher_reference(task_obj.teacher.predict, task_obj.data, seed),
        )
        driver = _Driver(
            study, space_spec, ctx, rundir, trials, timeout, workers, on_progress, options
        )
        driver.resources = (cpus_per_trial, gpus_per_trial)
        driver.run(ray_address)
        table = trials_frame(study)
        return SearchResult(
            front=front_frame(table, hw[0].name),
            trials=table,
            study=study,
            out_dir=rundir.path,
            profile=hw[0].name,
        )


class _Driver:
    """The ask/tell loop of one search run."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        ctx: TrialContext,
        rundir: RunDir,
        budget: int,
        timeout: float | None,
        workers: int,
        on_progress: Callable[[Progress], None] | None,
        options: SearchOptions,
    ) -> None:
        self.study, self.space, self.ctx, self.rundir = study, space, ctx, rundir
        self.driver_id = driver_id(rundir)
        self.shared = not isinstance(study._storage, JournalStorage)
        self.options = options
        self.budget, self.timeout, self.workers = budget, timeout, workers
        self.on_progress = on_progress
        self.running: dict[int, optuna.Trial] = {}
        self.building: dict[int, set[str]] = {}  # running trial -> work it does (see _work_of)
        self.held: list[tuple[optuna.Trial, Recipe]] = []  # asked, waiting on a running trial
        self.repeats_in_row = 0  # proposals in a row answered from earlier trials
        self.exhausted_logged = False
        self.start = time.monotonic()
        self.front: tuple[FrontMember, ...] = ()
        from autocompress.stages.cache import DirCache  # (imports TensorFlow: not at module load)

        self.cache = DirCache(rundir.cache)  # only the driver keeps cache entries on disk
        self.resources = (1.0, 0.0)  # CPUs and GPUs Ray reserves per trial
        # What each Ray task runs (default: run_trial); benchmarks/scaling.py swaps in a no-op
        # trial to measure the driver's own cost per trial.
        self.trial_fn: Callable[[TrialContext, TrialRequest], TrialOutcome] | None = None

    def run(self, ray_address: str | None) -> None:
        from autocompress.study.executor import RayExecutor

        self._fail_orphans()
        if not self.study.trials:
            self._enqueue_first()
        self._write_tables()
        if self._finished() >= self.budget:
            log.info("budget of %d trials already reached", self.budget)
            self._report()
            return
        cpus, gpus = self.resources
        extra = {"trial_fn": self.trial_fn} if self.trial_fn is not None else {}
        with RayExecutor(
            self.ctx, address=ray_address, cpus_per_trial=cpus, gpus_per_trial=gpus, **extra
        ) as executor:
            try:
                while True:
                    if not self._timed_out():
                        self._release(executor)
                    while (
                        executor.in_flight < self.workers
                        and len(self.held) < self.workers
                        and self._finished() + self._running() < self.budget
                        and not self._timed_out()
                        and not self._exhausted()
                    ):
                        self._submit(executor)
                    if executor.in_flight == 0:
                        break
                    for outcome in executor.wait(timeout=1.0):
                        self._record(outcome)
                    self._report()
            finally:
                for number in executor.pending_numbers():
                    self._tell_fail(number, "interrupted: the search stopped while it ran")
                for trial, _ in self.held:
                    self._tell_fail(
                        trial.number, "interrupted: the search stopped before this trial started"
                    )
                self.held.clear()
                self._write_tables()
                self._report()

    def _enqueue_first(self) -> None:
        """Baseline, then the well-known recipes, then the user's: those the space can express."""
        first = [(BASELINE, "baseline")]
        if self.options.warm_start:
            first += [(r, "well-known") for r in WELL_KNOWN]
        queue = [
            (self.space.params_of(r, ignore=_EPOCH_PARAMS), origin)
            for r, origin in first
            if self.space.contains(r, ignore=_EPOCH_PARAMS)
        ]
        queue += [(params, "user") for params in self.options.enqueue]
        seen: list[dict[str, object]] = []
        for params, origin in queue:
            if params not in seen:
                seen.append(params)
                self.study.enqueue_trial(params, user_attrs={"enqueued": origin})

    def _submit(self, executor: RayExecutor) -> None:
        trial = self.study.ask()
        trial.set_user_attr("driver", self.driver_id)
        try:
            recipe = self.space.sample(trial)
        except Exception as exc:  # e.g. an enqueued recipe outside the space
            self.running[trial.number] = trial
            self._tell_fail(trial.number, f"cannot sample a recipe: {exc}")
            return
        self.running[trial.number] = trial
        trial.set_user_attr("recipe", recipe.to_dict())
        if self._reuse(trial, recipe):
            self.repeats_in_row += 1
            return
        self.repeats_in_row = 0
        if self._blocked(recipe):
            log.info("trial %d waits: a running trial builds what it needs", trial.number)
            self.held.append((trial, recipe))
        else:
            self._start(executor, trial.number, recipe)

    def _start(self, executor: RayExecutor, number: int, recipe: Recipe) -> None:
        margin = self.options.stop_margin
        stop = EarlyStop(self.front, margin) if margin is not None and self.front else None
        executor.submit(TrialRequest(number, recipe, stop, self._entries_for(recipe)))
        self.building[number] = self._work_of(recipe)

    def _work_of(self, recipe: Recipe) -> set[str]:
        """What a trial of ``recipe`` would build: the recipe itself and its uncached stages."""
        work = {"recipe:" + json.dumps(recipe.to_dict(), sort_keys=True)}
        if self.ctx.stage_cache:
            from autocompress.stages.build import cache_plan

            plan = cache_plan(recipe, self.ctx.cache_key)
            work |= {k for _, k in plan if k is not None and not self.cache.has(k)}
        return work

    def _blocked(self, recipe: Recipe) -> bool:
        """Whether a running trial is building the same recipe or a stage output it needs.

        Such a trial waits, so that each stage output is built once even when the sampler
        proposes two trials sharing a prefix (or the same recipe) at the same time; it then
        starts from the cache (or is answered from the finished trial).
        """
        work = self._work_of(recipe)
        return any(work & keys for keys in self.building.values())

    def _release(self, executor: RayExecutor) -> None:
        """Start the waiting trials that nothing running blocks any more, oldest first."""
        for trial, recipe in list(self.held):
            if executor.in_flight >= self.workers:
                return
            if self._blocked(recipe):
                continue
            self.held.remove((trial, recipe))
            if not self._reuse(trial, recipe):
                self._start(executor, trial.number, recipe)

    def _entries_for(self, recipe: Recipe) -> dict[str, bytes]:
        """The cached stage outputs of the recipe's chain, sent with the trial to its worker."""
        if not self.ctx.stage_cache:
            return {}
        from autocompress.stages.build import cache_plan

        entries = {}
        for _, key in cache_plan(recipe, self.ctx.cache_key):
            blob = self.cache.get(key) if key is not None else None
            if blob is not None:
                entries[key] = blob
        return entries

    def _reuse(self, trial: optuna.Trial, recipe: Recipe) -> bool:
        """Answer a recipe that an earlier trial already built from that trial's result.

        Samplers propose the same point again (and would retry a failing recipe forever);
        building it again costs minutes and teaches the sampler nothing new.
        """
        wanted = recipe.to_dict()
        for earlier in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if earlier.user_attrs.get("recipe") == wanted and "record" in earlier.user_attrs:
                for key in ("record", "model_path", "constraint_values"):
                    trial.set_user_attr(key, earlier.user_attrs[key])
                trial.set_user_attr("reused_from", earlier.number)
                for key, value in earlier.user_attrs["constraint_values"].items():
                    trial.set_constraint(key, value)
                self.running.pop(trial.number)
                self.study.tell(trial, list(earlier.values))
                self._write_tables()
                return True
        for earlier in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
            if earlier.user_attrs.get("recipe") == wanted:
                trial.set_user_attr("reused_from", earlier.number)
                self._tell_stopped(trial.number, f"same recipe as stopped trial {earlier.number}")
                return True
        for earlier in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            error = str(earlier.user_attrs.get("error", ""))
            if earlier.user_attrs.get("recipe") == wanted and not error.startswith("interrupted"):
                trial.set_user_attr("reused_from", earlier.number)
                self._tell_fail(
                    trial.number, f"same recipe as failed trial {earlier.number}: {error}"
                )
                return True
        return False

    def _record(self, outcome: TrialOutcome) -> None:
        self.building.pop(outcome.number, None)
        for key, blob in outcome.new_cache_entries.items():
            self.cache.put(key, blob)
        if outcome.node is not None and outcome.number in self.running:
            self.running[outcome.number].set_user_attr("node", outcome.node)
        if outcome.stopped is not None:
            self._tell_stopped(outcome.number, outcome.stopped)
            return
        if outcome.record is None or outcome.tflite is None:
            if outcome.detail:
                log.error("trial %d failed:\n%s", outcome.number, outcome.detail)
            self._tell_fail(outcome.number, outcome.error or "unknown error")
            return
        trial = self.running.pop(outcome.number)
        record: TrialRecord = outcome.record
        path = self.rundir.model_path(outcome.number)
        atomic_write_bytes(path, outcome.tflite)  # the model first: a told trial has its file
        if outcome.keras is not None:
            atomic_write_bytes(self.rundir.keras_path(outcome.number), outcome.keras)
        rel = str(path.relative_to(self.rundir.path))
        atomic_write_text(
            self.rundir.audit_path(outcome.number),
            json.dumps(audit_document(outcome.number, record, rel), indent=1),
        )
        trial.set_user_attr("record", record.to_dict())
        trial.set_user_attr("model_path", rel)
        constraints = self._constraints(record)
        trial.set_user_attr("constraint_values", constraints)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        m = record.measurement
        primary = self.ctx.profiles[0].name
        self.study.tell(trial, [m.accuracy, m.latency[primary].median_ms, float(m.gzip_bytes)])
        log.info("trial %d complete: %s", outcome.number, record.recipe)
        self._write_tables()

    def _constraints(self, record: TrialRecord) -> dict[str, float]:
        """Constraint values (> 0 means violated): the user's limits, then each profile's limits
        and deployability. Named ``user.*`` or ``<profile>.*``."""
        m = record.measurement
        o = self.options
        out: dict[str, float] = {}
        primary = self.ctx.profiles[0].name
        if o.max_latency_ms is not None:
            out["user.max_latency_ms"] = m.latency[primary].median_ms - o.max_latency_ms
        if o.min_accuracy is not None:
            out["user.min_accuracy"] = o.min_accuracy - m.accuracy
        if o.max_size_kb is not None:
            out["user.max_size_kb"] = m.size_bytes / 1024 - o.max_size_kb
        for p in self.ctx.profiles:
            out[f"{p.name}.deployable"] = 0.0 if m.latency[p.name].deployable else 1.0
            if p.max_model_bytes is not None:
                out[f"{p.name}.max_model_bytes"] = float(m.size_bytes - p.max_model_bytes)
            if p.max_ram_bytes is not None:
                out[f"{p.name}.max_ram_bytes"] = float(m.peak_ram_bytes - p.max_ram_bytes)
        return out

    def _tell_fail(self, number: int, reason: str) -> None:
        """A crash: FAIL, with its one-line reason in ``error``."""
        if self._tell_unfinished(number, TrialState.FAIL, "error", reason):
            log.warning("trial %d failed: %s", number, reason)

    def _tell_stopped(self, number: int, reason: str) -> None:
        """A hopeless candidate: PRUNED (not FAIL: it did not crash), with the rule's reason."""
        if self._tell_unfinished(number, TrialState.PRUNED, "stopped", reason):
            log.info("trial %d stopped early: %s", number, reason)

    def _tell_unfinished(self, number: int, state: TrialState, key: str, reason: str) -> bool:
        trial = self.running.pop(number, None)
        if trial is None:
            return False
        trial.set_user_attr(key, reason)
        self.study.tell(trial, state=state)
        self._write_tables()
        return True

    def _fail_orphans(self) -> None:
        """Trials left RUNNING by a driver that was killed are marked FAIL, with the reason.

        Only this driver's own (by its id in the run directory): in a shared study, other
        drivers' running trials are theirs to finish.
        """
        storage = self.study._storage
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get("driver")
            if owner != self.driver_id and (self.shared or owner is not None):
                continue
            storage.set_trial_user_attr(
                t._trial_id, "error", "interrupted: the driver stopped while this trial ran"
            )
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            log.warning("trial %d was left running by an earlier run: marked FAIL", t.number)

    def _running(self) -> int:
        """Trials running now, this driver's and (in a shared study) the others'."""
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _finished(self) -> int:
        """Trials that count against the budget: built (or failed, or stopped) candidates.

        A repeat of an earlier recipe is answered from that trial for free (the sampler still
        learns it was proposed), so it does not use up the budget.
        """
        states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        return sum(
            "reused_from" not in t.user_attrs
            for t in self.study.get_trials(deepcopy=False, states=states)
        )

    def _exhausted(self) -> bool:
        """Whether the sampler only proposes recipes that were already built: a small space
        is used up (there may be fewer distinct recipes than the budget)."""
        if self.repeats_in_row < MAX_REPEATS_IN_ROW:
            return False
        if not self.exhausted_logged:
            log.warning(
                "the last %d proposals were all recipes built before: stopping (the search space "
                "has no more new recipes to offer, or the sampler has converged)",
                self.repeats_in_row,
            )
            self.exhausted_logged = True
        return True

    def _timed_out(self) -> bool:
        return self.timeout is not None and time.monotonic() - self.start >= self.timeout

    def _write_tables(self) -> None:
        table = trials_frame(self.study)
        front = front_frame(table, self.ctx.profiles[0].name)
        self.front = tuple(
            FrontMember(
                trial=int(row.trial),
                recipe=Recipe.from_dict(
                    {k: v for k, v in row._asdict().items() if k in RECIPE_COLUMNS}
                ),
                accuracy=float(row.accuracy),
            )
            for row in front.itertuples()
        )
        atomic_write_text(self.rundir.trials_csv, table.to_csv(index=False))
        atomic_write_text(self.rundir.pareto_csv, front.to_csv(index=False))

    def _report(self) -> None:
        if self.on_progress is None:
            return
        failed = len(self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        stopped = len(self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
        elapsed = time.monotonic() - self.start
        self.on_progress(
            Progress(
                done=self._finished(),
                budget=self.budget,
                failed=failed,
                stopped=stopped,
                running=len(self.running),
                front_size=len(self.front),
                elapsed_s=elapsed,
                time_left_s=None if self.timeout is None else max(0.0, self.timeout - elapsed),
            )
        )


def _space(space: SearchSpace | str | Path) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace.from_yaml(resolve_space(space))


def _limit(option: str, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(option, f"must be a positive number, got {value}")
    return value


def _drop_unsupported(space: SearchSpace, task: Task) -> SearchSpace:
    """Take ``prune_mode: xnnpack`` out of the space when the teacher's architecture (which
    every student shares) has no subgraph XNNPACK's sparse inference can use: every such
    trial would fail."""
    if not space.offers("prune_mode", "xnnpack"):
        return space
    from autocompress.stages.prune import xnnpack_unsupported

    reason = xnnpack_unsupported(task.teacher.build())
    if reason is None:
        return space
    log.warning("prune_mode xnnpack left out of the search: %s", reason)
    return space.without_choice("prune_mode", "xnnpack")


def _check_exclusions(space: SearchSpace, task: Task) -> None:
    """Every layer an ``exclude`` value names must be a weighted layer of the teacher (enqueued
    recipes can only use values the space offers)."""
    from autocompress.stages._keras import WEIGHTED_LAYERS

    named = [n for v in space.choices_of("exclude") for n in exclude_names(v)]
    if not named:
        return
    teacher = task.teacher.build()
    weighted = [layer.name for layer in teacher.layers if isinstance(layer, WEIGHTED_LAYERS)]
    for name in named:
        if name not in weighted:
            shown = ", ".join(weighted[:8]) + (", ..." if len(weighted) > 8 else "")
            raise InputError(
                space.source,
                f"exclude names layer {name!r}, which is not a Conv/Dense layer of the model "
                f"(those are: {shown})",
            )


def _keep_validation(rundir: RunDir, task: Task) -> None:
    if rundir.validation.is_file():
        return
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_val=task.data.x_val, y_val=task.data.y_val)
    atomic_write_bytes(rundir.validation, buffer.getvalue())


def _margin(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        raise InputError("--stop-margin", f"must be between 0 and 1, got {value}")
    return value


def _resolve_task(
    task: Task | str | Path | None, rundir: RunDir, seed: int, trust_model: bool
) -> Task:
    if isinstance(task, Task):
        return task
    if task is None:
        from autocompress.demo import demo_task

        return demo_task(cache_dir=rundir.path, seed=seed)
    return load_task(task, trust_model=trust_model)


_RECOVER = (
    "The run directory is damaged: restore the file, or move the directory away and start a "
    "new search (trials.csv keeps a readable copy of every result)"
)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def driver_id(rundir: RunDir) -> str:
    """A stable id for the driver that owns this run directory (kept in ``DIR/.driver-id``)."""
    import uuid

    path = rundir.path / ".driver-id"
    if path.is_file():
        return path.read_text().strip()
    ident = uuid.uuid4().hex[:12]
    atomic_write_text(path, ident)
    return ident


def _open_study(
    rundir: RunDir,
    primary: str,
    sampler: optuna.samplers.BaseSampler,
    storage_url: str | None = None,
) -> optuna.Study:
    """Create the study, or load it to resume; refuse a study made for another objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage_url is not None:
        return _open_shared_study(rundir, primary, sampler, storage_url)
    exists = rundir.journal.exists()
    if exists and rundir.journal.stat().st_size == 0:
        raise InputError(str(rundir.journal), f"is empty. {_RECOVER}")
    if exists and not _ends_with_newline(rundir.journal):
        # Optuna would skip the cut-off record, then glue the next record onto it and make
        # the whole journal unreadable: stop before writing anything.
        raise InputError(
            str(rundir.journal),
            "ends in an incomplete record (its last write was cut off). Delete everything after "
            "its last newline to resume; the completed trials before it are intact",
        )
    try:
        storage = JournalStorage(JournalFileBackend(str(rundir.journal)))
        study = optuna.create_study(
            storage=storage,
            study_name=STUDY_NAME,
            directions=["maximize", "minimize", "minimize"],
            sampler=sampler,
            load_if_exists=True,
        )
        trials = study.get_trials(deepcopy=False)
    except Exception as exc:  # the journal's replay raises many types on a damaged file
        raise InputError(
            str(rundir.journal), f"cannot be read ({type(exc).__name__}: {exc}). {_RECOVER}"
        ) from None
    for t in trials:
        path = t.user_attrs.get("model_path")
        if "reused_from" in t.user_attrs:
            continue  # its model is the earlier trial's
        if t.state == TrialState.COMPLETE and path and not (rundir.path / path).is_file():
            raise InputError(
                str(rundir.path / path),
                f"the model of completed trial {t.number} is missing. {_RECOVER}",
            )
    _check_objectives(study, primary, rundir.path, exists)
    return study


def _open_shared_study(
    rundir: RunDir, primary: str, sampler: optuna.samplers.BaseSampler, url: str
) -> optuna.Study:
    """The study in a database that several drivers share (Optuna's RDB storage)."""
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            study = optuna.create_study(
                storage=storage,
                study_name=STUDY_NAME,
                directions=["maximize", "minimize", "minimize"],
                sampler=sampler,
                load_if_exists=True,
            )
            break
        except ImportError as exc:
            raise InputError("--storage", f"cannot open {_redact(url)}: {exc}") from None
        except Exception as exc:  # sqlalchemy / driver errors of many types
            # Two drivers starting at once race to create the schema: the loser retries.
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if attempt == 4 or "connect" in line.lower():
                raise InputError("--storage", f"cannot open {_redact(url)}: {line}") from None
            time.sleep(0.5 * (attempt + 1))
    _check_objectives(study, primary, rundir.path, exists=bool(study.metric_names))
    atomic_write_text(rundir.path / "storage.txt", _redact(url) + "\n")  # where the study is
    return study


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _check_objectives(study: optuna.Study, primary: str, where: Path, exists: bool) -> None:
    names = [c for c, _ in objective_columns(primary)]
    if exists and study.metric_names not in (None, names):
        raise InputError(
            str(where),
            f"holds a study for objectives {study.metric_names}, not {names}: "
            "use another --out directory or the same first --profile",
        )
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


@contextmanager
def _exclusive(rundir: RunDir) -> Iterator[None]:
    """One search per run directory at a time: a second one refuses instead of interleaving."""
    lock_path = rundir.path / ".lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                str(rundir.path), "another search is already running on this directory"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Send this module's log, and Ray's start-up notices, to ``path`` while a search runs: the
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
