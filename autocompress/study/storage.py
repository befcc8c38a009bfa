"""Where the study lives: a journal file in the run directory, or a database several drivers
share; plus the run directory's lock and the driver's stable id.

Opening refuses damaged or foreign studies with a one-line error before anything is written. The
storage object is kept beside the study (:class:`OpenStudy`), so that the driver uses Optuna's
public storage API and never a study's private attributes.
"""

from __future__ import annotations

import fcntl
import logging
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autocompress._files import atomic_write_text
from autocompress.errors import InputError
from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.run.rundir import STUDY_NAME, RunDir
from autocompress.run.tables import objective_columns


def directions(quality: Quality) -> list[str]:
    """The study's directions: the task's metric, latency, gzip size."""
    return ["maximize" if quality.maximize else "minimize", "minimize", "minimize"]


_RECOVER = (
    "The run directory is damaged: restore the file, or move the directory away and start a "
    "new search (trials.csv keeps a readable copy of every result)"
)


log = logging.getLogger("autocompress")


@dataclass(frozen=True)
class OpenStudy:
    """A study with the storage it was opened on; ``shared``: a database other drivers use."""

    study: optuna.Study
    storage: BaseStorage
    shared: bool

    def fail_trial(self, number: int, reason: str) -> None:
        """Mark a trial another (killed) process left RUNNING as FAIL, with ``reason``."""
        study_id = self.storage.get_study_id_from_name(STUDY_NAME)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(trial_id, "error", reason)
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)

    def fail_orphans(self, driver_id: str) -> None:
        """Trials left RUNNING by a driver that was killed are marked FAIL, with the reason.

        Only this driver's own (by its id in the run directory): in a shared study, other
        drivers' running trials are theirs to finish.
        """
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get("driver")
            if owner != driver_id and (self.shared or owner is not None):
                continue
            self.fail_trial(t.number, "interrupted: the driver stopped while this trial ran")
            log.warning("trial %d was left running by an earlier run: marked FAIL", t.number)


def open_study(
    rundir: RunDir,
    primary: str,
    sampler: optuna.samplers.BaseSampler,
    storage_url: str | None = None,
    quality: Quality = DEFAULT_QUALITY,
) -> OpenStudy:
    """Create the study, or load it to resume; refuse a study made for another objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage_url is not None:
        return _open_shared_study(rundir, primary, sampler, storage_url, quality)
    exists = rundir.journal.exists()
    if exists and rundir.journal.stat().st_size == 0:
        raise InputError(str(rundir.journal), f"is empty. {_RECOVER}")
    if exists and not _ends_with_newline(rundir.journal):
        # Optuna would skip the cut-off record, then glue the next record onto it and make
        # the whole journal unreadable: stop before writing anything.
        raise InputError(
            str(rundir.journal),
            "ends in an incomplete record (its last write was cut off). Delete everything after "
            "its last newline to resume; the completed trials before it are intact",
        )
    try:
        storage = JournalStorage(JournalFileBackend(str(rundir.journal)))
        study = _create(storage, sampler, quality)
        trials = study.get_trials(deepcopy=False)
    except Exception as exc:  # the journal's replay raises many types on a damaged file
        raise InputError(
            str(rundir.journal), f"cannot be read ({type(exc).__name__}: {exc}). {_RECOVER}"
        ) from None
    for t in trials:
        path = t.user_attrs.get("model_path")
        if "reused_from" in t.user_attrs:
            continue  # its model is the earlier trial's
        if t.state == TrialState.COMPLETE and path and not (rundir.path / path).is_file():
            raise InputError(
                str(rundir.path / path),
                f"the model of completed trial {t.number} is missing. {_RECOVER}",
            )
    _check_objectives(study, primary, rundir.path, exists, quality)
    return OpenStudy(study, storage, shared=False)


def _open_shared_study(
    rundir: RunDir,
    primary: str,
    sampler: optuna.samplers.BaseSampler,
    url: str,
    quality: Quality,
) -> OpenStudy:
    """The study in a database that several drivers share (Optuna's RDB storage)."""
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            study = _create(storage, sampler, quality)
            break
        except ImportError as exc:
            raise InputError("--storage", f"cannot open {redact(url)}: {exc}") from None
        except Exception as exc:  # sqlalchemy / driver errors of many types
            # Two drivers starting at once race to create the schema: the loser retries.
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if attempt == 4 or "connect" in line.lower():
                raise InputError("--storage", f"cannot open {redact(url)}: {line}") from None
            time.sleep(0.5 * (attempt + 1))
    _check_objectives(study, primary, rundir.path, bool(study.metric_names), quality)
    atomic_write_text(rundir.path / "storage.txt", redact(url) + "\n")  # where the study is
    return OpenStudy(study, storage, shared=True)


def _create(
    storage: BaseStorage, sampler: optuna.samplers.BaseSampler, quality: Quality
) -> optuna.Study:
    """The study in ``storage``, created or loaded: three objectives, the sampler given."""
    return optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        directions=directions(quality),
        sampler=sampler,
        load_if_exists=True,
    )


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _check_objectives(
    study: optuna.Study, primary: str, where: Path, exists: bool, quality: Quality
) -> None:
    names = [c for c, _ in objective_columns(primary, quality)]
    if exists and study.metric_names not in (None, names):
        raise InputError(
            str(where),
            f"holds a study for objectives {study.metric_names}, not {names}: "
            "use another --out directory or the same first --profile",
        )
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def driver_id(rundir: RunDir) -> str:
    """A stable id for the driver that owns this run directory (kept in ``DIR/.driver-id``)."""
    path = rundir.path / ".driver-id"
    if path.is_file():
        return path.read_text().strip()
    ident = uuid.uuid4().hex[:12]
    atomic_write_text(path, ident)
    return ident


@contextmanager
def exclusive(rundir: RunDir) -> Iterator[None]:
    """One search per run directory at a time: a second one refuses instead of interleaving."""
    lock_path = rundir.path / ".lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                str(rundir.path), "another search is already running on this directory"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
