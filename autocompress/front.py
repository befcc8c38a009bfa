"""Pareto (non-dominated) selection and constrained picking, numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
        no_worse = np.all(v <= v[i], axis=1)
        better = np.any(v < v[i], axis=1)
        if np.any(no_worse & better):
            mask[i] = False
    return mask
