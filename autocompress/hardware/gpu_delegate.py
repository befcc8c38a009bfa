"""TFLite's GPU delegate on a phone GPU: which ops it takes, and how long the split graph takes.

What is modelled (TFLite's GPU delegate documentation and ``delegates/gpu/common/
model_builder.cc``; the defaults of ``TfLiteGpuDelegateOptionsV2Default``):

* the delegate computes in **fp16** (precision loss allowed, as the published benchmarks ran it);
  8-bit and dynamic-range quantized files are accepted (``ENABLE_QUANT``) and computed in
  floating point, with their weights dequantized to fp16 at start-up: an int8 file is no faster
  than a float one here;
* it takes the ops in ``SUPPORTED_OPS`` whose activations are float or 8-bit with at most 4
  dimensions (BHWC); **int16 activations are not supported**;
* the supported ops form partitions (runs of consecutive supported ops); the delegate runs the
  largest ``max_partitions`` of them (default 1) and **every other op runs on the CPU**
  (``host`` section), with a copy of each tensor that crosses between CPU and GPU memory and a
  synchronisation per GPU partition;
* tensors are sliced into 4-channel groups (``channel_multiple``), linkable elementwise ops are
  merged into the kernel before them (``gpu.kernels``), each kernel costs its launch.

A file the delegate cannot run entirely on the GPU stays deployable (TFLite runs the rest on the
CPU) and is marked: ``details["runs_fully"]`` is False, ``details["fallback"]`` says why.
"""

from __future__ import annotations

from autocompress.hardware.flatbuffer import Graph, OpInfo, constant_only, shape_ops
from autocompress.hardware.gpu import kernels, kernels_seconds
from autocompress.hardware.profile import HardwareProfile
from autocompress.hardware.roofline import graph_seconds
from autocompress.records import LatencyResult

# The builtins the delegate has an operation parser for (model_builder.cc, TF 2.x).
SUPPORTED_OPS = frozenset(
    {
        "ABS", "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION",
        "CONV_2D", "COS", "CUMSUM", "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
        "DEQUANTIZE", "DIV", "ELU", "EQUAL", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
        "FULLY_CONNECTED", "GATHER", "GELU", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "LESS",
        "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
        "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2",
        "POW", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU", "RELU6",
        "RELU_N1_TO_1", "LEAKY_RELU", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT", "SELECT_V2", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V",
        "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE",
        "TRANSPOSE", "TRANSPOSE_CONV",
    }
)  # fmt: skip
_ACTIVATION_DTYPES = ("float32", "float16", "int8", "uint8")


def why_not_delegated(graph: Graph, op: OpInfo) -> str | None:
    """Why the delegate leaves ``op`` to the CPU, or None if it takes it."""
    if op.name not in SUPPORTED_OPS:
        return f"{op.name} is not supported by the GPU delegate"
    for t in (*op.inputs, *op.outputs):
        if t < 0 or graph.tensors[t].constant:
            continue
        tensor = graph.tensors[t]
        if tensor.dtype == "int16":
            return f"{op.name} has int16 activations (the GPU delegate runs float and 8-bit)"
        if tensor.dtype not in _ACTIVATION_DTYPES and op.name not in ("RESHAPE", "CAST"):
            return f"{op.name} has a {tensor.dtype} activation {tensor.name!r}"
        if len(tensor.shape) > 4:
            return f"{op.name} tensor {tensor.name!r} has {len(tensor.shape)} dimensions (max 4)"
    return None


def partitions(graph: Graph, max_partitions: int) -> tuple[list[list[OpInfo]], list[OpInfo]]:
    """(the GPU partitions the delegate takes, in execution order; the ops left to the CPU).

    Shape arithmetic and the dequantization of constant weights run before inference and
    neither join nor break a partition."""
    skip = shape_ops(graph)
    runs: list[list[OpInfo]] = []
    current: list[OpInfo] = []
    for op in graph.ops:
        if op.index in skip or _dequantizes_constant(graph, op):
            continue
        if why_not_delegated(graph, op) is None:
            current.append(op)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    chosen = sorted(runs, key=len, reverse=True)[:max_partitions]
    taken = {op.index for run in chosen for op in run}
    cpu = [
        op
        for op in graph.ops
        if op.index not in taken and op.index not in skip and not _dequantizes_constant(graph, op)
    ]
    return sorted(chosen, key=lambda run: run[0].index), cpu


def simulate_gpu_delegate(tflite: bytes, graph: Graph, profile: HardwareProfile) -> LatencyResult:
    seconds, details = split_seconds(graph, profile)
    ms = seconds * 1e3
    return LatencyResult(profile.name, ms, ms, 0, "gpu-delegate", details=details)


def split_seconds(graph: Graph, profile: HardwareProfile) -> tuple[float, dict[str, object]]:
    """Seconds per inference: the GPU partitions' kernels, the CPU's ops, the copies between."""
    s, host = profile.gpu, profile.host
    assert s is not None and host is not None
    gpu_parts, cpu = partitions(graph, s.max_partitions)
    gpu_ops = [op for part in gpu_parts for op in part]
    ks = kernels(graph, gpu_ops, lambda op: "float16")
    copies = sum(_boundary_bytes(graph, part) for part in gpu_parts)
    seconds = (
        kernels_seconds(graph, ks, s)
        + graph_seconds(cpu, host)
        + copies / s.copy_bytes_per_s
        + len(gpu_parts) * s.partition_overhead_s
        + s.invoke_overhead_s
    )
    details: dict[str, object] = {
        "macs": graph.macs,
        "ops_total": len(graph.ops),
        "ops_on_gpu": len(gpu_ops),
        "kernels": len(ks),
        "gpu_partitions": len(gpu_parts),
        "copy_bytes": int(copies),
        "runs_fully": not cpu,
    }
    if cpu:
        # Name the first op the delegate refuses, with its reason; if it refuses none, the CPU
        # ops are supported ones outside the partition it runs.
        refused = next(((op, why) for op in cpu if (why := why_not_delegated(graph, op))), None)
        op, why = refused or (cpu[0], "outside the largest GPU partition")
        details["fallback"] = f"{len(cpu)} ops on the CPU; op {op.index} {op.name}: {why}"
    return seconds, details


def simulate_seconds(graph: Graph, profile: HardwareProfile) -> float:
    """The fit's simulator (``fits.fit_gpu``): seconds per inference."""
    return split_seconds(graph, profile)[0]


def _dequantizes_constant(graph: Graph, op: OpInfo) -> bool:
    return op.name == "DEQUANTIZE" and constant_only(graph, op)


def _boundary_bytes(graph: Graph, part: list[OpInfo]) -> int:
    """Bytes copied between CPU and GPU memory for one GPU partition: the activations entering
    it and those leaving it (read after it, or graph outputs), as the CPU side holds them."""
    inside = {t for op in part for t in op.outputs}
    entering = {
        t
        for op in part
        for t in op.inputs
        if t >= 0 and t not in inside and not graph.tensors[t].constant
    }
    last = part[-1].index
    read_after = {t for op in graph.ops if op.index > last for t in op.inputs}
    read_before = {t for op in graph.ops if op.index < part[0].index for t in op.inputs}
    leaving = {t for t in inside if t in read_after or t in read_before or t in graph.outputs}
    return sum(graph.tensors[t].nbytes for t in entering | leaving)
