"""autocompress: search the Pareto front of compressed models for a hardware profile.

tensorflow-model-optimization supports only Keras 2, so the legacy-Keras switch is set here, once,
before anything can import TensorFlow. Every model in the package is built with ``tf_keras``.

The search API is imported on first use (PEP 562): ``autocompress measure`` on a device imports
only LiteRT, numpy and PyYAML.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import TYPE_CHECKING, Any  # noqa: E402

from autocompress.errors import InputError  # noqa: E402
from autocompress.recipe import Recipe  # noqa: E402
from autocompress.records import StageRecord, TrialRecord  # noqa: E402

if TYPE_CHECKING:
    from autocompress.study.api import Finish, SearchResult, SearchSettings, search

_SEARCH_API = ("Finish", "SearchResult", "SearchSettings", "search")


def __getattr__(name: str) -> Any:
    if name in _SEARCH_API:
        from autocompress.study import api

        return getattr(api, name)
    raise AttributeError(f"module 'autocompress' has no attribute {name!r}")


__all__ = [
    "Finish",
    "InputError",
    "Recipe",
    "SearchResult",
    "SearchSettings",
    "StageRecord",
    "TrialRecord",
    "search",
]
