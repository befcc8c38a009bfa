"""What each stage of a candidate costs on a realistic task (issue 18's stage-cost table).

Run: ``.venv/bin/python benchmarks/stage_costs.py TASKS/mobilenet_v2/task.yaml
[--distill-epochs 2] [--finetune-epochs 1] [--skip width]`` (``TASKS`` is
``~/.cache/autocompress-tasks`` after ``benchmarks/tasks/build.py``).

Prints the task's fp32 facts (validation and test accuracy of the float ``.tflite`` file, size,
cpu-host latency) and, for one recipe per technique, built from the teacher with one worker and
nothing else running: the seconds of every stage (distill, channels, low-rank, prune, cluster,
QAT, convert) as the stage records hold them, then the LiteRT evaluation of the validation set
and the cpu-host latency measurement, and the candidate's validation accuracy.
"""

from __future__ import annotations

import argparse
import time

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)
from autocompress.evaluation.deployed import predict, quality
from autocompress.hardware import latency, load_profile
from autocompress.metrics import ACCURACY
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate
from autocompress.task import load_task

STAGES = ("distill", "channels", "lowrank", "prune", "cluster", "qat", "convert")


def recipes(distill: int, finetune: int) -> dict[str, Recipe]:
    common = {"distill_epochs": distill, "finetune_epochs": finetune}
    return {
        "fp32 (none)": Recipe(**common),
        "int8": Recipe(quantization="int8", **common),
        "width 0.5 + int8": Recipe(student_width=0.5, quantization="int8", **common),
        "channels 0.25 + int8": Recipe(channel_fraction=0.25, quantization="int8", **common),
        "low-rank 0.8 + int8": Recipe(rank_energy=0.8, quantization="int8", **common),
        "sparsity 0.5 + int8": Recipe(sparsity=0.5, quantization="int8", **common),
        "16 clusters + int8": Recipe(clusters=16, quantization="int8", **common),
        "QAT": Recipe(quantization="qat", **common),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument(
        "--skip", action="append", default=[], help="leave out recipes whose name contains this"
    )
    args = parser.parse_args()
    task = load_task(args.task)
    data = task.data
    teacher = task.teacher.build()
    ctx = BuildContext(data=data, teacher=teacher)
    cpu = load_profile("cpu-host")
    header = f"{'recipe':22s}" + "".join(f"{s:>9s}" for s in STAGES)
    print(f"task {task.name}: {len(data.y_train)} train / {len(data.y_val)} val images")
    print(header + f"{'evaluate':>9s}{'measure':>9s}{'val_acc':>9s}{'size_kB':>9s}{'cpu_ms':>8s}")
    for name, recipe in recipes(args.distill_epochs, args.finetune_epochs).items():
        if any(s in name for s in args.skip):
            continue
        tflite, records, _ = build_candidate(teacher, recipe, ctx)
        seconds = {r.stage: r.seconds for r in records}
        start = time.perf_counter()
        scores = predict(tflite, data.x_val)
        evaluate_s = time.perf_counter() - start
        start = time.perf_counter()
        lat = latency(tflite, cpu)
        measure_s = time.perf_counter() - start
        acc = float((scores.argmax(-1) == data.y_val).mean())
        cells = "".join(f"{seconds[s]:9.1f}" if s in seconds else f"{'-':>9s}" for s in STAGES)
        print(
            f"{name:22s}{cells}{evaluate_s:9.1f}{measure_s:9.1f}{acc:9.4f}"
            f"{len(tflite) / 1024:9.0f}{lat.median_ms:8.3f}",
            flush=True,
        )
        if name.startswith("fp32") and data.has_test:
            assert data.x_test is not None and data.y_test is not None
            test = quality(tflite, data.x_test, data.y_test, ACCURACY)
            print(f"{'':22s}fp32 test accuracy {test:.4f}")


if __name__ == "__main__":
    main()
