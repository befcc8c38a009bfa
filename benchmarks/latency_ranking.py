"""Does the search rank candidates by latency the way a quiet machine does? (issue 38, item 5)

Runs the same search twice -- ``--plain-latency`` (each file timed once where it was built,
beside the other trials: the behaviour before the quiet window) and the default (quiet window,
one figure per op signature, the front re-timed at the end) -- with the random sampler and one
seed, so both build the same recipes and their wall times compare the protocols' cost. Then
every kept candidate of each run is timed again with nothing else running, ``--passes`` times
(``autocompress measure RUN --as quietN``; the reference is the median of the passes), and the
figures a user reads in ``trials.csv`` are held against it: Spearman's rank correlation, and the
pairs whose reference figures differ by more than 10 % but whose search figures are in the other
order (over all candidates, and among the front's). One quiet pass against another shows how
far the machine itself lets two timings of the same files agree.

    .venv/bin/python benchmarks/latency_ranking.py [--task TASK.yaml] [--trials 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

LAT = "latency_ms_cpu-host"


def search(task: str | None, out: Path, trials: int, workers: int, plain: bool) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "autocompress", "search", "--trials", str(trials),
        "--workers", str(workers), "--sampler", "random", "--seed", "0", "--out", str(out),
    ]  # fmt: skip
    if task:
        cmd += ["--task", task]
    if plain:
        cmd.append("--plain-latency")
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def quiet_figures(out: Path, passes: int) -> list[pd.Series]:
    """Every kept candidate timed ``passes`` times with nothing else running (each pass goes
    over all of them: interleaved)."""
    figures = []
    for n in range(passes):
        subprocess.run(
            [sys.executable, "-m", "autocompress", "measure", str(out), "--as", f"quiet{n}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        table = pd.read_csv(out / "profiles" / f"quiet{n}.csv")
        figures.append(table.set_index("trial")[f"latency_ms_quiet{n}"])
    return figures


def wrong_pairs(search: pd.Series, quiet: pd.Series, apart: float = 0.10) -> str:
    """Of the pairs more than ``apart`` apart in ``quiet``: those ``search`` orders the other
    way, and those it ties (same-op candidates share one figure), as "wrong (+tied) / pairs"."""
    total = wrong = tied = 0
    for a, b in itertools.combinations(quiet.index, 2):
        lo, hi = sorted((quiet[a], quiet[b]))
        if hi <= lo * (1 + apart):
            continue
        total += 1
        if search[a] == search[b]:
            tied += 1
        elif np.sign(quiet[a] - quiet[b]) != np.sign(search[a] - search[b]):
            wrong += 1
    return f"{wrong} (+{tied} tied) / {total}" if tied else f"{wrong} / {total}"


def compare(out: Path, seconds: float | None, passes: int) -> dict[str, object]:
    trials = pd.read_csv(out / "trials.csv")
    kept = trials[(trials["state"] == "COMPLETE") & trials["reused_from"].isna()]
    figures = kept.set_index("trial")[LAT]
    timed = [f.reindex(figures.index) for f in quiet_figures(out, passes)]
    quiet = pd.concat(timed, axis=1).median(axis=1)  # the reference: median of the passes
    front = pd.read_csv(out / "pareto.csv")["trial"]
    ratio = figures / quiet
    return {
        "wall_s": None if seconds is None else round(seconds),
        "candidates": len(figures),
        "spearman": round(float(spearmanr(figures, quiet).statistic), 3),
        "search/quiet": f"{ratio.min():.2f}-{ratio.max():.2f}",
        "wrong_pairs": wrong_pairs(figures, quiet),
        "front": len(front),
        "front_wrong_pairs": wrong_pairs(figures[front], quiet[front]),
        # how far the machine lets two quiet passes over the same files agree
        "quiet_vs_quiet_spearman": round(float(spearmanr(timed[0], timed[1]).statistic), 3),
        "quiet_vs_quiet_wrong": wrong_pairs(timed[0], timed[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default=None, help="task YAML (default: the demo)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/latency_ranking"))
    parser.add_argument("--passes", type=int, default=3, help="quiet passes (the reference)")
    parser.add_argument("--compare-only", action="store_true", help="reuse the two runs in --out")
    args = parser.parse_args()
    rows = {}
    for mode, plain in (("plain (before)", True), ("quiet (after)", False)):
        out = args.out / mode.split()[0]
        seconds = None
        if not args.compare_only:
            seconds = search(args.task, out, args.trials, args.workers, plain)
        rows[mode] = compare(out, seconds, args.passes)
    task = args.task or "demo"
    print(f"task {task}, {args.trials} trials, {args.workers} workers, random sampler")
    print(pd.DataFrame(rows).T.to_string())


if __name__ == "__main__":
    main()
