"""An image folder as a task's data: ``train/``, ``val/`` and optionally ``test/``, each with one
subfolder per class of image files, as ``keras.utils.image_dataset_from_directory`` reads them.

Images are decoded and resized (bilinear) to the model's input size, with pixel values as that
function gives them: float32 in 0-255, so a model that scales its input does so itself. Class
ids follow the sorted class folder names, the same in every split. An unreadable file is
skipped with a warning naming it. The images are decoded into memory (streaming in batches is
not built yet: see the README).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from autocompress.errors import InputError

log = logging.getLogger("autocompress")

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def read_image_folder(root: Path, size: tuple[int, int], channels: int) -> dict[str, np.ndarray]:
    """``x_<split>`` (n, height, width, channels) float32 and ``y_<split>`` int64 class ids."""
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise InputError(str(root), "an image folder needs train/ and val/ subfolders")
    splits = [s for s in SPLITS if (root / s).is_dir()]
    classes = {s: sorted(d.name for d in (root / s).iterdir() if d.is_dir()) for s in splits}
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
    arrays: dict[str, np.ndarray] = {}
    for split in splits:
        images, labels = [], []
        for label, name in enumerate(classes[split]):
            for path in sorted((root / split / name).iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                image = _decode(path, size, channels)
                if image is not None:
                    images.append(image)
                    labels.append(label)
        if not images:
            raise InputError(str(root / split), "holds no readable image")
        arrays[f"x_{split}"] = np.stack(images)
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
    return arrays


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
