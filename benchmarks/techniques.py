"""Which techniques turn into real speed: each alone and with int8, measured side by side, and
whether a search that may use them finds faster models at equal accuracy.

Run: ``.venv/bin/python benchmarks/techniques.py [--trials 30] [--tasks demo resnet]``

Two tasks: the demo CNN (digits at 32x32, Sequential) and a residual MobileNet-style network
(digits at 32x32x3: ZeroPadding + 3x3/2 stem, depthwise + 1x1 blocks with Add, 1x1 expansion,
global pooling, Dense head) that qualifies for XNNPACK's sparse inference.

Part 1 builds every technique alone and combined with int8 (one recipe each, fixed seed) and
prints accuracy, gzip size and the measured ``cpu-host`` latency against the fp32 baseline, and
the simulated ``a100-trt`` latency (the profile that models 2:4 sparse tensor cores).
Part 2 runs two searches of ``--trials`` trials on ``cpu-host``: the default space, and the
``techniques`` space (default + channel / 2:4 / XNNPACK pruning, low-rank, exclusions,
int16x8), and for
accuracy levels of the default front prints the fastest model of each front reaching them.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import autocompress
from autocompress.demo import demo_data, demo_task
from autocompress.evaluation.deployed import evaluate
from autocompress.hardware import load_profile
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.stages.prune import xnnpack_unsupported
from autocompress.task import Task, TaskData, TeacherSpec

LAT = "latency_ms_cpu-host"
GPU = "a100-trt"  # simulated: the profile that models 2:4 sparse tensor cores
TECHNIQUES = {
    "baseline (fp32)": Recipe(),
    "unstructured 70 %": Recipe(sparsity=0.7),
    "2:4": Recipe(sparsity=0.5, prune_mode="2:4"),
    "xnnpack 70 %": Recipe(sparsity=0.7, prune_mode="xnnpack"),
    "channels 25 %": Recipe(channel_fraction=0.25),
    "channels 50 %": Recipe(channel_fraction=0.5),
    "low-rank 0.8": Recipe(rank_energy=0.8),
    "low-rank 0.6": Recipe(rank_energy=0.6),
    "70 % + ends kept": Recipe(sparsity=0.7, exclude="ends"),
    "int16x8": Recipe(quantization="int16x8"),
}


def resnet_task(seed: int = 0) -> Task:
    """A residual MobileNet-style CNN on digits at 32x32x3, trained here (no download)."""
    import tf_keras as keras

    base = demo_data(seed)

    def rgb(x: np.ndarray) -> np.ndarray:  # 32x32x1 -> 32x32x3
        return np.repeat(x, 3, axis=-1).astype("float32")

    data = TaskData(rgb(base.x_train), base.y_train, rgb(base.x_val), base.y_val)
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = layers.ZeroPadding2D(1)(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="valid", activation="relu")(x)
    for _ in range(3):
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        y = layers.Conv2D(64, 1, activation="relu")(y)
        y = layers.Conv2D(32, 1)(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Conv2D(128, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="digits_resnet")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=25, batch_size=32, verbose=0)
    return Task("digits-resnet", TeacherSpec.from_model(model), data, source="benchmark")


def one_by_one(task: Task) -> pd.DataFrame:
    teacher = task.teacher.build()
    ctx = BuildContext(task.data, teacher)
    profiles = [load_profile("cpu-host"), load_profile(GPU)]
    qualifies = xnnpack_unsupported(teacher)
    rows = []
    for name, recipe in TECHNIQUES.items():
        variants = [(name, recipe)]
        if recipe.quantization == "none":
            variants.append(
                (f"{name} + int8", Recipe(**{**recipe.to_dict(), "quantization": "int8"}))
            )
        for label, r in variants:
            if r.prune_mode == "xnnpack" and qualifies is not None:
                rows.append({"technique": label, "note": f"not applicable: {qualifies}"})
                continue
            tflite, stages, _ = build_candidate(teacher, r, ctx)
            m = evaluate(tflite, task.data.x_val, task.data.y_val, profiles, task.metric)
            rows.append(
                {
                    "technique": label,
                    "accuracy": m.quality,
                    "gzip_bytes": m.gzip_bytes,
                    LAT: m.latency["cpu-host"].median_ms,
                    f"sim_ms_{GPU}": m.latency[GPU].median_ms,
                    "note": _note(stages),
                }
            )
    table = pd.DataFrame(rows)
    base = table.iloc[0]
    table["size_vs_base"] = table["gzip_bytes"] / base["gzip_bytes"]
    table["speedup_vs_base"] = base[LAT] / table[LAT]
    table["sim_speedup_gpu"] = base[f"sim_ms_{GPU}"] / table[f"sim_ms_{GPU}"]
    return table


def _note(stages: list) -> str:
    facts = {s.stage: s.facts for s in stages}
    parts = []
    if "prune" in facts:
        p = facts["prune"]
        parts.append(f"sparsity {p['sparsity']:.2f}")
        if p.get("xnnpack_pruned_layers"):
            parts.append(f"{len(p['xnnpack_pruned_layers'])} 1x1 convs pruned")
        if p.get("2:4_layers"):
            parts.append(f"{len(p['2:4_layers'])} layers 2:4")
        if p.get("left_dense"):
            parts.append(f"{len(p['left_dense'])} layers left dense")
    if "channels" in facts:
        ch = facts["channels"]
        parts.append(f"params {ch['params_before']} -> {ch['params_after']}")
    if facts.get("convert", {}).get("float_layers"):
        parts.append(f"float layers {', '.join(facts['convert']['float_layers'])}")
    if "lowrank" in facts:
        lr = facts["lowrank"]
        parts.append(f"params {lr['params_before']} -> {lr['params_after']}")
    return ", ".join(parts)


def fastest_at(front: pd.DataFrame, accuracy: float) -> float:
    ok = front[front["accuracy"] >= accuracy]
    return float(ok[LAT].min()) if len(ok) else float("nan")


def compare_searches(task: Task, root: Path, trials: int) -> None:
    fronts = {}
    for space in ("default", "techniques"):
        start = time.perf_counter()
        result = autocompress.search(
            task=task, space=space, trials=trials, workers=2, out=root / f"{task.name}-{space}"
        )
        fronts[space] = result.front
        seconds = time.perf_counter() - start
        print(f"  {space} space: {len(result.front)} front models, {seconds:.0f} s")
    levels = sorted(set(fronts["default"]["accuracy"]), reverse=True)
    rows = []
    for level in levels:
        a, b = fastest_at(fronts["default"], level), fastest_at(fronts["techniques"], level)
        rows.append({"accuracy >=": level, "default ms": a, "techniques ms": b, "ratio": a / b})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    better = int((table["ratio"] > 1.0).sum())
    worse = int((table["ratio"] < 1.0).sum())
    print(
        f"  techniques front faster at {better} of {len(table)} accuracy levels, slower at "
        f"{worse}; median ratio {table['ratio'].median():.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--tasks", nargs="+", default=["demo", "resnet"])
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the converter's calibration notices
    root = Path(tempfile.mkdtemp(prefix="autocompress-tech-"))
    try:
        for name in args.tasks:
            task = demo_task(cache_dir=root) if name == "demo" else resnet_task()
            print(f"\n== {task.name}: each technique alone and with int8 (cpu-host, measured) ==")
            table = one_by_one(task)
            with pd.option_context("display.width", 200, "display.max_colwidth", 70):
                print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            if not args.skip_search:
                print(f"\n== {task.name}: search fronts, {args.trials} trials each ==")
                compare_searches(task, root, args.trials)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
