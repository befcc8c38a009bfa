"""Hardware profiles and the latency backends behind them.

Every backend has the same shape: ``(tflite bytes, parsed graph, profile) -> LatencyResult``.
"""

from __future__ import annotations

from collections.abc import Callable

from autocompress.hardware.flatbuffer import Graph, read_tflite
from autocompress.hardware.profile import HardwareProfile, list_profiles, load_profile
from autocompress.records import LatencyResult

__all__ = ["Graph", "HardwareProfile", "latency", "list_profiles", "load_profile", "read_tflite"]

Backend = Callable[[bytes, Graph, HardwareProfile], LatencyResult]


def _backends() -> dict[str, Backend]:
    from autocompress.hardware.edgetpu import simulate_edgetpu
    from autocompress.hardware.gpu_delegate import simulate_gpu_delegate
    from autocompress.hardware.measure import measure_latency
    from autocompress.hardware.roofline import simulate_roofline
    from autocompress.hardware.tensorrt import simulate_tensorrt
    from autocompress.hardware.tflm import simulate_tflm

    return {
        "measure": measure_latency,
        "roofline": simulate_roofline,
        "edgetpu": simulate_edgetpu,
        "gpu-delegate": simulate_gpu_delegate,
        "tensorrt": simulate_tensorrt,
        "tflm": simulate_tflm,
    }


def latency(tflite: bytes, profile: HardwareProfile, graph: Graph | None = None) -> LatencyResult:
    """The latency of ``tflite`` on ``profile``, by the profile's backend."""
    if graph is None:
        graph = read_tflite(tflite)
    return _backends()[profile.backend](tflite, graph, profile)
