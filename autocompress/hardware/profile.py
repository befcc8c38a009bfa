"""Hardware profiles: ``hardware_profiles/*.yaml`` -> :class:`HardwareProfile`.

A profile names the latency backend for a target and that backend's constants:

* ``measure``: run the file with LiteRT on this machine (section ``measure``);
* ``roofline``: simulate a CPU or GPU from the file's ops (section ``roofline``);
* ``edgetpu``: simulate the Edge TPU compiler's mapping and the chip (sections ``edgetpu`` and
  ``host``, the CPU that runs what does not map);
* ``gpu-delegate``: simulate TFLite's GPU delegate on a phone GPU (sections ``gpu`` and ``host``,
  the CPU that runs the ops the delegate leaves);
* ``tensorrt``: simulate a TensorRT engine built from the network (section ``gpu``);
* ``tflm``: a microcontroller running TensorFlow Lite for Microcontrollers: TFLM itself prepares
  the file and plans its arena, a cycle model gives the latency (section ``mcu``; needs the
  optional ``tflite-micro`` package, ``pip install 'autocompress[mcu]'``).

Optional limits ``max_model_bytes`` and ``max_ram_bytes`` make bigger candidates infeasible (on
a ``tflm`` profile they hold the flash and the RAM the board needs for the file: see
:mod:`autocompress.hardware.limits`). ``quantization`` lists the only modes the target runs (a
search whose first profile has it offers no other), ``integer_io`` asks for integer inputs and
outputs (the Edge TPU's default).
Users add a target by copying a file and editing its constants.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress._shipped import shipped_dir
from autocompress._yaml import check_keys, load_mapping
from autocompress.errors import InputError

PROFILES_DIR = shipped_dir("hardware_profiles")
COMPUTE_KINDS = ("float32", "float16", "int8", "int16x8", "hybrid")
# Shipped profiles that were renamed when they were remodelled on their real runtimes.
RENAMED = {"gpu-t4": "t4-trt", "gpu-jetson-nano": "jetson-nano-trt", "gpu-a100-trt": "a100-trt"}


@dataclass(frozen=True)
class MeasureSettings:
    """How the measuring backend times a model, after TFLite's ``benchmark_model``."""

    threads: int = 1
    warmup_runs: int = 5
    min_runs: int = 50
    min_seconds: float = 0.5
    max_seconds: float = 10.0


@dataclass(frozen=True)
class RooflineSettings:
    """Per-op roofline: time = max(compute, memory traffic) + per-op overhead.

    ``macs_per_s`` is the sustained multiply-accumulate rate for each compute kind the file's
    ops use (float32, float16, int8, int16x8, hybrid = int8 weights with float activations);
    ``op_efficiency`` scales it per op type (e.g. depthwise convolutions use the units poorly);
    ``sparse_2_4_speedup`` divides the compute time of ops whose weights hold the 2:4 pattern,
    per compute kind, on hardware that exploits it (sparse tensor cores); absent = no gain.
    """

    macs_per_s: dict[str, float]
    elementwise_per_s: float
    bandwidth_bytes_per_s: float
    op_overhead_s: float = 0.0
    invoke_overhead_s: float = 0.0
    op_efficiency: dict[str, float] = field(default_factory=dict)
    sparse_2_4_speedup: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgeTPUSettings:
    """The Edge TPU: int8 MAC array, on-chip parameter cache, a link to the host."""

    macs_per_s: float
    sram_bytes: int
    link_bytes_per_s: float
    op_overhead_s: float = 0.0
    invoke_overhead_s: float = 0.0
    utilisation: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GPUSettings:
    """A GPU as its runtime drives it: one kernel per fused group of ops (``hardware/gpu.py``),
    each costing ``max(MACs / rate, bytes / bandwidth) + kernel_launch_s``.

    ``macs_per_s`` is the sustained rate per precision the runtime computes in (``float16``;
    ``int8`` only where the GPU has int8 kernels); ``op_efficiency`` scales it per op type;
    ``sparse_2_4_speedup`` divides the compute of ops whose weights hold the 2:4 pattern (sparse
    tensor cores); ``channel_multiple`` is the channel count the kernels pad to, per precision
    (the GPU delegate slices tensors into 4 channels; tensor cores take 8 fp16 / 32 int8).
    GPU delegate only: ``max_partitions`` (the delegate's default runs one partition, the
    largest), and the cost of moving a tensor between CPU and GPU memory at a partition's
    boundary (``copy_bytes_per_s``, ``partition_overhead_s``).
    """

    macs_per_s: dict[str, float]
    bandwidth_bytes_per_s: float
    kernel_launch_s: float = 0.0
    invoke_overhead_s: float = 0.0
    op_efficiency: dict[str, float] = field(default_factory=dict)
    sparse_2_4_speedup: dict[str, float] = field(default_factory=dict)
    channel_multiple: dict[str, float] = field(default_factory=dict)
    max_partitions: int = 1
    copy_bytes_per_s: float = 1.0e10
    partition_overhead_s: float = 0.0


@dataclass(frozen=True)
class MCUSettings:
    """A microcontroller running TFLM (:mod:`autocompress.hardware.tflm`).

    Each op costs ``op_cycles`` plus its MACs at ``cycles_per_mac`` (times ``mac_cost`` of its
    op type; fully connected ops at ``cycles_per_fc_mac``: their weights stream from flash once
    per inference) plus ``cycles_per_output`` per output element of a MAC op (requantization)
    plus ``element_cycles`` per element operation of the others; latency is cycles over
    ``clock_hz``. ``kernels`` says which kernels the constants describe (TFLM's reference
    kernels, CMSIS-NN, a vendor's). RAM is TFLM's arena plus ``runtime_ram_bytes`` (the
    interpreter, stack, application buffers); flash is the file plus ``runtime_flash_bytes``
    (TFLM, kernels and application code). ``compute`` lists the compute kinds the kernels run
    (an op computing in another kind makes the file not deployable).
    """

    clock_hz: float
    cycles_per_mac: float
    cycles_per_fc_mac: float
    runtime_ram_bytes: int
    runtime_flash_bytes: int
    kernels: str = ""
    cycles_per_output: float = 10.0
    op_cycles: float = 2000.0
    element_cycles: float = 4.0
    mac_cost: dict[str, float] = field(default_factory=lambda: {"DEPTHWISE_CONV_2D": 2.0})
    compute: tuple[str, ...] = ("int8", "int16x8")


@dataclass(frozen=True)
class HardwareProfile:
    """One deployment target."""

    name: str
    backend: str
    description: str = ""
    measure: MeasureSettings = MeasureSettings()
    roofline: RooflineSettings | None = None
    edgetpu: EdgeTPUSettings | None = None
    gpu: GPUSettings | None = None
    host: RooflineSettings | None = None
    mcu: MCUSettings | None = None
    max_model_bytes: int | None = None
    max_ram_bytes: int | None = None
    quantization: tuple[str, ...] = ()  # the only modes the target runs; empty: any
    integer_io: bool = False  # quantized files get integer inputs and outputs
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> HardwareProfile:
        known = {
            "name",
            "backend",
            "description",
            "measure",
            "roofline",
            "edgetpu",
            "gpu",
            "host",
            "mcu",
            "max_model_bytes",
            "max_ram_bytes",
            "quantization",
            "integer_io",
        }
        check_keys(source, data, known, {"name", "backend"})
        name, backend = data["name"], data["backend"]
        if not isinstance(name, str) or not name:
            raise InputError(source, "name must be a non-empty string")
        needs = {
            "measure": (),
            "roofline": ("roofline",),
            "edgetpu": ("edgetpu", "host"),
            "gpu-delegate": ("gpu", "host"),
            "tensorrt": ("gpu",),
            "tflm": ("mcu",),
        }
        if not isinstance(backend, str) or backend not in needs:
            raise InputError(source, f"backend {backend!r} is not one of {', '.join(needs)}")
        for section in needs[backend]:
            if section not in data:
                raise InputError(source, f"backend {backend!r} needs a {section!r} section")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise InputError(source, "description must be a string")
        limits = {
            k: _positive_int(source, k, data.get(k)) for k in ("max_model_bytes", "max_ram_bytes")
        }
        integer_io = data.get("integer_io", backend == "edgetpu")
        if not isinstance(integer_io, bool):
            raise InputError(source, f"integer_io must be true or false, got {integer_io!r}")
        if backend == "tflm":
            _need_tflm(source)
        return cls(
            name=name,
            backend=backend,
            description=description,
            measure=_section(source, "measure", data.get("measure", {}), MeasureSettings),
            roofline=_optional(source, "roofline", data, RooflineSettings),
            edgetpu=_optional(source, "edgetpu", data, EdgeTPUSettings),
            gpu=_optional(source, "gpu", data, GPUSettings),
            host=_optional(source, "host", data, RooflineSettings),
            mcu=_optional(source, "mcu", data, MCUSettings),
            quantization=_modes(source, data.get("quantization", [])),
            integer_io=integer_io,
            source=source,
            **limits,
        )


def mcu_settings(name_or_path: str | Path) -> MCUSettings:
    """The ``mcu`` section of a ``tflm`` profile, without asking for TFLM: the cycle model and
    its fit need only the file's graph (the fit's tests run without the optional package)."""
    path = profile_path(name_or_path)
    data = load_mapping(path)
    if "mcu" not in data:
        raise InputError(str(path), "has no 'mcu' section")
    settings: MCUSettings = _section(str(path), "mcu", data["mcu"], MCUSettings)
    return settings


def _modes(source: str, value: Any) -> tuple[str, ...]:
    from autocompress.recipe import QUANTIZATION_MODES

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(source, f"quantization must be a list of mode names, got {value!r}")
    unknown = [v for v in value if v not in QUANTIZATION_MODES]
    if unknown:
        raise InputError(
            source,
            f"quantization: unknown mode {unknown[0]!r} (known: {', '.join(QUANTIZATION_MODES)})",
        )
    return tuple(value)


def _need_tflm(source: str) -> None:
    """A ``tflm`` profile runs TFLM's own Python interpreter: say how to get it."""
    import importlib.util

    if importlib.util.find_spec("tflite_micro") is None:
        raise InputError(
            source,
            "a tflm profile needs the tflite-micro package: pip install 'autocompress[mcu]'",
        )


def _positive_int(source: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(source, f"{key} must be a positive integer, got {value!r}")
    return value


def _optional(source: str, key: str, data: dict[str, Any], cls: type) -> Any:
    return _section(source, key, data[key], cls) if key in data else None


def _section(source: str, section: str, data: Any, cls: type) -> Any:
    """Build settings dataclass ``cls`` from a mapping, checking every key and type."""
    if not isinstance(data, dict):
        raise InputError(source, f"{section} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = {
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    check_keys(f"{source}: {section}", data, set(fields), required)
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{section}.{key}"
        hint = hints[key]
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(source, f"{where} must be a positive integer, got {value!r}")
        elif hint is str:
            if not isinstance(value, str):
                raise InputError(source, f"{where} must be a string, got {value!r}")
        elif typing.get_origin(hint) is tuple:
            if not isinstance(value, list) or not all(k in COMPUTE_KINDS for k in value):
                raise InputError(
                    source, f"{where} must be a list of compute kinds ({', '.join(COMPUTE_KINDS)})"
                )
            value = tuple(value)
        elif hint is float:
            value = _number(
                source, where, value, allow_zero=key.endswith(("overhead_s", "launch_s"))
            )
        elif typing.get_origin(hint) is dict:
            if not isinstance(value, dict) or not value:
                raise InputError(source, f"{where} must be a non-empty mapping of names to numbers")
            value = {str(k): _number(source, f"{where}.{k}", v) for k, v in value.items()}
            if key in ("macs_per_s", "sparse_2_4_speedup", "channel_multiple"):
                unknown = sorted(set(value) - set(COMPUTE_KINDS))
                if unknown:
                    raise InputError(
                        source,
                        f"{where}: unknown compute kind {unknown[0]!r} "
                        f"(known: {', '.join(COMPUTE_KINDS)})",
                    )
        values[key] = value
    settings = cls(**values)
    if isinstance(settings, MeasureSettings) and settings.min_seconds > settings.max_seconds:
        raise InputError(source, "measure.min_seconds must not exceed measure.max_seconds")
    return settings


def _number(source: str, where: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 4.7e9 (no sign in the exponent) as a string
        try:
            value = float(value)
        except ValueError:
            raise InputError(source, f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(source, f"{where} must be a number, got {value!r}")
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        raise InputError(source, f"{where} must be a positive finite number, got {value!r}")
    return float(value)


def list_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    """Names of the profiles in ``directory`` (default: the shipped ones)."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | Path, directory: Path = PROFILES_DIR) -> HardwareProfile:
    """Load a profile by shipped name (``cpu-host``) or by path to a YAML file."""
    path = profile_path(name_or_path, directory)
    return HardwareProfile.from_dict(load_mapping(path), source=str(path))


def profile_path(name_or_path: str | Path, directory: Path = PROFILES_DIR) -> Path:
    """The YAML file of a profile given by shipped name or by path; a one-line error naming
    the known profiles (or a renamed one's successor) otherwise."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file() and str(name_or_path) in RENAMED:
            raise InputError(
                str(name_or_path),
                f"this profile is now {RENAMED[str(name_or_path)]!r} (remodelled on its runtime "
                "and fitted to published latencies)",
            )
        if not path.is_file():
            known = ", ".join(list_profiles(directory)) or "none"
            raise InputError(str(name_or_path), f"unknown hardware profile (known: {known})")
    return path
