"""Post-training quantization of a float ``.tflite`` file with LiteRT Quantizer.

LiteRT Quantizer (``litert-quantizer``, ex ai-edge-quantizer) works on the float file itself, so
it serves models that have no trainable graph (a ``.tflite`` task) and the quantization modes the
TF converter cannot produce (weight-only int8 / int4). It needs no TensorFlow.

Modes (the recipe's ``quantization``):

* ``dynamic``: int8 weights, activations quantized on the fly; like the TF converter, only
  tensors of 1,024 weights or more (``dynamic_legacy_wi8_afp32``);
* ``float16``: float16 weights (``FLOAT_CASTING``), float compute;
* ``int8``: int8 weights and activations calibrated on training samples (``static_wi8_ai8``);
* ``int8_symmetric``: the same with symmetric activation ranges (every zero point 0), the only
  int8 TensorRT takes (see ``hardware/tensorrt.py``); a ReLU output loses one bit of range;
* ``int16x8``: int16 activations with int8 weights (``static_wi8_ai16``);
* ``w4a8``: int8 activations, int4 weights on convolutions and fully connected layers (the
  ops LiteRT Quantizer 0.11 takes int4 weights for in an integer file; depthwise convolutions
  keep int8 weights);
* ``weight_int8`` / ``weight_int4``: weight-only int8 / int4, dequantized to float before each op.

Inputs and outputs stay float unless ``integer_io`` asks for integer ones (the Edge TPU does):
the static recipes would otherwise make them int8 / int16.

The recipe's ``ptq_algorithm`` picks how int8 / int16x8 / weight-only ranges are chosen
(``min_max``, ``mse``, ``octav``, ``gptq``). In LiteRT Quantizer 0.11 MSE serves the weight
ops only: every other op gets min-max ranges, so that an MSE int8 file is integer throughout.
GPTQ serves fully connected layers only, and the convolutions of a static int8 / int16x8 GPTQ
file stay float (mixing it with min-max ranges breaks the file);
``keep_sensitive`` keeps the k layers most sensitive to int8 at higher precision, ``keep_as``
says which: ``float``, or ``a16w8`` (int16 activations, int8 weights; in an int8 or w4a8 file
only, elsewhere they stay float).
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress.data.arrays import Arrays, as_float32, count, named, take
from autocompress.recipe import (
    ALGORITHM_MODES,
    INT8_ACTIVATION_MODES,
    INTEGER_IO_MODES,
    LITERT_MODES,
)
from autocompress.records import StageRecord, record_since

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from autocompress.recipe import Recipe

# The recipe's ptq_algorithm -> LiteRT Quantizer's AlgorithmName value, for the modes that take
# one (static and weight-only); dynamic (the legacy recipe) and float16 have none.
ALGORITHMS = {"min_max": "min_max_uniform_quantize", "mse": "MSE", "octav": "OCTAV", "gptq": "GPTQ"}
# Algorithms applied to the ops they serve with min-max ranges on every other op. Not GPTQ:
# its fully connected layers with min-max ranges around them give a broken file (accuracy 0.1
# on the demo), so a GPTQ file keeps LiteRT Quantizer's own choice (its convolutions float).
MIN_MAX_ELSEWHERE = ("mse",)
# Ops that take int4 weights in an integer (w4a8) file, as LiteRT Quantizer 0.11's policy allows.
INT4_WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED")


def quantize_tflite(
    float_tflite: bytes,
    mode: str,
    calibration: Arrays | None = None,
    integer_io: bool = False,
    keep_float: Sequence[str] = (),
    algorithm: str = "min_max",
    keep_as: str = "float",
) -> bytes:
    """The float model ``float_tflite`` quantized in ``mode`` with ``algorithm`` (see the module
    docstring); ops whose output tensor names match a regex of ``keep_float`` stay float, or
    a16w8 in an int8 file with ``keep_as="a16w8"`` (mixed precision, see
    :mod:`autocompress.litert.sensitivity`)."""
    from litert_quantizer import qtyping, quantizer, recipe

    if mode == "none":
        return float_tflite
    if mode not in LITERT_MODES:
        raise ValueError(f"LiteRT Quantizer has no mode {mode!r}")
    names, op = recipe.AlgorithmName, qtyping.TFLOperationName
    key = names(ALGORITHMS[algorithm])
    qt = quantizer.Quantizer(bytearray(float_tflite))
    if mode == "float16":
        qt.add_weight_only_config(
            regex=".*",
            operation_name=op.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=names.FLOAT_CASTING,
        )
    elif mode == "dynamic":
        qt.load_quantization_recipe(recipe.dynamic_legacy_wi8_afp32())
    else:
        make = {
            "int8": recipe.static_wi8_ai8,
            "w4a8": recipe.static_wi8_ai8,  # int4 weights on INT4_WEIGHT_OPS below
            "int16x8": recipe.static_wi8_ai16,
            "weight_int8": recipe.weight_only_wi8_afp32,
            "weight_int4": recipe.weight_only_wi4_afp32,
            "int8_symmetric": lambda key: _symmetric(recipe.static_wi8_ai8(key)),
        }[mode]
        qt.load_quantization_recipe(
            make(names.MIN_MAX_UNIFORM_QUANT if algorithm in MIN_MAX_ELSEWHERE else key)
        )
        if algorithm in MIN_MAX_ELSEWHERE:
            # MSE on the ops it serves, min-max on the rest: LiteRT Quantizer 0.11's MSE serves
            # the weight ops only and, given the whole model, leaves every other op float
            # between DEQUANTIZE / QUANTIZE pairs (an "int8" file that is not integer, and not
            # Edge TPU mappable past the first of them).
            from litert_quantizer.algorithm_manager import get_supported_ops

            (entry,) = make(key)
            config = qtyping.OpQuantizationConfig.from_dict(entry["op_config"])
            for name in sorted(set(get_supported_ops(key)) - {op.INPUT, op.OUTPUT}):
                with contextlib.suppress(ValueError):  # the mode's policy refuses that op
                    qt.update_quantization_recipe(
                        regex=".*", operation_name=name, op_config=config, algorithm_key=key
                    )
        if mode == "w4a8":
            for name in INT4_WEIGHT_OPS:
                qt.add_static_config(
                    regex=".*",
                    operation_name=op(name),
                    activation_num_bits=8,
                    weight_num_bits=4,
                    algorithm_key=key,
                )
    for pattern in keep_float:
        if keep_as == "a16w8" and mode in INT8_ACTIVATION_MODES:
            qt.add_static_config(
                regex=pattern,
                operation_name=op.ALL_SUPPORTED,
                activation_num_bits=16,
                weight_num_bits=8,
                algorithm_key=key,
            )
        else:
            qt.update_quantization_recipe(
                regex=pattern, operation_name=op.ALL_SUPPORTED, algorithm_key=names.NO_QUANTIZE
            )
    if not integer_io:
        for io_op in (op.INPUT, op.OUTPUT):
            qt.update_quantization_recipe(
                regex=".*", operation_name=io_op, algorithm_key=names.NO_QUANTIZE
            )
    calibrated = None
    if qt.need_calibration:
        if calibration is None or not len(calibration):
            raise ValueError(f"{mode} quantization needs calibration samples")
        with quiet_quantizer():
            feeds = calibration_feeds(float_tflite, calibration)
            calibrated = _calibrate(qt, feeds, profiled=algorithm == "min_max")
    with quiet_quantizer():
        result = qt.quantize(calibrated, enable_progress_report=False)
    return bytes(result.quantized_model)


def _symmetric(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A LiteRT Quantizer recipe with every activation range symmetric (zero point 0)."""
    out = copy.deepcopy(entries)
    for entry in out:
        activation = entry.get("op_config", {}).get("activation_tensor_config")
        if activation is not None:
            activation["symmetric"] = True
    return out


def _calibrate(qt: Any, feeds: dict[str, list[dict[str, Any]]], profiled: bool) -> Any:
    """Activation ranges of the float model on ``feeds``: with ``profiled`` (min-max ranges),
    LiteRT Quantizer's profiler-based calibration, else (or where that mode fails) the one
    that keeps every tensor.

    For min-max both record each tensor's min / max over the samples; the profiler reads them
    as the interpreter runs instead of keeping and copying out every tensor after each sample:
    on MobileNetV2 0.35/96 with 100 samples 0.1 s against 1.1 s, ranges equal within 6e-7
    (relative; round-off, which can still move an int8 rounding here and there). Not for the
    other algorithms: GPTQ, for one, gives a broken int8 file (accuracy 0.12 on the demo)."""
    from litert_quantizer.calibrator import CalibrationMode as Mode

    if profiled:
        try:
            return qt.calibrate(feeds, mode=Mode.CALIBRATION_PROFILER_BASED)
        except Exception:  # any refusal of that mode: the slower, general one
            pass
    return qt.calibrate(feeds, mode=Mode.CALIBRATION_PRESERVE_ALL_TENSORS)


def calibration_samples(x_train: Arrays, samples: int, seed: int) -> Arrays:
    """``samples`` training samples drawn by ``seed``: the same draw as the TF converter's."""
    rng = np.random.default_rng(seed)
    n = count(x_train)
    return take(x_train, rng.choice(n, size=min(samples, n), replace=False))


def quantize_stage(
    float_tflite: bytes,
    recipe: Recipe,
    x_train: Arrays,
    seed: int = 0,
    samples: int = 100,
    integer_io: bool = False,
    sensitive: Sequence[str] = (),
) -> tuple[bytes, StageRecord]:
    """The ``quantize`` stage of a ``.tflite`` task: the float file in the recipe's mode, the
    recipe's ``keep_sensitive`` most sensitive layers (of ``sensitive``, ranked) kept float."""
    start = time.perf_counter()
    calibration = calibration_samples(x_train, samples, seed)
    tflite, facts = quantize_for(recipe, float_tflite, calibration, integer_io, sensitive)
    facts["quantizer"] = "none" if recipe.quantization == "none" else "litert-quantizer"
    return tflite, record_since("quantize", start, facts)


def quantize_for(
    recipe: Recipe,
    float_tflite: bytes,
    calibration: Arrays,
    integer_io: bool,
    sensitive: Sequence[str],
) -> tuple[bytes, dict[str, object]]:
    """The float file quantized as ``recipe`` says (mode, algorithm, the layers it keeps at
    higher precision and how), with the facts of what was done."""
    keep = kept_float(recipe, sensitive)
    mode = recipe.quantization
    tflite = quantize_tflite(
        float_tflite, mode, calibration, integer_io, keep, recipe.ptq_algorithm, recipe.keep_as
    )
    facts: dict[str, object] = {
        "quantization": mode,
        "ptq_algorithm": recipe.ptq_algorithm if mode in ALGORITHM_MODES else None,
        "integer_io": integer_io and mode in INTEGER_IO_MODES,
        "size_bytes": len(tflite),
        "kept_float": list(keep),
        "kept_as": (recipe.keep_as if mode in INT8_ACTIVATION_MODES else "float") if keep else None,
    }
    return tflite, facts


def kept_float(recipe: Recipe, sensitive: Sequence[str]) -> tuple[str, ...]:
    """The layer patterns the recipe keeps float: its ``keep_sensitive`` most sensitive."""
    if recipe.keep_sensitive == 0 or recipe.quantization == "none":
        return ()
    if not sensitive:
        raise ValueError("keep_sensitive needs the layer sensitivity (measured per study)")
    return tuple(sensitive[: recipe.keep_sensitive])


def calibration_feeds(tflite: bytes, calibration: Arrays) -> dict[str, list[dict[str, Any]]]:
    """Calibration data as LiteRT Quantizer takes it: one feed per sample, keyed by the
    signature's input names (``calibration`` is one array, or a dict by input name)."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=tflite).get_signature_list()
    if not signatures:
        raise ValueError("the .tflite file has no signature; LiteRT Quantizer calibrates by one")
    key = next(iter(signatures))
    by_name = named(as_float32(calibration), signatures[key]["inputs"])
    return {key: [{n: a[i : i + 1] for n, a in by_name.items()} for i in range(count(calibration))]}


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """LiteRT Quantizer draws tqdm bars on stderr and warns that calibration keeps every
    tensor (it must); a search prints its own progress."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
