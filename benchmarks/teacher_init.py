"""Students from the teacher against students from scratch, and fine-tuning with the teacher
against fine-tuning on labels alone (issue 39, items 2 and 3), on a realistic task.

    .venv/bin/python benchmarks/teacher_init.py TASKS/mobilenet_v2/task.yaml [--epochs 4]
        [--widths 0.75 0.5 0.25] [--inits teacher teacher-l1 scratch] [--lr LR]
        [--finetune-epochs 2] [--recipes "channels 0.25" ...] [--skip students|finetune]

Students: for each width and init (``teacher``: the teacher's most important channels, as
channel pruning chooses them, by how much they vary over training inputs; ``teacher-l1``: by
their kernels' L1 norms, as before 2026-12-07; ``scratch``), the Keras validation accuracy
before training and after each distillation epoch, and the seconds the epochs took.
Fine-tuning: for one recipe per fine-tuning technique, the Keras validation accuracy after
``--finetune-epochs`` with ``finetune_loss: task`` and ``distill``, side by side. One worker,
nothing else running; the teacher's own validation accuracy is printed first (the figure both
tables are read against), and beside it the teacher's with its BatchNormalization statistics
estimated again, as every student's and fine-tuned model's are (stages/batchnorm.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from functools import partial

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext
from autocompress.stages.batchnorm import reestimate
from autocompress.stages.build import default_stages
from autocompress.stages.channels import importance_of
from autocompress.stages.distill import Distill
from autocompress.stages.training import clone_with_weights, val_quality
from autocompress.task import load_task

FINETUNED = {
    "channels 0.25": Recipe(channel_fraction=0.25),
    "channels 0.5": Recipe(channel_fraction=0.5),
    "low-rank 0.8": Recipe(rank_energy=0.8),
    "sparsity 0.5": Recipe(sparsity=0.5),
    "sparsity 0.8": Recipe(sparsity=0.8),
    "16 clusters": Recipe(clusters=16),
    "QAT": Recipe(quantization="qat"),
}


def _note(curve: list[float], student: object, ctx: BuildContext, epoch: int) -> None:
    curve.append(val_quality(student, ctx))  # type: ignore[arg-type]


def students(
    ctx: BuildContext, widths: list[float], epochs: int, inits: list[str], lr: float | None
) -> None:
    print(f"\nstudents: validation accuracy after each of {epochs} distillation epochs")
    head = "".join(f"{f'ep{e}':>8s}" for e in range(epochs + 1))
    print(f"{'width':>6s} {'init':>10s} {'params':>8s}{head}{'seconds':>9s}")
    stage = Distill() if lr is None else Distill(lr=lr)
    print(f"(Adam {stage.lr:g})")
    importance = importance_of(ctx.teacher, ctx)  # the stage's choice of the teacher's channels
    for width in widths:
        for init in inits:
            recipe = Recipe(
                student_width=width, student_init=init.split("-")[0], distill_epochs=epochs
            )
            by = importance if init == "teacher" else None
            student, _ = stage.student(ctx.teacher, recipe, ctx.seed, by)
            curve = [val_quality(student, ctx)]
            start = time.perf_counter()
            stage.train(student, ctx, epochs, partial(_note, curve, student, ctx))
            seconds = time.perf_counter() - start
            cells = "".join(f"{a:8.4f}" for a in curve)
            params = student.count_params()
            print(f"{width:6.2f} {init:>10s} {params:8d}{cells}{seconds:9.0f}", flush=True)


def finetuning(ctx: BuildContext, epochs: int, names: list[str]) -> None:
    print(f"\nfine-tuning: validation accuracy after {epochs} epochs, by what it learns from")
    print(f"{'recipe':>14s} {'task':>8s} {'distill':>8s} {'s_task':>7s} {'s_distill':>9s}")
    for name in names:
        recipe = FINETUNED[name]
        (stage,) = [s for s in default_stages() if s.applies(recipe)]
        cells = {}
        for loss in ("task", "distill"):
            r = dataclasses.replace(recipe, finetune_epochs=epochs, finetune_loss=loss)
            start = time.perf_counter()
            model, _ = stage.apply(ctx.teacher, r, ctx)
            seconds = time.perf_counter() - start
            cells[loss] = (val_quality(model, ctx), seconds)
        (a_t, s_t), (a_d, s_d) = cells["task"], cells["distill"]
        print(f"{name:>14s} {a_t:8.4f} {a_d:8.4f} {s_t:7.0f} {s_d:9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.75, 0.5, 0.25])
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--skip", choices=("students", "finetune"), default=None)
    parser.add_argument(
        "--inits", nargs="+", default=["teacher", "teacher-l1", "scratch"],
        choices=["teacher", "teacher-l1", "scratch"],
        help="teacher: its channels by activation (the stage's); teacher-l1: by kernel L1 norm",
    )  # fmt: skip
    parser.add_argument("--lr", type=float, default=None, help="distillation's (default: its own)")
    parser.add_argument(
        "--recipes", nargs="+", default=list(FINETUNED), choices=list(FINETUNED),
        help="the fine-tuning table's rows (default: all)",
    )  # fmt: skip
    args = parser.parse_args()
    task = load_task(args.task)
    teacher = task.teacher.build()
    ctx = BuildContext(data=task.data, teacher=teacher, metric=task.metric)
    settled = clone_with_weights(teacher)
    reestimate(settled, ctx)
    print(
        f"task {task.name}: teacher validation accuracy {val_quality(teacher, ctx):.4f} "
        f"({val_quality(settled, ctx):.4f} with its BatchNormalization statistics estimated "
        "again, as every student's are)"
    )
    if args.skip != "students":
        students(ctx, args.widths, args.epochs, args.inits, args.lr)
    if args.skip != "finetune":
        finetuning(ctx, args.finetune_epochs, args.recipes)


if __name__ == "__main__":
    main()
