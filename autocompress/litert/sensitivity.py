"""Layer sensitivity to int8 quantization, measured once per study on the float model.

For each layer of the float ``.tflite`` file (its ops grouped by Keras layer: a convolution, a
fully connected layer, but also an ``Add`` or a ``Normalization`` layer's SUB and MUL, whose
int8 input can be where the damage is), the layer alone is quantized to int8 (weights and
activations, LiteRT Quantizer, one calibration shared by all) while everything else stays float,
and the task's metric on a fixed validation subset is compared with the float file's: the
drop is the damage that layer does when quantized. The ranking feeds the
recipe's ``keep_sensitive``: the k most sensitive layers stay float in a post-training
quantized file (mixed precision), and the table goes into ``RUN/sensitivity.csv`` and the report.

Ops are named by their Keras layer where the file came from the TF converter (tensor names
``<model>/<layer>/<op>``), so the same layer is found again in a pruned, clustered or distilled
candidate's file; other files (litert-torch) are named by their exact output tensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autocompress.data.arrays import Arrays, take
from autocompress.litert.ptq import calibration_feeds, quiet_quantizer
from autocompress.metrics import ACCURACY, Metric

SUBSET = 256  # validation samples the drop is measured on
# Ops that are not layers of the model: the file's own (de)quantization, and ops that only
# move or reshape a tensor (quantized alone they cannot do damage their neighbours do not).
SKIPPED = frozenset({"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"})


@dataclass(frozen=True)
class OpSensitivity:
    """One layer (its first op): what it is, how to find it again, the damage of quantizing it."""

    op: str  # CONV_2D, FULLY_CONNECTED, ...
    tensor: str  # its output tensor's name in the float file
    pattern: str  # a regex LiteRT Quantizer matches against output tensor names
    drop: float  # how much worse the metric gets with this op alone in int8 (its direction)


def layer_pattern(tensor: str) -> str:
    """The regex that finds the op's layer again in any converted file of the same network."""
    parts = tensor.split(";")[0].split("/")
    if len(parts) >= 3 and parts[1]:
        return rf"(^|;)[^;/]+/{re.escape(parts[1])}/"
    return "^" + re.escape(tensor) + "$"


def measure_sensitivity(
    float_tflite: bytes,
    calibration: Arrays,
    x_val: Arrays,
    y_val: Arrays,
    samples: int = SUBSET,
    metric: Metric = ACCURACY,
) -> list[OpSensitivity]:
    """Every layer's drop in the task's metric when quantized alone, most damaging first."""
    from litert_quantizer import qtyping, quantizer, recipe

    from autocompress.evaluation.deployed import quality
    from autocompress.hardware import read_tflite

    graph = read_tflite(float_tflite)
    x, y = take(x_val, slice(samples)), take(y_val, slice(samples))
    base = quality(float_tflite, x, y, metric)
    cal_data = calibration_feeds(float_tflite, calibration)
    full = quantizer.Quantizer(bytearray(float_tflite))
    full.load_quantization_recipe(recipe.static_wi8_ai8())
    with quiet_quantizer():
        calibrated = full.calibrate(cal_data)
    op_kind = qtyping.TFLOperationName
    results = []
    seen: set[str] = set()
    for op in graph.ops:
        if not op.outputs or op.name in SKIPPED or op.compute not in ("float32", "float16"):
            continue
        tensor = graph.tensors[op.outputs[0]].name
        pattern = layer_pattern(tensor)
        if pattern in seen:
            continue
        seen.add(pattern)
        qt = quantizer.Quantizer(bytearray(float_tflite))
        qt.add_static_config(
            regex=pattern,
            operation_name=op_kind.ALL_SUPPORTED,
            activation_num_bits=8,
            weight_num_bits=8,
        )
        for io_op in (op_kind.INPUT, op_kind.OUTPUT):
            qt.update_quantization_recipe(
                regex=".*", operation_name=io_op, algorithm_key=recipe.AlgorithmName.NO_QUANTIZE
            )
        with quiet_quantizer():
            quantized = bytes(qt.quantize(calibrated, enable_progress_report=False).quantized_model)
        drop = metric.quality.drop(base, quality(quantized, x, y, metric))
        results.append(OpSensitivity(op.name, tensor, pattern, round(float(drop), 5)))
    return sorted(results, key=lambda s: -s.drop)
