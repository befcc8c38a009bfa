"""autocompress: search the Pareto front of compressed Keras models for a hardware profile.

tensorflow-model-optimization supports only Keras 2, so the legacy-Keras switch is set here, once,
before anything can import TensorFlow. Every model in the package is built with ``tf_keras``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autocompress.errors import InputError  # noqa: E402
from autocompress.records import Recipe, StageRecord, TrialRecord  # noqa: E402
from autocompress.study.api import SearchResult, SearchSettings, search  # noqa: E402

__all__ = [
    "InputError",
    "Recipe",
    "SearchResult",
    "SearchSettings",
    "StageRecord",
    "TrialRecord",
    "search",
]
