"""A data pipeline as a task's data: ``data: my_data.py:splits`` (or ``module:function``), a
function returning ``{"train": ..., "val": ..., "test": ...}`` (``test`` optional), each a
``tf.data.Dataset`` or any re-iterable of ``(x, y)`` batches (numpy arrays or tensors; dicts by
input / output name for a model with several) -- or of inputs alone (``x`` batches: an array,
a tensor or a dict), when the data has no labels: the model's own outputs are then the targets
(:mod:`autocompress.data.targets`), lined up by position, so every split of such a pipeline
must yield its samples in the same order on every pass.

Each split is read in batches (:class:`Pipeline`), never held: one pass at load collects its
targets (a metric scores a whole split) and counts its samples. A training pipeline may
shuffle (its batches stay paired); the validation and test pipelines must yield their samples
in the same order on every pass, since their outputs are lined up with their targets: they are
read twice at load to check that. In a worker process the function is called again (a pipeline
is not sent between processes, its spec is).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from autocompress._imports import load_function
from autocompress.data.arrays import Arrays, concat, count, take
from autocompress.data.stream import Stream
from autocompress.errors import InputError

SPLITS = ("train", "val", "test")
READ_BATCH = 256  # samples per batch when a pass is read for targets, samples or a digest
_BUILT: dict[str, dict[str, Any]] = {}  # spec -> the function's splits, once per process


def is_pipeline(spec: str) -> bool:
    """Whether a task's ``data`` names a function (``file.py:function`` / ``module:function``)."""
    return ":" in spec and not spec.endswith((".npz", "/"))


def read_pipeline(spec: str, where: str) -> dict[str, Pipeline | Arrays | None]:
    """``x_<split>`` (a :class:`Pipeline`) and ``y_<split>`` (its targets; None for a pipeline
    that yields inputs only) of every split."""
    splits = _splits(spec, where)
    out: dict[str, Pipeline | Arrays | None] = {}
    for split in SPLITS:
        if split not in splits:
            continue
        targets, n, seen = _targets(spec, split, where)
        unlabelled = targets is None
        if (unlabelled or split != "train") and seen != _targets(spec, split, where)[2]:
            raise InputError(
                where,
                f"the {split} pipeline yields its samples in another order on each pass: do "
                "not shuffle "
                + ("a pipeline without labels" if unlabelled else "the validation or test data"),
            )
        out[f"x_{split}"] = Pipeline(spec, split, targets, n)
        out[f"y_{split}"] = targets
    if len({out[f"y_{s}"] is None for s in SPLITS if s in splits}) != 1:
        raise InputError(where, f"data {spec}: some splits yield (x, y) batches, others x alone")
    return out


class Pipeline(Stream):
    """One split of a user's pipeline, read in batches of the size asked for. Its targets are
    what it yields beside its inputs, or, for a pipeline of inputs alone, targets given by
    position (:meth:`relabelled`)."""

    def __init__(self, spec: str, split: str, targets: Arrays | None, n: int) -> None:
        self.spec, self.split, self._targets, self._n = spec, split, targets, n
        self._digest: str | None = None
        self._positional = False  # the targets are not yielded, but lined up by position

    @property
    def targets(self) -> Arrays:
        if self._targets is None:
            raise ValueError("a pipeline without labels has no targets until relabelled")
        return self._targets

    def __len__(self) -> int:
        return self._n

    def relabelled(self, targets: Arrays) -> Pipeline:
        out = Pipeline(self.spec, self.split, targets, self._n)
        out._positional = True
        return out

    def batches(self, size: int, seed: int | None = None) -> Iterator[tuple[Arrays, Arrays]]:
        """The pipeline's own order (it shuffles, or not, itself), in batches of ``size``."""
        source = iter(_source(self.spec, self.split, self.spec))
        if self._targets is not None and not self._positional:
            return rebatch(source, size)
        return self._by_position(rebatch(((x, None) for x in source), size))

    def _by_position(self, batches: Iterator[tuple[Arrays, Any]]) -> Iterator[tuple[Any, Any]]:
        start = 0
        for x, _ in batches:
            n = count(x)
            end = start + n
            yield x, None if self._targets is None else take(self._targets, slice(start, end))
            start = end

    def samples(self, index: np.ndarray) -> Arrays:
        """One pass, keeping the samples at ``index``."""
        index = np.asarray(index, dtype=np.int64)
        wanted = set(index.tolist())
        found: dict[int, Arrays] = {}
        start = 0
        for x, _ in self.batches(READ_BATCH):
            n = count(x)
            for i in range(start, start + n):
                if i in wanted:
                    found[i] = take(x, slice(i - start, i - start + 1))
            start += n
            if len(found) == len(wanted):
                break
        return concat([found[int(i)] for i in index])

    def digest(self) -> str:
        """A hash of one pass over the split (computed once per object)."""
        if self._digest is None:
            h = hashlib.sha256(f"{self.spec}:{self.split}".encode())
            for x, y in self.batches(READ_BATCH):
                for part in (x, y):
                    if part is not None:
                        _hash(h, part)
            self._digest = h.hexdigest()
        return self._digest


def rebatch(batches: Iterator[tuple[Any, Any]], size: int) -> Iterator[tuple[Arrays, Arrays]]:
    """Batches of exactly ``size`` (the last smaller) from the pipeline's batches of any size."""
    held_x: list[Arrays] = []
    held_y: list[Arrays] = []
    have = 0
    labelled = True
    for x, y in batches:
        labelled = y is not None
        held_x.append(_numpy(x))
        if labelled:
            held_y.append(_numpy(y))
        have += count(held_x[-1])
        while have >= size:
            bx = concat(held_x)
            by = concat(held_y) if labelled else None
            yield take(bx, slice(size)), None if by is None else take(by, slice(size))
            held_x = [take(bx, slice(size, None))]
            held_y = [take(by, slice(size, None))] if by is not None else []
            have -= size
    if have:
        yield concat(held_x), concat(held_y) if labelled else None


def _numpy(a: Any) -> Arrays:
    """A batch (tensors or arrays, or a dict of them by name) as numpy."""
    if isinstance(a, dict):
        return {str(k): np.asarray(v) for k, v in a.items()}
    return np.asarray(a)


def _splits(spec: str, where: str) -> dict[str, Any]:
    if spec not in _BUILT:
        fn, _ = load_function(spec, where, "data")
        try:
            splits = fn()
        except Exception as exc:  # the user's function: anything it raises is bad input
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise InputError(where, f"data {spec} raised {type(exc).__name__}: {reason}") from None
        if not isinstance(splits, dict) or not {"train", "val"} <= set(splits):
            raise InputError(
                where, f"data {spec} must return a dict with 'train' and 'val' (and 'test')"
            )
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise InputError(where, f"data {spec} returned an unknown split {unknown[0]!r}")
        _BUILT[spec] = splits
    return _BUILT[spec]


def _source(spec: str, split: str, where: str) -> Any:
    source = _splits(spec, where)[split]
    if iter(source) is source:
        raise InputError(
            where,
            f"the {split} data of {spec} is an iterator, read once: give a re-iterable (a "
            "tf.data.Dataset, a list, an object whose __iter__ starts again)",
        )
    return source


def _is_pair(item: Any) -> bool:
    return isinstance(item, tuple | list) and len(item) == 2


def _targets(spec: str, split: str, where: str) -> tuple[Arrays | None, int, str]:
    """One pass: the split's targets (None: it yields inputs alone), its number of samples,
    and a hash of what it yielded in that order (targets, or inputs where there are none)."""
    parts: list[Arrays] = []
    h = hashlib.sha256()
    n, labelled = 0, None
    for item in iter(_source(spec, split, where)):
        if isinstance(item, tuple | list) and len(item) != 2:
            raise InputError(
                where, f"the {split} data of {spec} must yield (x, y) batches or inputs alone"
            )
        if labelled is None:
            labelled = _is_pair(item)
        if _is_pair(item) != labelled:
            raise InputError(where, f"the {split} data of {spec} mixes (x, y) batches and x alone")
        part = _numpy(item[1] if labelled else item)  # the targets, or the inputs alone
        if labelled:  # the inputs are read, hashed and counted, never held
            parts.append(part)
        n += count(part)
        _hash(h, part)
    if not n:
        raise InputError(where, f"the {split} data of {spec} yields no samples")
    return (concat(parts) if labelled else None), n, h.hexdigest()


def _hash(h: Any, part: Arrays) -> None:
    for _, v in sorted(part.items()) if isinstance(part, dict) else [("", part)]:
        h.update(np.ascontiguousarray(v).tobytes())
