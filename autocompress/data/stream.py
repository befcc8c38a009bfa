"""A split's inputs read in batches, never all in memory: what an image folder or a data
pipeline gives a task.

A :class:`Stream` yields ``(inputs, targets)`` batches. Its targets are also held whole (they
are small beside the inputs, and a metric scores a whole split at once), in its *canonical*
order: the order of an unshuffled pass, which evaluation passes keep, so that the outputs of
a validation pass line up with the validation targets. Training passes may shuffle: a source
with random access shuffles its indices per pass, a pipeline its own way (its ``(x, y)``
batches stay paired).

Everything that reads a split goes through :mod:`autocompress.data.arrays` (``count``,
``take``, ``keras_predict``), which serves in-memory arrays and streams alike.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator

import numpy as np

Arrays = np.ndarray | dict[str, np.ndarray]


class Stream(abc.ABC):
    """The inputs of one split, read in batches, and its targets (held whole)."""

    @property
    @abc.abstractmethod
    def targets(self) -> Arrays:
        """Every sample's target, in canonical order."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abc.abstractmethod
    def batches(self, size: int, seed: int | None = None) -> Iterator[tuple[Arrays, Arrays]]:
        """``(inputs, targets)`` batches of at most ``size``: in canonical order without
        ``seed``, else a training pass shuffled by ``seed`` (where the source can)."""

    @abc.abstractmethod
    def samples(self, index: np.ndarray) -> Arrays:
        """The inputs at canonical positions ``index`` (a few: calibration, a subset)."""

    @abc.abstractmethod
    def digest(self) -> str:
        """A hash that changes when the data does (the stage cache's key, the lineage)."""

    def relabelled(self, targets: Arrays) -> Stream:
        """This split with ``targets`` (one per sample, in canonical order) in place of its own:
        a split read without labels, given the teacher's outputs (:mod:`autocompress.data.
        targets`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot take other targets")

    def inputs(self, size: int) -> Iterator[Arrays]:
        """The inputs alone, in canonical order."""
        for x, _ in self.batches(size):
            yield x

    def with_noise(self, scale: float, seed: int) -> Stream:
        """This stream with Gaussian noise of std ``scale`` on its float inputs, the same noise
        on every pass of the same batch size."""
        return _Noisy(self, scale, seed)


class Derived(Stream):
    """A stream made from another one sample for sample: the same targets and length, its
    inputs changed as they are read (noise, a resize)."""

    base: Stream

    @property
    def targets(self) -> Arrays:
        return self.base.targets

    def __len__(self) -> int:
        return len(self.base)


class _Noisy(Derived):
    """A stream's inputs plus Gaussian noise (the audit's robustness check)."""

    def __init__(self, base: Stream, sigma: float, seed: int) -> None:
        self.base, self.seed = base, seed
        probe = base.samples(np.arange(min(len(base), 512)))
        parts = probe.values() if isinstance(probe, dict) else [probe]
        floats = [p for p in parts if np.issubdtype(p.dtype, np.floating)]
        self.scale = (
            sigma * float(np.std(np.concatenate([p.ravel() for p in floats]))) if floats else 0.0
        )

    def batches(self, size: int, seed: int | None = None) -> Iterator[tuple[Arrays, Arrays]]:
        for i, (x, y) in enumerate(self.base.batches(size, seed)):
            rng = np.random.default_rng([self.seed, i])
            yield self._add(x, rng), y

    def samples(self, index: np.ndarray) -> Arrays:
        return self._add(self.base.samples(index), np.random.default_rng([self.seed, -1]))

    def digest(self) -> str:
        return f"{self.base.digest()}+noise{self.scale}:{self.seed}"

    def _add(self, x: Arrays, rng: np.random.Generator) -> Arrays:
        def one(v: np.ndarray) -> np.ndarray:
            if not np.issubdtype(v.dtype, np.floating):
                return v
            return (v + rng.normal(0.0, self.scale, size=v.shape)).astype(v.dtype)

        return {k: one(v) for k, v in x.items()} if isinstance(x, dict) else one(x)
