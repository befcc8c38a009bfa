"""Search efficiency: the front found for the compute spent, default configuration vs naive.

Run: ``.venv/bin/python benchmarks/search_efficiency.py [--trials 40] [--seeds 0 1 2]``

For two tasks (the digits CNN demo, and an MLP on scikit-learn's bundled breast-cancer data),
and each seed, it runs:

* ``default``: TPE with the stage cache, the warm start and early stopping of hopeless
  candidates (what ``autocompress search`` does);
* ``tpe-mv``, ``nsga2`` and ``random+``: the same with multivariate TPE / NSGA-II / random
  sampling (the sampler comparison);
* ``random``: random sampling, no stage cache, no warm start, no early stop (the naive baseline);
* ``default-nocache`` (first seed only): the default without the stage cache, for wall time.

It prints the hypervolume (accuracy up, cpu-host latency down, gzip size down; reference point:
accuracy 0, 1.1x the fp32 teacher's latency and gzip size, measured in the run) after 10, 20, 40
candidates built (repeats of a built recipe are free in every configuration and do not count),
the wall time of each study, the share of stage executions the cache saved, and whether
each well-known recipe is on or dominated by the default front.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import autocompress
from autocompress.demo import demo_task
from autocompress.front import hypervolume
from autocompress.study.driver import WELL_KNOWN
from autocompress.task import Task, TaskData, TeacherSpec

LAT = "latency_ms_cpu-host"
MAXIMIZE = [True, False, False]


def tabular_task(seed: int = 0) -> Task:
    """A small MLP on scikit-learn's breast-cancer data (ships with the package)."""
    import tf_keras as keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    data = TaskData(
        scaler.transform(x_tr).astype("float32"),
        y_tr.astype("int64"),
        scaler.transform(x_va).astype("float32"),
        y_va.astype("int64"),
    )
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Input((30,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=30, batch_size=32, verbose=0)
    return Task("breast-cancer-mlp", TeacherSpec.from_model(model), data)


STEERED = {"stage_cache": True, "warm_start": True, "stop_margin": 0.1}
CONFIGS = {
    "default": {"sampler": "tpe", **STEERED},
    "tpe-mv": {"sampler": "tpe-multivariate", **STEERED},
    "nsga2": {"sampler": "nsga2", **STEERED},
    "random+": {"sampler": "random", **STEERED},
    "random": {"sampler": "random", "stage_cache": False, "warm_start": False, "stop_margin": None},
    "default-nocache": {"sampler": "tpe", **STEERED, "stage_cache": False},
}


def hv_after(trials: pd.DataFrame, n: int, ref: list[float]) -> float:
    """Hypervolume of the first ``n`` candidates built (the budget's unit: repeats of built
    recipes are free and add no point)."""
    built = trials[trials["reused_from"].isna()].sort_values("trial").head(n)
    first = built[built["state"] == "COMPLETE"]
    return hypervolume(first[["accuracy", LAT, "gzip_bytes"]].to_numpy(float), MAXIMIZE, ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=["tabular", "digits"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--spaces",
        nargs="+",
        default=["default"],
        help="search spaces (shipped names or YAML paths). The first runs every configuration; "
        "the others run only 'default', to compare the front each space gives. With several, "
        "runs are labelled task[space] and share the task's reference point",
    )
    args = parser.parse_args()
    checkpoints = [n for n in (10, 20, 40) if n <= args.trials] or [args.trials]
    root = Path(tempfile.mkdtemp(prefix="autocompress-eff-"))
    wall = time.perf_counter()
    rows, saved, notes = [], [], []
    try:
        for task_name in args.tasks:
            task = (
                demo_task(cache_dir=root / "teacher") if task_name == "digits" else tabular_task()
            )
            ref = None
            runs = [
                (seed, space, config, options)
                for seed in args.seeds
                for space in args.spaces
                for config, options in CONFIGS.items()
                if config in args.configs
                and (config != "default-nocache" or seed == args.seeds[0])
                and (config == "default" or space == args.spaces[0])
            ]
            labels = {space: label(task_name, space, args.spaces) for space in args.spaces}
            for seed, space, config, options in runs:
                name = labels[space]
                out = root / f"{name}-{config}-{seed}"
                start = time.perf_counter()
                result = autocompress.search(
                    task=task,
                    space=space,
                    trials=args.trials,
                    workers=args.workers,
                    out=out,
                    seed=seed,
                    **options,
                )
                seconds = time.perf_counter() - start
                t = result.trials
                if ref is None:  # the fp32 teacher: trial 0 of the first default run
                    base = t.iloc[0]
                    ref = [0.0, 1.1 * base[LAT], 1.1 * base["gzip_bytes"]]
                    print(
                        f"\n{task_name}: teacher accuracy {base['accuracy']:.4f}, "
                        f"{base[LAT]:.4f} ms, gzip {int(base['gzip_bytes'])} B; "
                        f"reference point {ref}"
                    )
                row = {
                    "task": name,
                    "config": config,
                    "seed": seed,
                    "wall_s": round(seconds),
                    "failed": int((t["state"] == "FAIL").sum()),
                    "stopped": int((t["state"] == "PRUNED").sum()),
                }
                for n in checkpoints:
                    row[f"hv@{n}"] = hv_after(t, n, ref)
                rows.append(row)
                if options["stage_cache"]:
                    built = t[t["reused_from"].isna()]  # not whole-trial repeats
                    stages = [s for v in built["stages"].dropna() for s in eval_stages(v)]
                    reused = built["reused_stages"].fillna("").str.count(";") + (
                        built["reused_stages"].fillna("") != ""
                    )
                    saved.append((name, config, seed, int(reused.sum()), len(stages)))
                built = t[t["reused_from"].isna()]
                notes.append(f"{name} {config} seed {seed}: " + worker_time(built))
                if config == "default":
                    notes += well_known_status(name, seed, t, result.front)
                print(pd.DataFrame([row]).to_string(index=False))
            for name in labels.values():
                summarise(rows, saved, notes, name)
        print(f"\nwall time {time.perf_counter() - wall:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def label(task_name: str, space: str, spaces: list[str]) -> str:
    """The name a run is reported under: the task, plus the space's file stem when several."""
    return task_name if len(spaces) == 1 else f"{task_name}[{Path(space).stem}]"


def summarise(rows: list[dict], saved: list[tuple], notes: list[str], task_name: str) -> None:
    table = pd.DataFrame([r for r in rows if r["task"] == task_name])
    hv_cols = [c for c in table.columns if c.startswith("hv@")]
    print(f"\n== {task_name}: hypervolume (mean over seeds; higher is better), wall time ==")
    s = table.groupby("config")[[*hv_cols, "wall_s", "stopped"]].mean()
    print(s.to_string(float_format=lambda v: f"{v:.6g}"))
    last = hv_cols[-1]
    if {"default", "random"} <= set(s.index):
        reach = next((c for c in hv_cols if s.loc["default", c] >= s.loc["random", last]), None)
        print(
            f"default reaches random's {last} hypervolume "
            f"{'by ' + reach if reach else 'not within the budget'}"
        )
    if {"default", "default-nocache"} <= set(s.index):
        # The same seed on both sides: no-cache runs only the first seed.
        nocache = table[table["config"] == "default-nocache"].iloc[0]
        same = table[(table["config"] == "default") & (table["seed"] == nocache["seed"])]
        ratio = nocache["wall_s"] / same["wall_s"].iloc[0]
        print(
            f"wall time without / with the stage cache (seed {nocache['seed']}): "
            f"{nocache['wall_s']} / {same['wall_s'].iloc[0]} s = {ratio:.2f}x"
        )
    print("stage executions answered from the cache:")
    for name, config, seed, reused, total in saved:
        if name == task_name:
            print(f"  {config} seed {seed}: {reused}/{total} ({reused / max(1, total):.0%})")
    print("worker time of the built candidates (seconds as measured inside the trials):")
    for line in notes:
        if line.startswith(task_name) and "worker" in line:
            print("  " + line)
    print("well-known recipes against the default front:")
    for line in notes:
        if line.startswith(task_name) and "worker" not in line:
            print("  " + line)


def worker_time(built: pd.DataFrame) -> str:
    """Where the trials' own time went, and the most any stage cache could save on them.

    ``stage_seconds`` holds each stage's build time (for a reused stage, its original build).
    Built = cacheable stages run in this trial; saved = cacheable stages taken from the cache;
    rest = everything else the trial did (QAT, conversion, measurement, audit, set-up). A cache
    that made every cacheable stage free would still leave ``rest``: (rest + built + saved) /
    rest bounds the speed-up any stage cache can give on these candidates.
    """
    import json

    from autocompress.stages.build import CACHED_STAGES

    built_s = saved_s = 0.0
    per_stage: dict[str, float] = {}
    runs: dict[str, int] = {}
    for stage_json, reused_text in zip(
        built["stage_seconds"].fillna("{}"), built["reused_stages"].fillna(""), strict=True
    ):
        reused = set(reused_text.split(";")) if reused_text else set()
        for stage, seconds in json.loads(stage_json).items():
            if stage in reused:
                saved_s += seconds
                continue
            per_stage[stage] = per_stage.get(stage, 0.0) + seconds
            runs[stage] = runs.get(stage, 0) + 1
            if stage in CACHED_STAGES:
                built_s += seconds
    total = float(built["seconds"].fillna(0).sum())
    rest = total - built_s
    stages = ", ".join(
        f"{k} {v:.0f} ({runs[k]}x)" for k, v in sorted(per_stage.items(), key=lambda kv: -kv[1])
    )
    return (
        f"worker {total:.0f} s = cacheable stages built {built_s:.0f} s + rest {rest:.0f} s "
        f"(built, s (runs): {stages}); "
        f"saved by the cache {saved_s:.0f} s; ceiling of any stage cache on these candidates "
        f"{(total + saved_s) / max(rest, 1e-9):.2f}x"
    )


def eval_stages(text: str) -> list[str]:
    import json

    return [s for s in json.loads(text) if s != "convert"]


def well_known_status(task: str, seed: int, trials: pd.DataFrame, front: pd.DataFrame):
    out = []
    done = trials[trials["state"] == "COMPLETE"]
    for recipe in WELL_KNOWN:
        match = done[
            (done["student_width"] == recipe.student_width)
            & np.isclose(done["sparsity"], recipe.sparsity)
            & (done["clusters"] == recipe.clusters)
            & (done["quantization"] == recipe.quantization)
        ]
        label = (
            f"w={recipe.student_width} s={recipe.sparsity} c={recipe.clusters} "
            f"{recipe.quantization}"
        )
        if match.empty:
            out.append(f"{task} seed {seed}: {label}: not run")
            continue
        r = match.iloc[0]
        if int(r["trial"]) in set(front["trial"]):
            out.append(f"{task} seed {seed}: {label}: on the front (trial {int(r['trial'])})")
            continue
        v = np.array([r["accuracy"], r[LAT], r["gzip_bytes"]])
        dom = front[
            (front["accuracy"] >= v[0]) & (front[LAT] <= v[1]) & (front["gzip_bytes"] <= v[2])
        ]
        who = f"trial {int(dom.iloc[0]['trial'])}" if len(dom) else "nothing (check!)"
        out.append(f"{task} seed {seed}: {label}: dominated by {who}")
    return out


if __name__ == "__main__":
    main()
