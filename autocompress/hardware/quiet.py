"""A quiet window for measured latency: no trial of the search computes while one is timed.

A search runs a worker per core, and a ``cpu-host`` latency timed while the other workers train
carries their load: the same file measured 0.61x to 1.78x its quiet figure (issue 38). So a
measurement waits for a quiet window, and every trial gives way to one at fine-grained points:

* a trial holds the node's ``busy`` lock *shared* from start to end (:func:`trial`), and at each
  **yield point** (:func:`yield_point`: between training batches, distillation steps and LiteRT
  inference chunks) lets go of it and takes it again -- passing the ``gate`` on the way, which
  blocks while a measurement is waiting or running;
* a measurement (:func:`measuring`) lets go of its own trial's share, takes the ``gate``
  *exclusively* (measurements queue there), then ``busy`` exclusively -- granted once every
  other trial has reached a yield point or finished -- times the file, and releases both.

The locks are ``flock`` locks on two files in a folder of the machine's temporary directory
named by the search (its root key), so the Ray workers of one search on one node coordinate and
those on other nodes do not (each node times on its own CPU). ``flock`` locks go with the
process: a worker that dies frees them. A measurement that gets no quiet window within
:data:`MAX_WAIT_S` (a trial in one long call with no yield point) is timed anyway and says so
(``details["quiet"] = False``).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(tempfile.gettempdir()) / "autocompress-quiet"
MAX_WAIT_S = 300.0
POLL_S = 0.002


@dataclass
class Window:
    """One search's locks in this process, and the seconds this process spent waiting."""

    key: str
    gate: int
    busy: int
    active: bool = False  # a trial of the search runs in this process
    held: bool = False  # this process holds ``busy`` shared (a trial is running here)
    paused_s: float = 0.0  # trials here waited at yield points for others' measurements
    waited_s: float = 0.0  # measurements here waited for a quiet window


_CURRENT: Window | None = None


def _open(key: str) -> Window:
    folder = ROOT / key
    folder.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT
    return Window(key, os.open(folder / "gate", flags), os.open(folder / "busy", flags))


def current() -> Window | None:
    """The quiet window of the trial running in this process (None outside a trial)."""
    return _CURRENT if _CURRENT is not None and _CURRENT.active else None


@contextmanager
def trial(key: str | None) -> Iterator[Window | None]:
    """Run a trial of the search ``key`` in this process as one that gives way to
    measurements (None: no coordination, e.g. a search with no measured profile)."""
    global _CURRENT
    if not key:
        yield None
        return
    if _CURRENT is None or _CURRENT.key != key:
        _close()
        _CURRENT = _open(key)
    window = _CURRENT
    window.paused_s = window.waited_s = 0.0
    _take(window)
    window.active = True
    try:
        yield window
    finally:
        window.active = False
        _let_go(window)


def yield_point() -> None:
    """Give way to a measurement that waits (blocks until it is done); a no-op outside a
    trial or when none waits."""
    window = current()
    if window is None or not window.held:
        return
    _let_go(window)
    _take(window)


@contextmanager
def measuring() -> Iterator[bool]:
    """Hold a quiet window while the body times a file; yields whether it is quiet (False:
    none came within :data:`MAX_WAIT_S`, or no search coordinates this process)."""
    window = current()
    if window is None:
        yield False
        return
    was_held = window.held
    if was_held:
        _let_go(window)
    start = time.perf_counter()
    quiet = _lock(window.gate, start) and _lock(window.busy, start)
    window.waited_s += time.perf_counter() - start
    try:
        yield quiet
    finally:
        fcntl.flock(window.busy, fcntl.LOCK_UN)
        fcntl.flock(window.gate, fcntl.LOCK_UN)
        if was_held:
            _take(window)


def _lock(fd: int, start: float) -> bool:
    """Take ``fd`` exclusively, polling until :data:`MAX_WAIT_S` after ``start``."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.perf_counter() - start > MAX_WAIT_S:
                return False
            time.sleep(POLL_S)


def _take(window: Window) -> None:
    """Pass the gate (waiting while a measurement holds it), then hold ``busy`` shared."""
    start = time.perf_counter()
    fcntl.flock(window.gate, fcntl.LOCK_SH)
    fcntl.flock(window.gate, fcntl.LOCK_UN)
    fcntl.flock(window.busy, fcntl.LOCK_SH)
    window.paused_s += time.perf_counter() - start
    window.held = True


def _let_go(window: Window) -> None:
    fcntl.flock(window.busy, fcntl.LOCK_UN)
    window.held = False


def _close() -> None:
    global _CURRENT
    if _CURRENT is not None:
        os.close(_CURRENT.gate)
        os.close(_CURRENT.busy)
        _CURRENT = None
