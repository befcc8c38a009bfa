"""Pareto (non-dominated) selection and constrained picking, numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dominating(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` dominate ``point`` (all minimised): no worse in every
    objective and better in one. The one definition of dominance in the package."""
    return np.all(points <= point, axis=1) & np.any(points < point, axis=1)


def dominated(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` ``point`` dominates (all minimised)."""
    return np.all(point <= points, axis=1) & np.any(point < points, axis=1)


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n x k) that no other row dominates.

    A row dominates another when it is at least as good in every objective and strictly better in
    one. Exact duplicates do not dominate each other, so both stay on the front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError(f"values must be n x {len(maximize)}, got shape {v.shape}")
    # Flip maximised objectives so that smaller is better everywhere.
    v = np.where(np.asarray(maximize, dtype=bool), -v, v)
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if np.any(dominating(v, v[i])):
            mask[i] = False
    return mask


def hypervolume(values: np.ndarray, maximize: Sequence[bool], reference: Sequence[float]) -> float:
    """Volume dominated by ``values`` (n x 3) and bounded by ``reference``, exact.

    Objectives are flipped so that smaller is better; points that do not improve on the
    reference in every objective add nothing. The 3-D volume is summed over slabs of the third
    objective, each slab's area being the 2-D hypervolume of the points below it.
    """
    v = np.asarray(values, dtype=float).reshape(-1, len(maximize))
    sign = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    v = v * sign
    ref = np.asarray(reference, dtype=float) * sign
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    if v.shape[1] != 3:
        raise ValueError("hypervolume is implemented for 3 objectives")
    v = v[np.argsort(v[:, 2])]
    total = 0.0
    for i in range(len(v)):
        top = v[i + 1, 2] if i + 1 < len(v) else ref[2]
        if top > v[i, 2]:
            total += _area(v[: i + 1, :2], ref[:2]) * (top - v[i, 2])
    return float(total)


def _area(points: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume (minimisation) of ``points`` against ``ref``: a staircase sweep in x."""
    area, best_y = 0.0, ref[1]
    for x, y in points[np.argsort(points[:, 0])]:
        if y < best_y:  # each improvement in y adds the strip from x to the reference
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)
