"""Roofline simulation of a CPU or GPU from the ops of a ``.tflite`` file.

Each op costs ``max(compute, memory) + overhead``: compute is its MACs at the profile's rate for
the op's compute kind (times a per-op efficiency, divided by the profile's 2:4 speed-up when the
op's weights hold that pattern and the hardware exploits it) plus its element operations;
memory is the bytes it reads and writes over the memory bandwidth. The constants live in the
profile YAML, each with its source.
"""

from __future__ import annotations

from autocompress.hardware.flatbuffer import Graph, OpInfo
from autocompress.hardware.profile import HardwareProfile, RooflineSettings
from autocompress.records import LatencyResult


def op_seconds(op: OpInfo, s: RooflineSettings) -> float:
    """Simulated time of one op."""
    rate = s.macs_per_s.get(op.compute) or s.macs_per_s.get("float32") or 1.0
    compute = op.macs / (rate * s.op_efficiency.get(op.name, 1.0))
    if op.sparse_2_4:
        compute /= s.sparse_2_4_speedup.get(op.compute, 1.0)
    compute += op.elementwise / s.elementwise_per_s
    memory = (op.weight_bytes + op.activation_bytes) / s.bandwidth_bytes_per_s
    return max(compute, memory) + s.op_overhead_s


def graph_seconds(ops: list[OpInfo], s: RooflineSettings) -> float:
    return sum(op_seconds(op, s) for op in ops)


def simulate_roofline(tflite: bytes, graph: Graph, profile: HardwareProfile) -> LatencyResult:
    assert profile.roofline is not None
    seconds = graph_seconds(graph.ops, profile.roofline) + profile.roofline.invoke_overhead_s
    ms = seconds * 1e3
    return LatencyResult(
        profile=profile.name,
        median_ms=ms,
        p90_ms=ms,
        runs=0,
        backend="roofline",
        details={
            "macs": graph.macs,
            "ops": len(graph.ops),
            "sparse_2_4_ops": sum(op.sparse_2_4 for op in graph.ops),
        },
    )
