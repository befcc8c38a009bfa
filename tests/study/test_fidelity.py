"""The multi-fidelity promotion rule on hand-made values."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.study.fidelity import (
    contributions,
    front_indices,
    hypervolume,
    promotions,
    ranking,
)


def test_front_indices() -> None:
    points = np.array(
        [
            (0.9, 1.0, 100),  # front 0
            (0.8, 2.0, 200),  # dominated by the first: front 1
            (0.7, 0.5, 100),  # faster: front 0
            (0.6, 3.0, 300),  # dominated by all of the above: front 2
        ]
    )
    assert front_indices(points).tolist() == [0, 1, 0, 2]


def test_hypervolume_of_boxes() -> None:
    ref = np.array([1.0, 1.0, 1.0])
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), ref) == pytest.approx(1.0)
    two = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.0]])
    # 0.25 + 0.5 (the second box is 0.5 x 1 x 1) - 0.125 (their overlap)
    assert hypervolume(two, ref) == pytest.approx(0.625)
    assert hypervolume(np.array([[2.0, 0.0, 0.0]]), ref) == 0.0


def test_contribution_prefers_the_lonely_point() -> None:
    front = np.array([(0.90, 1.0, 100), (0.89, 1.01, 101), (0.5, 0.1, 10)])
    c = contributions(front)
    assert c[2] > c[0] and c[2] > c[1]  # the two near-twins share their volume


def test_dominating_latecomer_is_promoted() -> None:
    rung = {i: (0.5 + 0.01 * i, 10.0 - i, 1000.0 - 10 * i) for i in range(9)}
    first = promotions(rung, promoted=set(), eta=3)
    assert len(first) == 3
    rung[99] = (0.99, 0.1, 10.0)  # arrives last and dominates every candidate
    assert ranking(rung)[0] == 99
    assert promotions(rung, promoted=set(first), eta=3) == [99]


def test_nothing_is_promoted_before_the_rung_has_eta_candidates() -> None:
    assert promotions({1: (0.9, 1.0, 1.0), 2: (0.8, 2.0, 2.0)}, set(), eta=3) == []


def test_tiny_useless_model_is_not_promoted_by_size_and_latency() -> None:
    rung = {
        1: (0.95, 5.0, 500.0),
        2: (0.94, 4.0, 450.0),
        3: (0.93, 6.0, 520.0),
        4: (0.10, 0.1, 5.0),  # smallest and fastest, on the front, useless
        5: (0.90, 7.0, 600.0),
        6: (0.85, 8.0, 700.0),
    }
    assert 4 in promotions(rung, set(), eta=3)  # without a floor it wins on size and latency
    chosen = promotions(rung, set(), eta=3, floor=0.8)
    assert 4 not in chosen and len(chosen) == 2


def test_eta_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="eta"):
        promotions({}, set(), eta=1)
