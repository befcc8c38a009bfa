"""The promotion rule of multi-fidelity search: asynchronous successive halving for three
objectives (accuracy up, latency and size down). Pure numpy: no Optuna, no Ray.

A candidate that finished a fidelity level (a rung) is promoted to the next level when it ranks in
the top ``1 / eta`` of every candidate that reached that rung so far, and its accuracy is not
below the floor. Asynchronous, after ASHA (Li et al., 2020): nobody waits for a rung to fill;
a promotion is decided whenever a candidate arrives, so a late candidate that beats the rung is
promoted even if the rung's share was already handed out.

Ranking: non-dominated sorting (front 0 first), then, within a front, the larger hypervolume
contribution first. The rank is a position in that order, never the front index alone: a
candidate dominating all others is first (syne-tune 0.16's MOASHA used an ordering as ranks and
could stop such a candidate).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# (accuracy, latency_ms, size) per candidate; accuracy is maximised, the others minimised.
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
        dominated = np.array(
            [
                np.any(np.all(sub <= sub[i], axis=1) & np.any(sub < sub[i], axis=1))
                for i in range(len(sub))
            ]
        )
        fronts[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return fronts


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume (minimisation) of 3-D points against ``reference``, by slicing the first
    objective and summing 2-D areas; points beyond the reference add nothing."""
    pts = np.asarray(points, dtype=float)
    pts = pts[np.all(pts < reference, axis=1)]
    if not len(pts):
        return 0.0
    xs = np.unique(pts[:, 0])
    bounds = np.append(xs[1:], reference[0])
    volume = 0.0
    for x, upper in zip(xs, bounds):
        active = pts[pts[:, 0] <= x][:, 1:]
        volume += (upper - x) * _area(active, reference[1:])
    return volume


def _area(points: np.ndarray, reference: np.ndarray) -> float:
    order = np.argsort(points[:, 0])
    area, best_y = 0.0, reference[1]
    xs = points[order]
    for i, (x, y) in enumerate(xs):
        upper = xs[i + 1][0] if i + 1 < len(xs) else reference[0]
        best_y = min(best_y, y)
        area += max(0.0, upper - x) * max(0.0, reference[1] - best_y)
    return area


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
        results: every candidate that reached this rung so far, by id, with its (accuracy,
            latency, size) at this rung.
        promoted: the ids already promoted from this rung (an earlier promotion stands).
        eta: the rung keeps the top ``len(results) // eta`` (none while fewer than ``eta``).
        floor: candidates below this accuracy are never promoted (a tiny useless model must
            not win on size and latency alone): they count in ``len(results)``, but the top
            places go to the candidates above the floor.
    """
    if eta < 2:
        raise ValueError(f"eta must be at least 2, got {eta}")
    keep = len(results) // eta
    eligible = {i: p for i, p in results.items() if floor is None or p[0] >= floor}
    return [i for i in ranking(eligible)[:keep] if i not in promoted]
