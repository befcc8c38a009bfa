"""TensorRT: the engine it would build from a candidate's network, and how long that engine takes.

What is modelled (NVIDIA's TensorRT developer guide):

* **precisions**: a float file (float32, float16 or int8-weight "hybrid") is built with fp16
  enabled, so every layer runs fp16; an int8 file runs its int8 ops in int8 (on a GPU with int8
  kernels) and the rest in fp16;
* **fusion** (``gpu.kernels``): convolution + bias + activation, and the elementwise ops after
  it, are one kernel; reshapes, squeezes and the quantize / dequantize pairs of explicit
  quantization are folded into their neighbours; a concatenation is free (its inputs are
  written straight into its output);
* **2:4 sparsity**: layers whose weights hold the 2:4 pattern run on sparse tensor cores where
  the GPU has them (``sparse_2_4_speedup``);
* a cost per kernel launch, the memory traffic of each kernel, and one enqueue + synchronise
  per inference. The input is taken to be in GPU memory already (as ``trtexec`` times the GPU
  compute, and as the published tables measured).

Deployability (:func:`deployability`): an op TensorRT has no layer for (a custom op) cannot be
built; TensorRT's int8 is symmetric (every zero point 0: the ONNX parser rejects others) and
needs a GPU with int8 kernels (the fixed output range of TFLite's int8 softmax and logistic is
exempt: TensorRT runs those in fp16); it has no int16 activations. A file that breaks a rule is
marked not deployable; its latency is still what the engine would take if it were built (the
int8 file with its scales made symmetric), so that the sampler sees a finite value.
"""

from __future__ import annotations

from autocompress.hardware.flatbuffer import Graph, OpInfo
from autocompress.hardware.gpu import kernels, kernels_seconds
from autocompress.hardware.profile import HardwareProfile
from autocompress.records import LatencyResult

# TFLite builtins that map onto a TensorRT layer through ONNX (tf2onnx / tflite2onnx + the
# ONNX parser's operator support list).
TENSORRT_OPS = frozenset(
    {
        "ABS", "ADD", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D", "BATCH_MATMUL", "BROADCAST_TO",
        "CAST", "CEIL", "CONCATENATION", "CONV_2D", "COS", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
        "DEQUANTIZE", "DIV", "ELU", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR",
        "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GELU", "GREATER", "GREATER_EQUAL",
        "HARD_SWISH", "L2_NORMALIZATION", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG",
        "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "LOG_SOFTMAX", "MAXIMUM",
        "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD",
        "PADV2", "POW", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU",
        "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT", "SELECT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH",
        "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE",
        "SUB", "SUM", "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV", "UNPACK", "WHERE",
    }
)  # fmt: skip
# TFLite's int8 kernels of these ops fix their output's range (softmax and logistic: zero point
# -128); TensorRT has no int8 softmax and runs them in fp16, so that zero point does not matter.
FIXED_RANGE_OPS = frozenset({"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC"})
# Ops TensorRT folds into their neighbours: no kernel of their own.
FREE = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "QUANTIZE", "DEQUANTIZE"})


def precision(op: OpInfo, int8: bool) -> str:
    """The precision TensorRT runs ``op`` in: int8 ops int8 where the GPU has int8 kernels."""
    return "int8" if op.compute == "int8" and int8 else "float16"


def deployability(graph: Graph, profile: HardwareProfile) -> str | None:
    """Why TensorRT cannot build this network as it is, or None if it can."""
    assert profile.gpu is not None
    for op in graph.ops:
        if op.name not in TENSORRT_OPS:
            return (
                f"op {op.index} {op.name}: TensorRT has no layer for it (a plugin would be needed)"
            )
    for op in graph.ops:
        if op.compute == "int16x8":
            return f"op {op.index} {op.name} has int16 activations: TensorRT has no int16 type"
    quantized = [t for t in graph.tensors if t.dtype in ("int8", "uint8")]
    if quantized and "int8" not in profile.gpu.macs_per_s:
        return "the file is int8 and this GPU has no int8 kernels (TensorRT would run it in fp16)"
    fixed = {t for op in graph.ops if op.name in FIXED_RANGE_OPS for t in op.outputs}
    asymmetric = next((t for t in quantized if t.zero_point != 0 and t.index not in fixed), None)
    if asymmetric is not None:
        return (
            f"tensor {asymmetric.name!r} has zero point {asymmetric.zero_point}: TensorRT's int8 "
            "is symmetric (zero point 0) only"
        )
    for op in graph.ops:
        weights = [graph.tensors[t] for t in op.inputs if t >= 0 and graph.tensors[t].constant]
        if op.name != "FULLY_CONNECTED" and any(w.dtype == "int4" for w in weights):
            return f"op {op.index} {op.name} has int4 weights: TensorRT takes them in GEMMs only"
    return None


def simulate_tensorrt(tflite: bytes, graph: Graph, profile: HardwareProfile) -> LatencyResult:
    seconds, details = engine_seconds(graph, profile)
    reason = deployability(graph, profile)
    if reason is not None:
        details["reason"] = reason
    ms = seconds * 1e3
    return LatencyResult(
        profile.name, ms, ms, 0, "tensorrt", deployable=reason is None, details=details
    )


def engine_seconds(graph: Graph, profile: HardwareProfile) -> tuple[float, dict[str, object]]:
    """Seconds per inference of the engine built from ``graph``, and what makes it up."""
    s = profile.gpu
    assert s is not None
    int8 = "int8" in s.macs_per_s
    ks = kernels(graph, graph.ops, lambda op: precision(op, int8), lambda op: op.name in FREE)
    seconds = kernels_seconds(graph, ks, s) + s.invoke_overhead_s
    precisions: dict[str, int] = {}
    for k in ks:
        precisions[k.precision] = precisions.get(k.precision, 0) + 1
    details: dict[str, object] = {
        "macs": graph.macs,
        "ops": len(graph.ops),
        "kernels": len(ks),
        "kernels_by_precision": precisions,
        "sparse_2_4_ops": sum(op.sparse_2_4 for op in graph.ops),
    }
    return seconds, details


def simulate_seconds(graph: Graph, profile: HardwareProfile) -> float:
    """The fit's simulator (``fits.fit_gpu``): seconds per inference."""
    return engine_seconds(graph, profile)[0]
