"""GPU timing shared by the GPU runtimes: ops fused into kernels, each kernel a roofline.

A GPU runtime does not launch one kernel per ``.tflite`` op. TensorRT fuses a convolution with
its bias and activation and with the elementwise ops that follow it (a residual ``ADD``, a
``MUL``), and the TFLite GPU delegate merges the same "linkable" elementwise ops into the kernel
that produces their input. Both are modelled alike (:func:`kernels`): an elementwise op whose
input is written by one kernel and read by nothing else joins that kernel, and its intermediate
tensor never reaches memory. Ops the runtime folds away (reshapes in TensorRT, shape
arithmetic, constant dequantization) make no kernel.

A kernel costs ``max(MACs / rate, bytes / bandwidth) + kernel_launch_s``: its MACs at the
runtime's precision (divided by the op's efficiency, and by the 2:4 speed-up on sparse tensor
cores), and the bytes it moves (weights, inputs read, outputs written, at that precision's
element size, channels padded to the kernels' channel multiple). The runtimes
(``tensorrt.py``, ``gpu_delegate.py``) decide which ops run and in which precision; the
constants, fitted on published latencies by ``fits.py``, are the profile's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from autocompress.hardware.flatbuffer import Graph, OpInfo, constant_only, shape_ops
from autocompress.hardware.profile import GPUSettings

# Elementwise ops a runtime fuses into the kernel that produces their input.
FUSABLE = frozenset(
    {
        "ADD",
        "SUB",
        "MUL",
        "DIV",
        "MAXIMUM",
        "MINIMUM",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "LEAKY_RELU",
        "PRELU",
        "LOGISTIC",
        "TANH",
        "HARD_SWISH",
        "ELU",
        "GELU",
        "EXP",
        "SQRT",
        "RSQRT",
        "SQUARE",
        "ABS",
        "NEG",
        "QUANTIZE",
        "DEQUANTIZE",
    }
)
BYTES = {"float32": 4, "float16": 2, "int8": 1}


@dataclass
class Kernel:
    """One launched kernel: the ops fused into it and what it reads and writes."""

    ops: list[OpInfo]
    precision: str  # float16, float32 or int8: what its math and its tensors use
    reads: set[int] = field(default_factory=set)  # activation tensors read from memory
    writes: set[int] = field(default_factory=set)  # activation tensors written to memory
    weights: set[int] = field(default_factory=set)


def kernels(
    graph: Graph,
    ops: Iterable[OpInfo],
    precision: Callable[[OpInfo], str],
    free: Callable[[OpInfo], bool] = lambda op: False,
) -> list[Kernel]:
    """Group ``ops`` (in execution order) into the kernels a fusing runtime launches.

    ``precision`` gives each op's precision (a fused op takes its kernel's); ``free`` marks ops
    the runtime folds away. Shape arithmetic and the dequantization of constants are always
    free."""
    folded = shape_ops(graph)
    consumers: dict[int, int] = {}
    writer: dict[int, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            if t >= 0:
                consumers[t] = consumers.get(t, 0) + 1
        for t in op.outputs:
            writer[t] = op.index
    produced: dict[int, Kernel] = {}  # tensor -> the kernel whose last op wrote it
    out: list[Kernel] = []
    for op in ops:
        if op.index in folded or free(op) or constant_only(graph, op):
            # No kernel: the tensors it passes on are read by their consumers where they are
            # (a reshape is a view; a folded concatenation's inputs are written into its output).
            continue
        data = [t for t in op.inputs if t >= 0 and not graph.tensors[t].constant]
        host = next(
            (
                produced[t]
                for t in data
                if op.name in FUSABLE
                and t in produced
                and consumers.get(t, 0) == 1
                and t not in graph.outputs
                and produced[t].ops[-1].index == writer.get(t)
            ),
            None,
        )
        if host is not None:
            joined = next(t for t in data if t in produced and produced[t] is host)
            host.writes.discard(joined)
            host.ops.append(op)
            host.reads.update(t for t in data if t != joined and produced.get(t) is not host)
        else:
            host = Kernel([op], precision(op))
            host.reads.update(data)
            out.append(host)
        host.weights.update(t for t in op.inputs if t >= 0 and graph.tensors[t].constant)
        for t in op.outputs:
            produced[t] = host
            host.writes.add(t)
    return out


def kernel_seconds(graph: Graph, kernel: Kernel, s: GPUSettings) -> float:
    """``max(compute, memory) + launch`` of one kernel."""
    p = kernel.precision
    rate = s.macs_per_s.get(p) or s.macs_per_s.get("float16") or next(iter(s.macs_per_s.values()))
    multiple = int(s.channel_multiple.get(p, 1))
    compute = 0.0
    for op in kernel.ops:
        if op.macs:
            macs = op.macs * _channel_padding(graph, op, multiple)
            if op.sparse_2_4:
                macs /= s.sparse_2_4_speedup.get(p, 1.0)
            compute += macs / (rate * s.op_efficiency.get(op.name, 1.0))
    element = BYTES.get(p, 2)
    moved = sum(_padded(graph, t, multiple) for t in kernel.reads | kernel.writes) * element
    moved += sum(_weight_bytes(graph, t, element) for t in kernel.weights)
    return max(compute, moved / s.bandwidth_bytes_per_s) + s.kernel_launch_s


def kernels_seconds(graph: Graph, ks: list[Kernel], s: GPUSettings) -> float:
    return sum(kernel_seconds(graph, k, s) for k in ks)


def _padded(graph: Graph, tensor: int, multiple: int) -> int:
    t = graph.tensors[tensor]
    if multiple <= 1 or len(t.shape) < 2 or t.shape[-1] <= 0:
        return t.elements
    channels = t.shape[-1]
    return t.elements // channels * (-(-channels // multiple) * multiple)


def _weight_bytes(graph: Graph, tensor: int, element: int) -> float:
    """Weights are stored in the kernel's precision (the GPU delegate dequantizes int8 weights
    to fp16; TensorRT keeps int8 ones int8); biases and shapes stay 32-bit."""
    t = graph.tensors[tensor]
    return float(t.nbytes if t.dtype in ("int32", "int64") else t.elements * element)


def _channel_padding(graph: Graph, op: OpInfo, multiple: int) -> float:
    """How many more MACs the kernel does with input and output channels padded."""
    if multiple <= 1 or not op.outputs:
        return 1.0
    out = graph.tensors[op.outputs[0]].shape
    c_out = out[-1] if out else 1

    def up(c: int) -> float:
        return (-(-c // multiple) * multiple) / c if c > 0 else 1.0

    factor = up(c_out)
    if op.name in ("CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = graph.tensors[op.inputs[1]].shape
        if w:
            factor *= up(w[-1])
    return factor
