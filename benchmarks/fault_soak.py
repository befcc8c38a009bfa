"""Fault soak: a study that loses workers and its driver, and must lose no completed trial.

Run: ``.venv/bin/python benchmarks/fault_soak.py [--trials 30] [--kill-every 3]``

A real search (the CLI, in its own process group) runs on a small digits task. Every
``--kill-every`` completed trials one Ray worker that is running a trial is killed with SIGKILL;
at one third and two thirds of the budget the whole driver (with the Ray cluster it started) is
killed with SIGKILL and the same command is started again. At the end it prints the trials
completed, the trials lost (completed before a kill, missing or changed after it; goal 0), the
trials failed by the injection, and whether ``pareto.csv`` equals the front recomputed from
``trials.csv``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import autocompress  # noqa: F401  (Keras-2 switch)
from autocompress.run.tables import front_frame


def write_task(root: Path) -> Path:
    import tf_keras as keras
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype("float32") / 16.0)[..., None]
    y = d.target.astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=8, verbose=0)
    model.save(root / "model.keras")
    np.savez(root / "data.npz", x_train=x[:1400], y_train=y[:1400], x_val=x[1400:], y_val=y[1400:])
    (root / "task.yaml").write_text("model: model.keras\ndata: data.npz\n")
    return root / "task.yaml"


def completed(out: Path) -> pd.DataFrame:
    try:
        t = pd.read_csv(out / "trials.csv")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=["trial", "state"])
    return t[t["state"] == "COMPLETE"]


def trial_workers() -> list[int]:
    """PIDs of Ray worker processes that are running a trial (their title names the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "ray::run_trial" in cmdline:
                pids.append(int(entry.name))
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--kill-every", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    root = Path(tempfile.mkdtemp(prefix="autocompress-soak-"))
    task = write_task(root)
    out = root / "run"
    cmd = [
        sys.executable,
        "-m",
        "autocompress",
        "search",
        "--task",
        str(task),
        "--space",
        "smoke",
        "--trials",
        str(args.trials),
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    driver_kills = [args.trials // 3, 2 * args.trials // 3]
    snapshots: list[pd.DataFrame] = []
    worker_kills = 0
    start = time.perf_counter()
    last_kill_at = 0
    while True:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        while proc.poll() is None:
            time.sleep(0.5)
            done = len(completed(out))
            if done - last_kill_at >= args.kill_every:
                pids = trial_workers()
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    worker_kills += 1
                last_kill_at = done
            if driver_kills and done >= driver_kills[0]:
                driver_kills.pop(0)
                snapshots.append(completed(out))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                print(f"killed the driver after {done} completed trials")
                break
        else:
            if proc.returncode != 0:
                print(f"search exited with {proc.returncode}")
            break
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of its Ray cluster still alive
        except ProcessLookupError:
            pass
    trials = pd.read_csv(out / "trials.csv")
    final = trials.set_index("trial")
    lost = 0
    for snap in snapshots:
        for _, row in snap.iterrows():
            n = row["trial"]
            if (
                n not in final.index
                or final.loc[n, "state"] != "COMPLETE"
                or final.loc[n, "accuracy"] != row["accuracy"]
                or not (out / row["model_path"]).is_file()
            ):
                lost += 1
    failed = trials[trials["state"] == "FAIL"]
    injected = failed["error"].fillna("").str.contains("Worker|interrupted|died", regex=True)
    recomputed = set(front_frame(trials, "cpu-host")["trial"])
    written = set(pd.read_csv(out / "pareto.csv")["trial"])
    print(
        f"trials finished: {len(trials)} of {args.trials} "
        f"(numbers 0..{trials['trial'].max()}, duplicates: {trials['trial'].duplicated().sum()})"
    )
    print(f"trials completed: {int((trials['state'] == 'COMPLETE').sum())}")
    print(f"trials lost: {lost}")
    print(f"workers killed: {worker_kills}; driver kills: {len(snapshots)}")
    print(
        f"trials failed by injection: {int(injected.sum())} (other failures: "
        f"{int((~injected).sum())})"
    )
    print(f"front equals the front recomputed from trials.csv: {recomputed == written}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
