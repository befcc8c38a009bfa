"""``.tflite`` files without a signature, as older converters and many public model collections
ship them: their subgraph's tensor names are their input and output names everywhere (data
arrays, metric, calibration, sensitivity, evaluation, export), and float16 weights (DEQUANTIZE of
constants) make a float model. One and two outputs, float32 and float16 weights; searched over
``--space tflite`` with cpu-host and an Edge TPU, then ``pick``, ``export`` and ``retarget``.

Real third-party files of this kind (MediaPipe's) are run by ``benchmarks/third_party_tflite.py``:
the package that ships them is a 40 MB download, kept out of the test run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocompress.models.rewrite import float16_folded, has_signature, with_signature
from autocompress.models.tflite import TfliteTeacher
from tests.test_cli import cli, search_here

pytestmark = pytest.mark.usefixtures("ray_cluster")  # searches run in this process


def unsigned(tflite: bytes, outputs: list[str]) -> bytes:
    """``tflite`` as an older converter writes it: no SignatureDef, outputs named as given."""
    from autocompress.models.rewrite import _read, _write

    model = _read(tflite)
    model.signatureDefs = []
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].name = "input_1"
    for index, name in zip(graph.outputs, outputs):
        graph.tensors[index].name = name
    return _write(model)


def float16_weights(keras_model) -> bytes:  # type: ignore[no-untyped-def]
    """The converter's float16 mode: float16 constants behind DEQUANTIZE ops."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def two_output_model(tiny_task):  # type: ignore[no-untyped-def]
    """The tiny teacher with a second head: how bright the digit is (a value per sample)."""
    import tf_keras as keras

    teacher = tiny_task.teacher.build()
    x = teacher.layers[-2].output
    level = keras.layers.Dense(1, name="level")(x)
    return keras.Model(teacher.inputs, [teacher.output, level])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_task, task_files: Path) -> Path:
    from autocompress.stages.convert import to_tflite

    root = tmp_path_factory.mktemp("unsigned")
    one = tiny_task.teacher.build()
    two = two_output_model(tiny_task)
    (root / "one_fp32.tflite").write_bytes(unsigned(to_tflite(one, "none"), ["scores"]))
    (root / "one_fp16.tflite").write_bytes(unsigned(float16_weights(one), ["scores"]))
    (root / "two_fp32.tflite").write_bytes(unsigned(to_tflite(two, "none"), ["scores", "level"]))
    (root / "two_fp16.tflite").write_bytes(unsigned(float16_weights(two), ["scores", "level"]))
    d = tiny_task.data
    splits = (("train", d.x_train), ("val", d.x_val))
    level = {k: x.mean(axis=(1, 2, 3))[:, None] for k, x in splits}
    np.savez(
        root / "two.npz",
        x_train=d.x_train,
        x_val=d.x_val,
        **{"y_train.scores": d.y_train, "y_val.scores": d.y_val},
        **{"y_train.level": level["train"], "y_val.level": level["val"]},
    )
    (root / "one.yaml").write_text(f"model: one_fp16.tflite\ndata: {task_files / 'data.npz'}\n")
    (root / "two.yaml").write_text(
        "model: two_fp32.tflite\ndata: two.npz\nmetric: accuracy\nmetric_output: scores\n"
    )
    return root


@pytest.mark.parametrize("name", ["one_fp32", "one_fp16", "two_fp32", "two_fp16"])
def test_the_tensor_names_are_the_names(name: str, files: Path, tiny_task) -> None:
    raw = (files / f"{name}.tflite").read_bytes()
    assert not has_signature(raw)
    teacher = TfliteTeacher.from_file(files / f"{name}.tflite")
    inputs, outputs = teacher.io_shapes()
    assert list(inputs) == ["input_1"]
    assert set(outputs) == ({"scores"} if name.startswith("one") else {"scores", "level"})
    from autocompress.evaluation.deployed import tensor_dtypes

    assert "float16" not in tensor_dtypes(teacher.content)  # float16 weights widened
    x = tiny_task.data.x_val[:20]
    want = tiny_task.teacher.predict(x)
    got = teacher.predict(x)
    scores = got["scores"] if isinstance(got, dict) else got
    np.testing.assert_allclose(scores, want, atol=2e-3)  # float16 weights round a little


def test_rewrites_keep_what_the_file_computes(files: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    raw = (files / "two_fp16.tflite").read_bytes()
    new = with_signature(float16_folded(raw))
    a, b = Interpreter(model_content=raw), Interpreter(model_content=new)
    a.allocate_tensors()
    runner = b.get_signature_runner()
    x = np.random.default_rng(0).random((1, 8, 8, 1)).astype("float32")
    a.set_tensor(a.get_input_details()[0]["index"], x)
    a.invoke()
    got = runner(input_1=x)
    for detail in a.get_output_details():
        np.testing.assert_array_equal(a.get_tensor(detail["index"]), got[detail["name"]])
    assert with_signature(new) is new  # a file with a signature is left as it is


@pytest.mark.parametrize("task", ["one", "two"])
def test_search_pick_export_retarget(task: str, files: Path, tmp_path: Path) -> None:
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text("- {quantization: int8, keep_sensitive: 1}\n- {quantization: int8}\n")
    run = tmp_path / "run"
    proc = search_here(
        files / f"{task}.yaml",
        run,
        "--no-warm-start",
        "--enqueue",
        str(recipes),
        "--profile",
        "cpu-host",
        "--profile",
        "edgetpu-usb",
        space=Path("search_spaces/tflite.yaml").resolve(),
        trials=3,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(run / "trials.csv")
    assert (trials["state"] == "COMPLETE").all(), trials[["trial", "state", "error"]]
    int8 = trials[(trials["quantization"] == "int8") & (trials["keep_sensitive"] == 0)]
    assert int8["deployable_edgetpu-usb"].astype(bool).all()  # the Edge TPU runs it
    assert trials["accuracy"].min() > 0.5
    proc = cli("pick", str(run), "--profile", "edgetpu-usb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "picked.tflite"
    trial = int(int8["trial"].iloc[0])
    proc = cli("export", str(run), "--trial", str(trial), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    from ai_edge_litert.interpreter import Interpreter

    (signature,) = Interpreter(model_path=str(out)).get_signature_list().values()
    assert signature["inputs"] == ["input_1"] and "scores" in signature["outputs"]
    proc = cli("retarget", str(run), "--profile", "pixel2-cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    retargeted = pd.read_csv(run / "profiles" / "pixel2-cpu.csv")
    assert len(retargeted) == len(trials) and retargeted["latency_ms_pixel2-cpu"].notna().all()


def test_an_older_converters_op_codes_are_read_by_the_quantizer(files: Path, tiny_task) -> None:
    """Files from converters before schema 2.4 name their ops in ``deprecated_builtin_code``
    only (``builtin_code`` 0, ADD), as MediaPipe's do; LiteRT Quantizer read them as ADDs and
    wrote int8 files that do not run. Read through the teacher, they quantize as any file."""
    from autocompress.evaluation.deployed import quality
    from autocompress.hardware.flatbuffer import read_tflite
    from autocompress.litert.ptq import quantize_tflite
    from autocompress.metrics import ACCURACY
    from autocompress.models.rewrite import _read, _write

    model = _read((files / "one_fp32.tflite").read_bytes())
    for code in model.operatorCodes:
        code.deprecatedBuiltinCode, code.builtinCode = code.builtinCode, 0
    (files / "old.tflite").write_bytes(_write(model))
    teacher = TfliteTeacher.from_file(files / "old.tflite")
    d = tiny_task.data
    int8 = quantize_tflite(teacher.content, "int8", d.x_train[:100])
    graph = read_tflite(int8)
    conv = next(op for op in graph.ops if op.name == "CONV_2D")
    assert graph.tensors[conv.inputs[1]].zero_point == 0  # a weight, quantized as one
    assert graph.tensors[conv.inputs[2]].dtype == "int32"
    assert quality(int8, d.x_val, d.y_val, ACCURACY) > 0.8
