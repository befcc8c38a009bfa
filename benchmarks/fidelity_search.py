"""Hypervolume against wall time: full-fidelity default search, multi-fidelity search, and random
search at full fidelity (issue 18). Same task, workers, time budget and seeds, run one after
the other, the three configurations interleaved seed by seed.

Run: ``.venv/bin/python benchmarks/fidelity_search.py [--task TASK.yaml] [--space default]
[--minutes 6] [--seeds 0 1 2] [--workers 2] [--out /tmp/fidelity_search]
[--configs full multi-fidelity random] [--levels 0 1]`` (no ``--task``: the built-in digits
demo). Runs already in ``--out`` are kept (a new run replaces the one of the same configuration
and seed), so a configuration can be added to an earlier comparison; the tables cover them all.

* ``full``: the space as given, ``--fidelity off`` (TPE, the early stop at its default margin);
* ``multi-fidelity``: the same space with its ``fidelity:`` entry (or levels [0, 0.34, 1] and
  eta 3 when it has none), ``--fidelity auto``; with ``--levels`` those levels instead, and
  the configuration is named after them (``mf-0-1``);
* ``random``: random sampler, ``--fidelity off``, no early stop.

Each run stops hard at ``--minutes`` after it started (what is still building then is
interrupted, as a user's Ctrl-C would): a realistic trial takes minutes, and letting running
trials finish would give each run a different length. Every front is measured on
full-fidelity values only: a run's COMPLETE trials, which are top-level builds in the
multi-fidelity run. Hypervolume of (1 - accuracy, latency / baseline
latency, gzip size / baseline gzip size), minimised, reference point (1.0, 2.0, 1.1): a model as
accurate as chance-free zero, twice as slow as the fp32 baseline or 10 % bigger adds nothing.
Prints each run's HV at quarters of the budget, and for the other runs the time they took to
reach 95 % of the same seed's full run's final HV, as a share of the budget; then where each
configuration's worker time went, by level; then, for the multi-fidelity runs, a rank check
from the runs themselves: every level-0 build paired with a full build of the same recipe (the
candidate's own promotion, or the same seed's full run, which starts from the same random
recipes) and the Kendall tau over the pairs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml

import autocompress
from autocompress.recipe import EPOCH_FIELDS
from autocompress.run.rundir import STUDY_NAME, RunDir
from autocompress.run.tables import RECIPE_COLUMNS
from autocompress.space import resolve_space
from autocompress.study.fidelity import hypervolume

REFERENCE = np.array([1.0, 2.0, 1.1])
CONFIGS = ("full", "multi-fidelity", "random")
DEFAULT_LEVELS = {"levels": [0.0, 0.34, 1.0], "eta": 3}


class Deadline(Exception):
    """Raised from the progress callback when a run's budget is spent."""


def config_name(config: str, levels: list[float] | None) -> str:
    """``multi-fidelity`` with its levels given on the command line is named after them."""
    if config != "multi-fidelity" or not levels:
        return config
    return "mf-" + "-".join(f"{level:g}" for level in levels)


def run(config: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    space = yaml.safe_load(resolve_space(args.space).read_text())
    options: dict = {"fidelity": "off"}
    if config == "multi-fidelity":
        space.setdefault("fidelity", DEFAULT_LEVELS)
        if args.levels:
            space["fidelity"] = {**space["fidelity"], "levels": args.levels}
        options = {"fidelity": "auto"}
    else:
        space.pop("fidelity", None)
    if config == "random":
        options.update(sampler="random", stop_margin=None)
    config = config_name(config, args.levels)
    run_dir = out / f"{config}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    space_file = run_dir.with_suffix(".yaml")
    space_file.write_text(yaml.safe_dump(space))
    start = time.time()
    budget = args.minutes * 60

    def stop_at_deadline(_progress: object) -> None:
        if time.time() - start >= budget and not stopped:
            stopped.append(True)
            raise Deadline

    stopped: list[bool] = []
    try:
        autocompress.search(
            task=args.task,
            space=space_file,
            trials=100_000,
            timeout=budget,
            workers=args.workers,
            seed=seed,
            out=run_dir,
            on_progress=stop_at_deadline,
            **options,
        )
    except Deadline:
        pass
    wall = min(time.time() - start, budget)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(RunDir(run_dir).journal))
    )
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if "reused_from" not in t.user_attrs and t.datetime_complete is not None
    ]
    points = [
        (t.datetime_complete.timestamp() - start, list(t.values), t.number)
        for t in done
        if t.datetime_complete.timestamp() - start <= budget
    ]
    builds = len(study.trials)
    return {"config": config, "seed": seed, "wall_s": wall, "points": points, "builds": builds}


def hv_curve(points: list, baseline: tuple[float, float, float], times: list[float]) -> list:
    acc0, lat0, size0 = baseline
    out = []
    for limit in times:
        pts = np.array(
            [(1 - v[0], v[1] / lat0, v[2] / size0) for t, v, _ in points if t <= limit]
        ).reshape(-1, 3)
        out.append(hypervolume(pts, REFERENCE) if len(pts) else 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default=None)
    parser.add_argument("--space", default="default")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="/tmp/fidelity_search")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="which configurations to run (a seed's full run must be in --out or among them)",
    )
    parser.add_argument(
        "--levels",
        type=float,
        nargs="+",
        help="the multi-fidelity run's levels instead of the space's (the last 1.0)",
    )
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="reprint the tables of the runs already in --out instead of running",
    )
    args = parser.parse_args()
    if args.levels and args.levels[-1] != 1.0:
        parser.error("--levels: the last level must be 1.0 (full training)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "runs.json"
    runs = json.loads(saved.read_text()) if saved.is_file() else []
    for seed in [] if args.summarize else args.seeds:
        for config in [c for c in CONFIGS if c in args.configs]:
            result = run(config, seed, args, out)
            runs = [
                r
                for r in runs
                if (r["config"], r["seed"]) != (config_name(config, args.levels), seed)
            ]
            runs.append(result)
            saved.write_text(json.dumps(runs, indent=1))
            r = runs[-1]
            print(
                f"{r['config']} seed {seed}: {len(r['points'])} results from {r['builds']} "
                f"trials in {r['wall_s']:.0f} s",
                flush=True,
            )
    args.seeds = sorted({r["seed"] for r in runs})
    print_table(runs, args)
    print_costs(runs, out)
    print_level_rank(runs, out)


def print_costs(runs: list[dict], out: Path) -> None:
    """Where each configuration's worker time went: builds and mean seconds per build, by
    fidelity level in the multi-fidelity runs (from each run's trials.csv)."""
    print("\nbuilds per configuration (all seeds; finished builds, repeats answered free excluded)")
    print(f"{'config':16s}{'level':>6s}{'builds':>8s}{'mean s':>8s}{'worker-min':>11s}")
    for config in dict.fromkeys(r["config"] for r in runs):
        frames = [
            pd.read_csv(out / f"{config}-{r['seed']}" / "trials.csv")
            for r in runs
            if r["config"] == config and (out / f"{config}-{r['seed']}" / "trials.csv").is_file()
        ]
        if not frames:
            continue
        table = pd.concat(frames)
        built = table[table["seconds"].notna()]
        if "reused_from" in built:
            built = built[built["reused_from"].isna()]
        groups = built.groupby("level") if "level" in built else [("-", built)]
        for level, rows in groups:
            name = level if isinstance(level, str) else f"L{int(level)}"
            print(
                f"{config:16s}{name:>6s}{len(rows):8d}{rows['seconds'].mean():8.1f}"
                f"{rows['seconds'].sum() / 60:11.1f}"
            )


def recipe_key(values: pd.Series) -> tuple[str, ...]:
    """A recipe's cells as text that two tables agree on (an int column read as float in one)."""
    return tuple(
        f"{float(v):g}" if isinstance(v, (int, float, np.number)) else str(v) for v in values
    )


def print_level_rank(runs: list[dict], out: Path) -> None:
    """How level 0 ranked what full training made of the same recipes, from the runs alone:
    each level-0 build of a multi-fidelity run paired with a full build of the same recipe
    (epochs aside) in that run (a promoted candidate) or in the same seed's full run (same seed,
    so the same random start). Kendall tau of validation quality over the pairs, all seeds."""
    from scipy.stats import kendalltau

    def table(config: str, seed: int) -> pd.DataFrame | None:
        path = out / f"{config}-{seed}" / "trials.csv"
        return pd.read_csv(path) if path.is_file() else None

    keys = [c for c in RECIPE_COLUMNS if c not in EPOCH_FIELDS]
    levelled = [r["config"] for r in runs if r["config"] not in ("full", "random")]
    for config in dict.fromkeys(levelled):
        pairs: list[tuple[float, float, str]] = []
        for seed in sorted({r["seed"] for r in runs if r["config"] == config}):
            mf, full = table(config, seed), table("full", seed)
            if mf is None or "level" not in mf or "accuracy" not in mf:
                continue
            done = pd.concat([t for t in (mf, full) if t is not None and "accuracy" in t])
            done = done[(done["state"] == "COMPLETE") & done["accuracy"].notna()]
            finals = {recipe_key(row[keys]): row["accuracy"] for _, row in done.iterrows()}
            level0 = mf[(mf["level"] == 0) & mf["accuracy"].notna()]
            for _, row in level0.iterrows():
                final = finals.get(recipe_key(row[keys]))
                if final is not None:
                    name = (
                        f"s{seed} w{row['student_width']} s{row['sparsity']} "
                        f"c{int(row['clusters'])} {row['quantization']}"
                    )
                    pairs.append((row["accuracy"], final, name))
        if not pairs:
            continue
        print(f"\n{config}: level 0 against full training of the same recipe (all seeds)")
        for low, final, name in sorted(pairs, key=lambda p: -p[1]):
            print(f"  {name:40s} L0 {low:.4f}  full {final:.4f}")
        if len(pairs) > 2:
            tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs])
            print(f"  Kendall tau {tau.statistic:.3f} (p {tau.pvalue:.3g}), n={len(pairs)}")


def print_table(runs: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\ntask {args.task or 'demo'}, space {args.space}, "
        f"{max(r['wall_s'] for r in runs) / 60:.1f} min per run, "
        f"{args.workers} workers, reference point {REFERENCE.tolist()}"
    )
    print(
        f"{'config':16s}{'seed':>5s}{'results':>8s}"
        + "".join(f"{f'HV@{q}%':>9s}" for q in (25, 50, 75, 100))
        + f"{'t95/T_full':>12s}"
    )
    ratios: dict[str, list[float]] = {}
    for seed in args.seeds:
        by = {r["config"]: r for r in runs if r["seed"] == seed}
        if "full" not in by:
            print(f"seed {seed}: no full run in --out to compare with; left out")
            continue
        full = by["full"]
        baseline = next(v for _, v, n in full["points"] if n == 0)  # trial 0: the fp32 baseline
        final_full = hv_curve(full["points"], baseline, [full["wall_s"]])[0]
        for config, r in by.items():
            quarters = [r["wall_s"] * q / 4 for q in (1, 2, 3, 4)]
            curve = hv_curve(r["points"], baseline, quarters)
            cell = ""
            if config != "full":
                times = sorted(t for t, _, _ in r["points"])
                reach = next(
                    (
                        t
                        for t in times
                        if hv_curve(r["points"], baseline, [t])[0] >= 0.95 * final_full
                    ),
                    None,
                )
                share = reach / full["wall_s"] if reach is not None else float("inf")
                # the full run's wall time is its budget (runs stop hard at the deadline)
                cell = f"{share:12.2f}" if reach is not None else f"{'never':>12s}"
                if config != "random":
                    ratios.setdefault(config, []).append(share)
            print(
                f"{config:16s}{seed:5d}{len(r['points']):8d}"
                + "".join(f"{h:9.4f}" for h in curve)
                + cell
            )
    for config, shares in ratios.items():
        median = statistics.median(shares)
        print(
            f"\n{config} time to 95 % of the full run's final HV, median of {len(shares)} seeds: "
            + (
                f"{median:.2f} x the budget"
                if median != float("inf")
                else "not reached in the budget"
            )
        )


if __name__ == "__main__":
    main()
