"""Hardware profiles and the latency backends behind them."""

from __future__ import annotations

from autocompress.hardware.profile import HardwareProfile, list_profiles, load_profile
from autocompress.records import LatencyResult

__all__ = ["HardwareProfile", "latency", "list_profiles", "load_profile"]


def latency(tflite: bytes, profile: HardwareProfile) -> LatencyResult:
    """The latency of ``tflite`` on ``profile``, by the profile's backend."""
    from autocompress.hardware.measure import measure_latency

    backends = {"measure": measure_latency}
    return backends[profile.backend](tflite, profile)
