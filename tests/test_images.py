"""An image folder as a task's data: made here (a few dozen procedurally drawn PNG and JPEG
images of three shapes), decoded and resized to the model's input, class ids by sorted folder
name, bad folders refused in one line, an unreadable image skipped with a warning naming it,
and a search run on it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from autocompress.errors import InputError
from autocompress.task import load_task

CLASSES = ("cross", "disc", "square")


def _draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A 12x12 RGB picture of one shape on a noisy background (uint8)."""
    yy, xx = np.mgrid[:12, :12]
    cy, cx = rng.integers(4, 8, size=2)
    if kind == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= 9
    elif kind == "square":
        mask = (abs(yy - cy) <= 3) & (abs(xx - cx) <= 3)
    else:
        mask = (yy == cy) | (xx == cx)
    image = rng.integers(0, 60, size=(12, 12, 3))
    image[mask] = rng.integers(180, 255, size=3)
    return image.astype(np.uint8)


def make_folder(root: Path, per_class: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for kind in CLASSES:
            folder = root / "images" / split / kind
            folder.mkdir(parents=True)
            for i in range(n):
                suffix = ".jpg" if i % 4 == 3 else ".png"
                Image.fromarray(_draw(kind, rng)).save(folder / f"{i}{suffix}")
    return root / "images"


@pytest.fixture(scope="module")
def image_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tf_keras as keras

    root = tmp_path_factory.mktemp("images")
    make_folder(root, {"train": 12, "val": 4, "test": 4})
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),  # the model scales its input itself
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(root / "model.keras")
    (root / "task.yaml").write_text("model: model.keras\ndata: images\n")
    return root


def test_folder_is_decoded_at_the_model_input_size(image_task: Path) -> None:
    task = load_task(image_task / "task.yaml")
    d = task.data
    assert d.x_train.shape == (36, 8, 8, 3) and d.x_val.shape == (12, 8, 8, 3) and d.has_test
    assert d.x_train.dtype == np.float32 and 100 < d.x_train.max() <= 255  # 0-255, not 0-1
    assert list(np.bincount(d.y_train)) == [12, 12, 12]  # cross, disc, square: sorted names


def test_bad_folders_are_one_line_errors(image_task: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copy(image_task / "model.keras", tmp_path / "model.keras")
    (tmp_path / "task.yaml").write_text("model: model.keras\ndata: images\n")
    make_folder(tmp_path, {"train": 2, "val": 1})
    (tmp_path / "images" / "val" / "square").rename(tmp_path / "images" / "val" / "triangle")
    with pytest.raises(InputError, match="val: has other classes than train/") as info:
        load_task(tmp_path / "task.yaml")
    assert "\n" not in str(info.value)
    shutil.rmtree(tmp_path / "images" / "val")
    with pytest.raises(InputError, match="needs train/ and val/"):
        load_task(tmp_path / "task.yaml")
    (tmp_path / "images" / "val").mkdir()
    with pytest.raises(InputError, match="val: has other classes"):
        load_task(tmp_path / "task.yaml")


def test_unreadable_image_is_skipped_with_a_warning_naming_it(
    image_task: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    shutil.copytree(image_task, tmp_path / "t")
    bad = tmp_path / "t" / "images" / "train" / "disc" / "broken.png"
    bad.write_bytes(b"\x89PNG not really an image")
    with caplog.at_level(logging.WARNING, logger="autocompress"):
        task = load_task(tmp_path / "t" / "task.yaml")
    assert len(task.data.x_train) == 36
    assert any("broken.png" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("ray_cluster")
def test_a_search_runs_on_an_image_folder(image_task: Path, tmp_path: Path) -> None:
    from autocompress import search

    space = tmp_path / "space.yaml"
    space.write_text("quantization: [none, int8]\n")
    result = search(
        task=image_task / "task.yaml", space=space, trials=2, out=tmp_path / "run", workers=1
    )
    assert set(result.trials["state"]) == {"COMPLETE"}
    assert "test_accuracy" in result.trials.columns
