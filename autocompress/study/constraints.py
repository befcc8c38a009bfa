"""Constraint values of a candidate, as Optuna's constrained samplers want them (> 0 violated).

Named ``user.<limit>`` (the user's limits; the latency limit refers to the first profile) or
``<profile>.<limit>`` (each profile's deployability and its model / RAM limits).

What they mean, in one place (README "Constraints and fronts" says the same):

* profile P's front holds the candidates that meet every ``user.*`` limit and P's own
  (:func:`autocompress.run.tables.front_frame` reads the names back from ``trials.csv``);
* the sampler is steered by the ``user.*`` limits and the first profile's (:func:`for_sampler`):
  a float model that the Edge TPU cannot run is still a good cpu-host candidate when cpu-host
  comes first;
* ``require_all_profiles`` makes deployability on every listed profile a user limit
  (``user.deployable.<profile>``): then it counts on every front and for the sampler;
* ``user.above_chance`` is the limit every user has: a candidate whose validation quality the
  validation set cannot tell from a constant answer (:meth:`autocompress.metrics.Metric.chance`,
  the bound multi-fidelity promotion uses) is on no front, and the sampler learns it as any
  other violated limit. It applies only where the teacher itself is above that bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autocompress.evaluation.tolerance import MaxDrop
from autocompress.hardware import HardwareProfile
from autocompress.hardware.limits import over_limits
from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.records import Measurement


@dataclass(frozen=True)
class Limits:
    """The user's limits; None: no limit."""

    max_latency_ms: float | None = None
    # The metric at least this good, in its direction (for an error metric: at most this).
    min_quality: float | None = None
    max_size_kb: float | None = None
    require_all_profiles: bool = False  # every listed profile must be able to run the file
    # At most this worse than the baseline (the teacher's validation quality, set by the
    # search once it has measured the teacher), absolute or relative (see tolerance.MaxDrop).
    max_drop: MaxDrop | None = None
    baseline: float | None = None
    # What a constant answer scores on the validation split, plus two standard errors (in the
    # metric's units; set by the search). None: no such bound.
    chance: float | None = None


def constraint_values(
    m: Measurement,
    profiles: Sequence[HardwareProfile],
    limits: Limits,
    quality: Quality = DEFAULT_QUALITY,
) -> dict[str, float]:
    """The user's limits, then each profile's limits and deployability."""
    out: dict[str, float] = {}
    primary = profiles[0].name
    if limits.max_latency_ms is not None:
        out["user.max_latency_ms"] = m.latency[primary].median_ms - limits.max_latency_ms
    if limits.min_quality is not None:
        out[f"user.min_{quality.name}"] = quality.drop(limits.min_quality, m.quality)
    if limits.max_drop is not None and limits.baseline is not None:
        limit = limits.max_drop.limit(limits.baseline)
        out["user.max_drop"] = quality.drop(limits.baseline, m.quality) - limit
    if limits.chance is not None:
        # > 0 (violated) when no better than the bound; a tie counts as not told apart.
        out["user.above_chance"] = quality.drop(limits.chance, m.quality) + 1e-12
    if limits.max_size_kb is not None:
        out["user.max_size_kb"] = m.size_bytes / 1024 - limits.max_size_kb
    if limits.require_all_profiles:
        for p in profiles:
            out[f"user.deployable.{p.name}"] = 0.0 if m.latency[p.name].deployable else 1.0
    for p in profiles:
        out.update(over_limits(p, m.size_bytes, m.peak_ram_bytes, m.latency[p.name]))
    return out


def for_sampler(values: dict[str, float], primary: str) -> dict[str, float]:
    """The constraints the sampler sees: the user's limits and the first profile's."""
    return {k: v for k, v in values.items() if k.startswith(("user.", f"{primary}."))}
