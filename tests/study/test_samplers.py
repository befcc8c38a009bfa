"""The bounded history under TPE: identical sampling up to the window, a bounded view past it."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autocompress.space import SearchSpace
from autocompress.study.samplers import BoundedHistory

DIRECTIONS = ["maximize", "minimize", "minimize"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _values(recipe: Any) -> list[float]:
    """A toy trade-off: narrow, sparse students are smaller and faster but less accurate."""
    w, s = recipe.student_width, recipe.sparsity
    return [1.0 - 0.3 * (1 - w) - 0.2 * s**2, w * (1 - 0.5 * s), w * (1.0 - s)]


# The default space's dimensions as they were when these tests were written: the tests are about
# the sampler, not about what the shipped default space holds today.
TOY_SPACE = {
    "student_width": [1.0, 0.75, 0.5, 0.25],
    "sparsity": {"low": 0.0, "high": 0.9, "step": 0.1},
    "clusters": [0, 8, 16, 32],
    "quantization": ["none", "dynamic", "float16", "int8", "qat"],
}


def _narrow_wins(recipe: Any) -> list[float]:
    """A toy where narrow students are better in every objective."""
    w = recipe.student_width
    return [1.0 - 0.1 * w, w, w * (1.0 - recipe.sparsity)]


def _run(
    sampler: optuna.samplers.BaseSampler, n: int, values: Any = _values
) -> tuple[optuna.Study, list[dict]]:
    space = SearchSpace.from_dict(TOY_SPACE)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    recipes = []
    for _ in range(n):
        trial = study.ask()
        recipe = space.sample(trial)
        recipes.append(dict(trial.params))
        if trial.number % 7 == 3:
            study.tell(trial, state=TrialState.FAIL)  # a failed build: finished, no values
        else:
            study.tell(trial, values(recipe))
    return study, recipes


def test_up_to_the_window_it_samples_exactly_as_the_sampler_it_wraps() -> None:
    _, plain = _run(optuna.samplers.TPESampler(seed=3, n_startup_trials=8), 40)
    _, bounded = _run(BoundedHistory(optuna.samplers.TPESampler(seed=3, n_startup_trials=8)), 40)
    assert bounded == plain


class _Spy(optuna.samplers.RandomSampler):
    """Records which finished trials the study it is shown holds, at every sample."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[set[int]] = []

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        finished = study._get_trials(deepcopy=False, states=FINISHED, use_cache=True)
        self.seen.append({t.number for t in finished})
        assert {t.number for t in study.get_trials(states=FINISHED)} == self.seen[-1]
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_past_the_window_the_sampler_sees_the_recent_trials_and_the_front() -> None:
    spy = _Spy()
    window = 15
    study, _ = _run(BoundedHistory(spy, window=window), 80, _narrow_wins)
    trials = study.get_trials()
    front = {t.number for t in study.best_trials}
    seen = spy.seen[-1]  # what the last trial's sampling was shown
    finished_before = [t.number for t in trials[:-1] if t.state in FINISHED]
    assert set(finished_before[-window:]) <= seen  # the last `window` finished trials
    assert {n for n in front if n < trials[-1].number} <= seen  # the whole front
    assert len(seen) < len(finished_before)  # and not the rest
    assert seen - set(finished_before[-window:]) <= front
    assert len(front) <= window  # (the whole front is shown while it fits in the window)


def _all_on_the_front(recipe: Any) -> list[float]:
    """Quality, latency and size rising together with a hash of the recipe: no trial dominates
    another (the worst case of ``benchmarks/scaling.py --noop-only``)."""
    h = (hash(tuple(sorted(recipe.to_dict().items()))) % 10_000) / 10_000
    return [h, h, h]


def test_a_front_larger_than_the_window_is_shown_in_part_spread_along_it() -> None:
    spy = _Spy()
    window = 10
    study, _ = _run(BoundedHistory(spy, window=window), 80, _all_on_the_front)
    front = {t.number for t in study.best_trials}
    assert len(front) > 2 * window
    assert max(len(s) for s in spy.seen) <= 2 * window
    shown = spy.seen[-1] & front
    quality = sorted(t.values[0] for t in study.best_trials if t.number in spy.seen[-1])
    everyone = sorted(t.values[0] for t in study.best_trials if t.number < 79)
    assert len(shown) >= window - 1
    assert quality[0] == everyone[0] and quality[-1] == everyone[-1]  # both ends of the front


def test_tpe_past_the_window_still_steers_towards_the_better_values() -> None:
    """With the window binding from trial 20 on, TPE still moves to the narrow students that the
    toy values favour in every objective."""
    sampler = BoundedHistory(optuna.samplers.TPESampler(seed=0, n_startup_trials=8), window=12)
    study, recipes = _run(sampler, 60, _narrow_wins)
    widths = [r["student_width"] for r in recipes]
    assert np.mean(widths[-20:]) < np.mean(widths[:8])
    assert len(study.trials) == 60


class _Counting(BoundedHistory):
    """Counts the trial lists the wrapped sampler asked for, and their finished trials."""

    def __init__(self, base: optuna.samplers.BaseSampler, window: int) -> None:
        super().__init__(base, window)
        self.shown: list[int] = []

    def bound(self, study: optuna.Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        out = super().bound(study, trials)
        self.shown.append(sum(t.state.is_finished() for t in out))
        return out


def test_tpe_reads_the_history_through_the_view() -> None:
    """The pinned Optuna's TPE reads the study's trials through ``Study._get_trials``, which the
    bounded view answers. If a new Optuna reads them another way, the history is no longer
    bounded and this fails: see ``autocompress.study.samplers._StudyView``."""
    window = 10
    sampler = _Counting(optuna.samplers.TPESampler(seed=0, n_startup_trials=8), window)
    _run(sampler, 40)
    assert sampler.shown, "TPE read no trials through the view: Optuna changed how it reads them"
    assert max(sampler.shown) <= 2 * window  # what TPE was given to learn from, bounded
    assert max(sampler.shown) > window  # and the bound was what limited it
