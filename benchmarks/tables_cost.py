"""What rewriting ``trials.csv`` / ``pareto.csv`` after every tell costs at scale (issue 17).

Run: ``.venv/bin/python benchmarks/tables_cost.py [--sizes 100 1000 10000]``

The driver rebuilds both tables from the whole study after every finished trial. This builds an
in-memory Optuna study of N complete trials carrying records of the real shape (two profiles,
five stages with per-layer facts, an audit), then times one rebuild (``trials_frame`` +
``front_frame`` + writing both CSV files) and reads the study back as the driver does. The
driver's share of a trial is that time against a trial's build time (minutes on a realistic
task): printed as the trials per second one driver could record.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from autocompress.recipe import Recipe
from autocompress.records import Audit, LatencyResult, Measurement, StageRecord, TrialRecord
from autocompress.run.tables import front_frame, trials_frame

LAYERS = {f"block_{i}_conv": 0.5 for i in range(50)}  # a MobileNet-sized per-layer fact


def record(rng: np.random.Generator) -> dict:
    lat = {
        p: LatencyResult(p, float(rng.uniform(0.1, 3)), float(rng.uniform(0.1, 3)), 50, "litert")
        for p in ("cpu-host", "edgetpu-usb")
    }
    m = Measurement(
        quality=float(rng.uniform(0.1, 0.95)),
        size_bytes=int(rng.integers(1e5, 2e6)),
        gzip_bytes=int(rng.integers(1e5, 2e6)),
        latency=lat,
        tensor_dtypes={"int8": 120, "float32": 4, "int32": 60},
        test_quality=float(rng.uniform(0.1, 0.95)),
    )
    stages = [
        StageRecord(s, 10.0, {"sparsity_per_layer": LAYERS, "keras_val_accuracy": 0.8})
        for s in ("distill", "prune", "cluster", "qat", "convert")
    ]
    audit = Audit(
        noise_sigma=0.1,
        noise_quality=0.8,
        teacher_noise_quality=0.85,
        per_class_accuracy={str(c): 0.8 for c in range(10)},
        teacher_per_class_accuracy={str(c): 0.9 for c in range(10)},
        max_class_drop=0.1,
        worst_class="3",
        agreement=0.9,
    )
    rec = Recipe(sparsity=float(rng.choice([0.0, 0.3, 0.6])), quantization="int8")
    return TrialRecord(rec, stages, m, 100.0, audit).to_dict()


def study_of(n: int) -> optuna.Study:
    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    trials = []
    for _ in range(n):
        r = record(rng)
        m = r["measurement"]
        values = [m["accuracy"], m["latency"]["cpu-host"]["median_ms"], m["gzip_bytes"]]
        trials.append(
            optuna.trial.create_trial(
                values=values,
                params={"sparsity": r["recipe"]["sparsity"]},
                distributions={"sparsity": FloatDistribution(0.0, 0.9, step=0.3)},
                user_attrs={"record": r, "recipe": r["recipe"], "model_path": "models/x.tflite"},
            )
        )
    study.add_trials(trials)
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{'trials':>8s}{'rebuild_s':>11s}{'records/s one driver can keep up with':>40s}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            study = study_of(n)
            start = time.perf_counter()
            table = trials_frame(study)
            front = front_frame(table, "cpu-host")
            (Path(tmp) / "trials.csv").write_text(table.to_csv(index=False))
            (Path(tmp) / "pareto.csv").write_text(front.to_csv(index=False))
            seconds = time.perf_counter() - start
            print(f"{n:8d}{seconds:11.2f}{1 / seconds:40.2f}", flush=True)


if __name__ == "__main__":
    main()
