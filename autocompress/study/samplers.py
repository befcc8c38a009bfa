"""The search's samplers, and the bounded history that keeps TPE's cost per trial flat.

Optuna's multi-objective TPE reads every finished trial for every parameter it samples and ranks
them by non-dominated sorting each time, so its cost per trial grows with the study: 40 ms per
trial at trials 10-50 and 162 ms at trials 360-400 of a no-op study
(``benchmarks/scaling.py --noop-only --sampler tpe``), seconds at 10,000. :class:`BoundedHistory`
shows the sampler it wraps a bounded view of the study instead: the last ``window`` finished
trials and the trials on the front (non-dominated among the COMPLETE ones; at most ``window`` of
them, spread along the first objective), which TPE's "good" group is drawn from anyway (at most
25 trials in a multi-objective study). A study of up to ``window`` finished trials is sampled
exactly as without the wrapper; past it the sampler sees at most ``2 * window`` trials.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autocompress.errors import InputError
from autocompress.front import dominated, dominating

SAMPLERS = ("tpe", "tpe-multivariate", "nsga2", "random")
WINDOW = 300  # finished trials TPE learns from, besides the front


def make_sampler(name: str, seed: int) -> BaseSampler:
    """The sampler, always explicit: Optuna 5 changed the multi-objective default."""
    if name == "tpe":
        return BoundedHistory(optuna.samplers.TPESampler(seed=seed, n_startup_trials=8))
    if name == "tpe-multivariate":
        # Optuna 5 turns multivariate TPE on by default for one objective only; here it models
        # the recipe's parameters jointly (width and sparsity trade off against each other).
        return BoundedHistory(
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
        )
    if name == "nsga2":
        # NSGA-II reads one generation at a time already (its population, 12 trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=12)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError("--sampler", f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")


class _Front:
    """The non-dominated COMPLETE trials of one study, updated from the trials not yet seen."""

    def __init__(self, directions: Sequence[StudyDirection]) -> None:
        self.signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
        self.seen: set[int] = set()
        self.numbers: list[int] = []
        self.points = np.empty((0, len(self.signs)))  # minimised values, one row per member
        self._shown: tuple[int, set[int]] | None = None  # (limit, members shown) while unchanged

    def update(self, finished: Sequence[FrozenTrial]) -> None:
        for trial in finished:
            if trial.number in self.seen or trial.state != TrialState.COMPLETE:
                continue
            self.seen.add(trial.number)
            point = self.signs * np.asarray(trial.values, dtype=float)
            p = self.points
            if np.any(dominating(p, point)):
                continue
            keep = ~dominated(p, point)
            self.numbers = [n for n, k in zip(self.numbers, keep) if k] + [trial.number]
            self.points = np.vstack([p[keep], point])
            self._shown = None

    def shown(self, limit: int) -> set[int]:
        """At most ``limit`` members, spread along the first objective when there are more (a
        front of thousands, as in a study where every trial trades off, is not all shown)."""
        if self._shown is None or self._shown[0] != limit:
            order = np.argsort(self.points[:, 0], kind="stable")
            if len(order) > limit:
                order = order[np.linspace(0, len(order) - 1, limit).round().astype(int)]
            self._shown = (limit, {self.numbers[i] for i in order})
        return self._shown[1]


class _StudyView:
    """The study as the wrapped sampler sees it: the same except for its trial lists.

    The one use of an Optuna internal in the package, and why: Optuna has no public way to
    bound the history a sampler reads. Its TPE reads the study's trials through the private
    ``Study._get_trials`` (with ``use_cache``), so that is what the view answers; the public
    ``get_trials`` / ``trials`` answer the same. ``tests/study/test_samplers.py``
    (``test_tpe_reads_the_history_through_the_view``) fails loudly if a new Optuna reads them
    another way, which would silently unbound the history again.
    """

    def __init__(self, study: Study, owner: BoundedHistory) -> None:
        self._study = study
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return self._owner.bound(self._study, trials)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class BoundedHistory(BaseSampler):
    """``base`` shown the last ``window`` finished trials and the front (at most ``window`` of
    it), no more (see above)."""

    def __init__(self, base: BaseSampler, window: int = WINDOW) -> None:
        self.base = base
        self.window = window
        self._fronts: dict[str, _Front] = {}  # study name -> its front

    def bound(self, study: Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """``trials`` (one of the study's lists, in trial order) with its finished trials cut to
        the last ``window`` and the front; unfinished ones are all kept."""
        finished = [t for t in trials if t.state.is_finished()]
        if len(finished) <= self.window:
            return trials
        front = self._fronts.setdefault(study.study_name, _Front(study.directions))
        front.update(finished)  # a list without COMPLETE trials has no front member to keep
        recent = {t.number for t in finished[-self.window :]}
        best = front.shown(self.window)
        return [
            t for t in trials if not t.state.is_finished() or t.number in recent or t.number in best
        ]

    def _view(self, study: Study) -> Study:
        return _StudyView(study, self)  # type: ignore[return-value]

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.base.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.base.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
