"""Microcontrollers running TensorFlow Lite for Microcontrollers (the ``tflm`` backend).

What runs for real: TFLM itself (the ``tflite-micro`` package, TFLM's Python interpreter built
for x86) loads the file, prepares every op with its own kernels and plans the tensor arena with
its own memory planner -- the figure a user would put in ``kTensorArenaSize`` before flashing.
A file TFLM cannot run (an op without a kernel, a type a kernel refuses, a quantization range a
kernel's checks reject) fails here as it would on the board, and the failing op and TFLM's
reason are reported. TFLM aborts the process on some of those checks (a ``TFLITE_CHECK``), so it
runs in a child process with a time limit.

What is modelled: the time on the board, from a per-op cycle model whose constants are fitted
to published MLPerf Tiny results of TFLM on that board (``benchmarks/validate_mcu.py``; which
constants are fitted and which are priors is said in each profile's YAML):

    cycles(op) = op_cycles
               + MACs x cycles_per_mac x mac_cost[op type]      (conv, depthwise)
               + MACs x cycles_per_fc_mac                       (fully connected)
               + output elements x cycles_per_output            (ops with MACs: requantization)
               + element operations x element_cycles            (every other op)

RAM is the arena plus the runtime's own share, flash the file plus the runtime's code (profile
priors); both are held against the profile's ``max_ram_bytes`` / ``max_model_bytes``
(:mod:`autocompress.hardware.limits`).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autocompress.hardware.flatbuffer import Graph, OpInfo
from autocompress.hardware.profile import HardwareProfile, MCUSettings
from autocompress.records import LatencyResult

FC_OPS = frozenset({"FULLY_CONNECTED", "BATCH_MATMUL"})
# Ops that convert at the file's edges: TFLM has int8 kernels for them, whatever they convert.
EDGE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
ARENA_BYTES = 256 << 20  # what the child offers TFLM to plan in (far beyond any board)
TIMEOUT_S = 120.0

# The child: TFLM's interpreter prepares the file (allocating its arena), then prints the
# recording allocator's report on stderr. Nothing of autocompress is imported there.
_CHILD = """
import sys
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))
sys.stderr.flush()
interpreter.print_allocations()
print("prepared", flush=True)
"""
_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_FAILED = re.compile(r"Node (\S+) \(number (\d+)\) failed to (prepare|allocate|init)")


@dataclass(frozen=True)
class Allocation:
    """What TFLM made of a file: its arena, or why it cannot run it."""

    arena_bytes: int | None
    error: str | None = None


def allocate(tflite: bytes, timeout_s: float = TIMEOUT_S) -> Allocation:
    """Prepare ``tflite`` with TFLM in a child process: its arena in bytes, or TFLM's reason."""
    with tempfile.TemporaryDirectory(prefix="autocompress-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), str(ARENA_BYTES)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return Allocation(None, f"TFLM did not prepare the file in {timeout_s:.0f} s")
    return read_report(done.returncode, done.stdout, done.stderr)


def read_report(returncode: int, stdout: str, stderr: str) -> Allocation:
    """The child's outcome, from its exit status and what TFLM printed."""
    totals = _TOTAL.findall(stderr)
    if returncode == 0 and "prepared" in stdout and totals:
        return Allocation(int(totals[-1]))
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    at, failed = next(
        ((i, m) for i, ln in enumerate(lines) if (m := _FAILED.search(ln))), (0, None)
    )
    if failed is not None:
        op, number, step = failed.groups()
        why = next((ln for ln in reversed(lines[:at]) if "[RecordingMicroAllocator]" not in ln), "")
        return Allocation(None, f"TFLM cannot {step} op {number} ({op}): {why}".rstrip(": "))
    if returncode < 0:
        return Allocation(
            None,
            f"TFLM aborted preparing the file (signal {-returncode}): a kernel's check "
            "refused it (e.g. a degenerate quantization range)",
        )
    last = next((ln for ln in reversed(lines) if "Error" in ln or "rror:" in ln), "")
    return Allocation(None, f"TFLM cannot run the file: {last or 'exit code ' + str(returncode)}")


def op_cycles(op: OpInfo, graph: Graph, s: MCUSettings) -> float:
    """Cycles of one op on the profile's kernels (see the module's formula)."""
    cycles = s.op_cycles
    if op.macs:
        if op.name in FC_OPS:
            cycles += op.macs * s.cycles_per_fc_mac
        else:
            cycles += op.macs * s.cycles_per_mac * s.mac_cost.get(op.name, 1.0)
        cycles += sum(graph.tensors[t].elements for t in op.outputs) * s.cycles_per_output
    else:
        cycles += op.elementwise * s.element_cycles
    return cycles


def graph_seconds(graph: Graph, s: MCUSettings) -> float:
    return _cycles(graph, s) / s.clock_hz


def compute_problem(graph: Graph, s: MCUSettings) -> str | None:
    """Why the profile's kernels cannot run the file's arithmetic, or None."""
    for op in graph.ops:
        if op.name not in EDGE_OPS and op.compute not in s.compute:
            return (
                f"op {op.index} ({op.name}) computes in {op.compute}; the profile's kernels "
                f"run {', '.join(s.compute)} (quantize the model to int8)"
            )
    return None


def simulate_tflm(tflite: bytes, graph: Graph, profile: HardwareProfile) -> LatencyResult:
    assert profile.mcu is not None
    s = profile.mcu
    per_op = [(op_cycles(op, graph, s), op) for op in graph.ops]
    cycles = sum(c for c, _ in per_op)
    ms = cycles / s.clock_hz * 1e3
    costliest = sorted(per_op, key=lambda pair: -pair[0])[:3]
    details: dict[str, object] = {
        "kernels": s.kernels,
        "cycles": round(cycles),
        "top_ops": [f"{op.index}:{op.name} {c / s.clock_hz * 1e3:.3g} ms" for c, op in costliest],
        "flash_bytes": len(tflite) + s.runtime_flash_bytes,
    }
    problem = compute_problem(graph, s)
    allocation = allocate(tflite) if problem is None else Allocation(None, None)
    if allocation.arena_bytes is not None:
        details["arena_bytes"] = allocation.arena_bytes
        details["ram_bytes"] = allocation.arena_bytes + s.runtime_ram_bytes
    else:
        # No arena from TFLM: the activations' peak stands in, so that the RAM figure stays
        # finite for the sampler (the file is infeasible through deployability anyway).
        details["ram_bytes"] = graph.peak_ram_bytes() + s.runtime_ram_bytes
        details["ram_is"] = "activation peak (TFLM did not plan an arena)"
    reason = problem or allocation.error
    if reason is not None:
        details.update(reason=reason, latency_is="cycle model of a file the board cannot run")
    return LatencyResult(
        profile.name, ms, ms, 0, "tflm", deployable=reason is None, details=details
    )


FITTED = ("cycles_per_mac", "cycles_per_fc_mac")  # what the published rows fit, per profile


def fit_cycles(rows: list[tuple[Graph, float]], s: MCUSettings) -> dict[str, float]:
    """``cycles_per_mac`` and ``cycles_per_fc_mac`` that make the cycle model reproduce two
    published latencies (``rows``: graph, milliseconds), the other constants kept. Cycles are
    linear in both, so this is one 2x2 solve."""
    import numpy as np

    if len(rows) != 2:
        raise ValueError(f"two rows fit two constants, got {len(rows)}")
    unit = {k: dataclasses.replace(s, **{j: float(j == k) for j in FITTED}) for k in FITTED}
    base = dataclasses.replace(s, **dict.fromkeys(FITTED, 0.0))
    a = np.array([[_cycles(g, unit[k]) - _cycles(g, base) for k in FITTED] for g, _ in rows])
    b = np.array([ms * 1e-3 * s.clock_hz - _cycles(g, base) for g, ms in rows])
    solved = np.linalg.solve(a, b)
    if (solved <= 0).any():
        raise ValueError(f"the rows fit non-positive constants {solved.tolist()}")
    return dict(zip(FITTED, (float(v) for v in solved), strict=True))


def _cycles(graph: Graph, s: MCUSettings) -> float:
    return sum(op_cycles(op, graph, s) for op in graph.ops)
