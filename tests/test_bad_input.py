"""Every kind of bad input the search accepts ends the same way: exit code 2, one line on stderr
naming the file (or option) and the problem, and nothing in an existing run directory changed.

Each case points ``search`` at a copy of a finished run, so "nothing written over" is checked
against real results (journal, CSVs, models).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autocompress.cli import main
from tests.conftest import digest

Case = Callable[[Path, Path], tuple[list[str], list[str]]]


def _arrays(task_files: Path) -> dict[str, np.ndarray]:
    with np.load(task_files / "data.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _task(root: Path, model: Path | str, data: Path | str) -> str:
    (root / "task.yaml").write_text(f"model: {model}\ndata: {data}\n")
    return str(root / "task.yaml")


def _data_case(**change: np.ndarray) -> Case:
    def make(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
        arrays = _arrays(task_files)
        arrays.update(change)
        np.savez(root / "d.npz", **arrays)
        task = _task(root, task_files / "model.keras", root / "d.npz")
        return ["--task", task], ["d.npz"]

    return make


def _space_case(text: str, *fragments: str) -> Case:
    def make(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
        (root / "space.yaml").write_text(text)
        args = ["--task", str(task_files / "task.yaml"), "--space", str(root / "space.yaml")]
        return args, ["space.yaml", *fragments]

    return make


def _profile_case(text: str, *fragments: str) -> Case:
    def make(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
        (root / "mine.yaml").write_text(text)
        args = ["--task", str(task_files / "task.yaml"), "--profile", str(root / "mine.yaml")]
        return args, ["mine.yaml", *fragments]

    return make


def _missing_model(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    return ["--task", _task(root, root / "gone.keras", task_files / "data.npz")], [
        "gone.keras",
        "not found",
    ]


def _unreadable_model(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    (root / "dir.keras").mkdir()  # exists, but no file can be read from it
    return ["--task", _task(root, root / "dir.keras", task_files / "data.npz")], ["dir.keras"]


def _not_a_model(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    (root / "junk.h5").write_bytes(b"\x89HDF but not really" * 10)
    return ["--task", _task(root, root / "junk.h5", task_files / "data.npz")], [
        "junk.h5",
        "cannot be loaded as a Keras model",
    ]


def _missing_data(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    return ["--task", _task(root, task_files / "model.keras", root / "none.npz")], ["none.npz"]


def _task_typo(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    (root / "task.yaml").write_text(f"modle: x.keras\ndata: {task_files / 'data.npz'}\n")
    return ["--task", str(root / "task.yaml")], ["task.yaml", "unknown key 'modle'"]


def _plain(*args: str, fragments: tuple[str, ...]) -> Case:
    def make(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
        return ["--task", str(task_files / "task.yaml"), *args], list(fragments)

    return make


def _bad_enqueue(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
    (root / "mine.yaml").write_text("- {sparsity: 1.5, quantization: int8}\n")
    args = ["--task", str(task_files / "task.yaml"), "--enqueue", str(root / "mine.yaml")]
    return args, ["mine.yaml", "sparsity"]


def _metric_case(lines: str, code: str | None, *fragments: str) -> Case:
    """A task file with its own ``metric`` lines (and ``score.py`` holding ``code``)."""

    def make(root: Path, task_files: Path) -> tuple[list[str], list[str]]:
        if code is not None:
            (root / "score.py").write_text(code)
        (root / "task.yaml").write_text(
            f"model: {task_files / 'model.keras'}\ndata: {task_files / 'data.npz'}\n{lines}"
        )
        return ["--task", str(root / "task.yaml")], ["task.yaml", *fragments]

    return make


CASES: dict[str, Case] = {
    "unknown metric name": _metric_case("metric: acuracy\n", None, "unknown metric 'acuracy'"),
    "metric file missing": _metric_case(
        "metric: gone.py:score\ndirection: maximize\n", None, "gone.py", "not found"
    ),
    "metric function missing": _metric_case(
        "metric: score.py:score\ndirection: maximize\n",
        "def other(y, p):\n    return 1.0\n",
        "no function 'score'",
    ),
    "metric function without direction": _metric_case(
        "metric: score.py:score\n", "def score(y, p):\n    return 1.0\n", "direction"
    ),
    "metric raising on the teacher": _metric_case(
        "metric: score.py:score\ndirection: maximize\n",
        "def score(y, p):\n    raise KeyError('boxes')\n",
        "fails on the teacher",
        "KeyError",
    ),
    "metric returning NaN": _metric_case(
        "metric: score.py:score\ndirection: minimize\n",
        "def score(y, p):\n    return float('nan')\n",
        "NaN",
    ),
    "metric returning a string": _metric_case(
        "metric: score.py:score\ndirection: minimize\n",
        "def score(y, p):\n    return 'good'\n",
        "not a number",
    ),
    "built-in metric with the wrong direction": _metric_case(
        "metric: mae\ndirection: maximize\n", None, "minimized"
    ),
    "unknown loss": _metric_case("loss: hinge_of_doom\n", None, "unknown Keras loss"),
    "missing model file": _missing_model,
    "unreadable model file": _unreadable_model,
    "not a Keras model": _not_a_model,
    "missing data file": _missing_data,
    "unknown key in task": _task_typo,
    "labels beyond the model's outputs": _data_case(y_train=np.full(600, 12)),
    "input shape mismatch": _data_case(x_val=np.zeros((200, 9, 9, 1), "float32")),
    "input dtype mismatch": _data_case(x_train=np.full((600, 8, 8, 1), "a")),
    "float labels": _data_case(y_val=np.zeros(200, "float32")),
    "empty data": _data_case(
        x_train=np.zeros((0, 8, 8, 1), "float32"), y_train=np.zeros(0, "int64")
    ),
    "NaN data": _data_case(x_train=np.full((600, 8, 8, 1), np.nan, "float32")),
    "space unknown key": _space_case("sparsty: [0.5]\n", "unknown key 'sparsty'"),
    "space wrong type": _space_case("clusters: ['16']\n", "expected int"),
    "space empty choice": _space_case("quantization: []\n", "empty"),
    "space sparsity 1": _space_case("sparsity: [0.0, 1.0]\n", "[0, 1)"),
    "space negative clusters": _space_case("clusters: [-8]\n", "clusters"),
    "space malformed": _space_case("clusters: [8, 16\n", "malformed YAML"),
    "profile unknown key": _profile_case(
        "name: mine\nbackend: measure\nthread: 2\n", "unknown key 'thread'"
    ),
    "profile unit typo": _profile_case(
        "name: mine\nbackend: measure\nmeasure: {min_seconds: 20 min}\n", "min_seconds"
    ),
    "profile wrong type": _profile_case(
        "name: mine\nbackend: measure\nmax_model_bytes: [1]\n", "max_model_bytes"
    ),
    "unknown profile name": _plain("--profile", "tpu-v9", fragments=("tpu-v9", "cpu-host")),
    "timeout unit typo": _plain("--timeout", "20 min", fragments=("--timeout", "20 min")),
    "zero trials": _plain("--trials", "0", fragments=("--trials",)),
    "negative latency limit": _plain("--max-latency-ms", "-1", fragments=("--max-latency-ms",)),
    "unknown sampler": _plain("--sampler", "grid", fragments=("--sampler", "nsga2")),
    "zero cpus per trial": _plain("--cpus-per-trial", "0", fragments=("--cpus-per-trial",)),
    "negative early-stop margin": _plain("--stop-margin", "-1", fragments=("--stop-margin",)),
    "space with an unknown prune mode": _space_case('prune_mode: ["3:4"]\n', "prune_mode"),
    "space excluding a malformed list": _space_case('exclude: ["ends,,x"]\n', "exclude"),
    "space excluding a layer the model lacks": _space_case(
        "exclude: [none, no_such_layer]\n", "no_such_layer", "not a Conv/Dense layer"
    ),
    "enqueued recipe outside the space": _bad_enqueue,
}


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (".lock", "search.log")
    }


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_keeps_results(
    name: str, first_run, task_files: Path, tmp_path: Path, capsys
) -> None:
    _, out, *_ = first_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = _snapshot(run)
    args, fragments = CASES[name](tmp_path, task_files)

    code = main(["search", *args, "--out", str(run), "--trials", "8", *_last(args)])

    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocompress: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert _snapshot(run) == before


def _last(args: list[str]) -> list[str]:
    """Repeat ``--trials`` when the case sets it, so the case's value wins over the default 8."""
    return ["--trials", args[args.index("--trials") + 1]] if "--trials" in args else []


@pytest.mark.parametrize("route", ["keras3", "tflite"])
def test_an_unexpected_loader_error_is_one_line_and_the_traceback_is_logged(
    route: str, task_files: Path, tiny_task, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Whatever a loader does not support -- here a translator or a rewrite that raises what no
    code path expects -- ends as one line naming the model file; the traceback is in
    search.log."""

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom: an unsupported construct")

    if route == "keras3":
        import keras

        from autocompress.models import keras3

        inp = keras.Input((8, 8, 1))
        model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp)))
        model.save(tmp_path / "model.keras")
        monkeypatch.setattr(keras3, "translate", boom)
        name = "model.keras"
    else:
        from autocompress.models import rewrite
        from autocompress.stages.convert import to_tflite

        (tmp_path / "model.tflite").write_bytes(to_tflite(tiny_task.teacher.build(), "none"))
        monkeypatch.setattr(rewrite, "float16_folded", boom)
        name = "model.tflite"
    task = _task(tmp_path, name, task_files / "data.npz")
    out = tmp_path / "run"
    code = main(["search", "--task", task, "--out", str(out), "--trials", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocompress: error: "), err
    assert name in lines[0] and "RuntimeError: boom" in lines[0]
    assert "Traceback" in (out / "search.log").read_text()
