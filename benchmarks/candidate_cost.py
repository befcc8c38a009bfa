"""What a candidate costs against its training (issue 28's goals), side by side in one run.

Run: ``.venv/bin/python benchmarks/candidate_cost.py --task TASKS/mobilenet_v2/task.yaml
[--out /tmp/candidate_cost]`` (``TASKS`` is ``~/.cache/autocompress-tasks`` after
``benchmarks/tasks/build.py``); nothing else running:

1. *floor*: one bare epoch of tfmot's pruning fine-tuning of the teacher: wrap its Conv/Dense
   layers (those the pruning stage wraps) in ``prune_low_magnitude`` (50 %), fit one epoch
   (batch 32, the task's training split), strip; TensorFlow already started, no conversion,
   no evaluation; in a Ray worker with one CPU, TensorFlow capped to one thread as a trial
   caps it (1 and 2 run there);
2. *bare int8*: the TF converter's full-integer conversion (100 calibration samples) and a
   LiteRT evaluation of the validation split with the cpu-host latency measurement;
3. a real search with one worker (1 CPU) and the stage cache: the fp32 baseline, then int8,
   50 % sparsity + int8 and 16 clusters + int8 (one fine-tuning epoch each), enqueued in that
   order. A trial's cost is its wall time from submission to its result reaching the driver:
   the sum of its ``part_seconds``, scheduling and return included;
4. the same two recipes built in a warm worker as a trial of that search builds them, at a
   multi-fidelity level 0 (no fine-tuning epoch: the calibration pass) and in full (the
   default space's two epochs).

Prints every trial's parts (and ``optuna_s``, the study's start-to-complete time, which runs
from before ``scheduling`` and ``return`` were recorded also have), then the goals: sparsity
/ floor and clusters / floor (at most 1.25), int8 / bare int8 (at most 0.1), level 0 / full
build (at most 0.15).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml

import autocompress
from autocompress.evaluation.deployed import evaluate
from autocompress.hardware import load_profile
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.convert import convert
from autocompress.task import load_task

RECIPES = [
    {"quantization": "int8"},
    {"sparsity": 0.5, "quantization": "int8"},
    {"clusters": 16, "quantization": "int8"},
]
SPACE = {
    "student_width": 1.0,
    "sparsity": [0.0, 0.5],
    "clusters": [0, 16],
    "quantization": ["none", "int8"],
    "finetune_epochs": 1,
}
NAMES = ["fp32 baseline", "int8", "sparsity 0.5 + int8", "16 clusters + int8"]
# A multi-fidelity level 0 (no fine-tuning epoch: the calibration pass) against the full build
# (the default space's 2 epochs) of the same recipes.
LEVELS = {"L0": 0, "full": 2}
LEVEL_RECIPES = {"sparsity 0.5 + int8": {"sparsity": 0.5}, "16 clusters + int8": {"clusters": 16}}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def floor_epoch(teacher, task) -> float:
    """Wrap the Conv/Dense layers (those the pruning stage wraps), fit one epoch, strip:
    tfmot's pruning fine-tuning and nothing else."""
    import tensorflow_model_optimization as tfmot

    from autocompress.stages.training import clone_wrapping, loss_for

    sparsity = tfmot.sparsity.keras
    ctx = BuildContext(data=task.data, teacher=teacher, metric=task.metric, loss=task.loss)
    start = time.perf_counter()
    schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=100)
    wrapped = clone_wrapping(
        teacher, lambda layer: sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
    )
    wrapped.compile("adam", loss=loss_for(ctx))
    wrapped.fit(
        task.data.x_train,
        task.data.y_train,
        epochs=1,
        batch_size=32,
        verbose=0,
        callbacks=[sparsity.UpdatePruningStep()],
    )
    sparsity.strip_pruning(wrapped)
    return time.perf_counter() - start


def references(task_path: str) -> dict[str, float]:
    """The floor and the bare int8 conversion, in a Ray worker like the trials' (one CPU, its
    TensorFlow capped to one thread the way a trial caps it)."""
    from autocompress.study.objective import _cap_threads

    _cap_threads(1)
    task = load_task(task_path)
    teacher = task.teacher.build()
    floor = floor_epoch(teacher, task)
    ctx = BuildContext(data=task.data, teacher=teacher)
    cpu = [load_profile("cpu-host")]
    convert_s, (tflite, _) = timed(lambda: convert(teacher, Recipe(quantization="int8"), ctx))
    eval_s, _ = timed(lambda: evaluate(tflite, task.data.x_val, task.data.y_val, cpu, task.metric))
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return {"floor": floor, "convert": convert_s, "evaluate": eval_s, "threads": threads}


def level_builds(task_path: str, run_dir: str) -> dict[str, float]:
    """Seconds of each recipe of :data:`LEVEL_RECIPES` built at each of :data:`LEVELS`, as a
    trial of the search in ``run_dir`` would build it (with the float-file template its stage
    cache holds), in a warm worker (one untimed trial first)."""
    from autocompress.evaluation.audit import teacher_reference
    from autocompress.run.cache import DirCache, root_key
    from autocompress.study.objective import TrialContext, TrialRequest, run_trial

    task = load_task(task_path)
    key = root_key(task, 0)
    reference = teacher_reference(task.teacher.predict, task.data, 0, metric=task.metric)
    extra = {}
    try:  # (this script also measures versions from before these existed)
        from autocompress.evaluation.lineage import task_lineage

        extra["lineage"] = task_lineage(task, 0)
    except ImportError:
        pass
    try:
        from autocompress.stages.build import template_key
    except ImportError:
        template_key = None
    profiles = (load_profile("cpu-host"),)
    ctx = TrialContext(task=task, profiles=profiles, cache_key=key, reference=reference, **extra)
    cache = DirCache(Path(run_dir) / "cache")

    def build(number: int, recipe: Recipe) -> float:
        tkey = template_key(recipe, key) if template_key is not None else None
        blob = cache.get(tkey) if tkey is not None else None
        entries = {tkey: blob} if tkey is not None and blob is not None else {}
        start = time.perf_counter()
        outcome = run_trial(ctx, TrialRequest(number, recipe, cache_entries=entries))
        assert outcome.record is not None, outcome.error
        return time.perf_counter() - start

    build(0, Recipe(quantization="int8"))  # warm: the worker keeps the teacher
    seconds = {}
    for name, params in LEVEL_RECIPES.items():
        for level, epochs in LEVELS.items():
            recipe = Recipe(quantization="int8", finetune_epochs=epochs, **params)
            seconds[f"{name} {level}"] = build(len(seconds) + 1, recipe)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/candidate_cost"))
    args = parser.parse_args()
    import ray

    from autocompress.study.executor import WORKER_ENV

    task = load_task(args.task)
    ray.init(
        address="local",  # a Ray of its own, as a search starts one
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": WORKER_ENV},
    )
    ref = ray.get(ray.remote(num_cpus=1)(references).remote(str(args.task)))
    floor, convert_s, eval_s = ref["floor"], ref["convert"], ref["evaluate"]
    bare_int8 = convert_s + eval_s

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    (args.out / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (args.out / "recipes.yaml").write_text(yaml.safe_dump(RECIPES))
    result = autocompress.search(
        args.task,
        space=args.out / "space.yaml",
        profiles=["cpu-host"],
        trials=1 + len(RECIPES),
        workers=1,
        warm_start=False,
        enqueue=args.out / "recipes.yaml",
        stop_margin=None,
        fidelity="off",
        out=args.out / "run",
    )
    levels = ray.get(
        ray.remote(num_cpus=1)(level_builds).remote(str(args.task), str(args.out / "run"))
    )
    ray.shutdown()
    trials = result.trials.sort_values("trial")
    print(f"task {task.name}: {len(task.data.y_train)} train / {len(task.data.y_val)} val")
    print(f"floor: one bare tfmot pruning epoch          {floor:7.1f} s ({ref['threads']} thread)")
    print(
        f"bare int8: TF converter {convert_s:.1f} s + evaluation {eval_s:.1f} s = {bare_int8:.1f} s"
    )
    costs: dict[str, float] = {}
    rows = []
    for name, (_, row) in zip(NAMES, trials.iterrows(), strict=False):
        parts = json.loads(row["part_seconds"]) if isinstance(row["part_seconds"], str) else {}
        stages = json.loads(row["stages"])
        convert_facts = stages.get("convert", {})
        fits = {s: f.get("fit_seconds") for s, f in stages.items() if "fit_seconds" in f}
        costs[name] = sum(parts.values())
        frozen = result.study.trials[int(row["trial"])]
        wall = (frozen.datetime_complete - frozen.datetime_start).total_seconds()
        rows.append(
            {
                "trial": name,
                "cost_s": round(costs[name], 1),
                "optuna_s": round(wall, 1),  # the study's start to complete, for older runs
                **{k: round(v, 1) for k, v in parts.items()},
                "fit_s": round(sum(fits.values()), 1) if fits else None,
                "float_file": convert_facts.get("float_file", "-"),
                "convert_s": round(json.loads(row["stage_seconds"]).get("convert", 0.0), 1),
            }
        )
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(pd.DataFrame(rows).to_string(index=False))
    print("goals:")
    for name in ("sparsity 0.5 + int8", "16 clusters + int8"):
        if name in costs:
            ratio = costs[name] / floor
            print(f"  {name:22s} {costs[name]:6.1f} s = {ratio:.2f}x floor (goal <= 1.25)")
    if "int8" in costs:
        ratio = costs["int8"] / bare_int8
        print(f"  {'int8':22s} {costs['int8']:6.1f} s = {ratio:.2f}x bare int8 (goal <= 0.10)")
    for name in LEVEL_RECIPES:
        low, full = levels[f"{name} L0"], levels[f"{name} full"]
        ratio = low / full
        print(
            f"  {name + ' L0':22s} {low:6.1f} s = {ratio:.2f}x its full build, {full:.1f} s "
            "(goal <= 0.15)"
        )


if __name__ == "__main__":
    main()
