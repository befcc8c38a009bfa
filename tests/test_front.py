from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from autocompress.front import pareto_mask

MAXIMIZE = [True, False, False]  # accuracy up, latency and size down


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    a2 = np.array([-a[0], a[1], a[2]])
    b2 = np.array([-b[0], b[1], b[2]])
    return bool(np.all(a2 <= b2) and np.any(a2 < b2))


def test_known_front() -> None:
    values = np.array(
        [
            [0.99, 1.0, 100],  # most accurate
            [0.95, 0.5, 50],  # faster, smaller
            [0.94, 0.6, 60],  # dominated by row 1
            [0.90, 0.2, 80],  # fastest
            [0.90, 0.2, 80],  # duplicate of row 3: duplicates stay
        ]
    )
    assert pareto_mask(values, MAXIMIZE).tolist() == [True, True, False, True, True]


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 25), st.just(3)), elements=st.integers(0, 5)))
def test_front_is_mutually_non_dominated_and_complete(values: np.ndarray) -> None:
    mask = pareto_mask(values, MAXIMIZE)
    front = values[mask]
    assert mask.any()
    for a in front:
        assert not any(dominates(b, a) for b in values)
    for i in np.flatnonzero(~mask):
        assert any(dominates(b, values[i]) for b in front)
