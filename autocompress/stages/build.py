"""The candidate pipeline: distill -> prune -> cluster -> QAT -> convert, in that order.

Pruning before clustering lets clustering preserve the zeros; QAT comes last among the Keras stages
so it can preserve both. Each stage works on a clone, so the teacher is never modified.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.cache import StageCache, child_key
from autocompress.stages.cluster import Cluster
from autocompress.stages.convert import convert
from autocompress.stages.distill import Distill
from autocompress.stages.prune import Prune
from autocompress.stages.quantize import QuantizeAware

if TYPE_CHECKING:
    import tf_keras

    from autocompress.records import Recipe, StageRecord


# Stages whose outputs are plain Keras models. QAT models hold tfmot wrappers that do not
# round-trip through a JSON config, and the conversion is cheap next to training.
CACHED_STAGES = ("distill", "prune", "cluster")


class Candidate(NamedTuple):
    """A built candidate: the deployable file, what each stage did, and the final Keras model."""

    tflite: bytes
    stages: list[StageRecord]
    model: tf_keras.Model


def default_stages() -> list[Stage]:
    return [Distill(), Prune(), Cluster(), QuantizeAware()]


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

    With a ``cache``, each stage output is looked up under the chain of keys starting at ``key``
    (see :func:`autocompress.stages.cache.root_key`) and built and stored only when missing.
    """
    model = teacher
    records: list[StageRecord] = []
    for stage in stages if stages is not None else default_stages():
        if not stage.applies(recipe):
            continue
        key = child_key(key, stage.name, stage.cache_params(recipe))
        hit = cache.load(key) if cache is not None and stage.name in CACHED_STAGES else None
        if hit is not None:
            model, record = hit[0], dataclasses.replace(hit[1], reused=True)
        else:
            model, record = stage.apply(model, recipe, ctx)
            if cache is not None and stage.name in CACHED_STAGES:
                cache.store(key, model, record)
        records.append(record)
    tflite, record = convert(model, recipe, ctx)
    records.append(record)
    return Candidate(tflite, records, model)
