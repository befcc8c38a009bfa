"""The study: one search, from the user's settings to the tables in the run directory.

A newcomer's map, in the order data flows:

* ``api.py``: :func:`search` and :class:`SearchSettings`; every check of the user's input
  happens here, before a trial runs; then it opens the study and hands over to the driver.
* ``plan.py``: the space narrowed to what the model and the first profile can take (a board's
  int8 modes, resolutions a Flatten model cannot take), and the layers' sensitivity to int8.
* ``storage.py``: where the study lives (a journal file in the run directory, or a database
  shared by several drivers), the run directory's lock and the driver's id.
* ``driver.py``: the ask -> run -> tell loop (warm start, repeats answered free, trials that wait
  for a stage output another trial builds, the budget and the timeout); ``options.py``: what a
  run is asked to do (warm start, limits, fidelity) and its progress snapshots.
* ``executor.py``: the only module that imports Ray; runs trials as Ray tasks.
* ``objective.py``: one trial, pure: (context, request) -> outcome; no Optuna, no Ray.
* ``fidelity.py``: multi-fidelity levels (a share of the training epochs each) and the
  promotion rule (successive halving for three objectives); ``promotion.py``: the driver's side
  of it (the level a trial builds, the rungs rebuilt from the study, lower levels told PRUNED).
* ``early_stop.py``: when a fine-tuning candidate is hopeless against the front (used when the
  search has no fidelity levels).
* ``constraints.py``: constraint values of a candidate (user limits, profile limits).
* the run directory it writes (its files, ``trials.csv`` / ``pareto.csv``) is
  :mod:`autocompress.run`, which also holds what reads a finished run.
"""

from autocompress.study.api import SearchResult, SearchSettings, search
from autocompress.study.options import Progress

__all__ = ["Progress", "SearchResult", "SearchSettings", "search"]
