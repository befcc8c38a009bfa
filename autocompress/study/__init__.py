"""The study: pure trial objective, Ray executor, Optuna driver and the run directory."""

from autocompress.study.runner import Progress, SearchResult, search

__all__ = ["Progress", "SearchResult", "search"]
