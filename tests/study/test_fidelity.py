"""The multi-fidelity promotion rule on hand-made values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.metrics import ACCURACY
from autocompress.recipe import Recipe
from autocompress.study.fidelity import (
    Fidelity,
    Rungs,
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


def _fidelity() -> Fidelity:
    return Fidelity(levels=(0.0, 0.34, 1.0), eta=3)


def test_levels_scale_only_the_epochs_a_stage_trains() -> None:
    fid = _fidelity()
    recipe = Recipe(student_width=0.5, sparsity=0.5, distill_epochs=12, finetune_epochs=3)
    floors = {"distill_epochs": 1, "finetune_epochs": 0}
    assert fid.recipe_at(recipe, 0, floors) == replace(recipe, distill_epochs=1, finetune_epochs=0)
    assert fid.recipe_at(recipe, 1, floors) == replace(recipe, distill_epochs=4, finetune_epochs=1)
    assert fid.recipe_at(recipe, 2, floors) == recipe
    pruned = Recipe(sparsity=0.5, distill_epochs=12, finetune_epochs=2)  # no student
    assert fid.recipe_at(pruned, 0, {"finetune_epochs": 0}).distill_epochs == 12
    # 2 epochs x 0.34 rounds to 1 at level 1; level 0 differs (0 epochs): three builds.
    assert fid.last_same(pruned, 0, {"finetune_epochs": 0}) == 0
    assert fid.last_same(Recipe(quantization="int8"), 0, {}) == 2  # trains nothing: the top
    student = Recipe(student_width=0.5, distill_epochs=2)
    assert fid.last_same(student, 0, {"distill_epochs": 1}) == 1  # 1 epoch at levels 0 and 1


def test_distillation_is_not_scaled_by_the_levels() -> None:
    """The shipped stages' floors: a student is distilled in full at every level (only the
    stages after it are screened), so a student alone goes to the top at once."""
    from autocompress.stages.build import epoch_floors

    fid = _fidelity()
    pruned_student = Recipe(student_width=0.5, sparsity=0.5, distill_epochs=6, finetune_epochs=2)
    assert epoch_floors(pruned_student) == {"finetune_epochs": 0}
    at_0 = fid.recipe_at(pruned_student, 0, epoch_floors(pruned_student))
    assert at_0 == replace(pruned_student, finetune_epochs=0)
    student = Recipe(student_width=0.5, quantization="int8", distill_epochs=6)
    assert epoch_floors(student) == {}
    assert fid.last_same(student, 0, epoch_floors(student)) == fid.top
    assert epoch_floors(Recipe(sparsity=0.5, finetune_epochs=2)) == {"finetune_epochs": 0}


@pytest.mark.parametrize(
    "entry",
    [
        {"levels": [0.0, 0.5]},  # does not end at the full training
        {"levels": [0.5, 0.2, 1.0]},  # not increasing
        {"levels": [1.0]},
        {"levels": [0.0, 1.0], "eta": 1},
        {"levels": [0.0, 1.0], "rate": 3},
        [0.0, 1.0],
    ],
)
def test_bad_fidelity_entry_is_one_line(entry: object) -> None:
    with pytest.raises(InputError, match="space.yaml: fidelity"):
        Fidelity.from_dict("space.yaml", entry)


def test_rungs_promote_from_the_highest_level_first_and_never_below_the_median() -> None:
    rungs = Rungs(_fidelity())
    # Level 0: six candidates; 5 is tiny and fast but useless, the best by size and latency.
    for c, point in enumerate(
        [(0.80, 2.0, 900), (0.70, 2.0, 900), (0.60, 2.0, 900), (0.75, 1.0, 500), (0.5, 2, 900)]
    ):
        rungs.add(c, 0, 0, point)
    rungs.add(5, 0, 0, (0.10, 0.1, 10))
    assert rungs.floor(0) == pytest.approx(0.65)
    first = rungs.next_promotion()
    assert first is not None and first[1] == 0 and first[0] in (0, 3)
    rungs.going_on(first[0], 0)
    second = rungs.next_promotion()
    assert second is not None and {first[0], second[0]} == {0, 3}  # 6 // 3 = 2 places, not 5
    rungs.going_on(second[0], 0)
    assert rungs.next_promotion() is None
    # Three candidates at level 1: one place; it goes before any new level-0 promotion.
    rungs.add(0, 1, 1, (0.85, 2.0, 900))
    rungs.add(3, 1, 1, (0.80, 1.0, 500))
    rungs.add(7, 1, 1, (0.90, 0.5, 400))  # dominates the level: promoted first
    rungs.add(8, 0, 0, (0.95, 0.5, 100))  # level 0 has seven now: still two places
    assert rungs.next_promotion() == (7, 1)


def test_a_build_counting_for_several_levels_is_promoted_through_them() -> None:
    rungs = Rungs(_fidelity())
    rungs.add(0, 0, 1, (0.9, 1.0, 100))  # the same build at levels 0 and 1
    assert 0 in rungs.promoted[0] and 0 not in rungs.promoted[1]
    assert rungs.results[0][0] == rungs.results[1][0]


def test_a_candidate_no_better_than_guessing_is_never_promoted() -> None:
    """A rung whose median is at chance (students after one epoch): the tiny, fast student at
    chance is the best by size and latency, yet guessing bounds the floor."""
    labels = np.repeat(np.arange(10), 80)  # 800 balanced labels: chance 0.10
    guess = ACCURACY.chance(labels, labels, 10)
    assert 0.12 < guess < 0.125  # 0.10 + 2 standard errors of 0.0106
    rungs = Rungs(_fidelity(), guess=guess)
    for c, point in enumerate(
        [(0.11, 0.1, 10), (0.10, 0.2, 20), (0.105, 0.3, 30), (0.80, 2.0, 900), (0.09, 1, 90)]
    ):
        rungs.add(c, 0, 0, point)
    rungs.add(5, 0, 0, (0.13, 1.5, 800))
    assert rungs.floor(0) == pytest.approx(guess)  # the median (0.1075) is below guessing
    promoted = set()
    for _ in range(2):  # 6 // 3 = 2 places: the two above the floor
        due = rungs.next_promotion()
        assert due is not None and due[1] == 0
        rungs.going_on(due[0], 0)
        promoted.add(due[0])
    assert promoted == {3, 5}
    assert rungs.next_promotion() is None  # candidate 0 (0.11, tiny, fast) never goes on
    assert Rungs(_fidelity()).floor(0) is None
    assert ACCURACY.chance(labels, np.array([], "int64"), 10) is None
