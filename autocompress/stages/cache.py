"""The stage cache: each stage's output stored once per distinct input, reused across trials.

Candidates share prefixes: every trial with student width 0.5 needs the same distilled student,
every (0.5, sparsity 0.6) trial the same pruned model. An entry's key hashes the parent's key and
the stage's own parameters; the root key hashes the teacher, the data and the seed. Entries are
plain data (architecture JSON + weights in an ``.npz``, the stage record in JSON), written under a
temporary name and renamed: two workers that build the same key at once both write complete
entries and the last rename wins; a reader never sees half a file. The JSON record is written
last and marks an entry complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress._files import atomic_write_bytes
from autocompress.records import StageRecord

if TYPE_CHECKING:
    import tf_keras

    from autocompress.task import Task


def root_key(task: Task, seed: int) -> str:
    """Identifies everything a stage output depends on besides the recipe."""
    h = hashlib.sha256()
    h.update(task.teacher.config_json.encode())
    for w in task.teacher.weights:
        h.update(np.ascontiguousarray(w).tobytes())
    d = task.data
    for arr in (d.x_train, d.y_train, d.x_val, d.y_val):
        h.update(str(arr.shape).encode() + str(arr.dtype).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(f"seed={seed}".encode())
    return h.hexdigest()[:32]


def child_key(parent: str, stage: str, params: dict[str, Any]) -> str:
    text = json.dumps({"parent": parent, "stage": stage, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class StageCache:
    """A directory of stage outputs keyed by :func:`child_key`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npz", self.root / f"{key}.json"

    def load(self, key: str) -> tuple[tf_keras.Model, StageRecord] | None:
        import tf_keras

        weights_path, record_path = self._paths(key)
        if not record_path.exists():
            return None
        try:
            record = StageRecord(**json.loads(record_path.read_text()))
            with np.load(weights_path, allow_pickle=False) as npz:
                config = str(npz["config_json"])
                weights = [npz[f"w{i}"] for i in range(int(npz["count"]))]
            model = tf_keras.models.model_from_json(config)
            model.set_weights(weights)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            return None  # unreadable entry: rebuild (and overwrite) it
        return model, record

    def store(self, key: str, model: tf_keras.Model, record: StageRecord) -> None:
        weights_path, record_path = self._paths(key)
        buffer = io.BytesIO()
        weights = model.get_weights()
        arrays = {f"w{i}": w for i, w in enumerate(weights)}
        np.savez(
            buffer, config_json=np.array(model.to_json()), count=np.array(len(weights)), **arrays
        )
        atomic_write_bytes(weights_path, buffer.getvalue())
        atomic_write_bytes(record_path, json.dumps(record.__dict__).encode())
