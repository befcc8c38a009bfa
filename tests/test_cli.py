"""The command line: exit code 2 with one clean line for bad input; show and pick on a real run."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from autocompress.cli import main, parse_duration
from autocompress.errors import InputError


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def search_cli(
    task: Path, out: Path, *extra: str, space: Path | None = None, trials: int = 2
) -> subprocess.CompletedProcess:
    """``autocompress search`` on ``task`` with one worker, as a user runs it."""
    return run_cli(*_search_args(task, out, extra, space, trials))


def _search_args(
    task: Path, out: Path, extra: tuple[str, ...], space: Path | None, trials: int
) -> list[str]:
    """``autocompress search`` on ``task`` with one worker, as a user runs it."""
    where = ("--space", str(space)) if space is not None else ()
    budget = ("--trials", str(trials), "--workers", "1")
    return ["search", "--task", str(task), *where, *budget, "--out", str(out), *extra]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command line run in this process: faster than :func:`run_cli` (TensorFlow and, with
    the ``ray_cluster`` fixture, the session's Ray are up already); same result shape."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def search_here(
    task: Path, out: Path, *extra: str, space: Path | None = None, trials: int = 2
) -> subprocess.CompletedProcess:
    """:func:`search_cli` in this process."""
    return cli(*_search_args(task, out, extra, space, trials))


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("autocompress: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_model_file(tmp_path: Path, task_files: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(f"model: missing.keras\ndata: {task_files / 'data.npz'}\n")
    proc = run_cli("search", "--task", str(task), "--out", str(tmp_path / "run"))
    assert_clean_error(proc, "missing.keras", "model file not found")


def test_malformed_space_yaml(tmp_path: Path, task_files: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("clusters: [8, 16\n")
    proc = run_cli(
        "search",
        "--task",
        str(task_files / "task.yaml"),
        "--space",
        str(space),
        "--out",
        str(tmp_path / "run"),
    )
    assert_clean_error(proc, str(space), "malformed YAML")


def test_data_shape_does_not_match_model(tmp_path: Path, task_files: Path) -> None:
    import numpy as np

    np.savez(
        tmp_path / "d.npz",
        x_train=np.zeros((4, 28, 28, 1), "float32"),
        y_train=np.zeros(4, "int64"),
        x_val=np.zeros((4, 28, 28, 1), "float32"),
        y_val=np.zeros(4, "int64"),
    )
    task = tmp_path / "task.yaml"
    task.write_text(f"model: {task_files / 'model.keras'}\ndata: d.npz\n")
    proc = run_cli("search", "--task", str(task), "--out", str(tmp_path / "run"))
    assert_clean_error(proc, "x_train has sample shape (28, 28, 1)", "(8, 8, 1)")
    assert not (tmp_path / "run" / "study.journal").exists()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("20m", 1200), ("1h30m", 5400), ("0.5h", 1800)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["20 min", "abc", "", "-5", "0"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(InputError, match="--timeout"):
        parse_duration(text)


def test_bad_timeout_exits_2(capsys) -> None:
    assert main(["search", "--timeout", "20 min"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--timeout" in err


def test_show_prints_front(first_run, capsys) -> None:
    _, out, *_ = first_run
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    front = pd.read_csv(out / "pareto.csv")
    assert f"({len(front)} models" in text
    for trial in front["trial"]:
        assert str(trial) in text


def test_show_is_compact_unless_wide(first_run, capsys) -> None:
    _, out, *_ = first_run
    assert main(["show", str(out)]) == 0
    compact = capsys.readouterr().out.splitlines()
    assert main(["show", str(out), "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    header, wide_header = compact[1].split(), wide[1].split()
    assert {"trial", "recipe", "val_accuracy", "ms_cpu-host", "ms_edgetpu-usb"} <= set(header)
    assert len(header) <= 8 < len(wide_header)
    assert max(len(line) for line in compact) <= 120
    assert "model_path" in wide_header and "model_path" not in header


def test_pick_exports_most_accurate_meeting_limits(first_run, tmp_path: Path, capsys) -> None:
    _, out, *_ = first_run
    front = pd.read_csv(out / "pareto.csv")
    limit = float(front["latency_ms_cpu-host"].median())
    ok = front[front["latency_ms_cpu-host"] <= limit]
    expected = ok.sort_values(["accuracy", "latency_ms_cpu-host"], ascending=[False, True]).iloc[0]
    dest = tmp_path / "chosen.tflite"
    code = main(["pick", str(out), "--max-latency-ms", str(limit), "--export", str(dest)])
    assert code == 0
    assert dest.read_bytes() == (out / expected["model_path"]).read_bytes()
    assert f"exported trial {int(expected['trial'])}" in capsys.readouterr().out


def test_pick_with_impossible_limits_says_so(first_run, capsys) -> None:
    _, out, *_ = first_run
    assert main(["pick", str(out), "--min-accuracy", "1.01"]) == 1
    assert "no model on the front meets" in capsys.readouterr().err


def test_show_unknown_profile(first_run, capsys) -> None:
    _, out, *_ = first_run
    assert main(["show", str(out), "--profile", "pixel2-cpu"]) == 2
    assert "was not measured" in capsys.readouterr().err


def test_show_recomputes_front_for_another_profile(first_run, capsys) -> None:
    _, out, *_ = first_run
    assert main(["show", str(out), "--profile", "edgetpu-usb"]) == 0
    assert "latency on edgetpu-usb" in capsys.readouterr().out
    from autocompress.run.results import load_front

    front, _ = load_front(out, "edgetpu-usb")
    trials = pd.read_csv(out / "trials.csv").set_index("trial")
    for trial in front["trial"]:  # only files the Edge TPU can run are on its front
        assert bool(trials.loc[trial, "deployable_edgetpu-usb"]) is True
        assert trials.loc[trial, "quantization"] == "int8"


def test_estimate_json(first_run, capsys) -> None:
    import json

    _, out, *_ = first_run
    model = next((out / "models").glob("*.tflite"))
    assert main(["estimate", str(model), "--profile", "edgetpu-usb", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    from autocompress.hardware import latency, load_profile, read_tflite

    data = model.read_bytes()
    graph = read_tflite(data)
    expected = latency(data, load_profile("edgetpu-usb"), graph)
    assert result["latency_ms"] == pytest.approx(expected.median_ms)
    assert result["deployable"] == expected.deployable
    assert result["peak_ram_bytes"] == graph.peak_ram_bytes()
    assert result["macs"] == graph.macs and result["size_bytes"] == len(data)


def test_export_edgetpu_without_compiler_is_one_line(first_run, tmp_path, monkeypatch) -> None:
    _, out, *_ = first_run
    trials = pd.read_csv(out / "trials.csv")
    done = trials[(trials["state"] == "COMPLETE") & trials["reused_from"].isna()]
    int8 = int(done[done["quantization"] == "int8"].iloc[0]["trial"])
    monkeypatch.setenv("PATH", str(tmp_path))  # no edgetpu_compiler anywhere on it
    with pytest.raises(InputError, match="edgetpu_compiler: not found on PATH"):
        from autocompress.run.export import export

        export(out, int8, "edgetpu", tmp_path / "m_edgetpu.tflite")
    assert not (tmp_path / "m_edgetpu.tflite").exists()
    other = int(done[done["quantization"] != "int8"].iloc[0]["trial"])
    with pytest.raises(InputError, match="cannot be compiled for the Edge TPU"):
        export(out, other, "edgetpu", tmp_path / "f_edgetpu.tflite")


def test_pick_honours_profile_and_size(first_run, capsys) -> None:
    _, out, *_ = first_run
    from autocompress.run.results import load_front

    assert main(["pick", str(out), "--profile", "edgetpu-usb"]) == 0
    text = capsys.readouterr().out
    tpu_front, _ = load_front(out, "edgetpu-usb")
    best = tpu_front.sort_values("accuracy", ascending=False).iloc[0]
    assert text.splitlines()[1].split()[0] == str(int(best["trial"]))
    front, _ = load_front(out)
    # Rounded up: a size of 5128 bytes is 5.0078125 kB, which "%.6f" writes as 5.007812.
    limit_kb = math.ceil(float(front["size_bytes"].min()) / 1024 * 1e6) / 1e6
    assert main(["pick", str(out), "--max-size-kb", f"{limit_kb:.6f}"]) == 0
    chosen = int(capsys.readouterr().out.splitlines()[1].split()[0])
    assert front.set_index("trial").loc[chosen, "size_bytes"] <= limit_kb * 1024


def test_estimate_corrupt_file_exits_2(tmp_path: Path, first_run) -> None:
    _, out, *_ = first_run
    data = next((out / "models").glob("*.tflite")).read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data[: len(data) // 3])
    proc = run_cli("estimate", str(bad), "--profile", "pixel2-cpu")
    assert_clean_error(proc, "bad.tflite")


def test_search_terminal_shows_results_and_ray_notices_go_to_the_log(
    tmp_path: Path, task_files: Path, smoke_space_file: Path
) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "search",
        "--task",
        str(task_files / "task.yaml"),
        "--space",
        str(smoke_space_file),
        "--trials",
        "1",
        "--workers",
        "1",
        "--no-warm-start",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front" in proc.stdout
    assert "Traceback" not in proc.stderr
    # Ray's start-up notice (token authentication) is a detail for search.log, not the terminal.
    assert "Token authentication" not in proc.stderr + proc.stdout
    assert "XNNPACK" not in proc.stderr + proc.stdout  # nor LiteRT's start-up line
    assert "trial 0 complete" in (out / "search.log").read_text()  # the details went there


def test_profiles_lists_shipped_and_copied_profiles(tmp_path: Path, capsys) -> None:
    from autocompress.hardware.profile import PROFILES_DIR

    assert main(["profiles"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == {p.stem for p in PROFILES_DIR.glob("*.yaml")}
    assert {"cpu-host", "edgetpu-usb", "edgetpu-devboard", "pixel2-cpu"} <= listed

    # A user's own target: copy one file, edit its constants; a broken file does not hide it.
    text = (PROFILES_DIR / "edgetpu-usb.yaml").read_text()
    (tmp_path / "my-tpu.yaml").write_text(
        text.replace("name: edgetpu-usb", "name: my-tpu").replace("4.0e8", "2.0e8")
    )
    (tmp_path / "broken.yaml").write_text(text.replace("backend: edgetpu", "backend: abacus"))
    assert main(["profiles", "--dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert [line.split()[:2] for line in captured.out.splitlines()] == [["my-tpu", "edgetpu"]]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and "broken.yaml" in errors[0] and "abacus" in errors[0]


def test_cli_search_flags_no_cache_no_early_stop_latency_limit(
    first_run, task_files: Path, smoke_space_file: Path, tmp_path: Path
) -> None:
    _, out, *_ = first_run
    done = pd.read_csv(out / "trials.csv")
    limit = float(done["latency_ms_cpu-host"].dropna().median())  # some trials will break it
    run = tmp_path / "run"
    flags = ("--no-stage-cache", "--no-early-stop", "--max-latency-ms", str(limit))
    proc = search_cli(task_files / "task.yaml", run, *flags, space=smoke_space_file, trials=3)
    assert proc.returncode == 0, proc.stderr
    assert not [p for p in (run / "cache").rglob("*") if p.is_file()]  # no stage outputs kept
    trials = pd.read_csv(run / "trials.csv")
    assert "PRUNED" not in set(trials["state"])
    complete = trials[trials["state"] == "COMPLETE"]
    for _, row in complete.iterrows():
        slow = row["latency_ms_cpu-host"] > limit
        assert slow == ("user.max_latency_ms" in str(row["constraints_violated"]))
    front = pd.read_csv(run / "pareto.csv")
    assert (front["latency_ms_cpu-host"] <= limit).all()
    stages = complete["reused_stages"].fillna("")
    assert (stages == "").all()  # nothing taken from a stage cache
