"""The compression audit: numbers checked by hand on a toy case, and the audit files of a run."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from autocompress.evaluation.audit import class_accuracy, compare
from autocompress.metrics import ACCURACY
from autocompress.run.results import pick


def test_audit_numbers_by_hand() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    teacher = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 1])  # class 2: 3/4
    candidate = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 1])  # class 0: 3/4, class 2: 2/4

    def scores(classes: np.ndarray) -> np.ndarray:
        return np.eye(3, dtype="float32")[classes]

    audit = compare(
        ACCURACY,
        candidate=scores(candidate),
        teacher=scores(teacher),
        labels=labels,
        candidate_noisy=scores(np.array([0, 0, 1, 1, 1, 1, 2, 1, 1, 1])),
        teacher_noisy=scores(teacher),
        noise_sigma=0.05,
    )
    assert audit.per_class_accuracy == {"0": 0.75, "1": 1.0, "2": 0.5}
    assert audit.teacher_per_class_accuracy == {"0": 1.0, "1": 1.0, "2": 0.75}
    # Drops: class 0 by 0.25, class 2 by 0.25: the tie goes to the lower class id.
    assert audit.max_class_drop == pytest.approx(0.25) and audit.worst_class == "0"
    assert audit.agreement == pytest.approx(0.8)  # differs on samples 3 and 8
    assert audit.noise_quality == pytest.approx(0.5)
    assert audit.teacher_noise_quality == pytest.approx(0.9)


def test_class_accuracy_ignores_absent_classes() -> None:
    assert class_accuracy(np.array([3, 3]), np.array([3, 3])) == {"3": 1.0}


def test_every_completed_trial_has_an_audit_file(first_run) -> None:
    _, out, task, *_ = first_run
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done)
    for _, row in done.iterrows():
        model = out / row["model_path"]
        doc = json.loads(model.with_suffix(".audit.json").read_text())
        assert doc["trial"] == row["trial"]
        lineage = doc["audit"]["lineage"]
        assert lineage["tflite_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert set(lineage["versions"]) >= {"tensorflow", "optuna", "ai-edge-litert"}
        assert doc["audit"]["max_class_drop"] == pytest.approx(row["max_class_drop"], abs=1e-4)
        assert [s["stage"] for s in doc["stages"]][-1] == "convert"
        per_class = doc["audit"]["per_class_accuracy"]
        n = task.data.y_val.size
        counts = np.bincount(task.data.y_val)
        # The per-class accuracies weighted by class size give back the overall accuracy.
        overall = sum(per_class[str(c)] * counts[c] for c in range(len(counts)) if counts[c]) / n
        assert overall == pytest.approx(doc["measurement"]["accuracy"], abs=1e-9)


def test_pick_refuses_models_with_a_large_class_drop(first_run) -> None:
    _, out, *_ = first_run
    front = pd.read_csv(out / "pareto.csv")
    worst = front["max_class_drop"].max()
    best = front["max_class_drop"].min()
    assert pick(out, max_class_drop=best - 1e-6) is None
    chosen = pick(out, max_class_drop=best)
    assert chosen is not None and chosen["max_class_drop"] <= best
    assert pick(out, max_class_drop=worst) is not None


def test_trial_audit_is_the_same_with_the_drivers_teacher_reference(tiny_task) -> None:
    """The driver computes the teacher's predictions once; a trial given them audits exactly as
    a trial that runs the teacher itself."""
    from autocompress.evaluation.audit import teacher_reference
    from autocompress.recipe import Recipe
    from autocompress.study.objective import TrialContext, TrialRequest, run_trial

    recipe = Recipe(quantization="dynamic")
    alone = run_trial(TrialContext(task=tiny_task, profiles=()), TrialRequest(0, recipe))
    ref = teacher_reference(tiny_task.teacher.predict, tiny_task.data, seed=0)
    given = run_trial(
        TrialContext(task=tiny_task, profiles=(), reference=ref), TrialRequest(0, recipe)
    )
    assert alone.record is not None and given.record is not None
    assert given.record.audit == alone.record.audit
    assert len(ref.clean) == len(tiny_task.data.y_val)
