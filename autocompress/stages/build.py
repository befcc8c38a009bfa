"""The candidate pipeline: distill -> prune -> cluster -> QAT -> convert, in that order.

Pruning before clustering lets clustering preserve the zeros; QAT comes last among the Keras stages
so it can preserve both. Each stage works on a clone, so the teacher is never modified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autocompress.stages._base import BuildContext, Stage
from autocompress.stages.cluster import Cluster
from autocompress.stages.convert import convert
from autocompress.stages.distill import Distill
from autocompress.stages.prune import Prune
from autocompress.stages.quantize import QuantizeAware

if TYPE_CHECKING:
    import tf_keras

    from autocompress.records import Recipe, StageRecord


def default_stages() -> list[Stage]:
    return [Distill(), Prune(), Cluster(), QuantizeAware()]


def build_candidate(
    teacher: tf_keras.Model,
    recipe: Recipe,
    ctx: BuildContext,
    stages: list[Stage] | None = None,
) -> tuple[bytes, list[StageRecord]]:
    """Run the stages the recipe asks for and convert; returns the ``.tflite`` bytes and records."""
    model = teacher
    records: list[StageRecord] = []
    for stage in stages if stages is not None else default_stages():
        if stage.applies(recipe):
            model, record = stage.apply(model, recipe, ctx)
            records.append(record)
    tflite, record = convert(model, recipe, ctx)
    records.append(record)
    return tflite, records
