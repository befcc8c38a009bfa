"""The compression recipe: what a trial builds, one declaration per search dimension.

Every search dimension is one field of :class:`Recipe`, declared with :func:`dimension`: its type
(the annotation), its off value (the default), its domain (a check), whether it needs a trainable
model, which way is more compressed, and the stage that acts on it. Everything else derives from
these declarations: the search space's parameters and their checks (:mod:`autocompress.space`),
what a ``.tflite`` teacher refuses (:mod:`autocompress.models.tflite`), the early-stop rule's
"at least as compressed" (:mod:`autocompress.study.early_stop`), and every table's columns. A new
dimension is one field here plus its stage.

Quantization modes are rows of one table, :data:`QUANT_MODES`: which tool makes the file, whether
it takes a range algorithm, whether its activations are int8, and so on; the tuples the stages use
are derived from it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ----------------------------------------------------------------------------------------------
# Quantization modes: one row each.


@dataclass(frozen=True)
class QuantMode:
    """One quantization mode of a recipe.

    Attributes:
        name: the recipe's ``quantization`` value.
        litert: LiteRT Quantizer makes it from the float file (post-training).
        converter: the TF converter has the mode itself (what the converter route uses, for
            layer exclusions and XNNPACK's sparse encoding).
        algorithm: takes the recipe's ``ptq_algorithm`` (how LiteRT Quantizer picks ranges).
        int8_activations: activations are int8 (kept layers can be widened to a16w8 there).
        integer_io: inputs and outputs can be made integer (a full-integer file).
        trains: needs fine-tuning of a trainable model (QAT).
        colour: the report's colour for the mode.
        doc: what the mode is (the table documents itself; nothing reads it).
    """

    name: str
    litert: bool = False
    converter: bool = True
    algorithm: bool = False
    int8_activations: bool = False
    integer_io: bool = False
    trains: bool = False
    colour: str = "#7f7f7f"
    doc: str = ""


QUANT_MODES: tuple[QuantMode, ...] = (
    QuantMode("none", colour="#1f77b4", doc="float32, no quantization"),
    QuantMode("dynamic", litert=True, colour="#ff7f0e", doc="int8 weights, float activations"),
    QuantMode("float16", litert=True, colour="#2ca02c", doc="float16 weights"),
    QuantMode(
        "int8",
        litert=True,
        algorithm=True,
        int8_activations=True,
        integer_io=True,
        colour="#d62728",
        doc="full-integer post-training quantization, calibrated",
    ),
    QuantMode(
        "int8_symmetric",
        litert=True,
        converter=False,
        algorithm=True,
        int8_activations=True,
        integer_io=True,
        colour="#ff9896",
        doc="int8 with every zero point 0, as TensorRT takes it (LiteRT Quantizer)",
    ),
    QuantMode(
        "int16x8",
        litert=True,
        algorithm=True,
        integer_io=True,
        colour="#8c564b",
        doc="int16 activations, int8 weights",
    ),
    QuantMode(
        "w4a8",
        litert=True,
        converter=False,
        algorithm=True,
        int8_activations=True,
        colour="#bcbd22",
        doc="int8 activations, int4 weights on convolutions and fully connected layers",
    ),
    QuantMode(
        "weight_int8",
        litert=True,
        converter=False,
        algorithm=True,
        colour="#e377c2",
        doc="weight-only int8, float compute (LiteRT Quantizer)",
    ),
    QuantMode(
        "weight_int4",
        litert=True,
        converter=False,
        algorithm=True,
        colour="#17becf",
        doc="weight-only int4, float compute (LiteRT Quantizer)",
    ),
    QuantMode("qat", trains=True, colour="#9467bd", doc="quantization-aware training"),
)
MODES: dict[str, QuantMode] = {m.name: m for m in QUANT_MODES}
QUANTIZATION_MODES = tuple(MODES)
# Made by LiteRT Quantizer from the float file.
LITERT_MODES = tuple(m.name for m in QUANT_MODES if m.litert)
# Only LiteRT Quantizer makes them: the converter route converts to float first for them.
LITERT_ONLY_MODES = tuple(m.name for m in QUANT_MODES if m.litert and not m.converter)
ALGORITHM_MODES = tuple(m.name for m in QUANT_MODES if m.algorithm)
INT8_ACTIVATION_MODES = tuple(m.name for m in QUANT_MODES if m.int8_activations)
INTEGER_IO_MODES = tuple(m.name for m in QUANT_MODES if m.integer_io)
TRAINING_MODES = tuple(m.name for m in QUANT_MODES if m.trains)

PRUNE_MODES = ("unstructured", "2:4", "xnnpack")
PTQ_ALGORITHMS = ("min_max", "mse", "octav", "gptq")  # LiteRT Quantizer's (litert/ptq.py)
KEEP_AS = ("float", "a16w8")
STUDENT_INITS = ("teacher", "scratch")
FINETUNE_LOSSES = ("distill", "task")

# ----------------------------------------------------------------------------------------------
# Domains: value -> problem, or None when the value is allowed.


def _one_of(values: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else f"must be one of {', '.join(values)}"


def _in_range(low: float, high: float, low_open: bool, high_open: bool, note: str = ""):
    def check(v: float) -> str | None:
        ok = (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
        where = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        return None if ok else f"must be in {where}{note}"

    return check


def _clusters(v: int) -> str | None:
    return None if v == 0 or 2 <= v <= 256 else "must be 0 (off) or between 2 and 256"


def _epochs(v: int) -> str | None:
    # At least one epoch: pruning schedules and clustering need training steps to act at all.
    return None if 1 <= v <= 1000 else "must be between 1 and 1000"


def _exclude(v: str) -> str | None:
    # "none", or comma-separated tokens: "ends" (first and last weighted layers) or layer names.
    if v == "none":
        return None
    tokens = [t.strip() for t in v.split(",")]
    if not all(tokens) or any(" " in t or t == "none" for t in tokens):
        return "must be 'none' or comma-separated layer names and/or 'ends', e.g. 'ends,dense_1'"
    return None


def _keep(v: int) -> str | None:
    return None if 0 <= v <= 64 else "must be between 0 (off) and 64 layers"


def excluded_tokens(value: str) -> set[str]:
    """The tokens of an ``exclude`` value (layer names and ``ends``; empty for ``none``)."""
    return set() if value == "none" else {t.strip() for t in value.split(",")}


def exclude_names(value: str) -> list[str]:
    """The layer names an ``exclude`` value names itself (without the ``ends`` keyword)."""
    if value == "none":
        return []
    return [t.strip() for t in value.split(",") if t.strip() != "ends"]


# ----------------------------------------------------------------------------------------------
# "Which way is more compressed": (a, b) -> whether a compresses at least as much as b.

Order = Callable[[Any, Any], bool]


def same(a: Any, b: Any) -> bool:
    """Not ordered: only the same value is as compressed (latency is not monotone across
    quantization modes, say)."""
    return bool(a == b)


def lower(a: Any, b: Any) -> bool:
    """Lower is more compressed (a narrower student, less singular-value energy)."""
    return bool(a <= b)


def higher(a: Any, b: Any) -> bool:
    """Higher is more compressed (more sparsity, more channels removed)."""
    return bool(a >= b)


def ignored(a: Any, b: Any) -> bool:
    """Changes how a candidate is trained, not how compressed it is."""
    return True


def _fewer_clusters(a: int, b: int) -> bool:
    # 0 = not clustered = the least compressed; otherwise fewer clusters compress more.
    return b == 0 or (a != 0 and a <= b)


def _fewer_excluded(a: str, b: str) -> bool:
    # Layers kept out of compression: a keeping no more of them than b (a subset).
    return excluded_tokens(a) <= excluded_tokens(b)


@dataclass(frozen=True)
class Dimension:
    """How one recipe field is searched and what it means (see the module docstring).

    ``stage`` names the stage that acts on it (``convert`` for the conversion, ``fine-tune``
    for every stage that fine-tunes); ``trains``: a
    value other than the off value needs a trainable model; ``epochs``: a training length, part
    of a recipe but not what distinguishes one compressed model from another.
    """

    check: Callable[[Any], str | None]
    stage: str
    order: Order = same
    trains: bool = False
    epochs: bool = False


def dimension(default: Any, **declaration: Any) -> Any:
    """A :class:`Recipe` field whose default is its off value, declared as a :class:`Dimension`."""
    return dataclasses.field(default=default, metadata={"dimension": Dimension(**declaration)})


@dataclass(frozen=True)
class Recipe:
    """One compression recipe: what a trial builds.

    Attributes:
        student_width: multiplier on Conv/Dense widths of the distilled student (1.0 = none).
        student_init: where the student's weights start: ``teacher`` (the teacher's most
            important channels of every layer it narrows, as channel pruning chooses them) or
            ``scratch`` (random initialisation).
        sparsity: target fraction of zero weights for magnitude pruning; 0.0 = no pruning.
        clusters: number of weight clusters per layer; 0 = no clustering.
        quantization: a mode of :data:`QUANT_MODES` (``none``, ``dynamic``, ``float16``,
            ``int8``, ``int8_symmetric``, ``int16x8``, ``w4a8``, ``weight_int8``,
            ``weight_int4``, ``qat``).
        distill_epochs: training epochs for the student (used only when student_width < 1).
        finetune_epochs: fine-tuning epochs for channel pruning, low-rank, pruning, clustering
            and QAT.
        prune_mode: ``unstructured`` (magnitude), ``2:4`` (two zeros in every group of four
            weights; the pattern fixes sparsity at 50 %) or ``xnnpack`` (only the 1x1
            convolutions XNNPACK's sparse inference can use, kept sparse in the file).
        exclude: ``none``, or comma-separated layer names and/or ``ends`` (the first and last
            weighted layers): layers kept out of every compression stage (channel pruning,
            low-rank, pruning, clustering) and kept float by QAT and full-int8 conversion.
        rank_energy: low-rank factorisation of Dense layers and 1x1 convolutions keeping this
            share of the singular value energy (1.0 = off).
        channel_fraction: share of filters removed from each prunable Conv/Dense group by
            channel pruning (0.0 = off).
        keep_sensitive: mixed precision: the k layers whose int8 quantization alone costs the
            most accuracy (measured once per study) stay float in a post-training quantized
            file (0 = off; LiteRT Quantizer modes only).
        ptq_algorithm: how LiteRT Quantizer picks quantization ranges in the int8, int16x8 and
            weight-only modes: ``min_max``, ``mse``, ``octav`` or ``gptq``.
        keep_as: what the ``keep_sensitive`` layers become: ``float``, or ``a16w8`` (int16
            activations, int8 weights; in an int8 file only, elsewhere they stay float).
        resolution: share of the model's input height and width the candidate runs at (1.0 =
            its own size); its file takes the smaller images (models with one image input
            whose weights do not depend on its size: convolutional up to a global pooling).
        finetune_loss: what the fine-tuning of channel pruning, low-rank, pruning, clustering
            and QAT learns from: ``task`` (the task's loss on its labels) or ``distill`` (the
            same with the teacher's softened outputs beside it, as distillation trains a
            student; :mod:`autocompress.stages.teaching`).
    """

    student_width: float = dimension(
        1.0, check=_in_range(0, 1, True, False), stage="distill", order=lower, trains=True
    )
    student_init: str = dimension(
        "teacher", check=_one_of(STUDENT_INITS), stage="distill", order=ignored, trains=True
    )
    sparsity: float = dimension(
        0.0, check=_in_range(0, 1, False, True), stage="prune", order=higher, trains=True
    )
    clusters: int = dimension(
        0, check=_clusters, stage="cluster", order=_fewer_clusters, trains=True
    )
    quantization: str = dimension("none", check=_one_of(QUANTIZATION_MODES), stage="convert")
    distill_epochs: int = dimension(10, check=_epochs, stage="distill", order=ignored, epochs=True)
    finetune_epochs: int = dimension(
        2, check=_epochs, stage="fine-tune", order=ignored, epochs=True
    )
    prune_mode: str = dimension(
        "unstructured", check=_one_of(PRUNE_MODES), stage="prune", trains=True
    )
    exclude: str = dimension(
        "none", check=_exclude, stage="convert", order=_fewer_excluded, trains=True
    )
    rank_energy: float = dimension(
        1.0,
        check=_in_range(0, 1, True, False, " (1.0 = no factorisation)"),
        stage="lowrank",
        order=lower,
        trains=True,
    )
    channel_fraction: float = dimension(
        0.0,
        check=_in_range(0, 1, False, True, " (0 = no channel pruning)"),
        stage="channels",
        order=higher,
        trains=True,
    )
    keep_sensitive: int = dimension(0, check=_keep, stage="convert", order=lower)
    ptq_algorithm: str = dimension("min_max", check=_one_of(PTQ_ALGORITHMS), stage="convert")
    keep_as: str = dimension("float", check=_one_of(KEEP_AS), stage="convert")
    resolution: float = dimension(
        1.0,
        check=_in_range(0, 1, True, False, " (1.0 = the model's own input size)"),
        stage="resolution",
        order=lower,
        trains=True,
    )
    finetune_loss: str = dimension(
        "task", check=_one_of(FINETUNE_LOSSES), stage="fine-tune", order=ignored, trains=True
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "student_init" not in data and "student_width" in data:
            values["student_init"] = "scratch"  # runs before teacher-initialised students
        if "finetune_loss" not in data and "finetune_epochs" in data:
            values["finetune_loss"] = "task"  # runs before fine-tuning with the teacher
        return cls(**values)


# The recipe's fields, in order: every table, report and check derives its columns from these.
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))
_TYPES = typing.get_type_hints(Recipe)
DIMENSIONS: dict[str, Dimension] = {
    f.name: f.metadata["dimension"] for f in dataclasses.fields(Recipe)
}
TYPES: dict[str, type] = {name: _TYPES[name] for name in RECIPE_FIELDS}
OFF: dict[str, Any] = Recipe().to_dict()
# Training lengths: part of a recipe, but not what distinguishes one compressed model from another.
EPOCH_FIELDS = tuple(name for name, d in DIMENSIONS.items() if d.epochs)
# Training choices (how a candidate is trained, not how compressed it is): off where no stage of
# a recipe reads them (autocompress.stages.build.effective).
CHOICE_FIELDS = tuple(name for name, d in DIMENSIONS.items() if d.order is ignored and not d.epochs)
# Values other than the off value that need a trainable model (a .tflite teacher refuses them).
TRAINING_FIELDS = tuple(name for name, d in DIMENSIONS.items() if d.trains and not d.epochs)


def at_least_as_compressed(a: Recipe, b: Recipe) -> bool:
    """Whether recipe ``a`` compresses at least as much as ``b`` in every dimension, each by
    its declared order (a member that is, is as small and as fast)."""
    va, vb = a.to_dict(), b.to_dict()
    return all(d.order(va[name], vb[name]) for name, d in DIMENSIONS.items())
