"""Edge TPU simulation: what the Edge TPU compiler would map, and how long the chip would take.

Rules modelled (Coral documentation, "TensorFlow models on the Edge TPU", model requirements):

* only fully 8-bit quantized models run on the TPU: any float, float16 or dynamic-range compute
  makes the model "not deployable" on this profile;
* ops map only if the compiler supports them (``SUPPORTED_OPS``), their activations are 8-bit and
  no tensor has more than 3 dimensions larger than 1; at the first op that does not map, that op
  and every op after it run on the host CPU (the compiler maps one contiguous prefix). A leading
  QUANTIZE from float input and trailing DEQUANTIZE ops run on the host without breaking the
  mapping (how the compiler treats float inputs and outputs);
* about 8 MB of on-chip SRAM caches parameters; parameters that do not fit are streamed from the
  host over the link on every inference;
* 4 TOPS int8 peak = 2 TMAC/s, times a per-op utilisation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from autocompress.hardware.flatbuffer import Graph, OpInfo, shape_ops
from autocompress.hardware.profile import EdgeTPUSettings, HardwareProfile, load_profile
from autocompress.hardware.roofline import graph_seconds
from autocompress.records import LatencyResult

# Coral's list of ops supported by the Edge TPU compiler (docs: edgetpu/models-intro).
SUPPORTED_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "LSTM",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "SQUARED_DIFFERENCE",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        "HARD_SWISH",
        "DEPTH_TO_SPACE",
        "GATHER",
    }
)
_EIGHT_BIT = ("int8", "uint8")


@dataclass(frozen=True)
class Mapping:
    """Where each op of a graph runs."""

    head: list[OpInfo]  # host ops before the TPU segment (input QUANTIZE)
    tpu: list[OpInfo]
    host: list[OpInfo]  # everything from the first op that does not map
    break_op: str | None
    break_reason: str | None


def deployability(graph: Graph) -> str | None:
    """Why the model cannot run on the Edge TPU at all, or None if it can."""
    for op in graph.ops:
        if op.macs and op.compute != "int8":
            return f"op {op.index} {op.name} computes in {op.compute}: the Edge TPU runs only int8"
        weights = {
            graph.tensors[t].dtype for t in op.inputs if t >= 0 and graph.tensors[t].constant
        }
        if op.macs and weights - {"int8", "uint8", "int32"}:  # int32: biases
            kinds = ", ".join(sorted(weights - {"int8", "uint8", "int32"}))
            return (
                f"op {op.index} {op.name} has {kinds} weights: the Edge TPU takes only 8-bit ones"
            )
    if not any(op.compute == "int8" for op in graph.ops):
        return "no int8 op: the model is not fully integer-quantized"
    return None


def map_ops(graph: Graph) -> Mapping:
    folded = shape_ops(graph)
    static = {t for op in graph.ops if op.index in folded for t in op.outputs}
    ops = [op for op in graph.ops if op.index not in folded]
    start = 0
    while (
        start < len(ops) and ops[start].name == "QUANTIZE" and not _eight_bit_in(graph, ops[start])
    ):
        start += 1
    end = len(ops)
    while end > start and ops[end - 1].name == "DEQUANTIZE":
        end -= 1
    for i in range(start, end):
        reason = _why_not_mapped(graph, ops[i], static)
        if reason is not None:
            return Mapping(ops[:start], ops[start:i], ops[i:], ops[i].name, reason)
    return Mapping(ops[:start], ops[start:end], ops[end:], None, None)


@dataclass(frozen=True)
class TPUWork:
    """What the chip's timing constants multiply, for one graph: the simulator's latency and the
    fit of those constants to published latencies (:func:`fit_timing`) both use it."""

    mapping: Mapping
    weighted_macs: float  # sum of the mapped ops' MACs / their utilisation prior
    link_bytes: int  # streamed parameters and activations crossing the link, per inference
    host_seconds: float  # ops left on the host CPU
    cached_bytes: int
    streamed_bytes: int

    @property
    def ops(self) -> int:
        return len(self.mapping.tpu)

    def seconds(self, s: EdgeTPUSettings) -> float:
        chip = self.weighted_macs / s.macs_per_s + self.ops * s.op_overhead_s
        invoke = s.invoke_overhead_s if self.ops else 0.0
        return chip + invoke + self.link_bytes / s.link_bytes_per_s + self.host_seconds


def tpu_work(graph: Graph, profile: HardwareProfile) -> TPUWork:
    assert profile.edgetpu is not None and profile.host is not None
    s = profile.edgetpu
    m = map_ops(graph)
    weighted = sum(
        op.macs / s.utilisation.get(op.name, s.utilisation.get("default", 1.0)) for op in m.tpu
    )
    params = sum(op.weight_bytes for op in m.tpu)
    cached = min(params, s.sram_bytes)
    streamed = params - cached
    io_bytes = _segment_io_bytes(graph, m.tpu)
    return TPUWork(
        mapping=m,
        weighted_macs=float(weighted),
        link_bytes=int(streamed + io_bytes),
        host_seconds=graph_seconds(m.head + m.host, profile.host),
        cached_bytes=int(cached),
        streamed_bytes=int(streamed),
    )


def simulate_edgetpu(tflite: bytes, graph: Graph, profile: HardwareProfile) -> LatencyResult:
    assert profile.edgetpu is not None and profile.host is not None
    s = profile.edgetpu
    reason = deployability(graph)
    if reason is not None:
        # Not deployable: report what the host CPU alone would take, so that the value stays
        # finite for the sampler; the trial is infeasible through its constraint anyway.
        ms = (graph_seconds(graph.ops, profile.host) + profile.host.invoke_overhead_s) * 1e3
        details = {"reason": reason, "latency_is": "host CPU only"}
        return LatencyResult(profile.name, ms, ms, 0, "edgetpu", deployable=False, details=details)
    work = tpu_work(graph, profile)
    m = work.mapping
    chip_seconds = work.weighted_macs / s.macs_per_s + work.ops * s.op_overhead_s
    ms = work.seconds(s) * 1e3
    details = {
        "ops_mapped": len(m.tpu),
        "ops_total": len(graph.ops),
        "share_mapped": round(len(m.tpu) / max(1, len(graph.ops)), 4),
        "break_op": m.break_op,
        "break_reason": m.break_reason,
        "cached_param_bytes": work.cached_bytes,
        "streamed_param_bytes": work.streamed_bytes,
        "tpu_ms": round(chip_seconds * 1e3, 4),
        "link_ms": round(work.link_bytes / s.link_bytes_per_s * 1e3, 4),
        "host_ms": round(work.host_seconds * 1e3, 4),
    }
    return LatencyResult(profile.name, ms, ms, 0, "edgetpu", details=details)


CHIP = ("macs_per_s", "op_overhead_s", "invoke_overhead_s")  # the chip and its runtime
FITTED = (*CHIP, "link_bytes_per_s")
# edgetpu-usb fits FITTED on its rows; edgetpu-devboard keeps the USB fit's CHIP (the same chip
# and runtime) and fits only its own link (PCIe and the i.MX 8M memory system) on its rows.


def fit_timing(
    rows: list[tuple[Graph, float]], profile: HardwareProfile, keys: tuple[str, ...] = FITTED
) -> dict[str, float]:
    """The timing constants named in ``keys`` (of ``FITTED``) that make the simulator reproduce
    published latencies, by least squares (``rows``: graph, published milliseconds); the other
    constants keep the profile's values. ``FITTED``: the effective MAC rate, the cost of each
    mapped op and of each invoke, and the link rate at which parameters that miss the on-chip
    cache stream (the rows should then include a model whose parameters stream). The
    utilisation per op type and the SRAM size stay priors. Once the mapping is known, latency is
    linear in (invoke, per op, 1 / MAC rate, 1 / link rate), so this is one linear solve."""
    assert profile.edgetpu is not None and set(keys) <= set(FITTED)
    s = profile.edgetpu
    # Each constant's coefficient in the linear model and its current value (per unit).
    current = {
        "invoke_overhead_s": s.invoke_overhead_s,
        "op_overhead_s": s.op_overhead_s,
        "macs_per_s": 1.0 / s.macs_per_s,
        "link_bytes_per_s": 1.0 / s.link_bytes_per_s,
    }
    design, target = [], []
    for graph, published_ms in rows:
        work = tpu_work(graph, profile)
        terms = {
            "invoke_overhead_s": 1.0,
            "op_overhead_s": float(work.ops),
            "macs_per_s": work.weighted_macs,
            "link_bytes_per_s": float(work.link_bytes),
        }
        fixed = sum(terms[k] * current[k] for k in terms if k not in keys)
        design.append([terms[k] for k in keys])
        target.append(published_ms / 1e3 - work.host_seconds - fixed)
    solution, *_ = np.linalg.lstsq(np.array(design), np.array(target), rcond=None)
    values = dict(zip(keys, (float(v) for v in solution), strict=True))
    if min(values.values()) <= 0:
        raise ValueError(
            f"the fit gives a non-positive coefficient ({values}): the rows do not fit this model"
        )
    rates = ("macs_per_s", "link_bytes_per_s")  # fitted as seconds per unit
    return {k: 1.0 / v if k in rates else v for k, v in values.items()}


def fit_coral(rows: list[tuple[Graph, float, float]]) -> dict[str, dict[str, float]]:
    """The shipped Coral profiles' fitted constants, as ``validate_profiles.py --fit`` prints
    them (``rows``: graph, published USB ms, published Dev Board ms or NaN): edgetpu-usb's
    ``FITTED`` on the USB numbers; edgetpu-devboard's link rate on its own numbers, with the
    chip constants of the USB fit rounded as printed (4 significant digits)."""
    usb = fit_timing([(g, ms) for g, ms, _ in rows], load_profile("edgetpu-usb"))
    chip = {k: float(f"{usb[k]:.4g}") for k in CHIP}
    board = load_profile("edgetpu-devboard")
    assert board.edgetpu is not None
    board = replace(board, edgetpu=replace(board.edgetpu, **chip))
    board_rows = [(g, ms) for g, _, ms in rows if ms == ms]  # NaN: no published number
    link = fit_timing(board_rows, board, keys=("link_bytes_per_s",))
    return {"edgetpu-usb": usb, "edgetpu-devboard": {**chip, **link}}


def _eight_bit_in(graph: Graph, op: OpInfo) -> bool:
    return bool(op.inputs) and graph.tensors[op.inputs[0]].dtype in _EIGHT_BIT


def _why_not_mapped(graph: Graph, op: OpInfo, static: set[int]) -> str | None:
    if op.name not in SUPPORTED_OPS:
        return f"{op.name} is not supported by the Edge TPU compiler"
    for t in (*op.inputs, *op.outputs):
        if t < 0 or t in static:
            continue
        tensor = graph.tensors[t]
        if tensor.constant:
            continue
        if tensor.dtype not in _EIGHT_BIT:
            return f"{op.name} has a {tensor.dtype} activation {tensor.name!r}"
        big = [d for d in tensor.shape[:-3] if d > 1]
        if big:
            return f"{op.name} tensor {tensor.name!r} has more than 3 non-trivial dimensions"
    return None


def _segment_io_bytes(graph: Graph, segment: list[OpInfo]) -> int:
    """Bytes that cross the link: activations entering and leaving the TPU segment."""
    if not segment:
        return 0
    inside = {t for op in segment for t in op.outputs}
    read = {t for op in segment for t in op.inputs if t >= 0}
    entering = {t for t in read - inside if not graph.tensors[t].constant}
    consumers_after = {t for op in graph.ops if op.index > segment[-1].index for t in op.inputs}
    leaving = {t for t in inside if t in consumers_after or t in graph.outputs}
    return int(np.sum([graph.tensors[t].nbytes for t in entering | leaving]))
