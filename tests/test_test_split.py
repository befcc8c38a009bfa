"""A test split no choice was tuned on: measured for every candidate, printed beside validation
accuracy, and never seen by the sampler, early stop or constraints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.errors import InputError
from autocompress.task import Task, load_data
from tests.test_cli import run_cli, search_cli


def write_split_task(root: Path, task: Task) -> Path:
    d = task.data
    x_test, y_test = d.x_train[:150], d.y_train[:150]  # any labelled data the search never reads
    np.savez(
        root / "data.npz",
        x_train=d.x_train[150:],
        y_train=d.y_train[150:],
        x_val=d.x_val,
        y_val=d.y_val,
        x_test=x_test,
        y_test=y_test,
    )
    task.teacher.build().save(root / "model.keras")
    (root / "task.yaml").write_text("name: split\nmodel: model.keras\ndata: data.npz\n")
    return root / "task.yaml"


def test_half_a_test_split_is_one_line(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "d.npz",
        x_train=np.zeros((4, 2)),
        y_train=np.zeros(4, "int64"),
        x_val=np.zeros((4, 2)),
        y_val=np.zeros(4, "int64"),
        x_test=np.zeros((4, 2)),
    )
    with pytest.raises(InputError, match="has 'x_test' but not 'y_test'"):
        load_data(tmp_path / "d.npz")


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory, tiny_task: Task, smoke_space_file: Path):
    root = tmp_path_factory.mktemp("split")
    task = write_split_task(root, tiny_task)
    out = root / "run"
    proc = search_cli(task, out, space=smoke_space_file, trials=3)
    assert proc.returncode == 0, proc.stderr
    return out


def test_every_candidate_has_test_accuracy_the_study_never_sees(split_run: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from autocompress.run.rundir import STUDY_NAME, RunDir

    trials = pd.read_csv(split_run / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert done["test_accuracy"].between(0, 1).all()
    storage = JournalStorage(JournalFileBackend(str(RunDir(split_run).journal)))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    for t in study.trials:
        if t.values:
            row = done[done["trial"] == t.number].iloc[0]
            assert t.values[0] == pytest.approx(row["accuracy"])  # validation drives the study
    # the two splits are different data: somewhere their accuracies differ
    assert (done["test_accuracy"] != done["accuracy"]).any()
    audit = json.loads(next((split_run / "models").glob("*.audit.json")).read_text())
    assert audit["measurement"]["accuracy_split"] == "validation"
    assert 0 <= audit["measurement"]["test_accuracy"] <= 1


def test_show_and_pick_print_both_accuracies(split_run: Path) -> None:
    for args in (("show", str(split_run)), ("pick", str(split_run))):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        header = proc.stdout.splitlines()[1 if args[0] == "show" else 0]
        assert "val_accuracy" in header and "test_accuracy" in header


def test_without_a_test_split_accuracy_is_called_validation(first_run) -> None:
    _, out, *_ = first_run
    proc = run_cli("show", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "val_accuracy" in proc.stdout and "test_accuracy" not in proc.stdout


def test_demo_ships_a_test_split() -> None:
    from autocompress.demo import demo_data

    d = demo_data()
    assert d.has_test
    sizes = [len(d.y_train), len(d.y_val), len(d.y_test)]
    assert sum(sizes) == 1797 and min(sizes) > 200
