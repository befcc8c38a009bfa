"""How far one driver scales: trials per minute with 1 and 2 workers, and the driver's own cost
per trial measured with trials that do no work.

Run: ``.venv/bin/python benchmarks/scaling.py [--throughput-trials 12] [--noop-trials 300]
[--task TASK.yaml --space SPACE --throughput-only | --noop-only [--sampler tpe]]``

1. The demo task, random sampler, same seed, ``--throughput-trials`` trials with 1 worker
   (one TensorFlow thread), 2 workers (one thread each) and, with ``--threads``, 1 worker with
   2 TensorFlow threads (``--cpus-per-trial 2``): trials per minute of each and the ratios to
   the first (same recipes in every run).
2. The driver alone: a study of ``--noop-trials`` trials whose Ray task returns, at once, a copy
   of a real trial's outcome (record, ``.tflite`` and Keras bytes), with 8 in flight. Everything
   else is the real driver: ask, sampling, Ray round trip, model / audit / cache writes, tell,
   journal append, ``trials.csv`` / ``pareto.csv`` rewrite. Cost per trial is reported for the
   first and the last 100 trials, and with ``--noop-only`` for 100 trials at every tenth of the
   run (whether it stays flat as the study grows); ``--sampler`` picks the sampler (``tpe``, the
   search's default).
3. From 1 and 2: the share of a demo trial the driver costs, and how many workers one driver can
   keep busy at the demo's trial length.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import autocompress
from autocompress.demo import TEACHER_FILE, demo_task
from autocompress.hardware import load_profile
from autocompress.recipe import Recipe
from autocompress.run.cache import root_key
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest, run_trial
from autocompress.task import load_task

# (workers, CPUs -- TensorFlow threads -- per trial) of the throughput runs.
CONFIGS = ((1, 1), (2, 1))
THREADS_CONFIG = (1, 2)


def throughput(
    root: Path, task, trials: int, space: str = "default", threads: bool = False
) -> dict[tuple[int, int], tuple[float, float]]:
    rates = {}
    for workers, cpus in CONFIGS + ((THREADS_CONFIG,) if threads else ()):
        out = root / f"throughput-{workers}-{cpus}"
        out.mkdir()
        if (root / TEACHER_FILE).is_file():
            shutil.copy(root / TEACHER_FILE, out / TEACHER_FILE)
        start = time.perf_counter()
        result = autocompress.search(
            task=task,
            space=space,
            trials=trials,
            workers=workers,
            cpus_per_trial=cpus,
            sampler="random",
            seed=0,
            out=out,
        )
        seconds = time.perf_counter() - start
        per_trial = result.trials["seconds"].dropna()
        rates[workers, cpus] = (trials / seconds * 60, float(statistics.mean(per_trial)))
    return rates


def driver_cost(
    root: Path, task, trials: int, sampler: str = "tpe", space: str = "default"
) -> list[tuple[float, int]]:
    """(time, trials finished) as the driver reports progress, with no-op trials.

    Each no-op returns a real trial's outcome with its quality, latency and size scaled by a
    hash of the recipe: distinct recipes get distinct objectives, as in a real study, so that
    the sampler explores instead of proposing the same recipe again."""
    profiles = (load_profile("cpu-host"),)
    ctx = TrialContext(task=task, profiles=profiles, cache_key=root_key(task, 0))
    template = run_trial(ctx, TrialRequest(0, Recipe(quantization="int8")))
    assert template.record is not None, template.error

    def noop(ctx: TrialContext, request: TrialRequest) -> TrialOutcome:
        assert template.record is not None
        digest = hashlib.sha256(repr(request.recipe).encode()).digest()
        h = int.from_bytes(digest[:4], "big") / 2**32
        m = template.record.measurement
        latency = {
            k: dataclasses.replace(v, median_ms=v.median_ms * (0.5 + h))
            for k, v in m.latency.items()
        }
        measured = dataclasses.replace(
            m, quality=0.5 + 0.4 * h, latency=latency, gzip_bytes=int(m.gzip_bytes * (0.5 + h))
        )
        record = dataclasses.replace(template.record, recipe=request.recipe, measurement=measured)
        return dataclasses.replace(template, number=request.number, record=record)

    progress: list[tuple[float, int]] = []
    autocompress.search(
        task=task,
        space=space,
        trials=trials,
        workers=8,
        out=root / "noop",
        sampler=sampler,
        on_progress=lambda p: progress.append((time.perf_counter(), p.done)),
        trial_fn=noop,
    )
    return progress


def per_trial(progress: list[tuple[float, int]], lo: int, hi: int) -> float:
    """Seconds per trial between the moments ``lo`` and ``hi`` trials had finished."""
    t_lo = next(t for t, done in progress if done >= lo)
    t_hi = next(t for t, done in progress if done >= hi)
    return (t_hi - t_lo) / (hi - lo)


def noop_only(root: Path, task, n: int, sampler: str) -> None:
    """The driver's cost per trial at every tenth of a run of ``n`` no-op trials, in the
    techniques space (the largest shipped: room for 10,000 distinct recipes)."""
    start = time.perf_counter()
    progress = driver_cost(root, task, n, sampler, space="techniques")
    done = max(d for _, d in progress)
    print(
        f"driver cost per trial (no-op trials, 8 in flight, {sampler} sampler, techniques "
        f"space, {done} of {n} trials built):"
    )
    n = done
    window = min(100, n // 10)
    for lo in sorted({10, *(n * k // 10 for k in range(1, 10)), n - window}):
        print(f"  trials {lo}-{lo + window}: {1000 * per_trial(progress, lo, lo + window):.1f} ms")
    print(f"wall time {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--throughput-trials", type=int, default=12)
    parser.add_argument("--noop-trials", type=int, default=300)
    parser.add_argument("--task", default=None, help="a task YAML instead of the demo")
    parser.add_argument("--space", default="default", help="the space of the throughput runs")
    parser.add_argument("--throughput-only", action="store_true", help="skip the driver cost")
    parser.add_argument("--noop-only", action="store_true", help="only the driver cost")
    parser.add_argument("--sampler", default="tpe", help="the no-op study's sampler")
    parser.add_argument(
        "--threads", action="store_true", help="also 1 worker with 2 TensorFlow threads"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="autocompress-scaling-"))
    try:
        task = demo_task(cache_dir=root) if args.task is None else load_task(args.task)
        if args.noop_only:
            noop_only(root, task, args.noop_trials, args.sampler)
            return
        rates = throughput(root, task, args.throughput_trials, args.space, args.threads)
        name = "demo task" if args.task is None else args.task
        print(f"throughput, {name}, {args.throughput_trials} trials, random sampler, seed 0:")
        first = rates[CONFIGS[0]][0]
        for (workers, cpus), (rate, trial_s) in rates.items():
            print(
                f"  {workers} worker(s) x {cpus} thread(s): {rate:5.2f} trials/min "
                f"(mean trial {trial_s:.1f} s), {rate / first:.2f}x the first"
            )
        if args.throughput_only:
            return

        progress = driver_cost(root, task, args.noop_trials)
        n = args.noop_trials
        window = min(100, n // 3)
        early = per_trial(progress, 10, 10 + window)
        cost = per_trial(progress, n - window, n)
        print(f"\ndriver cost per trial (no-op trials, 8 in flight, {n} trials):")
        print(f"  trials 10-{10 + window}: {1000 * early:.1f} ms")
        print(f"  trials {n - window}-{n}: {1000 * cost:.1f} ms")
        trial_s = rates[CONFIGS[0]][1]
        print(
            f"\ndemo trial {trial_s:.1f} s: the driver costs {100 * cost / trial_s:.2f} % of it "
            f"at study size {args.noop_trials}; one driver keeps about "
            f"{trial_s / cost:.0f} workers busy"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
