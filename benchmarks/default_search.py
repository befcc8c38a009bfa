"""The default search against a kept reference: hypervolume reached against wall time (issue 28,
goal 4: "the default search reaches the final hypervolume of the 40-trial default search of the
code before the issue in at most a third of its wall time, median of 3 seeds").

Run:

* the reference, once, on the code before the issue (a checkout of it given as ``--code``)::

    .venv/bin/python benchmarks/default_search.py reference --task TASK.yaml \\
        --code /tmp/ref_code --out /tmp/default_search/reference

  where ``/tmp/ref_code`` is ``git worktree add /tmp/ref_code 8d8e5c4`` (run from that folder,
  with it on ``PYTHONPATH``, so that neither the installed package nor this checkout is used)

* the current default search, one run per seed, each stopped hard at ``--share`` of the
  reference's wall time (what is building then is interrupted, as a user's Ctrl-C)::

    .venv/bin/python benchmarks/default_search.py seeds --task TASK.yaml \\
        --reference /tmp/default_search/reference --seeds 0 1 2 --share 0.5

* the table of what is in a folder, without running: ``... summarize --out /tmp/default_search``.

Every run is ``autocompress search --task TASK --out DIR --seed S`` with nothing else (``--trials``
is there for a quick check on the demo, no ``--task``): the
default space, 40 trials, 2 workers, TPE, stage cache, warm start, early stop, as a user runs
it. Its wall time is the CLI process's, start to exit (Ray's start and the teacher's reference
predictions included), written to ``DIR/wall.json``. Hypervolume of the COMPLETE trials' (metric,
first-profile latency, gzip size), each made relative to the same run's fp32 baseline (trial 0)
so that runs measured on different code and machines compare: minimised (1 - accuracy, latency /
baseline latency, gzip / baseline gzip) with the reference point (1.0, 2.0, 1.1), the point
``fidelity_search.py`` uses. A run's time to the reference's final HV is when its own HV first
reaches it, as a share of the reference's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna

from autocompress.run.rundir import STUDY_NAME  # the same in the reference's version
from autocompress.study.fidelity import hypervolume

REFERENCE = np.array([1.0, 2.0, 1.1])


def run_search(
    task: str | None, out: Path, seed: int, code: str | None, budget_s: float | None, trials: int
) -> dict:
    """One ``autocompress search`` process; SIGINT at ``budget_s`` (finished trials are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    # paths absolute and the working directory the code's own: ``python -m`` puts the working
    # directory first on sys.path, ahead of PYTHONPATH
    out = out.resolve()
    command = [sys.executable, "-m", "autocompress", "search", "--out", str(out)]
    command += ["--seed", str(seed), "--trials", str(trials)]
    command += ["--task", str(Path(task).resolve())] if task else []
    start = time.time()
    with open(out.parent / f"{out.name}.log", "w") as log:
        # SIGINT back to its default: a background job (``nohup ... &``) starts with it ignored,
        # and then Python installs no KeyboardInterrupt handler and the search never stops
        process = subprocess.Popen(
            command,
            env=env,
            cwd=code or None,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        stopped = False
        while process.poll() is None:
            over = time.time() - start - budget_s if budget_s is not None else -1.0
            if over >= 0 and not stopped:
                process.send_signal(signal.SIGINT)  # the CLI's Ctrl-C: finished trials kept
                stopped = True
            elif over >= 120:
                process.terminate()  # not stopped two minutes after Ctrl-C
            time.sleep(1)
    wall = time.time() - start
    record = {
        "seed": seed,
        "code": code or "current",
        "start": start,
        "wall_s": min(wall, budget_s) if budget_s is not None else wall,
        "stopped_at_budget": stopped,
        "returncode": process.returncode,
    }
    (out / "wall.json").write_text(json.dumps(record, indent=1))
    return record


def points(run_dir: Path) -> tuple[list[tuple[float, np.ndarray]], int]:
    """(seconds after the run's start, minimised relative objectives) of each COMPLETE trial
    that finished within the run's wall time, in finishing order; and the number of trials."""
    record = json.loads((run_dir / "wall.json").read_text())
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal"))
    )
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    signs = np.array(
        [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    )
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.datetime_complete is not None
    ]
    first = [t for t in done if t.number == 0]  # the enqueued fp32 baseline
    if not first or first[0].datetime_complete.timestamp() - record["start"] > record["wall_s"]:
        return [], len(study.trials)  # nothing measured before the baseline
    baseline = first[0].values
    result = []
    for t in sorted(done, key=lambda t: t.datetime_complete):
        at = t.datetime_complete.timestamp() - record["start"]
        if at > record["wall_s"]:
            continue
        quality = t.values[0]
        first = 1 - quality if signs[0] < 0 else quality / baseline[0]
        result.append((at, np.array([first, t.values[1] / baseline[1], t.values[2] / baseline[2]])))
    return result, len(study.trials)


def hv_at(run: list[tuple[float, np.ndarray]], limit: float) -> float:
    pts = np.array([p for t, p in run if t <= limit]).reshape(-1, 3)
    return hypervolume(pts, REFERENCE) if len(pts) else 0.0


def time_to(run: list[tuple[float, np.ndarray]], target: float) -> float | None:
    """Seconds until the run's HV first reaches ``target`` (None: never)."""
    return next((t for t, _ in run if hv_at(run, t) >= target - 1e-12), None)


def summarize(reference: Path, seeds: list[Path]) -> None:
    ref_record = json.loads((reference / "wall.json").read_text())
    ref_points, ref_trials = points(reference)
    ref_wall = ref_record["wall_s"]
    target = hv_at(ref_points, ref_wall)
    print(
        f"reference ({ref_record['code']}, seed {ref_record['seed']}): {len(ref_points)} results "
        f"from {ref_trials} trials, wall {ref_wall / 60:.1f} min, final HV {target:.4f}"
    )
    quarters = [hv_at(ref_points, ref_wall * q / 4) for q in (1, 2, 3, 4)]
    print("HV at quarters of the reference's wall time: " + "  ".join(f"{h:.4f}" for h in quarters))
    if not seeds:
        return
    print(
        f"\n{'run':12s}{'seed':>5s}{'results':>8s}{'trials':>7s}{'wall min':>9s}"
        f"{'HV@1/3':>8s}{'final HV':>9s}{'t_ref/T_ref':>12s}"
    )
    shares = []
    for run_dir in seeds:
        record = json.loads((run_dir / "wall.json").read_text())
        run, trials = points(run_dir)
        reach = time_to(run, target)
        share = reach / ref_wall if reach is not None else float("inf")
        shares.append(share)
        print(
            f"{run_dir.name:12s}{record['seed']:5d}{len(run):8d}{trials:7d}"
            f"{record['wall_s'] / 60:9.1f}{hv_at(run, ref_wall / 3):8.4f}"
            f"{hv_at(run, record['wall_s']):9.4f}"
            + (f"{share:12.2f}" if reach is not None else f"{'never':>12s}")
        )
    median = statistics.median(shares)
    print(
        f"\ntime to the reference's final HV, median of {len(shares)} seeds: "
        + (f"{median:.2f} x its wall time" if median != float("inf") else "not reached")
        + " (goal <= 0.33)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("reference", "seeds", "summarize"))
    parser.add_argument("--task", default=None, help="task YAML (default: the digits demo)")
    parser.add_argument("--trials", type=int, default=40, help="the CLI's default budget")
    parser.add_argument("--code", default=None, help="reference: checkout of the code to run")
    parser.add_argument("--reference", default=None, help="the reference's run directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--share", type=float, default=0.5, help="seeds: budget / reference wall")
    parser.add_argument("--out", default="/tmp/default_search")
    args = parser.parse_args()
    out = Path(args.out)
    if args.mode == "reference":
        record = run_search(args.task, out, 0, args.code, None, args.trials)
        print(f"reference: {record['wall_s'] / 60:.1f} min, exit {record['returncode']}")
        summarize(out, [])
        return
    reference = Path(args.reference) if args.reference else out / "reference"
    if not (reference / "wall.json").is_file():
        parser.error(f"{reference}: no reference run (wall.json) there")
    if args.mode == "seeds":
        budget = json.loads((reference / "wall.json").read_text())["wall_s"] * args.share
        for seed in args.seeds:
            record = run_search(args.task, out / f"seed-{seed}", seed, None, budget, args.trials)
            print(f"seed {seed}: {record['wall_s'] / 60:.1f} min, exit {record['returncode']}")
    runs = sorted(p for p in out.glob("seed-*") if (p / "wall.json").is_file())
    summarize(reference, runs)


if __name__ == "__main__":
    main()
