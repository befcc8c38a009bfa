"""Candidates whose files run the same ops share one measured latency.

Sparsity and clustering leave a dense file's ops, shapes and types as they were
(:mod:`autocompress.hardware.signature`); timed apart, such files differ by noise only, and a
front that keeps one of them over another on latency ranks by that noise. So the first measured
latency of an op signature on a profile stands for every later candidate with that signature
(``details["timed_with"]`` names the trial it comes from, ``details["own_median_ms"]`` keeps
the candidate's own figure): they are tied, and no front keeps two of them apart on latency
alone. Simulated profiles need none of this (they are functions of the file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from optuna.trial import FrozenTrial

from autocompress.records import LatencyResult, TrialRecord


class SharedTimings:
    """The first measured latency of each (profile, op signature), by the trial it came from."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled  # False: --plain-latency, every file keeps its own figure
        self.first: dict[tuple[str, str], tuple[int, LatencyResult]] = {}

    @classmethod
    def from_trials(cls, trials: Iterable[FrozenTrial], enabled: bool = True) -> SharedTimings:
        """What a resumed search had measured, in trial order."""
        timings = cls(enabled)
        for t in sorted(trials, key=lambda t: t.number):
            stored = t.user_attrs.get("record")
            if isinstance(stored, dict):
                timings.share(t.number, TrialRecord.from_dict(stored))
        return timings

    def share(self, number: int, record: TrialRecord) -> TrialRecord:
        """``record`` with each measured latency replaced by the first one of its signature
        (kept as the first when it is)."""
        m = record.measurement
        if not m.op_signature or not self.enabled:
            return record
        latency = dict(m.latency)
        for name, result in m.latency.items():
            if result.backend != "measure" or "timed_with" in result.details:
                continue
            key = (name, m.op_signature)
            if key not in self.first:
                self.first[key] = (number, result)
                continue
            first_number, first = self.first[key]
            if first_number == number:
                continue
            details = {**first.details, "timed_with": first_number}
            details["own_median_ms"] = result.median_ms
            latency[name] = dataclasses.replace(first, details=details)
        measurement = dataclasses.replace(m, latency=latency)
        return dataclasses.replace(record, measurement=measurement)
