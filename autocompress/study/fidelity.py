"""Multi-fidelity search: levels of fine-tuning effort and the promotion rule between them,
asynchronous successive halving for three objectives (quality up, latency and size down).
Pure numpy: no Optuna, no Ray, no TensorFlow; the driver (``driver.py``) consults it.

Levels: a candidate is first built with a share of its recipe's training epochs (level 0: none,
share 0.0 -- compression applied, then only a calibration pass that re-estimates BatchNorm
statistics, pruning masks and QAT ranges), then, if promoted, again with a larger share, up to
the full recipe at the top level. Only the epochs of stages ``scaled_by_levels`` are scaled: a
student is distilled in full at every level (a share of its epochs says nothing of the result).
A recipe whose build is the same at every level (quantization alone, a student alone) goes to
the top at once.

A candidate that finished a fidelity level (a rung) is promoted to the next level when it ranks in
the top ``1 / eta`` of every candidate that reached that rung so far, and its quality is not
below the floor. Asynchronous, after ASHA (Li et al., 2020): nobody waits for a rung to fill;
a promotion is decided whenever a candidate arrives, so a late candidate that beats the rung is
promoted even if the rung's share was already handed out.

Ranking: non-dominated sorting (front 0 first), then, within a front, the larger hypervolume
contribution first. The rank is a position in that order, never the front index alone: a
candidate dominating all others is first (syne-tune 0.16's MOASHA used an ordering as ranks and
could stop such a candidate).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autocompress.errors import InputError
from autocompress.front import dominating
from autocompress.front import hypervolume as front_hypervolume
from autocompress.recipe import Recipe

# (quality, latency_ms, size) per candidate; quality is the task's metric times its direction's
# sign (see metrics.Quality.sign), so it is maximised; the others are minimised.
Point = tuple[float, float, float]


def _as_minimised(points: np.ndarray) -> np.ndarray:
    out = np.asarray(points, dtype=float).copy()
    out[:, 0] = -out[:, 0]
    return out


def front_indices(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting: the front index of every point (0 = not dominated by any)."""
    values = _as_minimised(points)
    n = len(values)
    fronts = np.full(n, -1)
    remaining = np.arange(n)
    level = 0
    while remaining.size:
        sub = values[remaining]
        dominated = np.array([np.any(dominating(sub, sub[i])) for i in range(len(sub))])
        fronts[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return fronts


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume (minimisation) of 3-D points against ``reference``
    (:func:`autocompress.front.hypervolume`); points beyond the reference add nothing."""
    return front_hypervolume(points, [False] * 3, reference)


def contributions(points: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume contribution within ``points`` (objectives scaled to
    [0, 1] over the set, reference 1.1 in every objective)."""
    values = _as_minimised(points)
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    reference = np.full(3, 1.1)
    total = hypervolume(scaled, reference)
    return np.array(
        [total - hypervolume(np.delete(scaled, i, axis=0), reference) for i in range(len(scaled))]
    )


def ranking(results: Mapping[int, Point]) -> list[int]:
    """Candidate ids, best first: by front, then by hypervolume contribution in the front."""
    ids = list(results)
    if not ids:
        return []
    points = np.array([results[i] for i in ids], dtype=float)
    fronts = front_indices(points)
    share = np.zeros(len(ids))
    for level in np.unique(fronts):
        members = np.flatnonzero(fronts == level)
        share[members] = contributions(points[members]) if len(members) > 1 else 0.0
    order = sorted(range(len(ids)), key=lambda k: (fronts[k], -share[k], ids[k]))
    return [ids[k] for k in order]


def promotions(
    results: Mapping[int, Point],
    promoted: set[int],
    eta: int = 3,
    floor: float | None = None,
) -> list[int]:
    """The candidates of one rung to promote now.

    Args:
        results: every candidate that reached this rung so far, by id, with its (signed quality,
            latency, size) at this rung.
        promoted: the ids already promoted from this rung (an earlier promotion stands).
        eta: the rung keeps the top ``len(results) // eta`` (none while fewer than ``eta``).
        floor: candidates below this (signed) quality are never promoted (a tiny useless model must
            not win on size and latency alone): they count in ``len(results)``, but the top
            places go to the candidates above the floor.
    """
    if eta < 2:
        raise ValueError(f"eta must be at least 2, got {eta}")
    keep = len(results) // eta
    eligible = {i: p for i, p in results.items() if floor is None or p[0] >= floor}
    return [i for i in ranking(eligible)[:keep] if i not in promoted]


@dataclass(frozen=True)
class Fidelity:
    """The levels of a multi-fidelity search and its promotion rate.

    Attributes:
        levels: the share of the recipe's training epochs at each level, increasing, the last
            1.0 (the recipe as sampled).
        eta: each level promotes the top ``1 / eta`` of the candidates that reached it.
    """

    levels: tuple[float, ...] = (0.0, 0.34, 1.0)
    eta: int = 3

    @property
    def top(self) -> int:
        return len(self.levels) - 1

    def recipe_at(self, recipe: Recipe, level: int, floors: Mapping[str, int]) -> Recipe:
        """What a candidate builds at ``level``: each trained epoch field (``floors``: field ->
        fewest epochs its stages can run, from ``stages.build.epoch_floors``) scaled."""
        share = self.levels[level]
        return dataclasses.replace(
            recipe,
            **{f: max(low, round(getattr(recipe, f) * share)) for f, low in floors.items()},
        )

    def last_same(self, recipe: Recipe, level: int, floors: Mapping[str, int]) -> int:
        """The highest level whose build equals the one at ``level`` (a result at ``level``
        counts for every level up to it: no need to build the same model twice)."""
        built = self.recipe_at(recipe, level, floors)
        last = level
        while last < self.top and self.recipe_at(recipe, last + 1, floors) == built:
            last += 1
        return last

    @classmethod
    def from_dict(cls, source: str, data: Any) -> Fidelity:
        """The ``fidelity:`` entry of a search space file: ``{levels: [...], eta: 3}``."""
        where = f"{source}: fidelity"
        if not isinstance(data, dict) or set(data) - {"levels", "eta"}:
            raise InputError(where, "expected a mapping with 'levels' and optionally 'eta'")
        levels = data.get("levels", list(cls.levels))
        if not isinstance(levels, list) or len(levels) < 2:
            raise InputError(where, "levels must be a list of at least two epoch shares")
        if any(
            isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
            for v in levels
        ):
            raise InputError(where, f"levels must be numbers, got {levels!r}")
        if any(b <= a for a, b in zip(levels, levels[1:])) or levels[0] < 0 or levels[-1] != 1:
            raise InputError(where, f"levels must increase from >= 0 to 1.0, got {levels!r}")
        eta = data.get("eta", cls.eta)
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise InputError(where, f"eta must be an integer of at least 2, got {eta!r}")
        return cls(levels=tuple(float(v) for v in levels), eta=eta)


@dataclass
class Rungs:
    """Who reached each level with what values, and who went on from it.

    The driver rebuilds this from the study when it starts (so a killed search resumes mid-rung
    with nothing lost) and updates it as results come back.
    """

    fidelity: Fidelity
    results: list[dict[int, Point]] = field(default_factory=list)
    promoted: list[set[int]] = field(default_factory=list)
    # The (signed) quality a candidate must beat to be told from guessing (see
    # metrics.Metric.chance); None: no such bound (the median alone is the floor).
    guess: float | None = None

    def __post_init__(self) -> None:
        n = self.fidelity.top + 1
        self.results = self.results or [{} for _ in range(n)]
        self.promoted = self.promoted or [set() for _ in range(n)]

    def add(self, candidate: int, first: int, last: int, point: Point) -> None:
        """A result of ``candidate`` built at level ``first`` that counts up to level ``last``."""
        for level in range(first, last + 1):
            self.results[level][candidate] = point
        for level in range(first, last):
            self.promoted[level].add(candidate)

    def going_on(self, candidate: int, level: int) -> None:
        """``candidate`` was promoted from ``level`` (its next build may still be running)."""
        self.promoted[level].add(candidate)

    def floor(self, level: int) -> float | None:
        """The (signed) quality a candidate needs to be promoted from ``level``: the median of the
        level, and never less than :attr:`guess`. Accuracy at a low level is not the final one,
        so no absolute floor fits every level; the median keeps the useless half (tiny models
        that win on size and latency alone) from being promoted, whatever the level's quality
        scale."""
        values = [p[0] for p in self.results[level].values()]
        if not values:
            return None
        median = float(np.median(values))
        # A rung full of hopeless candidates (students after one epoch, all at chance) has a
        # median at chance: the bound on guessing keeps those from being promoted anyway.
        return median if self.guess is None else max(median, self.guess)

    def next_promotion(self) -> tuple[int, int] | None:
        """(candidate, the level it goes on from) due now, the highest level first; None."""
        for level in reversed(range(self.fidelity.top)):
            due = promotions(
                self.results[level], self.promoted[level], self.fidelity.eta, self.floor(level)
            )
            if due:
                return due[0], level
        return None
