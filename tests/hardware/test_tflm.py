"""The ``tflm`` backend: TFLM's own arena and refusals, the profile's memory figures and limits,
and a search for a microcontroller end to end. Needs the optional ``tflite-micro`` package
(``autocompress[mcu]``); without it only the one-line error is tested (test_profile.py)."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

pytest.importorskip("tflite_micro")

from autocompress.hardware import latency, load_profile, read_tflite  # noqa: E402
from autocompress.hardware.limits import over_limits  # noqa: E402
from autocompress.hardware.tflm import allocate  # noqa: E402
from tests.hardware.conftest import small_cnn, to_tflite  # noqa: E402


@pytest.fixture(scope="module")
def int8_file() -> bytes:
    return to_tflite(small_cnn(), "int8")


def test_arena_is_tflms_own_report(int8_file: bytes, capfd) -> None:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(int8_file, arena_size=1 << 20)
    interpreter.print_allocations()
    (reported,) = re.findall(r"Arena allocation total (\d+) bytes", capfd.readouterr().err)
    assert allocate(int8_file).arena_bytes == int(reported) > 0


def test_an_op_tflm_cannot_prepare_is_named() -> None:
    """float16 weights: TFLM's DEQUANTIZE takes int8 / int16 / uint8 only."""
    result = allocate(to_tflite(small_cnn(), "float16"))
    assert result.arena_bytes is None
    assert result.error is not None and "op 0 (DEQUANTIZE)" in result.error
    assert "\n" not in result.error


def test_a_kernel_check_that_aborts_tflm_is_one_line() -> None:
    """TFLM's softmax aborts the process on a degenerate input scale (constant logits): the
    child dies, the search does not."""
    import tf_keras as keras

    inputs = keras.Input((4,))
    dense = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")
    result = allocate(to_tflite(keras.Model(inputs, dense(inputs)), "int8"))
    assert result.arena_bytes is None and result.error is not None
    assert "aborted" in result.error and "\n" not in result.error


def test_memory_figures_and_top_ops(int8_file: bytes) -> None:
    profile = load_profile("nucleo-l4r5zi")
    assert profile.mcu is not None
    result = latency(int8_file, profile)
    d = result.details
    assert result.deployable and result.backend == "tflm" and result.runs == 0
    assert d["arena_bytes"] == allocate(int8_file).arena_bytes
    assert d["ram_bytes"] == d["arena_bytes"] + profile.mcu.runtime_ram_bytes
    assert d["flash_bytes"] == len(int8_file) + profile.mcu.runtime_flash_bytes
    assert len(d["top_ops"]) == 3 and d["top_ops"][0].split(" ")[0].endswith("CONV_2D")
    # the same network on a faster board: fewer milliseconds, the same arena
    fast = latency(int8_file, load_profile("ek-ra8d1"))
    assert fast.median_ms < result.median_ms / 10
    assert fast.details["arena_bytes"] == d["arena_bytes"]


def test_a_float_file_is_not_deployable() -> None:
    result = latency(to_tflite(small_cnn(), "none"), load_profile("xg24-dk2601b"))
    assert not result.deployable
    assert "float32" in result.details["reason"] and "int8" in result.details["reason"]
    assert result.median_ms > 0  # finite for the sampler


def test_over_the_limits_is_infeasible(int8_file: bytes) -> None:
    board = load_profile("nucleo-l4r5zi")
    result = latency(int8_file, board)
    ram, flash = result.details["ram_bytes"], result.details["flash_bytes"]
    assert all(v <= 0 for v in over_limits(board, len(int8_file), 0, result).values())
    tight = dataclasses.replace(board, max_ram_bytes=ram - 1, max_model_bytes=flash - 1)
    over = over_limits(tight, len(int8_file), 0, result)
    assert over["nucleo-l4r5zi.max_ram_bytes"] == 1 and over["nucleo-l4r5zi.max_model_bytes"] == 1
    assert over["nucleo-l4r5zi.deployable"] == 0  # it runs; it does not fit


def test_search_for_a_microcontroller(ray_cluster, task_files, smoke_space_file, tmp_path) -> None:
    """The first profile a board: only its int8 modes are built, with integer inputs; each
    candidate gets TFLM's arena; a board too small for any candidate has none on its front."""
    from autocompress import search

    board = load_profile("nucleo-l4r5zi")
    tiny = dataclasses.replace(board, name="tiny-board", max_ram_bytes=4096)
    result = search(
        task=task_files / "task.yaml",
        space=smoke_space_file,
        profiles=(board, tiny),
        trials=3,
        workers=2,
        out=tmp_path / "run",
        seed=0,
    )
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    built = trials[trials["state"] == "COMPLETE"]
    assert len(built) >= 2
    assert set(built["quantization"]) == {"int8"}  # none / dynamic left out of the space
    assert (built["arena_bytes_nucleo-l4r5zi"] > 0).all()
    assert (built["ram_bytes_tiny-board"] > 4096).all()
    assert built["constraints_violated"].str.contains("tiny-board.max_ram_bytes").all()
    assert len(result.front) >= 1  # the first profile's front: the board fits them
    graph = read_tflite((tmp_path / "run" / built.iloc[0]["model_path"]).read_bytes())
    assert {graph.tensors[i].dtype for i in graph.inputs + graph.outputs} == {"int8"}


def test_estimate_prints_a_boards_figures(int8_file: bytes, tmp_path, capsys) -> None:
    """``autocompress estimate`` on a board: arena, RAM, flash, deployability, latency, the
    costliest ops and whether the file fits."""
    import json

    from autocompress.cli import main

    path = tmp_path / "m.tflite"
    path.write_bytes(int8_file)
    assert main(["estimate", str(path), "--profile", "xg24-dk2601b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "tflm" and out["deployable"] is True and out["latency_ms"] > 0
    assert out["arena_bytes"] == allocate(int8_file).arena_bytes
    assert out["ram_bytes"] > out["arena_bytes"] and out["flash_bytes"] > len(int8_file)
    assert len(out["top_ops"]) == 3
    assert out["fits"] == {"max_model_bytes": True, "max_ram_bytes": True}
