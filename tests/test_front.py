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


def test_hypervolume_by_hand() -> None:
    from autocompress.front import hypervolume

    ref = [0.0, 1.0, 1.0]  # accuracy 0, latency 1, size 1
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), MAXIMIZE, ref) == 0.5 * 0.5 * 0.5
    two = np.array([[0.5, 0.5, 0.5], [1.0, 0.8, 0.8]])  # the second adds a 1 x .2 x .2 box
    assert np.isclose(hypervolume(two, MAXIMIZE, ref), 0.125 + 0.2 * 0.2 * 1.0 - 0.2 * 0.2 * 0.5)
    assert hypervolume(np.array([[0.9, 1.5, 0.1]]), MAXIMIZE, ref) == 0.0  # worse than reference


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.just(3)), elements=st.integers(1, 9)))
def test_hypervolume_matches_grid_count(values: np.ndarray) -> None:
    from autocompress.front import hypervolume

    pts = values / 10.0
    ref = [0.0, 1.0, 1.0]
    # Count unit cells (0.1 grid) dominated by some point: exact for points on the grid.
    cells = 0
    for a in np.arange(0.05, 1.0, 0.1):
        for b in np.arange(0.05, 1.0, 0.1):
            for c in np.arange(0.05, 1.0, 0.1):
                cells += any(p[0] >= a and p[1] <= b and p[2] <= c for p in pts)
    assert np.isclose(hypervolume(pts, MAXIMIZE, ref), cells * 1e-3)
    # A dominated point changes nothing.
    mask = pareto_mask(pts, MAXIMIZE)
    assert np.isclose(hypervolume(pts[mask], MAXIMIZE, ref), hypervolume(pts, MAXIMIZE, ref))


def test_figures_within_their_tolerance_are_tied() -> None:
    """A row kept on the front only by a latency 5 % below another's, both timed with a 12 %
    spread, is dominated once the spread ties them; a latency 30 % lower still counts."""
    values = np.array(
        [
            [0.90, 1.00, 100],
            [0.85, 0.95, 100],  # 5 % faster, less accurate: on the front only by latency
            [0.80, 0.70, 100],  # 30 % faster: really faster
        ]
    )
    assert pareto_mask(values, MAXIMIZE).tolist() == [True, True, True]
    tolerance = np.zeros_like(values)
    tolerance[:, 1] = 0.12
    assert pareto_mask(values, MAXIMIZE, tolerance).tolist() == [True, False, True]
    tolerance[1, 1] = tolerance[0, 1] = 0.0  # the larger of the two spreads is what counts
    tolerance[2, 1] = 0.12
    assert pareto_mask(values, MAXIMIZE, tolerance).tolist() == [True, True, True]


def test_a_row_beaten_only_by_a_row_off_the_front_stays() -> None:
    """Ties are not transitive: 1.0 ~ 1.1 ~ 1.22 with a 12 % spread, 1.0 and 1.22 apart. The
    middle row is dominated by the most accurate; the fastest, dominated only by the middle one,
    stays: it is really faster than every member."""
    values = np.array([[0.90, 1.22, 100], [0.85, 1.10, 100], [0.80, 1.00, 100]])
    tolerance = np.zeros_like(values)
    tolerance[:, 1] = 0.12
    assert pareto_mask(values, MAXIMIZE, tolerance).tolist() == [True, False, True]


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 25), st.just(3)), elements=st.integers(1, 12)),
    st.floats(0.0, 0.6),
)
def test_a_front_with_ties_is_never_empty_and_complete(values: np.ndarray, spread: float) -> None:
    """With ties the front is never empty, no member dominates another, and every row off it is
    dominated by a member (not by a row that is itself off the front)."""
    from autocompress.front import dominating, ties

    tolerance = np.zeros_like(values)
    tolerance[:, 1] = spread
    mask = pareto_mask(values, MAXIMIZE, tolerance)
    assert mask.any()
    flipped = values * np.array([-1.0, 1.0, 1.0])
    for i in range(len(values)):
        beaten = dominating(flipped, flipped[i], ties(flipped, tolerance, i))
        assert (beaten & mask).any() != mask[i]
