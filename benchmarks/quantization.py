"""Quantization that keeps accuracy (issue 19): uniform recipes against per-layer mixed precision,
all post-training, all on one float ``.tflite`` file per task.

Run: ``.venv/bin/python benchmarks/quantization.py [--tasks demo mobilenet_v2 resnet]
[--trials 30] [--seeds 0 1 2] [--out /tmp/quantization]`` (realistic tasks from
``benchmarks/tasks/build.py``, in ``~/.cache/autocompress-tasks``).

Part 1, per task: the teacher converted to float once, then uniform int8 by the TF converter,
uniform int8 by LiteRT Quantizer with each range algorithm, int16 activations with int8 weights
(a16w8), int4 weights with int8 activations (w4a8), weight-only int8 / int4, and int8 with the
k layers most sensitive to int8 kept float or a16w8: test accuracy (validation where the task
has no test split), size, gzip size, the measured cpu-host latency and the simulated Edge TPU
(USB) latency.

Part 2, per task and seed: two searches of ``--trials`` trials (TPE, cpu-host) on the float file
as a ``.tflite`` task, the same budget: ``uniform`` (quantization none / dynamic / float16 /
int8, min-max: what the converter offered) and ``mixed`` (every LiteRT mode, range algorithm,
keep_sensitive k and keep_as). Prints the hypervolume of each front (1 - accuracy, latency /
fp32 latency, gzip / fp32 gzip; reference (1, 2, 1.1)) and, for each member of the mixed
search's front, the most accurate model of the uniform search of the same or smaller gzip size:
"beats" when the member is more accurate ("matched", "worse" otherwise), "smaller than any"
when the uniform search has no model that small. ``--analyse-only`` reprints part 2 from the
run directories of an earlier run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import autocompress
from autocompress.evaluation.deployed import quality
from autocompress.hardware import latency, load_profile
from autocompress.litert.ptq import calibration_samples, quantize_tflite
from autocompress.litert.sensitivity import measure_sensitivity
from autocompress.metrics import ACCURACY
from autocompress.stages.convert import to_tflite
from autocompress.study.fidelity import hypervolume
from autocompress.task import Task, load_task

TASKS = Path.home() / ".cache" / "autocompress-tasks"
REFERENCE = np.array([1.0, 2.0, 1.1])
UNIFORM = {"quantization": ["none", "dynamic", "float16", "int8"]}
MIXED = {
    "quantization": [
        "none",
        "dynamic",
        "float16",
        "int8",
        "int16x8",
        "w4a8",
        "weight_int8",
        "weight_int4",
    ],
    "ptq_algorithm": ["min_max", "mse", "octav"],
    "keep_sensitive": [0, 1, 2, 4],
    "keep_as": ["float", "a16w8"],
}


def load(name: str) -> Task:  # demo, or a task of benchmarks/tasks/build.py
    if name == "demo":
        from autocompress.demo import demo_task

        return demo_task(Path.home() / ".cache" / "autocompress")
    return load_task(TASKS / name / "task.yaml")


def uniform_table(task: Task) -> tuple[pd.DataFrame, bytes, tuple[str, ...]]:
    d = task.data
    x, y = (d.x_test, d.y_test) if d.has_test else (d.x_val, d.y_val)
    cal = calibration_samples(d.x_train, 100, 0)
    teacher = task.teacher.build()
    float_file = to_tflite(teacher, "none")
    ranked = measure_sensitivity(float_file, cal, d.x_val, d.y_val)
    sensitive = tuple(s.pattern for s in ranked)
    cpu, tpu = load_profile("cpu-host"), load_profile("edgetpu-usb")
    files: dict[str, bytes | str] = {
        "float (TF converter)": float_file,
        "int8 (TF converter)": to_tflite(teacher, "int8", cal),
    }

    def add(name: str, mode: str, **kwargs) -> None:
        try:
            files[name] = quantize_tflite(float_file, mode, cal, **kwargs)
        except ValueError as exc:  # LiteRT Quantizer refuses this recipe for this model
            files[name] = str(exc).splitlines()[0][-60:]  # the error's own words, short

    for algorithm in ("min_max", "mse", "octav", "gptq"):
        add(f"int8 {algorithm}", "int8", algorithm=algorithm)
    for algorithm in ("min_max", "mse"):
        add(f"a16w8 {algorithm}", "int16x8", algorithm=algorithm)
    for algorithm in ("min_max", "mse"):
        add(f"w4a8 {algorithm}", "w4a8", algorithm=algorithm)
    add("weight-only int8", "weight_int8")
    for algorithm in ("min_max", "mse", "octav"):
        add(f"weight-only int4 {algorithm}", "weight_int4", algorithm=algorithm)
    for k in (1, 2, 4):
        for keep_as in ("float", "a16w8"):
            add(f"int8, {k} kept {keep_as}", "int8", keep_float=sensitive[:k], keep_as=keep_as)
    rows = []
    for name, tflite in files.items():
        if isinstance(tflite, str):
            rows.append({"recipe": name, "edgetpu_mapped": f"refused: {tflite}"})
            continue
        on_tpu = latency(tflite, tpu)
        mapped = on_tpu.details.get("ops_mapped")
        rows.append(
            {
                "recipe": name,
                "test_acc" if d.has_test else "val_acc": round(quality(tflite, x, y, ACCURACY), 4),
                "size_kB": round(len(tflite) / 1024, 1),
                "gzip_kB": round(len(gzip.compress(tflite)) / 1024, 1),
                "cpu_ms": round(latency(tflite, cpu).median_ms, 3),
                "edgetpu_ms": round(on_tpu.median_ms, 3),
                # ops the Edge TPU compiler would map / all ops; "-": not deployable at all
                "edgetpu_mapped": f"{mapped}/{on_tpu.details['ops_total']}" if mapped else "-",
            }
        )
    return pd.DataFrame(rows), float_file, sensitive


def tflite_task_dir(task: Task, float_file: bytes, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.tflite").write_bytes(float_file)
    d = task.data
    arrays = {"x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val, "y_val": d.y_val}
    if d.has_test:
        arrays.update(x_test=d.x_test, y_test=d.y_test)
    np.savez(root / "data.npz", **arrays)
    (root / "task.yaml").write_text(
        f"name: {task.name}-float\nmodel: model.tflite\ndata: data.npz\n"
    )
    return root / "task.yaml"


def search_front(task_yaml: Path, space: dict, out: Path, trials: int, seed: int) -> pd.DataFrame:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    space_file = out.with_suffix(".yaml")
    space_file.write_text(yaml.safe_dump(space))
    result = autocompress.search(
        task=task_yaml, space=space_file, trials=trials, workers=2, seed=seed, out=out
    )
    return result.trials[
        (result.trials["state"] == "COMPLETE") & result.trials["reused_from"].isna()
    ]


def hv(trials: pd.DataFrame, baseline: pd.Series) -> float:
    lat = "latency_ms_cpu-host"
    pts = np.array(
        [
            (1 - r.accuracy, r[lat] / baseline[lat], r.gzip_bytes / baseline.gzip_bytes)
            for _, r in trials.iterrows()
        ]
    ).reshape(-1, 3)
    return hypervolume(pts, REFERENCE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["demo", "mobilenet_v2", "resnet"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="/tmp/quantization")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--analyse-only", action="store_true", help="part 2 from earlier runs")
    args = parser.parse_args()
    out = Path(args.out)
    for name in args.tasks:
        task_yaml = out / name / "task" / "task.yaml"
        if not args.analyse_only:
            task = load(name)
            table, float_file, _ = uniform_table(task)
            print(f"\n== {name}: post-training recipes on one float file ==")
            print(table.to_string(index=False), flush=True)
            if args.table_only:
                continue
            task_yaml = tflite_task_dir(task, float_file, out / name / "task")
        hvs: dict[str, list[float]] = {"uniform": [], "mixed": []}
        lines: list[str] = []
        for seed in args.seeds:
            fronts = {}
            for label, space in (("uniform", UNIFORM), ("mixed", MIXED)):
                run_dir = out / name / f"{label}-{seed}"
                if args.analyse_only:
                    t = pd.read_csv(run_dir / "trials.csv")
                    fronts[label] = t[(t["state"] == "COMPLETE") & t["reused_from"].isna()]
                else:
                    fronts[label] = search_front(task_yaml, space, run_dir, args.trials, seed)
            baseline = fronts["uniform"][fronts["uniform"]["trial"] == 0].iloc[0]
            for label, done in fronts.items():
                hvs[label].append(hv(done, baseline))
            lines += compare_fronts(out / name / f"mixed-{seed}", fronts["uniform"], seed)
            print(
                f"seed {seed}: HV uniform {hvs['uniform'][-1]:.4f}, mixed {hvs['mixed'][-1]:.4f}",
                flush=True,
            )
        print(
            f"{name}: HV median of {len(args.seeds)} seeds: uniform "
            f"{statistics.median(hvs['uniform']):.4f}, mixed {statistics.median(hvs['mixed']):.4f}"
        )
        print("the mixed search's front members against the uniform search's models:")
        for line in lines:
            print("  " + line)
        (out / f"{name}.json").write_text(json.dumps({"hv": hvs, "front": lines}))


def compare_fronts(mixed_dir: Path, uniform: pd.DataFrame, seed: int) -> list[str]:
    """Each mixed front member (the best mixed-precision recipes found: validation and test
    accuracy, gzip size, measured cpu-host latency, simulated Edge TPU latency of its file)
    against the most accurate uniform model of the same or smaller gzip size: "beats",
    "matched", "worse", or "smaller than any" (no uniform model that small)."""
    tpu = load_profile("edgetpu-usb")
    lines = []
    for _, r in pd.read_csv(mixed_dir / "pareto.csv").iterrows():
        same_or_smaller = uniform[uniform["gzip_bytes"] <= r.gzip_bytes]
        if len(same_or_smaller):
            best = same_or_smaller["accuracy"].max()
            verdict = "beats" if r.accuracy > best else "matched" if r.accuracy == best else "worse"
            against = f"best uniform at that size or smaller {best:.4f}"
        else:
            verdict, against = "smaller than any", "no uniform model that small"
        kept = f" {int(r.keep_sensitive)} kept {r.keep_as}" if r.keep_sensitive else ""
        on_tpu = latency((mixed_dir / r.model_path).read_bytes(), tpu)
        edgetpu = f"{on_tpu.median_ms:.3f} ms" if on_tpu.deployable else "not deployable"
        test = f", test {r.test_accuracy:.4f}" if "test_accuracy" in r else ""
        lines.append(
            f"seed {seed} trial {int(r.trial)} [{verdict}]: {r.quantization} "
            f"{r.ptq_algorithm}{kept}: val {r.accuracy:.4f}{test} at {r.gzip_bytes / 1024:.1f} "
            f"kB gzip, cpu {r['latency_ms_cpu-host']:.3f} ms, Edge TPU {edgetpu}; {against}"
        )
    return lines


if __name__ == "__main__":
    main()
