"""Peak memory of a search on image folders of two sizes (issue 27, item 4): streamed in batches,
the driver's and a worker's peak do not grow with the number of images.

Run: ``.venv/bin/python benchmarks/stream_memory.py [--small 1500] [--factor 4] [--size 96]
[--out /tmp/stream_memory]``. Writes two image folders (``small`` and ``factor`` x ``small``
training images of ``size`` x ``size`` x 3 PNG, a fifth as many validation images; the small
one has more than 256 validation images, so that both fill the 256-sample prediction batches
and what differs is the number of batches, not their size), a small CNN
task for each, and runs each search in a fresh process (3 trials, one worker: the fp32 file,
50 % pruning + int8 with one fine-tuning epoch, a distilled student with one epoch). Prints per
folder the peak resident memory of the driver process and of the worker process (each the
``ru_maxrss`` of that process, read by the worker at the end of every trial), beside what the
decoded training and validation images alone would take in memory (float32).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import autocompress  # noqa: F401  (sets the Keras-2 switch before TensorFlow is imported)

SPACE = (
    "student_width: [1.0, 0.5]\nsparsity: [0.0, 0.5]\nquantization: [none, int8]\n"
    "finetune_epochs: 1\ndistill_epochs: 1\n"
)
ENQUEUE = "- {sparsity: 0.5, quantization: int8}\n- {student_width: 0.5}\n"


def make_folder(root: Path, n_train: int, size: int) -> None:
    """Three classes of noisy shapes (discs, squares, crosses) as PNG files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", max(n_train // 5, 3))):
        for k, kind in enumerate(("disc", "square", "cross")):
            folder = root / "images" / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n // 3):
                cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, size / 5
                if k == 0:
                    on = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
                elif k == 1:
                    on = (abs(yy - cy) < r) & (abs(xx - cx) < r)
                else:
                    on = (abs(yy - cy) < r / 3) | (abs(xx - cx) < r / 3)
                img = rng.normal(60, 20, (size, size, 3)) + on[..., None] * rng.uniform(80, 160, 3)
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


def make_task(root: Path, size: int) -> None:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            L.Rescaling(1 / 255),
            L.Conv2D(16, 3, strides=2, activation="relu"),
            L.Conv2D(32, 3, strides=2, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(root / "model.keras")
    (root / "task.yaml").write_text("model: model.keras\ndata: images\n")
    (root / "space.yaml").write_text(SPACE)
    (root / "enqueue.yaml").write_text(ENQUEUE)


def measured_trial(ctx, request):  # type: ignore[no-untyped-def]
    """The real trial, then this worker process's peak memory so far (kilobytes on Linux)."""
    from autocompress.study.objective import run_trial

    outcome = run_trial(ctx, request)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(Path(ctx.task.source).parent / "worker_peaks.txt", "a") as f:
        f.write(f"{request.number} {peak}\n")
    return outcome


def run_one(root: Path) -> None:
    """One search in this process (called in a fresh one per folder)."""
    from autocompress import search

    start = time.perf_counter()
    search(
        task=root / "task.yaml",
        space=root / "space.yaml",
        enqueue=root / "enqueue.yaml",
        trials=3,
        workers=1,
        out=root / "run",
        warm_start=False,
        trial_fn=measured_trial,
        profiles=["pixel2-cpu"],
    )
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (root / "driver_peak.json").write_text(
        json.dumps({"driver_kb": driver, "seconds": time.perf_counter() - start})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1500)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--out", type=Path, default=Path("/tmp/stream_memory"))
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        run_one(args.one)
        return
    rows = []
    for n in (args.small, args.small * args.factor):
        root = args.out / f"train_{n}"
        if not (root / "task.yaml").is_file():
            make_folder(root, n, args.size)
            make_task(root, args.size)
        for stale in ("worker_peaks.txt", "driver_peak.json"):
            (root / stale).unlink(missing_ok=True)
        subprocess.run([sys.executable, __file__, "--one", str(root)], check=True)
        driver = json.loads((root / "driver_peak.json").read_text())
        peaks = [
            int(line.split()[1])
            for line in (root / "worker_peaks.txt").read_text().split("\n")
            if line
        ]
        images = sum(1 for _ in (root / "images").rglob("*.png"))
        decoded = images * args.size * args.size * 3 * 4
        rows.append((n, images, decoded, driver["driver_kb"], max(peaks), driver["seconds"]))
    print(f"{'train images':>12} {'all images':>10} {'decoded (MB)':>12} {'driver peak (MB)':>16} "
          f"{'worker peak (MB)':>16} {'search (s)':>10}")  # fmt: skip
    for n, images, decoded, drv, wrk, secs in rows:
        print(f"{n:>12} {images:>10} {decoded / 2**20:>12.1f} {drv / 1024:>16.1f} "
              f"{wrk / 1024:>16.1f} {secs:>10.0f}")  # fmt: skip
    (a, b) = rows
    print(
        f"images x{b[1] / a[1]:.2f}: driver peak x{b[3] / a[3]:.3f}, worker peak x{b[4] / a[4]:.3f}"
    )


if __name__ == "__main__":
    main()
