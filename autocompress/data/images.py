"""An image folder as a task's data: ``train/``, ``val/`` and optionally ``test/``, each with one
subfolder per class of image files, as ``keras.utils.image_dataset_from_directory`` reads them;
or, without labels, each holding the image files themselves (the model's own outputs are then
the targets: :mod:`autocompress.data.targets`).

Images are decoded and resized (bilinear) to the model's input size, with pixel values as that
function gives them: float32 in 0-255, so a model that scales its input does so itself. Class
ids follow the sorted class folder names, the same in every split. Every file is decoded once
when the task is loaded (an unreadable one is skipped with a warning naming it), then read in
batches as training, evaluation and calibration need them (:class:`ImageFolder`): memory holds
a batch of images, never the folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from autocompress.data.arrays import take
from autocompress.data.stream import Arrays, Stream
from autocompress.errors import InputError

log = logging.getLogger("autocompress")

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def read_image_folder(
    root: Path, size: tuple[int, int], channels: int
) -> dict[str, ImageFolder | np.ndarray]:
    """``x_<split>``: the split's images as an :class:`ImageFolder` stream ((height, width,
    channels) float32 each), and ``y_<split>``: its int64 class ids (None: no class folders)."""
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise InputError(str(root), "an image folder needs train/ and val/ subfolders")
    splits = [s for s in SPLITS if (root / s).is_dir()]
    classes = {s: sorted(d.name for d in (root / s).iterdir() if d.is_dir()) for s in splits}
    if not any(classes.values()):
        return _unlabelled(root, splits, size, channels)
    if not classes["train"]:
        raise InputError(str(root / "train"), "holds no class subfolders")
    for split in splits[1:]:
        if classes[split] != classes["train"]:
            extra = sorted(set(classes[split]) ^ set(classes["train"]))
            raise InputError(
                str(root / split),
                f"has other classes than train/ ({', '.join(extra[:5])} differ): every split "
                "needs the same class folders",
            )
    out: dict[str, ImageFolder | np.ndarray] = {}
    for split in splits:
        paths, labels = [], []
        for label, name in enumerate(classes[split]):
            for path in sorted((root / split / name).iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                if _decode(path, size, channels) is not None:  # readable: kept, not held
                    paths.append(str(path))
                    labels.append(label)
        if not paths:
            raise InputError(str(root / split), "holds no readable image")
        folder = ImageFolder(paths, np.asarray(labels, dtype=np.int64), size, channels)
        out[f"x_{split}"] = folder
        out[f"y_{split}"] = folder.targets
    return out


def _unlabelled(
    root: Path, splits: list[str], size: tuple[int, int], channels: int
) -> dict[str, ImageFolder | np.ndarray | None]:
    """Splits that hold their images directly: inputs only, ``y_<split>`` None."""
    out: dict[str, ImageFolder | np.ndarray | None] = {}
    for split in splits:
        paths = [
            str(path)
            for path in sorted((root / split).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
            and path.is_file()
            and _decode(path, size, channels) is not None
        ]
        if not paths:
            raise InputError(str(root / split), "holds no readable image and no class subfolders")
        out[f"x_{split}"] = ImageFolder(paths, None, size, channels)
        out[f"y_{split}"] = None
    return out


class ImageFolder(Stream):
    """One split of an image folder: file paths and their targets (class ids, or the teacher's
    outputs for a folder without classes), decoded a batch at a time."""

    def __init__(
        self, paths: list[str], labels: Arrays | None, size: tuple[int, int], channels: int
    ) -> None:
        self.paths, self.labels = list(paths), labels
        self.size, self.channels = (int(size[0]), int(size[1])), int(channels)

    @property
    def targets(self) -> Arrays:
        if self.labels is None:
            raise ValueError("an image folder without classes has no targets until relabelled")
        return self.labels

    def relabelled(self, targets: Arrays) -> ImageFolder:
        return ImageFolder(self.paths, targets, self.size, self.channels)

    def __len__(self) -> int:
        return len(self.paths)

    def batches(self, size: int, seed: int | None = None) -> Iterator[tuple[Arrays, Arrays]]:
        order = (
            np.arange(len(self))
            if seed is None
            else np.random.default_rng(seed).permutation(len(self))
        )
        for start in range(0, len(order), size):
            index = order[start : start + size]
            yield self.samples(index), None if self.labels is None else take(self.labels, index)

    def samples(self, index: np.ndarray) -> np.ndarray:
        images = []
        for i in index:
            image = _decode(Path(self.paths[int(i)]), self.size, self.channels)
            if image is None:  # it was readable when the task was loaded
                raise InputError(self.paths[int(i)], "has become unreadable during the search")
            images.append(image)
        return np.stack(images)

    def digest(self) -> str:
        h = hashlib.sha256(f"{self.size}x{self.channels}".encode())
        ids = isinstance(self.labels, np.ndarray) and self.labels.ndim == 1  # class ids
        for i, path in enumerate(self.paths):
            stat = Path(path).stat()
            label = f":{self.labels[i]}" if ids else ""  # type: ignore[index]
            h.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}{label};".encode())
        if self.labels is not None and not ids:  # the teacher's outputs as targets
            labels = self.labels if isinstance(self.labels, dict) else {"": self.labels}
            for name, values in sorted(labels.items()):
                h.update(name.encode() + np.ascontiguousarray(values).tobytes())
        return h.hexdigest()


def _decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray | None:
    import tensorflow as tf

    try:
        image = tf.io.decode_image(path.read_bytes(), channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        log.warning("skipped unreadable image %s: %s", path, reason)
        return None
    resized = tf.image.resize(image, size, method="bilinear")
    return resized.numpy().astype(np.float32)


def input_image_shape(config: object) -> tuple[int, int, int] | None:
    """(height, width, channels) of a stored Keras architecture's image input, if it has one:
    the first ``batch_shape`` / ``batch_input_shape`` of rank 4 with known sizes."""
    found: list[tuple[int, int, int]] = []

    def walk(node: object) -> None:
        if found:
            return
        if isinstance(node, dict):
            for key in ("batch_shape", "batch_input_shape"):
                shape = node.get(key)
                if (
                    isinstance(shape, list)
                    and len(shape) == 4
                    and all(isinstance(d, int) for d in shape[1:])
                ):
                    found.append((shape[1], shape[2], shape[3]))
                    return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found[0] if found else None
