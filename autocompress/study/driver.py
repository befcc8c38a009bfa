"""The search driver: an Optuna ask-and-tell loop that alone writes the study and run directory.

Trials run on Ray (see :mod:`autocompress.study.executor`); the driver decides what to try next
(the sampler, the warm start, repeats answered for free, trials that wait for a stage output a
running trial builds), records what came back, and keeps ``trials.csv`` / ``pareto.csv`` current
after every trial. Its shape follows Optuna's ``study/_optimize.py``: ask -> run -> tell.

Multi-fidelity (``SearchOptions.fidelity``): a free worker first takes a promotion that is due,
else a new candidate; how levels, rungs and promotions meet the study is
:mod:`autocompress.study.promotion`, the rule :mod:`autocompress.study.fidelity`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from autocompress._files import atomic_write_bytes, atomic_write_text
from autocompress.evaluation.audit import audit_document
from autocompress.evaluation.evidence import to_bytes
from autocompress.recipe import CHOICE_FIELDS, EPOCH_FIELDS, Recipe
from autocompress.run.rundir import RunDir
from autocompress.run.tables import front_frame, trials_frame
from autocompress.space import SearchSpace
from autocompress.study.constraints import constraint_values, for_sampler
from autocompress.study.early_stop import EarlyStop, FrontMember, front_members
from autocompress.study.fidelity import Rungs
from autocompress.study.ledger import Ledger, recipe_key
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest
from autocompress.study.options import WELL_KNOWN, Progress, SearchOptions
from autocompress.study.promotion import Promotions, chance
from autocompress.study.retime import load_retimed, retime_run
from autocompress.study.storage import OpenStudy, driver_id
from autocompress.study.timing import SharedTimings

if TYPE_CHECKING:
    from autocompress.study.executor import RayExecutor

log = logging.getLogger("autocompress")

BASELINE = Recipe()  # fp32 teacher, converted unchanged: the reference every candidate is judged by
# The tables are rewritten after a tell at most once per this many times their last rewrite
# took: at 10,000 trials a rewrite takes seconds (benchmarks/tables_cost.py), and the driver
# must keep up with 100+ workers; small studies still see every tell at once.
TABLE_INTERVAL_FACTOR = 20
# Proposals in a row that repeat built recipes before the search stops as exhausted.
MAX_REPEATS_IN_ROW = 30


class Driver(Promotions):
    """The ask/tell loop of one search run: ask the sampler, start the trial on Ray (or answer
    it from an earlier trial), record what comes back, tell the study, rewrite the tables."""

    def __init__(
        self,
        opened: OpenStudy,
        space: SearchSpace,
        ctx: TrialContext,
        rundir: RunDir,
        budget: int,
        timeout: float | None,
        workers: int,
        on_progress: Callable[[Progress], None] | None,
        options: SearchOptions,
    ) -> None:
        self.opened, self.study = opened, opened.study
        self.space, self.ctx, self.rundir = space, ctx, rundir
        self.driver_id = driver_id(rundir)
        self.shared = opened.shared
        self.ledger = Ledger(self.study, self.driver_id)  # counts and recipes, kept as told
        self.options = options
        self.quality = ctx.task.metric.quality
        self.budget, self.timeout, self.workers = budget, timeout, workers
        self.on_progress = on_progress
        self.running: dict[int, optuna.Trial] = {}
        self.building: dict[int, set[str]] = {}  # running trial -> work it does (see _work_of)
        self.held: list[tuple[optuna.Trial, Recipe]] = []  # asked, waiting on a running trial
        self.repeats_in_row = 0  # proposals in a row answered from earlier trials
        self.exhausted_logged = False
        self.start = time.monotonic()
        self.front: tuple[FrontMember, ...] = ()
        self.tables_due = False  # a tell since the tables were last written
        self.tables_written_at = -float("inf")
        self.tables_seconds = 0.0
        from autocompress.run.cache import DirCache  # (imports TensorFlow: not at module load)

        self.cache = DirCache(rundir.cache)  # only the driver keeps cache entries on disk
        self.resources = (options.cpus_per_trial, options.gpus_per_trial)
        # What each Ray task runs (default: run_trial); benchmarks/scaling.py passes a no-op
        # trial to measure the driver's own cost per trial.
        self.trial_fn = options.trial_fn
        self.fidelity = options.fidelity
        self.rungs = None
        self.timings = SharedTimings()  # (run() starts it from the study's finished trials)
        self.retimed = load_retimed(rundir)  # figures timed again at the end of a search
        if options.fidelity is not None:
            self.rungs = Rungs(options.fidelity, guess=chance(ctx))

    def run(self, ray_address: str | None) -> None:
        from autocompress.study.executor import RayExecutor
        from autocompress.study.executor import ray_address as address_of

        local = self.options.quiet_latency and self.trial_fn is None
        local = local and address_of(ray_address) == "local"  # where the trials were timed
        self.opened.fail_orphans(self.driver_id)
        self._rebuild_rungs()
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        self.timings = SharedTimings.from_trials(done, self.options.quiet_latency)
        if not self.study.trials:
            self._enqueue_first()
        self.ledger.refresh()
        self._write_tables(force=True)
        if self.ledger.finished >= self.budget:
            log.info("budget of %d trials already reached", self.budget)
            self._retime(local)
            self._report()
            return
        cpus, gpus = self.resources
        extra = {"trial_fn": self.trial_fn} if self.trial_fn is not None else {}
        try:
            with RayExecutor(
                self.ctx, address=ray_address, cpus_per_trial=cpus, gpus_per_trial=gpus, **extra
            ) as executor:
                self._loop(executor)
        finally:  # no trial runs any more
            self._retime(local)

    def _loop(self, executor: RayExecutor) -> None:
        """Ask, run and tell until the budget, the timeout or the space is used up."""
        try:
            while True:
                self.ledger.refresh()
                if not self._timed_out():
                    self._release(executor)
                while (
                    executor.in_flight < self.workers
                    and len(self.held) < self.workers
                    and not self._timed_out()
                    and self._more_work()
                ):
                    self._submit(executor)
                if executor.in_flight == 0:
                    break
                for outcome in executor.wait(timeout=1.0):
                    self._record(outcome)
                if self.tables_due:
                    self._write_tables()
                self._report()
        finally:
            for number in executor.pending_numbers():
                self._tell_fail(number, "interrupted: the search stopped while it ran")
            for trial, _ in self.held:
                self._tell_fail(
                    trial.number, "interrupted: the search stopped before this trial started"
                )
            self.held.clear()
            self._write_tables(force=True)
            self._report()

    def _retime(self, local: bool) -> None:
        """Time the fronts' candidates again with no trial running (:mod:`autocompress.study.
        retime`); on a Ray of this machine only (on a cluster they were timed on its nodes)."""
        if local:
            self.retimed = retime_run(self.rundir, self.study, self.ctx.profiles, self.quality)
            self._write_tables(force=True)

    def _enqueue_first(self) -> None:
        """Baseline, then the well-known recipes, then the user's: those the space can express."""
        first = [(BASELINE, "baseline")]
        if self.options.warm_start:
            first += [(r, "well-known") for r in WELL_KNOWN]
        free = (*EPOCH_FIELDS, *CHOICE_FIELDS)  # a training choice of a recipe that trains
        queue = [  # nothing is off whatever the space says (stages.build.effective)
            (self.space.params_of(r, ignore=free), origin)
            for r, origin in first
            if self.space.contains(r, ignore=free)
        ]
        queue += [(params, "user") for params in self.options.enqueue]
        seen: list[dict[str, object]] = []
        for params, origin in queue:
            if params not in seen:
                seen.append(params)
                self.study.enqueue_trial(params, user_attrs={"enqueued": origin})

    def _submit(self, executor: RayExecutor) -> None:
        from autocompress.stages.build import effective

        trial = self.study.ask()
        trial.set_user_attr("driver", self.driver_id)
        try:
            recipe = effective(self.space.sample(trial))  # one build per distinct model
        except Exception as exc:  # e.g. an enqueued recipe outside the space
            self.running[trial.number] = trial
            self._tell_fail(trial.number, f"cannot sample a recipe: {exc}")
            return
        self.running[trial.number] = trial
        trial.set_user_attr("recipe", recipe.to_dict())
        promoted_from = trial.user_attrs.get("promoted_from")
        if promoted_from is None:
            if self._reuse(trial):
                self.repeats_in_row += 1
                return
            self.repeats_in_row = 0
        built = self._at_level(trial, recipe, promoted_from)
        if self._blocked(built):
            log.info("trial %d waits: a running trial builds what it needs", trial.number)
            self.held.append((trial, built))
        else:
            self._start(executor, trial.number, built)

    def _more_work(self) -> bool:
        """Whether a free worker has something to start: a promotion (queued here when one is
        due), or a new candidate while the budget lasts. Promotions do not use the budget."""
        if self._promotion_waiting():
            return True
        return self.ledger.finished + self._running() < self.budget and not self._exhausted()

    def _start(self, executor: RayExecutor, number: int, recipe: Recipe) -> None:
        margin = self.options.stop_margin
        stop = None
        if margin is not None and self.front:
            stop = EarlyStop(self.front, margin, self.quality).for_recipe(recipe)
        final = True
        if self.fidelity is not None:
            trial = self.running.get(number)
            attrs = trial.user_attrs if trial is not None else {}
            final = int(str(attrs.get("last_level", self.fidelity.top))) == self.fidelity.top
        executor.submit(TrialRequest(number, recipe, stop, self._entries_for(recipe), final))
        self.building[number] = self._work_of(recipe)

    def _work_of(self, recipe: Recipe) -> set[str]:
        """What a trial of ``recipe`` would build: the recipe itself and its uncached stages."""
        work = {"recipe:" + recipe_key(recipe.to_dict())}
        if self.ctx.stage_cache:
            from autocompress.stages.build import cache_keys

            keys = cache_keys(recipe, self.ctx.cache_key)
            work |= {k for k in keys if not self.cache.has(k)}
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
            if "promoted_from" in trial.user_attrs or not self._reuse(trial):
                self._start(executor, trial.number, recipe)

    def _entries_for(self, recipe: Recipe) -> dict[str, bytes]:
        """The cached stage outputs of the recipe's chain, sent with the trial to its worker,
        and the longest shorter training it can continue (a lower fidelity level's)."""
        if not self.ctx.stage_cache:
            return {}
        from autocompress.stages.build import cache_keys, shorter_keys, template_key

        entries = {}
        # The architecture's float-file template, if a trial made one; not in _work_of: trials
        # of one architecture never wait for each other, the first ones just convert.
        template = template_key(recipe, self.ctx.cache_key)
        for key in [*cache_keys(recipe, self.ctx.cache_key), *([template] if template else [])]:
            blob = self.cache.get(key)
            if blob is not None:
                entries[key] = blob
        for key in shorter_keys(recipe, self.ctx.cache_key):
            blob = self.cache.get(key)
            if blob is not None:
                entries[key] = blob
                break
        return entries

    def _reuse(self, trial: optuna.Trial) -> bool:
        """Answer a trial from an earlier trial that built the recipe it sampled (at any level).

        Samplers propose the same point again (and would retry a failing recipe forever);
        building it again costs minutes and teaches the sampler nothing new.
        """
        key = recipe_key(trial.user_attrs["recipe"])
        earlier = self.ledger.built.get(key)
        if earlier is not None:
            for name in ("record", "model_path", "constraint_values"):
                trial.set_user_attr(name, earlier.user_attrs[name])
            trial.set_user_attr("reused_from", earlier.number)
            for name, value in self._sampler_constraints(earlier.user_attrs).items():
                trial.set_constraint(name, value)
            self.running.pop(trial.number)
            self.ledger.note(self.study.tell(trial, list(earlier.values)))
            self._write_tables()
            return True
        earlier = self.ledger.stopped_by_recipe.get(key)
        if earlier is not None:
            trial.set_user_attr("reused_from", earlier.number)
            self._tell_stopped(trial.number, f"same recipe as stopped trial {earlier.number}")
            return True
        earlier = self.ledger.failed_by_recipe.get(key)
        if earlier is not None:
            error = str(earlier.user_attrs.get("error", ""))
            trial.set_user_attr("reused_from", earlier.number)
            self._tell_fail(trial.number, f"same recipe as failed trial {earlier.number}: {error}")
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
        record = self.timings.share(outcome.number, outcome.record)  # same ops, same latency
        m = record.measurement
        primary = self.ctx.profiles[0].name
        values = [m.quality, m.latency[primary].median_ms, float(m.gzip_bytes)]
        constraints = constraint_values(m, self.ctx.profiles, self.options.limits, self.quality)
        if self._record_level(outcome.number, record, values, constraints):
            return
        trial = self.running.pop(outcome.number)
        n, path = outcome.number, self.rundir.model_path(outcome.number)
        atomic_write_bytes(path, outcome.tflite)  # the model first: a told trial has its file
        self.rundir.keep_keras(n, outcome.keras, outcome.keras_source, self._teacher_keras)
        if outcome.evidence:  # per-sample validation scores, for --confidence
            atomic_write_bytes(self.rundir.evidence_path(n), to_bytes(outcome.evidence))
        rel = str(path.relative_to(self.rundir.path))
        atomic_write_text(
            self.rundir.audit_path(outcome.number),
            json.dumps(audit_document(outcome.number, record, rel, self.quality), indent=1),
        )
        trial.set_user_attr("record", record.to_dict())
        trial.set_user_attr("model_path", rel)
        trial.set_user_attr("constraint_values", constraints)  # all: each profile's front
        for key, value in for_sampler(constraints, primary).items():
            trial.set_constraint(key, value)
        self.ledger.note(self.study.tell(trial, values))
        log.info("trial %d complete: %s", outcome.number, record.recipe)
        self._write_tables()

    def _teacher_keras(self) -> bytes | None:
        from autocompress.models.saving import keras_file_bytes

        return keras_file_bytes(self.ctx.task.teacher.build())

    def _sampler_constraints(self, attrs: dict[str, object]) -> dict[str, float]:
        values = attrs.get("constraint_values")
        assert isinstance(values, dict)
        return for_sampler(values, self.ctx.profiles[0].name)

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
        self.ledger.note(self.study.tell(trial, state=state))
        self._write_tables()
        return True

    def _running(self) -> int:
        """New candidates running now, this driver's and (in a shared study) the others'
        (promotions are not counted: they do not use the budget)."""
        own = sum("promoted_from" not in t.user_attrs for t in self.running.values())
        return own + self.ledger.others_running

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

    def _write_tables(self, force: bool = False) -> None:
        """Rewrite ``trials.csv`` / ``pareto.csv`` (and the front the early stop reads) from
        the study; unless ``force``d, not sooner than ``TABLE_INTERVAL_FACTOR`` times the last
        rewrite's duration after it (the loop writes a pending one within a second after)."""
        now = time.monotonic()
        if not force and now - self.tables_written_at < TABLE_INTERVAL_FACTOR * self.tables_seconds:
            self.tables_due = True
            return
        table = trials_frame(self.study, self.quality, self.retimed)
        front = front_frame(table, self.ctx.profiles[0].name, self.quality)
        self.front = front_members(front, self.quality)
        atomic_write_text(self.rundir.trials_csv, table.to_csv(index=False))
        atomic_write_text(self.rundir.pareto_csv, front.to_csv(index=False))
        self.tables_due = False
        self.tables_written_at = time.monotonic()
        self.tables_seconds = self.tables_written_at - now

    def _report(self) -> None:
        if self.on_progress is None:
            return
        failed, stopped = self.ledger.failed, self.ledger.stopped
        elapsed = time.monotonic() - self.start
        self.on_progress(
            Progress(
                done=self.ledger.finished,
                budget=self.budget,
                failed=failed,
                stopped=stopped,
                running=len(self.running),
                front_size=len(self.front),
                elapsed_s=elapsed,
                time_left_s=None if self.timeout is None else max(0.0, self.timeout - elapsed),
            )
        )
