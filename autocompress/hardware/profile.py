"""Hardware profiles: ``hardware_profiles/*.yaml`` -> :class:`HardwareProfile`.

A profile names the latency backend that measures (or, later, simulates) a ``.tflite`` file for a
target, and that backend's settings. Users add a target by copying a file and editing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress._yaml import check_keys, load_mapping
from autocompress.errors import InputError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "hardware_profiles"
BACKENDS = ("measure",)


@dataclass(frozen=True)
class MeasureSettings:
    """How a measuring backend times a model, after TFLite's ``benchmark_model``."""

    threads: int = 1
    warmup_runs: int = 5
    min_runs: int = 50
    min_seconds: float = 0.5
    max_seconds: float = 10.0


@dataclass(frozen=True)
class HardwareProfile:
    """One deployment target."""

    name: str
    backend: str
    description: str = ""
    measure: MeasureSettings = MeasureSettings()
    max_model_bytes: int | None = None
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> HardwareProfile:
        check_keys(
            source,
            data,
            {"name", "backend", "description", "measure", "max_model_bytes"},
            {"name", "backend"},
        )
        name, backend = data["name"], data["backend"]
        if not isinstance(name, str) or not name:
            raise InputError(source, "name must be a non-empty string")
        if backend not in BACKENDS:
            raise InputError(source, f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise InputError(source, "description must be a string")
        max_bytes = data.get("max_model_bytes")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
        ):
            raise InputError(
                source, f"max_model_bytes must be a positive integer, got {max_bytes!r}"
            )
        return cls(
            name=name,
            backend=backend,
            description=description,
            measure=_measure_settings(source, data.get("measure", {})),
            max_model_bytes=max_bytes,
            source=source,
        )


def _measure_settings(source: str, data: Any) -> MeasureSettings:
    if not isinstance(data, dict):
        raise InputError(source, "measure must be a mapping")
    defaults = MeasureSettings()
    known = set(defaults.__dataclass_fields__)
    check_keys(f"{source}: measure", data, known, set())
    values: dict[str, Any] = {}
    for key in known:
        value = data.get(key, getattr(defaults, key))
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, want) or value <= 0:
            raise InputError(
                source, f"measure.{key} must be a positive {want.__name__}, got {value!r}"
            )
        values[key] = value
    if values["min_seconds"] > values["max_seconds"]:
        raise InputError(source, "measure.min_seconds must not exceed measure.max_seconds")
    return MeasureSettings(**values)


def list_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | Path, directory: Path = PROFILES_DIR) -> HardwareProfile:
    """Load a profile by shipped name (``cpu-host``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(list_profiles(directory)) or "none"
            raise InputError(str(name_or_path), f"unknown hardware profile (known: {known})")
    profile = HardwareProfile.from_dict(load_mapping(path), source=str(path))
    return profile
