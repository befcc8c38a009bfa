"""The finishing run (issue 39, item 5): one trial rebuilt with longer training, each training
keeping its best epoch, measured as every candidate, marked in the run, seen by every command,
and resumed after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tf_keras as keras

from tests.test_cli import assert_clean_error, cli, search_here

SPACE = (
    "student_width: [0.5]\nsparsity: [0.5]\nclusters: [0]\nquantization: [none]\n"
    "distill_epochs: 1\nfinetune_epochs: 1\n"
)


@pytest.fixture()
def searched(ray_cluster, task_files: Path, tmp_path: Path) -> Path:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "run"
    proc = search_here(task_files / "task.yaml", out, space=space, trials=1)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "search_args.json").read_text())["task"] == str(
        (task_files / "task.yaml").resolve()
    )
    return out


def test_best_epoch_is_kept_and_training_stops_after_the_patience(monkeypatch) -> None:
    """Validation 0.5, 0.7, 0.6, 0.55: stop after two epochs without a better one, with the
    weights of the 0.7 epoch."""
    import autocompress.stages.training as helpers
    from autocompress.stages import BuildContext
    from tests.conftest import tiny_data

    scores = iter([0.5, 0.7, 0.6, 0.55])
    monkeypatch.setattr(helpers, "val_quality", lambda model, ctx: next(scores))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = helpers.BestEpoch(model, BuildContext(data=tiny_data(), teacher=model, patience=2))
    best.set_model(model)
    kept = None
    for epoch in range(4):
        model.set_weights([np.full((2, 1), epoch, "float32"), np.zeros(1, "float32")])
        kept = model.get_weights() if epoch == 1 else kept
        best.on_epoch_end(epoch)
    assert best.best_epoch == 1 and model.stop_training
    best.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], kept[0])
    facts = helpers.Fit.since(0.0, best).facts()  # what the stage records: 1-based
    assert (facts["best_epoch"], facts["epochs_run"]) == (2, 4)


def test_finish_trains_longer_and_every_command_sees_it(searched: Path, tmp_path: Path) -> None:
    chosen = 0
    proc = cli("finish", str(searched), "--trial", str(chosen))
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(searched / "trials.csv")
    done = trials[trials["finished_from"] == chosen]
    assert len(done) == 1 and done["state"].iloc[0] == "COMPLETE"
    row = done.iloc[0]
    assert (row["distill_epochs"], row["finetune_epochs"]) == (3, 3)
    assert row["accuracy"] > 0.5 and row["size_bytes"] > 0
    audit = json.loads(
        (searched / "models" / f"trial_{int(row['trial']):04d}.audit.json").read_text()
    )
    stages = {s["stage"]: s for s in audit["stages"]}
    assert stages["distill"]["facts"].get("continued_from") == 1  # the search's student, cached
    # which epoch each training kept, of how many it ran (2 more distillation epochs here)
    assert (
        1
        <= stages["distill"]["facts"]["best_epoch"]
        <= stages["distill"]["facts"]["epochs_run"]
        <= 2
    )
    assert f"trial {int(row['trial'])}" in proc.stdout
    shown = cli("show", str(searched), "--all")
    assert str(int(row["trial"])) in shown.stdout
    out = tmp_path / "finished.tflite"
    assert (
        cli(
            "export", str(searched), "--trial", str(int(row["trial"])), "--out", str(out)
        ).returncode
        == 0
    )
    assert out.stat().st_size == row["size_bytes"]
    again = cli("finish", str(searched), "--trial", str(chosen))  # finished already: no build
    assert again.returncode == 0 and len(pd.read_csv(searched / "trials.csv")) == len(trials)
    assert f"trial {int(row['trial'])}" in again.stdout
    picked = cli("pick", str(searched), "--finish")  # the choice, finished, is the answer
    assert picked.returncode == 0, picked.stderr
    newest = int(pd.read_csv(searched / "trials.csv")["trial"].max())
    assert f"finished (trial {newest}" in picked.stdout


def test_finish_refuses_what_it_cannot_finish(searched: Path, tmp_path: Path) -> None:
    assert_clean_error(cli("finish", str(searched), "--trial", "99"), "--trial", "no completed")
    space = tmp_path / "ptq.yaml"
    space.write_text("quantization: [int8]\n")
    args = json.loads((searched / "search_args.json").read_text())
    ptq = tmp_path / "ptq"
    assert search_here(Path(args["task"]), ptq, space=space, trials=1).returncode == 0
    assert_clean_error(cli("finish", str(ptq), "--trial", "0"), "trains nothing")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert_clean_error(cli("finish", str(bare), "--trial", "0"), "search_args.json")


def test_a_killed_finish_resumes(searched: Path) -> None:
    """Killed while it builds (kill -9), the finishing run started again builds the trial: the
    interrupted one is a FAIL saying so, the finished one COMPLETE."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "autocompress", "finish", str(searched), "--trial", "0",
           "--multiplier", "30", "--patience", "40"]  # fmt: skip
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = JournalStorage(JournalFileBackend(str(searched / "study.journal")))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            study = optuna.load_study(study_name="autocompress", storage=storage)
            running = [t for t in study.trials if t.state.name == "RUNNING"]
            if running and "finished_from" in running[0].user_attrs:
                break
            assert child.poll() is None, "the finishing run ended before it could be killed"
            time.sleep(0.5)
        time.sleep(2.0)
        assert child.poll() is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    proc = cli("finish", str(searched), "--trial", "0", "--multiplier", "30", "--patience", "1")
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(searched / "trials.csv")
    mine = trials[trials["finished_from"] == 0]
    assert set(mine["state"]) == {"FAIL", "COMPLETE"}
    assert "interrupted" in mine.loc[mine["state"] == "FAIL", "error"].iloc[0]
