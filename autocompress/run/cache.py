"""The stage cache: each stage's output stored once per distinct input, reused across trials.

Candidates share prefixes: every trial with student width 0.5 needs the same distilled student,
every (0.5, sparsity 0.6) trial the same pruned model. An entry's key hashes the parent's key and
the stage's own parameters; the root key hashes the teacher, the data and the seed.

An entry is one self-describing blob (``.npz``: architecture JSON, stage record JSON, weights).
Only the search driver keeps entries on disk (:class:`DirCache`, in the run directory, written
under a temporary name and renamed, so a reader never sees half an entry). Workers get the
entries of their recipe's chain with the trial and return the ones they built
(:class:`MemoryCache`), so the cache works across Ray nodes without a shared filesystem.
"""

from __future__ import annotations

import abc
import dataclasses
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
    h.update(task.teacher.digest().encode())
    for name, arr in task.data.entries().items():
        if "." in name:  # one of several inputs / outputs: its name is part of the data
            h.update(name.encode())
        h.update(str(arr.shape).encode() + str(arr.dtype).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    for name, stream in sorted(task.data.streams().items()):  # inputs read in batches
        h.update(f"{name}={stream.digest()}".encode())
    h.update(f"seed={seed}".encode())
    # The loss trains the stages; the metric names their facts and drives the early stop.
    h.update(f"metric={task.metric.name};loss={task.loss}".encode())
    if task.calibration_samples != 100:  # (runs from before it could be set used 100)
        h.update(f"calibration={task.calibration_samples}".encode())
    return h.hexdigest()[:32]


def child_key(parent: str, stage: str, params: dict[str, Any]) -> str:
    text = json.dumps({"parent": parent, "stage": stage, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def encode_entry(model: tf_keras.Model, record: StageRecord) -> bytes:
    """One stage output as a blob: architecture, record and weights (no pickled objects)."""
    buffer = io.BytesIO()
    weights = model.get_weights()
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    np.savez(
        buffer,
        config_json=np.array(model.to_json()),
        record_json=np.array(json.dumps(dataclasses.asdict(record))),
        count=np.array(len(weights)),
        **arrays,
    )
    return buffer.getvalue()


_BAD_ENTRY = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


def decode_record(blob: bytes) -> StageRecord | None:
    """The stage record of an entry, without building its model; None if unreadable."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return StageRecord(**json.loads(str(npz["record_json"])))
    except _BAD_ENTRY:
        return None


def decode_entry(blob: bytes) -> tuple[tf_keras.Model, StageRecord] | None:
    """The model and record of an entry; None if unreadable (the stage is then rebuilt)."""
    import tf_keras

    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            record = StageRecord(**json.loads(str(npz["record_json"])))
            config = str(npz["config_json"])
            weights = [npz[f"w{i}"] for i in range(int(npz["count"]))]
        model = tf_keras.models.model_from_json(config)
        model.set_weights(weights)
    except _BAD_ENTRY:
        return None
    return model, record


class StageCache(abc.ABC):
    """Entries by key; see :func:`child_key`."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The entry's blob, or None."""

    @abc.abstractmethod
    def put(self, key: str, blob: bytes) -> None:
        """Keep a new entry."""

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def load(self, key: str) -> tuple[tf_keras.Model, StageRecord] | None:
        blob = self.get(key)
        return decode_entry(blob) if blob is not None else None

    def record(self, key: str) -> StageRecord | None:
        blob = self.get(key)
        return decode_record(blob) if blob is not None else None

    def store(self, key: str, model: tf_keras.Model, record: StageRecord) -> None:
        self.put(key, encode_entry(model, record))


class DirCache(StageCache):
    """Entries as files ``<key>.entry`` in a directory (the run directory's ``cache/``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.entry"

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except OSError:
            return None

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, blob: bytes) -> None:
        atomic_write_bytes(self._path(key), blob)


class MemoryCache(StageCache):
    """Entries handed to one trial; what the trial builds is collected in ``added``."""

    def __init__(self, entries: dict[str, bytes] | None = None) -> None:
        self.entries = dict(entries or {})
        self.added: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def put(self, key: str, blob: bytes) -> None:
        self.entries[key] = blob
        self.added[key] = blob
