"""Export formats from a real run: byte-for-byte tflite, Keras, SavedModel, ONNX (checked with
ONNX Runtime against the .tflite), and the Edge TPU path's clear refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.cli import main
from autocompress.errors import InputError
from autocompress.run.export import export


def _trial(out: Path, quantization: str) -> int:
    t = pd.read_csv(out / "trials.csv")
    done = t[(t["state"] == "COMPLETE") & (t["quantization"] == quantization)]
    return int(done.iloc[0]["trial"])


def test_tflite_export_is_the_measured_file(first_run, tmp_path: Path) -> None:
    _, out, *_ = first_run
    trial = _trial(out, "int8")
    done = export(out, trial, "tflite", tmp_path / "m.tflite")
    assert done.path.read_bytes() == (out / f"models/trial_{trial:04d}.tflite").read_bytes()
    doc = json.loads((tmp_path / "m.audit.json").read_text())
    assert doc["trial"] == trial and doc["export"]["format"] == "tflite"
    assert doc["audit"]["lineage"]["tflite_sha256"] == doc["export"]["source_tflite_sha256"]


def test_keras_and_saved_model_exports_load_and_predict(first_run, tmp_path: Path) -> None:
    import tensorflow as tf
    import tf_keras

    _, out, *_ = first_run
    trial = _trial(out, "none")
    export(out, trial, "keras", tmp_path / "m.keras")
    model = tf_keras.models.load_model(tmp_path / "m.keras", compile=False)
    with np.load(out / "validation.npz") as npz:
        x = npz["x_val"][:16]
    export(out, trial, "saved_model", tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    got = loaded.signatures["serving_default"](tf.constant(x))
    np.testing.assert_allclose(
        next(iter(got.values())).numpy(), model.predict(x, verbose=0), atol=1e-5
    )
    assert (tmp_path / "sm.audit.json").is_file()


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_onnx_export_reproduces_the_tflite_predictions(first_run, tmp_path, quantization) -> None:
    _, out, *_ = first_run
    trial = _trial(out, quantization)
    done = export(out, trial, "onnx", tmp_path / "m.onnx")
    checks = done.checks
    assert checks["top1_agreement_with_tflite"] >= checks["required_agreement"]
    assert checks["tflite_is_integer"] is (quantization == "int8")
    if quantization == "none":  # same float model on both runtimes
        assert checks["max_abs_score_difference"] < 1e-4
    assert json.loads((tmp_path / "m.audit.json").read_text())["export"]["checks"] == checks


def test_edgetpu_export_refuses_float_models_and_a_missing_compiler(
    first_run, tmp_path: Path, monkeypatch
) -> None:
    _, out, *_ = first_run
    with pytest.raises(InputError, match="cannot be compiled for the Edge TPU"):
        export(out, _trial(out, "none"), "edgetpu", tmp_path / "m_edgetpu.tflite")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="edgetpu_compiler: not found on PATH"):
        export(out, _trial(out, "int8"), "edgetpu", tmp_path / "m_edgetpu.tflite")
    assert not (tmp_path / "m_edgetpu.tflite").exists()


def test_export_cli_errors_exit_2(first_run, tmp_path: Path, capsys) -> None:
    _, out, *_ = first_run
    args = ["export", str(out), "--out", str(tmp_path / "m")]
    assert main([*args, "--trial", "999"]) == 2
    assert "trial 999" in capsys.readouterr().err
    assert main([*args, "--trial", "0", "--format", "pb"]) == 2
    assert "unknown format 'pb'" in capsys.readouterr().err


def test_pick_exports_in_the_requested_format(first_run, tmp_path: Path, capsys) -> None:
    _, out, *_ = first_run
    code = main(["pick", str(out), "--export", str(tmp_path / "best.onnx"), "--format", "onnx"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "best.onnx").stat().st_size > 0 and (tmp_path / "best.audit.json").is_file()


def test_keras_export_of_a_stage_output_is_rebuilt_from_the_stage_cache(
    run: Path, tmp_path: Path
) -> None:
    """The search keeps no .keras file of a model the stage cache holds: export rebuilds it
    there, and the rebuilt model is the one the trial's .tflite file was made from."""
    import tf_keras

    from autocompress.evaluation.deployed import predict

    t = pd.read_csv(run / "trials.csv")
    staged = t[(t["state"] == "COMPLETE") & ((t["sparsity"] > 0) | (t["clusters"] > 0))]
    row = staged.iloc[0]
    trial = int(row["trial"])
    source = json.loads((run / f"models/trial_{trial:04d}.keras-source.json").read_text())
    assert (run / "cache" / f"{source['source']}.entry").is_file()
    assert not (run / f"models/trial_{trial:04d}.keras").exists()
    export(run, trial, "keras", tmp_path / "m.keras")
    model = tf_keras.models.load_model(tmp_path / "m.keras", compile=False)
    kernels = [w for w in model.get_weights() if w.ndim > 1]
    sparsity = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert abs(sparsity - float(row["achieved_sparsity"])) < 0.02
    with np.load(run / "validation.npz") as npz:
        x = npz["x_val"]
    tflite = (run / f"models/trial_{trial:04d}.tflite").read_bytes()
    agree = np.mean(predict(tflite, x).argmax(-1) == model.predict(x, verbose=0).argmax(-1))
    assert agree >= 0.9  # the quantized file of this very model
    shutil.rmtree(run / "cache")
    with pytest.raises(InputError, match="stage cache entry"):
        export(run, trial, "keras", tmp_path / "again.keras")
