"""Does the search rank candidates by latency the way a quiet machine does? (issue 38, item 5)

Runs the same search twice -- ``--plain-latency`` (each file timed once where it was built,
beside the other trials: the behaviour before the quiet window) and the default (quiet window,
one figure per op signature, the front re-timed at the end) -- with the random sampler and one
seed, so both build the same recipes and their wall times compare the protocols' cost. Then
every kept candidate of each run is timed again with nothing else running (``autocompress
measure RUN --as quiet``), and the figures a user reads in ``trials.csv`` are held against
those: Spearman's rank correlation, and the pairs whose quiet figures differ by more than 10 %
but whose search figures are in the other order (over all candidates, and among the front's).

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


def quiet_figures(out: Path) -> pd.Series:
    subprocess.run(
        [sys.executable, "-m", "autocompress", "measure", str(out), "--as", "quiet"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    table = pd.read_csv(out / "profiles" / "quiet.csv")
    return table.set_index("trial")["latency_ms_quiet"]


def wrong_pairs(search: pd.Series, quiet: pd.Series, apart: float = 0.10) -> tuple[int, int]:
    """(pairs more than ``apart`` apart when quiet, those of them the search orders the other
    way)."""
    total = wrong = 0
    for a, b in itertools.combinations(quiet.index, 2):
        lo, hi = sorted((quiet[a], quiet[b]))
        if hi <= lo * (1 + apart):
            continue
        total += 1
        if np.sign(quiet[a] - quiet[b]) != np.sign(search[a] - search[b]):
            wrong += 1
    return total, wrong


def compare(out: Path, seconds: float) -> dict[str, object]:
    trials = pd.read_csv(out / "trials.csv")
    kept = trials[(trials["state"] == "COMPLETE") & trials["reused_from"].isna()]
    figures = kept.set_index("trial")[LAT]
    quiet = quiet_figures(out).reindex(figures.index)
    front = pd.read_csv(out / "pareto.csv")["trial"]
    pairs, wrong = wrong_pairs(figures, quiet)
    front_pairs, front_wrong = wrong_pairs(figures[front], quiet[front])
    ratio = figures / quiet
    return {
        "wall_s": round(seconds),
        "candidates": len(figures),
        "spearman": round(float(spearmanr(figures, quiet).statistic), 3),
        "search/quiet": f"{ratio.min():.2f}-{ratio.max():.2f}",
        "wrong_pairs": f"{wrong}/{pairs}",
        "front": len(front),
        "front_wrong_pairs": f"{front_wrong}/{front_pairs}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default=None, help="task YAML (default: the demo)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/latency_ranking"))
    args = parser.parse_args()
    rows = {}
    for mode, plain in (("plain (before)", True), ("quiet (after)", False)):
        out = args.out / mode.split()[0]
        seconds = search(args.task, out, args.trials, args.workers, plain)
        rows[mode] = compare(out, seconds)
    task = args.task or "demo"
    print(f"task {task}, {args.trials} trials, {args.workers} workers, random sampler")
    print(pd.DataFrame(rows).T.to_string())


if __name__ == "__main__":
    main()
