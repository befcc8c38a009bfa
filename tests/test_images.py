"""An image folder as a task's data: made here (a few dozen procedurally drawn PNG and JPEG
images of three shapes), decoded and resized to the model's input, class ids by sorted folder
name, bad folders refused in one line, an unreadable image skipped with a warning naming it,
and a search run on it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from autocompress.data.images import ImageFolder
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
    assert isinstance(d.x_train, ImageFolder) and isinstance(d.x_val, ImageFolder)
    assert len(d.x_train) == 36 and len(d.x_val) == 12 and d.has_test  # streamed, not held
    batch, labels = next(d.x_train.batches(8))
    assert batch.shape == (8, 8, 8, 3) and batch.dtype == np.float32
    assert 100 < batch.max() <= 255  # 0-255, not 0-1
    assert list(labels) == list(d.y_train[:8])
    assert list(np.bincount(d.y_train)) == [12, 12, 12]  # cross, disc, square: sorted names
    everything = np.concatenate([x for x, _ in d.x_train.batches(10)])
    np.testing.assert_array_equal(everything[[5, 30]], d.x_train.samples(np.array([5, 30])))
    shuffled = np.concatenate([y for _, y in d.x_train.batches(10, seed=1)])
    assert sorted(shuffled) == sorted(d.y_train) and list(shuffled) != list(d.y_train)


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


def test_every_kind_of_stage_reads_the_folder_in_batches(image_task: Path) -> None:
    """Fine-tuning, distillation and the evaluation of a streamed folder: the same outputs as
    on the decoded arrays, and noise added the same way on every pass."""
    from autocompress.evaluation.audit import noisy
    from autocompress.evaluation.deployed import predict
    from autocompress.recipe import Recipe
    from autocompress.stages.convert import to_tflite
    from autocompress.study.objective import TrialContext, TrialRequest, run_trial

    task = load_task(image_task / "task.yaml")
    d = task.data
    assert isinstance(d.x_val, ImageFolder)
    float_file = to_tflite(task.teacher.build(), "none")
    decoded = d.x_val.samples(np.arange(len(d.x_val)))
    np.testing.assert_allclose(
        predict(float_file, d.x_val), predict(float_file, decoded), atol=1e-6
    )
    np.testing.assert_allclose(
        task.teacher.predict(d.x_val), task.teacher.predict(decoded), atol=1e-5
    )
    noise = noisy(d, seed=3)
    first = np.concatenate(list(noise.inputs(5)))
    assert not np.allclose(first, decoded) and np.allclose(
        first, np.concatenate(list(noise.inputs(5)))
    )
    ctx = TrialContext(task=task, profiles=())
    for recipe in (
        Recipe(sparsity=0.5, finetune_epochs=1, quantization="int8"),
        Recipe(clusters=8, finetune_epochs=1, finetune_loss="distill"),  # taught batch by batch
        Recipe(student_width=0.5, distill_epochs=1),
        Recipe(quantization="qat", finetune_epochs=1),  # its Rescaling layer stays float
    ):
        outcome = run_trial(ctx, TrialRequest(0, recipe))
        assert outcome.error is None, outcome.detail
        assert outcome.record is not None and outcome.record.audit is not None


def test_calibration_samples_is_a_task_key(image_task: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(image_task, tmp_path / "t")
    (tmp_path / "t" / "task.yaml").write_text(
        "model: model.keras\ndata: images\ncalibration_samples: 20\n"
    )
    assert load_task(tmp_path / "t" / "task.yaml").calibration_samples == 20
    (tmp_path / "t" / "task.yaml").write_text(
        "model: model.keras\ndata: images\ncalibration_samples: 0\n"
    )
    with pytest.raises(InputError, match="calibration_samples must be a whole number"):
        load_task(tmp_path / "t" / "task.yaml")
