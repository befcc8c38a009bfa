"""Do the low fidelity levels rank candidates as the full training does? (issue 18, rank check)

Run: ``.venv/bin/python benchmarks/fidelity_rank.py TASKS/mobilenet_v2/task.yaml
[--space benchmarks/spaces/realistic.yaml] [--levels 0 1] [--recipes 20] [--workers 2]
[--out rank.json]`` (``--levels``: these levels instead of the space's ``fidelity:`` entry's).

Samples ``--recipes`` distinct random recipes that train (a recipe that trains nothing is the
same build at every level and would rank perfectly for free), builds each from the teacher at
every level of the space's ``fidelity:`` entry (no stage cache: each build is timed on its own),
and prints each recipe's validation accuracy per level, the Kendall tau between every level's
accuracy and the top level's, and what each level costs against the top one.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna
from scipy.stats import kendalltau

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)
from autocompress.recipe import Recipe
from autocompress.space import SearchSpace
from autocompress.study.fidelity import Fidelity

_CTX = None


def _init(task_path: str) -> None:
    global _CTX
    from autocompress.hardware import load_profile
    from autocompress.study.objective import TrialContext
    from autocompress.task import load_task

    _CTX = TrialContext(task=load_task(task_path), profiles=(load_profile("cpu-host"),))


def _build(job: tuple[int, int, dict[str, object]]) -> tuple[int, int, float, float, str]:
    from autocompress.study.objective import TrialRequest, run_trial

    index, level, recipe = job
    assert _CTX is not None
    start = time.perf_counter()
    outcome = run_trial(_CTX, TrialRequest(index, Recipe.from_dict(recipe)))
    seconds = time.perf_counter() - start
    if outcome.record is None:
        return index, level, float("nan"), seconds, outcome.error or "failed"
    return index, level, outcome.record.measurement.quality, seconds, ""


def sample_recipes(space: SearchSpace, n: int, seed: int, students: bool = True) -> list[Recipe]:
    from autocompress.stages.build import epoch_floors

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    chosen: list[Recipe] = []
    for _ in range(50 * n):
        recipe = space.sample(study.ask())
        if not students and recipe.student_width < 1:
            continue
        if epoch_floors(recipe) and recipe not in chosen:
            chosen.append(recipe)
        if len(chosen) == n:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    parser.add_argument("--space", default="benchmarks/spaces/realistic.yaml")
    parser.add_argument("--recipes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=float, nargs="+", default=None)
    parser.add_argument(
        "--no-students",
        action="store_true",
        help="only recipes without distillation (width 1.0)",
    )
    parser.add_argument("--out", default=None, help="write every build's figures as JSON")
    parser.add_argument(
        "--done",
        default=None,
        help="the printed log of an interrupted run with the same arguments: its builds are "
        "taken from it instead of being built again",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from autocompress.stages.build import epoch_floors

    space = SearchSpace.from_yaml(args.space)
    fidelity = space.fidelity
    assert fidelity is not None, f"{args.space} has no fidelity: entry"
    if args.levels:
        fidelity = Fidelity.from_dict("--levels", {"levels": args.levels, "eta": fidelity.eta})
    recipes = sample_recipes(space, args.recipes, args.seed, not args.no_students)
    jobs = [
        (i, level, fidelity.recipe_at(r, level, epoch_floors(r)).to_dict())
        for i, r in enumerate(recipes)
        for level in range(fidelity.top + 1)
    ]
    results: dict[tuple[int, int], tuple[float, float, str]] = {}
    if args.done:
        for line in Path(args.done).read_text(errors="replace").splitlines():
            found = re.match(r"recipe (\d+) level (\d+): acc (\S+) in (\d+) s ?(.*)", line)
            if found:
                i, k, acc, sec, err = found.groups()
                results[int(i), int(k)] = (float(acc), float(sec), err.strip())
                print(line, flush=True)
        jobs = [j for j in jobs if (j[0], j[1]) not in results]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    # A fresh process per build: TensorFlow keeps growing in a process that builds many models.
    with ProcessPoolExecutor(
        args.workers, context, _init, (args.task,), max_tasks_per_child=1
    ) as pool:
        for index, level, acc, seconds, error in pool.map(_build, jobs):
            results[index, level] = (acc, seconds, error)
            print(
                f"recipe {index} level {level}: acc {acc:.4f} in {seconds:.0f} s {error}",
                flush=True,
            )
    wall = time.perf_counter() - start
    levels = range(fidelity.top + 1)
    print(f"\n{len(recipes)} recipes, levels {fidelity.levels}, {wall / 60:.0f} min wall")
    print("recipe".ljust(62) + "".join(f"  L{k} acc   s" for k in levels))
    for i, r in enumerate(recipes):
        name = (
            f"w{r.student_width} s{r.sparsity} c{r.clusters} {r.quantization} "
            f"d{r.distill_epochs} f{r.finetune_epochs}"
        )
        cells = "".join(f"  {results[i, k][0]:.4f} {results[i, k][1]:4.0f}" for k in levels)
        print(name.ljust(62) + cells)
    ok = [i for i in range(len(recipes)) if all(not results[i, k][2] for k in levels)]
    top = [results[i, fidelity.top][0] for i in ok]
    top_cost = sum(results[i, fidelity.top][1] for i in ok)
    summary = {}
    for k in levels:
        tau = kendalltau([results[i, k][0] for i in ok], top)
        cost = sum(results[i, k][1] for i in ok) / top_cost
        summary[f"L{k}"] = {"tau": float(tau.statistic), "p": float(tau.pvalue), "cost": cost}
        print(
            f"L{k} (share {fidelity.levels[k]}): Kendall tau vs top {tau.statistic:.3f} "
            f"(p {tau.pvalue:.3g}), build time {cost:.2f} x the top level's, n={len(ok)}"
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "recipes": [r.to_dict() for r in recipes],
                    "results": {f"{i},{k}": v for (i, k), v in results.items()},
                    "summary": summary,
                    "wall_s": wall,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
