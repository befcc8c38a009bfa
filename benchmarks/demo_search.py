"""Demo search benchmark: the front against the fp32 baseline, and throughput with 1 vs 2 workers.

Run: ``.venv/bin/python benchmarks/demo_search.py [--trials 40] [--throughput-trials 12]
[--keep runs/demo]``.
Everything printed is measured in this run. The 1- and 2-worker runs use the random sampler with
the same seed, so they build the same recipes; each starts its own local Ray cluster.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

import autocompress
from autocompress.demo import TEACHER_FILE, demo_task


def timed_search(out: Path, **kwargs) -> tuple[autocompress.SearchResult, float]:
    start = time.perf_counter()
    result = autocompress.search(out=out, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40, help="trials of the demo search")
    parser.add_argument("--throughput-trials", type=int, default=12)
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy the demo search's run directory here"
    )
    args = parser.parse_args()
    wall_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="autocompress-bench-"))
    try:
        t0 = time.perf_counter()
        task = demo_task(cache_dir=root)
        print(f"teacher trained in {time.perf_counter() - t0:.1f} s")

        rates = {}
        for workers in (1, 2):
            out = root / f"throughput-{workers}"
            out.mkdir()
            shutil.copy(root / TEACHER_FILE, out / TEACHER_FILE)
            result, seconds = timed_search(
                out,
                task=task,
                trials=args.throughput_trials,
                workers=workers,
                sampler="random",
                seed=0,
            )
            built = int(result.trials["reused_from"].isna().sum())
            rates[workers] = (args.throughput_trials / seconds * 60, seconds, built)
        print(f"\nthroughput ({args.throughput_trials} trials, random sampler, same recipes):")
        for workers, (rate, seconds, built) in rates.items():
            print(
                f"  {workers} worker(s): {rate:5.2f} trials/min  ({seconds:.0f} s, {built} built)"
            )
        print(f"  speed-up 2 vs 1 workers: {rates[2][0] / rates[1][0]:.2f}x")

        out = root / "demo"
        result, seconds = timed_search(out, task=task, trials=args.trials, workers=2)
        trials = result.trials
        base = trials.iloc[0]
        lat = "latency_ms_cpu-host"
        print(
            f"\ndemo search: {args.trials} trials, 2 workers, {seconds:.0f} s "
            f"({args.trials / seconds * 60:.2f} trials/min), "
            f"{int((trials['state'] == 'FAIL').sum())} failed"
        )
        rows = [
            {
                "model": "fp32 baseline (trial 0)",
                "accuracy": base["accuracy"],
                "test_acc": base.get("test_accuracy"),
                "size_bytes": base["size_bytes"],
                "gzip_bytes": base["gzip_bytes"],
                lat: base[lat],
                "gzip_ratio": 1.0,
                "speed_up": 1.0,
            }
        ]
        for _, row in result.front.iterrows():
            rows.append(
                {
                    "model": f"trial {int(row['trial'])}: w={row['student_width']} "
                    f"s={row['sparsity']:.1f} c={int(row['clusters'])} {row['quantization']}",
                    "accuracy": row["accuracy"],
                    "test_acc": row.get("test_accuracy"),
                    "size_bytes": row["size_bytes"],
                    "gzip_bytes": row["gzip_bytes"],
                    lat: row[lat],
                    "gzip_ratio": row["gzip_bytes"] / base["gzip_bytes"],
                    "speed_up": base[lat] / row[lat],
                }
            )
        table = pd.DataFrame(rows)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        small = table[
            (table["gzip_ratio"] <= 0.25) & (table["accuracy"] >= base["accuracy"] - 0.01)
        ]
        print(
            f"\nfront models with gzip <= 25 % of baseline and <= 1 point accuracy loss: "
            f"{len(small)}"
        )
        if args.keep is not None:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
            print(f"demo run kept in {args.keep}")
        print(f"wall time of this benchmark: {time.perf_counter() - wall_start:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
