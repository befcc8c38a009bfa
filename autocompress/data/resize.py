"""A task's images at a smaller input size: what a candidate of a ``resolution`` below 1.0 is
trained, calibrated and evaluated on (issue 39, item 4).

Images are resized with ``tf.image.resize`` (bilinear, with antialiasing when shrinking): the
same call a user's application makes to feed such a model (README: "Input resolution"). The
teacher keeps seeing the full-size images: a distillation target is the teacher's answer on the
original, not on a blurred copy (:meth:`Resized.batches_with_originals`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from autocompress.data.stream import Arrays, Derived, Stream

if TYPE_CHECKING:
    from autocompress.data.arrays import Inputs
    from autocompress.task import TaskData

Size = tuple[int, int]
_CHUNK = 256  # images resized at once: bounded memory on a large split


def scaled_size(shape: tuple, resolution: float) -> Size:
    """The (height, width) of an image input of ``shape`` (H, W, C) at ``resolution``."""
    return (max(1, round(shape[0] * resolution)), max(1, round(shape[1] * resolution)))


def resize_images(x: np.ndarray, size: Size) -> np.ndarray:
    """A batch of NHWC images at ``size`` (its dtype kept; already that size: as it is)."""
    import tensorflow as tf

    if tuple(x.shape[1:3]) == tuple(size):
        return x
    parts = [
        tf.image.resize(x[i : i + _CHUNK], size, method="bilinear", antialias=True).numpy()
        for i in range(0, len(x), _CHUNK)
    ]
    out = np.concatenate(parts) if parts else np.zeros((0, *size, x.shape[-1]), np.float32)
    return out.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else out


class Resized(Derived):
    """A stream's images at ``size``, read batch by batch from the full-size stream."""

    def __init__(self, base: Stream, size: Size) -> None:
        self.base, self.size = base, size

    def batches(self, size: int, seed: int | None = None) -> Iterator[tuple[Arrays, Arrays]]:
        for x, _, y in self.batches_with_originals(size, seed):
            yield x, y

    def batches_with_originals(
        self, size: int, seed: int | None = None
    ) -> Iterator[tuple[Arrays, Arrays, Arrays]]:
        """``(resized inputs, full-size inputs, targets)``: the candidate's batch and the
        teacher's, of the same samples."""
        for x, y in self.base.batches(size, seed):
            yield _resized(x, self.size), x, y

    def samples(self, index: np.ndarray) -> Arrays:
        return _resized(self.base.samples(index), self.size)

    def digest(self) -> str:
        return f"{self.base.digest()}@{self.size[0]}x{self.size[1]}"

    def relabelled(self, targets: Arrays) -> Stream:
        return Resized(self.base.relabelled(targets), self.size)


def _resized(x: Arrays, size: Size) -> Arrays:
    if isinstance(x, dict):
        raise ValueError("resolution applies to a model with one image input")
    return resize_images(x, size)


def resized(x: Inputs, size: Size) -> Inputs:
    """One split's inputs at ``size`` (a stream: resized as it is read)."""
    if isinstance(x, Stream):
        return Resized(x, size)
    return _resized(x, size)


def batches_with_originals(
    x: Stream, size: int, seed: int | None = None
) -> Iterator[tuple[Arrays, Arrays, Arrays]]:
    """``(candidate inputs, teacher inputs, targets)`` batches of a training pass: the same
    inputs twice unless ``x`` is :class:`Resized`."""
    if isinstance(x, Resized):
        yield from x.batches_with_originals(size, seed)
        return
    for xb, yb in x.batches(size, seed):
        yield xb, xb, yb


def data_at(data: TaskData, size: Size, train: bool = True) -> TaskData:
    """Every split of ``data`` with its images at ``size`` (not ``train``: the training split
    left as it is, for what only evaluates)."""
    return dataclasses.replace(
        data,
        x_train=resized(data.x_train, size) if train else data.x_train,
        x_val=resized(data.x_val, size),
        x_test=None if data.x_test is None else resized(data.x_test, size),
    )
