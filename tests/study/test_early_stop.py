"""Early stop of hopeless candidates: the rule, the gate inside a real build, the table."""

from __future__ import annotations

import optuna
import pytest

from autocompress.recipe import Recipe, at_least_as_compressed
from autocompress.run.tables import trials_frame
from autocompress.study.early_stop import EarlyStop, FrontMember
from autocompress.study.objective import TrialContext, TrialRequest, run_trial

CANDIDATE = Recipe(student_width=1.0, sparsity=0.5, clusters=16, quantization="int8")


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (CANDIDATE, True),  # the same recipe
        (Recipe(student_width=0.5, sparsity=0.5, clusters=16, quantization="int8"), True),
        (Recipe(student_width=1.0, sparsity=0.7, clusters=8, quantization="int8"), True),
        (Recipe(student_width=1.0, sparsity=0.3, clusters=8, quantization="int8"), False),
        (Recipe(student_width=1.0, sparsity=0.5, clusters=0, quantization="int8"), False),
        (Recipe(student_width=1.0, sparsity=0.5, clusters=32, quantization="int8"), False),
        (Recipe(student_width=0.5, sparsity=0.9, clusters=4, quantization="float16"), False),
        # dimensions the hand-written rule missed (issue 39): more layers kept float is less
        # compressed; another range algorithm or kept-layer type is not comparable
        (Recipe(sparsity=0.5, clusters=16, quantization="int8", keep_sensitive=2), False),
        (Recipe(sparsity=0.5, clusters=16, quantization="int8", ptq_algorithm="mse"), False),
        (Recipe(sparsity=0.5, clusters=16, quantization="int8", keep_as="a16w8"), False),
        (Recipe(sparsity=0.5, clusters=16, quantization="int8", exclude="ends"), False),
        # training choices compress nothing
        (Recipe(sparsity=0.5, clusters=16, quantization="int8", finetune_epochs=9), True),
        (
            Recipe(
                student_width=0.5,
                student_init="scratch",
                sparsity=0.5,
                clusters=16,
                quantization="int8",
            ),
            True,
        ),  # fmt: skip
    ],
)
def test_at_least_as_compressed(member: Recipe, expected: bool) -> None:
    assert at_least_as_compressed(member, CANDIDATE) is expected


def test_unclustered_candidate_is_matched_by_any_clustering() -> None:
    loose = Recipe(sparsity=0.5, quantization="int8")
    assert at_least_as_compressed(Recipe(sparsity=0.5, clusters=64, quantization="int8"), loose)


def test_rule_needs_both_margin_and_compression() -> None:
    small_good = FrontMember(3, Recipe(student_width=0.5, sparsity=0.7, quantization="int8"), 0.95)
    big_good = FrontMember(4, Recipe(quantization="int8"), 0.99)
    rule = EarlyStop((small_good, big_good), margin=0.1)
    candidate = Recipe(student_width=0.75, sparsity=0.5, quantization="int8")
    reason = rule.reason(candidate, 0.80, "prune")
    assert reason is not None and "front trial 3" in reason and "0.8000" in reason
    assert rule.reason(candidate, 0.86, "prune") is None  # within the margin
    # big_good is far better but less compressed: it does not make the candidate hopeless.
    assert EarlyStop((big_good,), 0.1).reason(candidate, 0.5, "prune") is None


def test_the_rule_for_one_recipe_keeps_one_member_and_the_same_verdicts() -> None:
    """What a trial carries: only the best front member at least as compressed as its recipe,
    and it stops exactly the candidates the whole front stops (a front of hundreds need not
    travel with every trial)."""
    import itertools

    widths, sparsities, clusters = (0.5, 0.75, 1.0), (0.0, 0.5, 0.7), (0, 8, 16)
    front = tuple(
        FrontMember(i, Recipe(student_width=w, sparsity=s, clusters=c, quantization="int8"), q)
        for i, ((w, s, c), q) in enumerate(
            zip(itertools.product(widths, sparsities, clusters), itertools.cycle((0.9, 0.7, 0.8)))
        )
    )
    rule = EarlyStop(front, margin=0.1)
    for w, s, c in itertools.product(widths, sparsities, clusters):
        candidate = Recipe(student_width=w, sparsity=s, clusters=c, quantization="int8")
        alone = rule.for_recipe(candidate)
        assert len(alone.front) == 1
        for quality in (0.5, 0.65, 0.75, 0.85):
            assert alone.reason(candidate, quality, "prune") == rule.reason(
                candidate, quality, "prune"
            )
    other_mode = Recipe(quantization="float16")
    assert rule.for_recipe(other_mode).front == ()


def test_gate_stops_a_real_build_after_its_first_epoch(tiny_task) -> None:
    """A front member that cannot be beaten stops the candidate inside its first fine-tune
    stage: the trial reports the rule's reason instead of a result."""
    recipe = Recipe(sparsity=0.5, quantization="int8", finetune_epochs=3)
    unbeatable = FrontMember(7, Recipe(sparsity=0.5, clusters=4, quantization="int8"), 2.0)
    ctx = TrialContext(task=tiny_task, profiles=())
    outcome = run_trial(ctx, TrialRequest(1, recipe, EarlyStop((unbeatable,), margin=0.1)))
    assert outcome.record is None and outcome.error is None
    assert outcome.stopped is not None and "after 1 prune epoch" in outcome.stopped
    assert "front trial 7" in outcome.stopped


def test_gate_lets_a_candidate_through_when_no_member_is_comparable(tiny_task) -> None:
    from autocompress.hardware import load_profile

    recipe = Recipe(sparsity=0.5, quantization="int8")
    other_mode = FrontMember(7, Recipe(sparsity=0.9, clusters=4, quantization="float16"), 2.0)
    ctx = TrialContext(task=tiny_task, profiles=(load_profile("edgetpu-usb"),))
    outcome = run_trial(ctx, TrialRequest(1, recipe, EarlyStop((other_mode,), margin=0.1)))
    assert outcome.stopped is None and outcome.record is not None, outcome.error


def test_stopped_trials_are_pruned_rows_with_their_reason() -> None:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    trial = study.ask({"sparsity": optuna.distributions.FloatDistribution(0, 0.9)})
    trial.set_user_attr("stopped", "hopeless: because")
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    table = trials_frame(study)
    assert table.loc[0, "state"] == "PRUNED" and table.loc[0, "stopped"] == "hopeless: because"
