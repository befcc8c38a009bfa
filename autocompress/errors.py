"""The one error type for bad user input: it names the file and the problem in one line."""

from __future__ import annotations


class InputError(Exception):
    """A user-supplied file or value is unusable.

    The CLI prints ``str(error)`` as a single line and exits with code 2; no traceback.

    Args:
        source: the file (or option) at fault, e.g. ``search_spaces/x.yaml`` or ``--timeout``.
        problem: what is wrong with it, in words the user can act on.
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = str(source)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.source}: {self.problem}")


class ClusterLost(Exception):
    """The Ray cluster a search ran on went away mid-search. Its running trials were recorded as
    interrupted and everything finished is kept; the message says how to resume. The CLI prints
    it as one line and exits with code 1."""
