"""Pareto (non-dominated) selection and constrained picking, numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dominating(points: np.ndarray, point: np.ndarray, tied: np.ndarray | None = None) -> np.ndarray:
    """Which rows of ``points`` dominate ``point`` (all minimised): no worse in every
    objective and better in one. The one definition of dominance in the package.

    ``tied`` (the shape of ``points``): objectives in which a row and ``point`` count as equal
    although their values differ -- figures within their measurement's own spread, which must
    not rank one candidate above the other (see :func:`ties`)."""
    if tied is None:
        return np.all(points <= point, axis=1) & np.any(points < point, axis=1)
    no_worse = (points <= point) | tied
    better = (points < point) & ~tied
    return np.all(no_worse, axis=1) & np.any(better, axis=1)


def ties(values: np.ndarray, tolerance: np.ndarray, i: int) -> np.ndarray:
    """Which values of every row are tied with row ``i``'s: their difference is at most the
    larger of the two rows' relative ``tolerance`` times the smaller magnitude (n x k; a
    tolerance of 0 ties only equal values)."""
    t = np.maximum(tolerance, tolerance[i])
    scale = np.minimum(np.abs(values), np.abs(values[i]))
    return np.abs(values - values[i]) <= t * scale


def dominated(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` ``point`` dominates (all minimised)."""
    return np.all(point <= points, axis=1) & np.any(point < points, axis=1)


def pareto_mask(
    values: np.ndarray, maximize: Sequence[bool], tolerance: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n x k) that no other row dominates.

    A row dominates another when it is at least as good in every objective and strictly better in
    one. Exact duplicates do not dominate each other, so both stay on the front.

    ``tolerance`` (n x k, relative, 0 = exact; non-zero in one objective at most): values of that
    objective within it of each other are tied (:func:`ties`), so a row is not kept on the front
    by a difference its measurement cannot tell from noise. Ties are not transitive (1.0 ~ 1.1 ~
    1.2, but 1.0 < 1.2), so a row is then on the front unless a *front member* dominates it:
    rows are decided best first (lexicographically, the tied objective last), which puts every
    row's dominators before it. Without ties this is the usual front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError(f"values must be n x {len(maximize)}, got shape {v.shape}")
    # Flip maximised objectives so that smaller is better everywhere.
    v = np.where(np.asarray(maximize, dtype=bool), -v, v)
    n = len(v)
    mask = np.ones(n, dtype=bool)
    tol = None if tolerance is None else np.nan_to_num(np.asarray(tolerance, dtype=float))
    if tol is None or not np.any(tol):
        for i in range(n):
            if np.any(dominating(v, v[i])):
                mask[i] = False
        return mask
    if tol.shape != v.shape:
        raise ValueError(f"tolerance must have the shape of values {v.shape}, got {tol.shape}")
    tied_columns = np.flatnonzero(np.any(tol != 0, axis=0))
    if len(tied_columns) > 1:
        raise ValueError("a tolerance in one objective at most (ties in several can cycle)")
    keys = [c for c in range(v.shape[1]) if c not in tied_columns] + list(tied_columns)
    order = np.lexsort([v[:, c] for c in reversed(keys)])  # lexsort: last key is primary
    members: list[int] = []
    for i in order:
        beaten = dominating(v[members], v[i], ties(v, tol, i)[members]) if members else []
        if np.any(beaten):
            mask[i] = False
        else:
            members.append(int(i))
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
