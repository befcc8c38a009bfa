"""Conversion to ``.tflite``: the only place that emits the deployed bytes."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import tensorflow as tf
import tf_keras as keras

from autocompress.data.arrays import Arrays, as_float32, count, take
from autocompress.hardware.flatbuffer import Graph, OpInfo, read_tflite
from autocompress.litert.ptq import (
    calibration_samples,
    quantize_for,
    quantize_tflite,
)
from autocompress.litert.refill import PROOF_SAMPLES, Template, derive, refill
from autocompress.recipe import LITERT_MODES, LITERT_ONLY_MODES, Recipe
from autocompress.records import StageRecord, record_since
from autocompress.stages._base import BuildContext
from autocompress.stages.training import excluded_layers

# Post-training modes (recipe.LITERT_MODES) are done by LiteRT Quantizer on the float file of
# the stage output: the TF converter's tracing (12-15 s on a MobileNetV2) then runs once per stage
# output, and every further mode of the same output costs only the quantization (about a second).


def uses_float_file(recipe: Recipe) -> bool:
    """Whether the recipe's file is the float file, or LiteRT Quantizer's output from it.

    The TF converter keeps QAT (it consumes tfmot's fake-quantization graph), layer exclusions
    (its quantization debugger keeps named layers float) and XNNPACK's sparse encoding."""
    if recipe.prune_mode == "xnnpack":
        return False
    return recipe.quantization == "none" or (
        recipe.quantization in LITERT_MODES and recipe.exclude == "none"
    )


def convert_from_float(
    model: keras.Model,
    recipe: Recipe,
    ctx: BuildContext,
    float_tflite: bytes | None,
    template: Template | None = None,
) -> tuple[bytes, StageRecord, bytes, Template | None]:
    """The recipe's file from the float file of ``model``: that file itself (quantization
    ``none``) or LiteRT Quantizer's output from it.

    The float file is ``float_tflite`` when an earlier trial converted the same stage output;
    else ``template`` refilled with ``model``'s weights when it holds the same architecture
    (see :mod:`autocompress.litert.refill`); else the converter's. Returns the file, its
    record, the float file (to cache) and a template derived from the converter's file when
    none was given or the given one failed its proof (to cache)."""
    start = time.perf_counter()
    name_outputs(model, ctx)
    calibration = calibration_samples(ctx.data.x_train, ctx.calibration_samples, ctx.seed)
    origin, why_not, derived = "cached", None, None
    if float_tflite is None and template is not None:
        refilled = refill(template, model, take(calibration, slice(0, PROOF_SAMPLES)))
        origin, float_tflite = "refilled", refilled if isinstance(refilled, bytes) else None
        why_not = refilled if isinstance(refilled, str) else None
    if float_tflite is None:
        origin, float_tflite = "converted", to_tflite(model, "none")
        # A template of this architecture that failed its proof (made from a model whose zero
        # biases the converter dropped, say) is replaced by one made from this conversion.
        if template is None or (why_not is not None and why_not != "another architecture"):
            made = derive(model, float_tflite, take(calibration, slice(0, PROOF_SAMPLES)))
            derived = made if isinstance(made, Template) else None
            if template is None:
                why_not = made if isinstance(made, str) else None
    converted = time.perf_counter()
    if recipe.quantization == "none":
        tflite, quantized = float_tflite, {"quantization": "none", "size_bytes": len(float_tflite)}
    else:
        tflite, quantized = quantize_for(
            recipe, float_tflite, calibration, ctx.integer_io, ctx.sensitive
        )
    facts: dict[str, Any] = {
        **quantized,
        "sparse": False,
        "quantizer": "none" if recipe.quantization == "none" else "litert-quantizer",
        "float_file": origin,
        "float_file_reused": origin == "cached",
        "float_convert_seconds": round(converted - start, 3),
        "quantize_seconds": round(time.perf_counter() - converted, 3),
    }
    if why_not is not None:
        facts["no_refill"] = why_not
    return tflite, record_since("convert", start, facts), float_tflite, derived


def convert(model: keras.Model, recipe: Recipe, ctx: BuildContext) -> tuple[bytes, StageRecord]:
    """Convert with the TF converter in the recipe's quantization mode (see :func:`to_tflite`)."""
    start = time.perf_counter()
    name_outputs(model, ctx)
    calibration = calibration_samples(ctx.data.x_train, ctx.calibration_samples, ctx.seed)
    sparse = recipe.prune_mode == "xnnpack"
    keep = excluded_layers(model, recipe) if recipe.quantization == "int8" else set()
    tflite = to_tflite(model, recipe.quantization, calibration, sparse=sparse, keep_float=keep)
    facts: dict[str, Any] = {
        "quantization": recipe.quantization,
        "size_bytes": len(tflite),
        "sparse": sparse,
    }
    if keep:
        facts["float_layers"] = float_layers(tflite, keep)
    return tflite, record_since("convert", start, facts)


def name_outputs(model: keras.Model, ctx: BuildContext) -> None:
    """Give ``model``'s outputs the teacher's names, which the converter makes the file's
    signature output names: tfmot's wrappers rename the layers they wrap (QAT's
    ``quant_boxes``), and the deployed file must keep the names the data and the user know."""
    names = list(ctx.teacher.output_names)
    if len(names) > 1 and list(model.output_names) != names:
        model.output_names = names


def to_tflite(
    model: keras.Model,
    mode: str,
    calibration: Arrays | None = None,
    sparse: bool = False,
    keep_float: Collection[str] = (),
) -> bytes:
    """The ``.tflite`` bytes of ``model`` in quantization ``mode``.

    ``int8`` is full-integer post-training quantization (int8 inputs and outputs too, which the
    Edge TPU needs) calibrated on ``calibration`` samples; ``int16x8`` keeps activations in int16
    with int8 weights (float inputs and outputs), for accuracy-sensitive models; ``qat``
    converts a QAT model, whose quantization ranges were learned during fine-tuning;
    ``dynamic`` stores int8 weights; ``float16`` stores float16 weights; ``weight_int8`` /
    ``weight_int4`` (weight-only) and ``w4a8`` (int4 weights, int8 activations) are LiteRT
    Quantizer's modes on the float file. ``sparse`` keeps
    pruned weights in a sparse encoding that XNNPACK's sparse inference can use.

    ``keep_float`` names layers that ``int8`` conversion leaves in float32 (with quantize /
    dequantize ops around them; inputs and outputs stay int8). The converter has no per-layer
    option for the other post-training modes.
    """
    if mode in LITERT_ONLY_MODES:  # the converter has no such mode: LiteRT Quantizer
        return quantize_tflite(to_tflite(model, "none", sparse=sparse), mode, calibration)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = [] if mode == "none" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ("int8", "int16x8"):
        if calibration is None or not count(calibration):
            raise ValueError(f"{mode} conversion needs calibration samples")
        samples = representative(model, calibration)
        converter.representative_dataset = samples
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            converter.target_spec.supported_ops = [ops]
        if mode == "int8" and keep_float:
            return _selective_int8(model, converter, samples, set(keep_float))
    return converter.convert()


def _layer_ops(graph: Graph, layers: set[str]) -> list[OpInfo]:
    """The ops of a converted Keras model that belong to ``layers``.

    The converter names tensors after the layers (``model/dense_1/MatMul``): an op belongs to a
    layer when one of its outputs or constant inputs carries ``/<layer>/`` in its name.
    """
    marks = [f"/{name}/" for name in layers]

    def named(t: int) -> bool:
        return 0 <= t < len(graph.tensors) and any(m in graph.tensors[t].name for m in marks)

    return [
        op
        for op in graph.ops
        if any(named(t) for t in op.outputs)
        or any(named(t) and graph.tensors[t].constant for t in op.inputs)
    ]


def representative(model: keras.Model, calibration: Arrays) -> Callable[[], Iterator[Any]]:
    """The converter's representative dataset, one sample at a time: a list of the one input,
    or for several a dict by input name (the converted file's signature names; its input
    tensors are not in the Keras model's order)."""
    arrays = as_float32(calibration)
    n = count(calibration)
    if isinstance(arrays, dict):
        by_name = arrays
        return lambda: ({k: a[i : i + 1] for k, a in by_name.items()} for i in range(n))
    single = arrays
    return lambda: ([single[i : i + 1]] for i in range(n))


def _selective_int8(
    model: keras.Model, converter: Any, samples: Callable[[], Iterator[Any]], keep: set[str]
) -> bytes:
    """Full-int8 conversion with the ops of ``keep`` left in float, through TFLite's
    quantization debugger (its ``denylisted_nodes`` are the output tensor names of the ops to
    keep, read from a float conversion of the same model)."""
    float_graph = read_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    nodes = [
        float_graph.tensors[t].name for op in _layer_ops(float_graph, keep) for t in op.outputs
    ]
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=nodes, fully_quantize=True
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=samples,
        debug_options=options,
    )
    return bytes(debugger.get_nondebug_quantized_model())


def float_layers(tflite: bytes, layers: Collection[str]) -> list[str]:
    """Which of ``layers`` really compute in float32 in ``tflite`` (what the file holds)."""
    graph = read_tflite(tflite)
    return sorted(
        name
        for name in layers
        if (ops := [op for op in _layer_ops(graph, {name}) if op.macs])
        and all(op.compute == "float32" for op in ops)
    )
