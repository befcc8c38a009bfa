"""Runs trials as Ray tasks, on a local cluster or an existing one. The only module that
imports Ray.

The trial context (teacher, data, profiles) is put into Ray's object store once per search; each
task gets a reference to it plus its :class:`TrialRequest`, and returns a :class:`TrialOutcome`
(with the node it ran on) through the object store: nothing assumes the worker shares the
driver's machine or filesystem. Each task reserves ``cpus_per_trial`` CPUs (and
``gpus_per_trial`` GPUs), so more trials than free CPUs queue instead of oversubscribing. A
worker that dies (crash, out of memory) is retried at most once and then reported as a failed
outcome. The retry runs with TensorFlow's oneDNN custom operations off: TensorFlow 2.21's
oneDNN kernels corrupt memory on some shapes (tensorflow/tensorflow#117700; here a narrowed
residual network died with ``free(): invalid pointer`` in fine-tuning and finished with them
off); the plain kernels compute the same operations, without oneDNN's fused CPU kernels.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType

import ray

from autocompress.errors import ClusterLost
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest, run_trial

TrialFn = Callable[[TrialContext, TrialRequest], TrialOutcome]


def _run_here(trial_fn: TrialFn, ctx: TrialContext, request: TrialRequest) -> TrialOutcome:
    """The task body: run the trial, and say on which Ray node it ran and when (wall clock)."""
    began = time.time()
    outcome = trial_fn(ctx, request)
    node = ray.get_runtime_context().get_node_id()
    return dataclasses.replace(outcome, node=node, began=began, ended=time.time())


def _with_transit(outcome: TrialOutcome, submitted: float) -> TrialOutcome:
    """The outcome with its record's ``scheduling`` and ``return`` parts: the seconds between
    submission and the worker starting it, and between its end and the driver having it
    (wall clocks of two machines on a cluster: as close as their clocks agree)."""
    if outcome.record is None or outcome.began is None or outcome.ended is None:
        return outcome
    parts = {
        "scheduling": round(max(0.0, outcome.began - submitted), 3),
        **outcome.record.parts,
        "return": round(max(0.0, time.time() - outcome.ended), 3),
    }
    return dataclasses.replace(outcome, record=dataclasses.replace(outcome.record, parts=parts))


log = logging.getLogger("autocompress")

# A worker that dies is retried once (by this executor, not by Ray: the retry needs another
# environment), then its trial is FAIL. Ray counts kills by its memory monitor separately from
# ``max_retries`` and retries those forever (measured: 7 attempts in 2 minutes with
# ``max_retries=1``), unless the owner of the task -- this driver -- has
# ``RAY_task_oom_retries`` set when it connects to Ray: set to 0, the retry is ours alone.
MAX_RETRIES = 1
OOM_RETRIES_ENV = "RAY_task_oom_retries"
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
RETRY_ENV = {**WORKER_ENV, "TF_ENABLE_ONEDNN_OPTS": "0"}  # read when TensorFlow is imported
# How often the driver checks that the cluster's control store (GCS) still answers, and after
# how many refusals in a row it counts the cluster as gone. Ray's own driver waits 60 s for a
# lost GCS and then ends the process (rpc_client.h: "The program will terminate"), which would
# leave the running trials unrecorded.
HEALTH_INTERVAL = 2.0
LOST_AFTER = 3


def ray_address(address: str | None) -> str:
    """The Ray cluster a search runs on: ``address`` (``--ray-address``), else ``RAY_ADDRESS``
    as the user set it (Ray's own convention), else a new local instance of its own.

    Ray's ``ray.init(address=None)`` joins the last cluster ``ray start`` started on the machine:
    a default search joined another job's cluster, ran its trials there and lost them when that
    cluster stopped. ``"local"`` is Ray's word for "start a new one"."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


class RayExecutor:
    """Submit trials, collect finished outcomes; starts (and stops) a local cluster if needed."""

    def __init__(
        self,
        ctx: TrialContext,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        trial_fn: TrialFn = run_trial,
    ) -> None:
        self._ctx = ctx
        self._trial_fn = trial_fn
        self._address = address
        self._cpus = cpus_per_trial
        self._gpus = gpus_per_trial
        self._started = False
        # request, attempt, when it was submitted (wall clock)
        self._pending: dict[ray.ObjectRef, tuple[TrialRequest, int, float]] = {}
        self._ctx_ref: ray.ObjectRef | None = None
        self._remote = None
        self._retry = None
        self._fn_ref: ray.ObjectRef | None = None
        self._gcs: tuple[str, int] | None = None
        self._checked = 0.0
        self._refused = 0
        self.lost = False

    def __enter__(self) -> RayExecutor:
        if not ray.is_initialized():
            # Read by this process's Ray core worker, which owns every trial task.
            os.environ.setdefault(OOM_RETRIES_ENV, "0")
            ray.init(
                address=ray_address(self._address),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": WORKER_ENV},
            )
            self._started = True
        host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
        self._gcs = (host, int(port))
        self._ctx_ref = ray.put(self._ctx)
        self._fn_ref = ray.put(self._trial_fn)
        options = {"num_cpus": self._cpus, "num_gpus": self._gpus, "max_retries": 0}
        task = ray.remote(_run_here)
        self._remote = task.options(**options, retry_exceptions=False)
        self._retry = task.options(
            **options, retry_exceptions=False, runtime_env={"env_vars": RETRY_ENV}
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.lost:
            for ref in list(self._pending):
                ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started:
            ray.shutdown()

    def _check_cluster(self) -> None:
        """Raise :class:`ClusterLost` once the cluster's GCS has refused connections
        :data:`LOST_AFTER` times in a row (checked every :data:`HEALTH_INTERVAL` seconds)."""
        if self._gcs is None or time.monotonic() - self._checked < HEALTH_INTERVAL:
            return
        self._checked = time.monotonic()
        try:
            socket.create_connection(self._gcs, timeout=1.0).close()
            self._refused = 0
        except OSError:
            self._refused += 1
        if self._refused >= LOST_AFTER:
            self.lost = True
            host, port = self._gcs
            raise ClusterLost(
                f"the Ray cluster at {host}:{port} went away mid-search; its "
                f"{len(self._pending)} running trial(s) are recorded as interrupted and every "
                "finished one is kept: run the same command again to resume (on a running "
                "cluster, or without --ray-address / RAY_ADDRESS on a local Ray of its own)"
            )

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def pending_numbers(self) -> list[int]:
        return sorted(request.number for request, *_ in self._pending.values())

    def submit(self, request: TrialRequest, attempt: int = 0) -> None:
        """Start ``request``; ``attempt`` > 0 runs it in a worker with oneDNN's custom ops off."""
        assert self._remote is not None, "use RayExecutor as a context manager"
        remote = self._retry if attempt > 0 else self._remote
        ref = remote.remote(self._fn_ref, self._ctx_ref, request)
        self._pending[ref] = (request, attempt, time.time())

    def wait(self, timeout: float | None = None) -> list[TrialOutcome]:
        """Block until at least one trial finishes (or ``timeout``); return the finished ones.

        A trial whose worker died for the first time is not returned but started again (see the
        module's docstring), so the list can be empty before ``timeout``."""
        if not self._pending:
            return []
        self._check_cluster()
        done, _ = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if done:  # collect everything else that is already finished too
            done, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
        outcomes = []
        for ref in done:
            request, attempt, submitted = self._pending.pop(ref)
            try:
                outcomes.append(_with_transit(ray.get(ref), submitted))
            except ray.exceptions.RayError as exc:
                # The worker died (crash, out of memory).
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"{type(exc).__name__}: {line}"
                if attempt < MAX_RETRIES:
                    log.warning(
                        "trial %d: its worker died (%s); retrying it with TensorFlow's oneDNN "
                        "custom operations off",
                        request.number,
                        reason[:200],
                    )
                    self.submit(request, attempt + 1)
                    continue
                outcomes.append(TrialOutcome(request.number, error=reason[:300]))
        return outcomes
