"""A profile's limits on a file: the one place they are checked (the search's constraints,
``retarget`` and ``estimate`` all ask here).

What a limit is measured against depends on the backend: a ``tflm`` profile knows the RAM and
flash its board needs for the file (TFLM's arena plus the runtime's share, the file plus the
runtime's code: :mod:`autocompress.hardware.tflm`, in the latency result's details); every other
profile compares the file's bytes and its activations' peak (:meth:`Graph.peak_ram_bytes`).
"""

from __future__ import annotations

from autocompress.hardware.profile import HardwareProfile
from autocompress.records import LatencyResult


def footprint(size_bytes: int, peak_ram_bytes: int, result: LatencyResult) -> tuple[int, int]:
    """(model bytes, RAM bytes) the profile's limits hold the file to."""
    return (
        int(result.details.get("flash_bytes", size_bytes)),
        int(result.details.get("ram_bytes", peak_ram_bytes)),
    )


def over_limits(
    profile: HardwareProfile, size_bytes: int, peak_ram_bytes: int, result: LatencyResult
) -> dict[str, float]:
    """``<profile>.deployable``, ``.max_model_bytes`` and ``.max_ram_bytes`` as constraint
    values: > 0 violated (by how much), <= 0 met. Limits the profile does not set are absent."""
    model, ram = footprint(size_bytes, peak_ram_bytes, result)
    out = {f"{profile.name}.deployable": 0.0 if result.deployable else 1.0}
    if profile.max_model_bytes is not None:
        out[f"{profile.name}.max_model_bytes"] = float(model - profile.max_model_bytes)
    if profile.max_ram_bytes is not None:
        out[f"{profile.name}.max_ram_bytes"] = float(ram - profile.max_ram_bytes)
    return out


def violated(values: dict[str, float]) -> list[str]:
    """The names of the violated constraints among ``values``."""
    return [name for name, value in values.items() if value > 0]
