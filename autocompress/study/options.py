"""What a search run is asked to do beyond its budget, and what it reports while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from autocompress.recipe import Recipe
from autocompress.study.constraints import Limits
from autocompress.study.early_stop import DEFAULT_MARGIN
from autocompress.study.fidelity import Fidelity
from autocompress.study.objective import TrialContext, TrialOutcome, TrialRequest

# Well-known recipes tried first (after the baseline), so the front is good from the first minutes.
WELL_KNOWN = (
    Recipe(quantization="int8"),
    Recipe(sparsity=0.5, quantization="int8"),
    Recipe(clusters=16, quantization="int8"),
    Recipe(sparsity=0.3, quantization="float16"),
    Recipe(student_width=0.5, quantization="int8"),
)


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running search, for progress displays."""

    done: int
    budget: int
    failed: int
    stopped: int
    running: int
    front_size: int
    elapsed_s: float
    time_left_s: float | None = None  # until no new trial starts (with a timeout)


@dataclass(frozen=True)
class SearchOptions:
    """How the driver steers the study beyond the budget."""

    warm_start: bool = True  # try the baseline and the well-known recipes first
    enqueue: tuple[dict[str, object], ...] = ()  # the user's recipes to try first
    limits: Limits = field(default_factory=Limits)  # make a candidate infeasible
    stop_margin: float | None = DEFAULT_MARGIN  # early stop of hopeless candidates; None: off
    cpus_per_trial: float = 1.0  # what Ray reserves per trial
    gpus_per_trial: float = 0.0
    fidelity: Fidelity | None = None  # multi-fidelity levels; None: every build at full effort
    # What each Ray task runs instead of run_trial (benchmarks: a no-op trial); None: run_trial.
    trial_fn: Callable[[TrialContext, TrialRequest], TrialOutcome] | None = None
    # Measured latency in a quiet window, shared by same-op files, the front re-timed at the
    # end (issue 38); False: each file timed once where it was built, beside the other trials.
    quiet_latency: bool = True
