"""The candidate pipeline: resolution -> distill -> channel pruning -> low-rank -> prune -> cluster
-> QAT -> convert, in that order: structural changes first, then what acts on the remaining
weights. A resolution below 1.0 resizes the data every later stage and the conversion see.

Pruning before clustering lets clustering preserve the zeros; QAT comes last among the Keras stages
so it can preserve both. Each stage works on a clone, so the teacher is never modified.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

from autocompress.litert.refill import Template
from autocompress.recipe import DIMENSIONS, OFF, ignored
from autocompress.run.cache import StageCache, child_key
from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.channels import ChannelPrune
from autocompress.stages.cluster import Cluster
from autocompress.stages.convert import convert, convert_from_float, uses_float_file
from autocompress.stages.distill import Distill
from autocompress.stages.lowrank import LowRank
from autocompress.stages.prune import Prune, target_sparsity
from autocompress.stages.quantize import QuantizeAware
from autocompress.stages.resolution import Resolution, input_size

if TYPE_CHECKING:
    import tf_keras

    from autocompress.recipe import Recipe
    from autocompress.records import StageRecord


# Stages whose outputs are plain Keras models. QAT models hold tfmot wrappers that do not
# round-trip through a JSON config, and the conversion is cheap next to training.
CACHED_STAGES = ("resolution", "distill", "channels", "lowrank", "prune", "cluster")


class Candidate(NamedTuple):
    """A built candidate: the deployable file, what each stage did, and the final Keras model."""

    tflite: bytes
    stages: list[StageRecord]
    model: tf_keras.Model


def default_stages() -> list[Stage]:
    return [Resolution(), Distill(), ChannelPrune(), LowRank(), Prune(), Cluster(), QuantizeAware()]


def effective(recipe: Recipe, stages: list[Stage] | None = None) -> Recipe:
    """``recipe`` with every training choice that no stage of it reads at its off value
    (``student_init`` without a student, ``finetune_loss`` without fine-tuning), and a ``2:4``
    pattern's sparsity at the 50 % it is: two recipes that build the same model are then one,
    and a search builds it once."""
    applying = [s for s in stages or default_stages() if s.applies(recipe)]
    names = {s.name for s in applying}
    if any(s.epochs_field == "finetune_epochs" for s in applying):
        names.add("fine-tune")
    changes: dict[str, object] = {
        name: OFF[name]
        for name, d in DIMENSIONS.items()
        if d.order is ignored and not d.epochs and d.stage not in names
    }
    if recipe.sparsity > 0.0:
        changes["sparsity"] = target_sparsity(recipe)  # a 2:4 pattern's is its 50 %
    return dataclasses.replace(recipe, **changes)


def cache_plan(
    recipe: Recipe, key: str, stages: list[Stage] | None = None
) -> list[tuple[Stage, str | None]]:
    """The stages ``recipe`` runs, each with its cache key (None for stages never cached).

    Keys chain from ``key`` (see :func:`autocompress.run.cache.root_key`), so the driver can
    tell which cached entries a trial can use before the trial starts.
    """
    plan: list[tuple[Stage, str | None]] = []
    for stage in stages if stages is not None else default_stages():
        if not stage.applies(recipe):
            continue
        key = child_key(key, stage.name, stage.cache_params(recipe))
        plan.append((stage, key if stage.name in CACHED_STAGES else None))
    return plan


def epoch_floors(recipe: Recipe, stages: list[Stage] | None = None) -> dict[str, int]:
    """The epoch fields some stage of the recipe's chain trains for, each with the fewest epochs
    those stages can run: what a multi-fidelity level may scale (see ``study.fidelity``). A
    stage not ``scaled_by_levels`` trains in full at every level and is left out."""
    floors: dict[str, int] = {}
    for stage in stages if stages is not None else default_stages():
        if stage.epochs_field is not None and stage.scaled_by_levels and stage.applies(recipe):
            field = stage.epochs_field
            floors[field] = max(floors.get(field, 0), stage.min_epochs)
    return floors


def float_key(recipe: Recipe, key: str, stages: list[Stage] | None = None) -> str | None:
    """The cache key of the float ``.tflite`` file of the recipe's last stage output, when the
    recipe's file is quantized from it (None: the converter does the whole conversion)."""
    if not uses_float_file(recipe):
        return None
    plan = cache_plan(recipe, key, stages)
    parent = plan[-1][1] if plan else key
    return child_key(parent, "float_tflite", {}) if parent is not None else None


def template_key(recipe: Recipe, key: str, stages: list[Stage] | None = None) -> str | None:
    """The cache key of the float-file template for the recipe's architecture: the teacher's,
    changed by the stages that change it, with their architecture parameters (None: the
    recipe's file is not made from a float file). Pruning and clustering keep it."""
    if not uses_float_file(recipe):
        return None
    changes = [
        [stage.name, stage.architecture_params(recipe)]
        for stage, _ in cache_plan(recipe, key, stages)
        if not stage.keeps_architecture
    ]
    return child_key(key, "float_template", {"architecture": changes})


def cache_keys(recipe: Recipe, key: str, stages: list[Stage] | None = None) -> list[str]:
    """Every cache entry a trial of ``recipe`` can use or build: stage outputs, float file."""
    keys = [k for _, k in cache_plan(recipe, key, stages) if k is not None]
    last = float_key(recipe, key, stages)
    return keys + ([last] if last is not None else [])


def shorter_keys(recipe: Recipe, key: str, stages: list[Stage] | None = None) -> list[str]:
    """Cache keys of shorter trainings the recipe's stages can continue from (see
    :meth:`Stage.shorter`): what a trial may also use, though it never builds them."""
    keys: list[str] = []
    parent = key
    for stage, stage_key in cache_plan(recipe, key, stages):
        keys += [child_key(parent, stage.name, params) for _, params in stage.shorter(recipe)]
        if stage_key is None:
            break
        parent = stage_key
    return keys


def build_candidate(
    teacher: tf_keras.Model,
    recipe: Recipe,
    ctx: BuildContext,
    stages: list[Stage] | None = None,
    cache: StageCache | None = None,
    key: str = "",
) -> Candidate:
    """Run the stages the recipe asks for and convert; returns the ``.tflite`` bytes, the
    stage records and the final Keras model (before conversion).

    With a ``cache``, the build starts from the deepest cached stage output of the recipe's
    chain (earlier stages contribute their records only), and stores what it builds.
    """
    plan = cache_plan(recipe, key, stages)
    if recipe.resolution < 1.0:  # every stage and the conversion see the resized images
        ctx = at_resolution(ctx, recipe.resolution)
    start, model = 0, teacher
    records: list[StageRecord] = []
    if cache is not None:
        start, model, records = _resume(plan, cache, teacher)
    for index, (stage, stage_key) in enumerate(plan[start:], start):
        shorter = _shorter(plan, index, recipe, key, cache) if index == start else None
        if shorter is not None:
            model, record = stage.apply_continued(shorter[0], shorter[1], recipe, ctx)
        else:
            model, record = stage.apply(model, recipe, ctx)
        if cache is not None and stage_key is not None:
            cache.store(stage_key, model, record)
        records.append(record)
    if uses_float_file(recipe):
        tflite, record = _from_float(model, recipe, ctx, cache, key, stages)
    else:
        tflite, record = convert(model, recipe, ctx)
    records.append(record)
    return Candidate(tflite, records, model)


def at_resolution(ctx: BuildContext, resolution: float) -> BuildContext:
    """The build context with its images at ``resolution`` of the teacher's input size; the
    teacher still computes its outputs on the full-size training images."""
    from autocompress.data.resize import data_at

    size = input_size(ctx.teacher, resolution)
    return dataclasses.replace(
        ctx, data=data_at(ctx.data, size), teacher_x_train=ctx.teacher_inputs()
    )


def _from_float(
    model: tf_keras.Model,
    recipe: Recipe,
    ctx: BuildContext,
    cache: StageCache | None,
    key: str,
    stages: list[Stage] | None,
) -> tuple[bytes, StageRecord]:
    """:func:`convert_from_float` with the float file of this stage output, or the template of
    its architecture, from the cache, and what it made put back."""
    if cache is None:
        tflite, record, _, _ = convert_from_float(model, recipe, ctx, None)
        return tflite, record
    fkey, tkey = float_key(recipe, key, stages), template_key(recipe, key, stages)
    cached = cache.get(fkey) if fkey is not None else None
    blob = cache.get(tkey) if tkey is not None and cached is None else None
    template = Template.decode(blob) if blob is not None else None
    tflite, record, float_file, derived = convert_from_float(model, recipe, ctx, cached, template)
    if fkey is not None and cached is None:
        cache.put(fkey, float_file)
    if tkey is not None and derived is not None:
        cache.put(tkey, derived.encode())
    return tflite, record


def _shorter(
    plan: list[tuple[Stage, str | None]],
    index: int,
    recipe: Recipe,
    key: str,
    cache: StageCache | None,
) -> tuple[tf_keras.Model, int] | None:
    """The longest cached shorter training of the stage at ``index`` (on the same input), with
    its epochs: the stage continues it instead of starting over."""
    if cache is None:
        return None
    stage, stage_key = plan[index]
    parent = key if index == 0 else plan[index - 1][1]
    if stage_key is None or parent is None:
        return None
    for epochs, params in stage.shorter(recipe):
        hit = cache.load(child_key(parent, stage.name, params))
        if hit is not None:
            return hit[0], epochs
    return None


def _resume(
    plan: list[tuple[Stage, str | None]], cache: StageCache, teacher: tf_keras.Model
) -> tuple[int, tf_keras.Model, list[StageRecord]]:
    """Where to start: after the deepest cached stage whose whole prefix has readable records."""
    for depth in range(len(plan), 0, -1):
        keys = [k for _, k in plan[:depth]]
        if any(k is None for k in keys):
            continue
        records = [cache.record(k) for k in keys if k is not None]
        last = plan[depth - 1][1]
        hit = cache.load(last) if last is not None and all(records) else None
        if hit is not None:
            reused = [dataclasses.replace(r, reused=True) for r in records if r is not None]
            return depth, hit[0], reused
    return 0, teacher, []
