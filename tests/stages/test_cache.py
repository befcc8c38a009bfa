"""The stage cache: shared prefixes are built once, entries are atomic, bad entries are rebuilt."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from autocompress.evaluation.deployed import quality
from autocompress.metrics import ACCURACY
from autocompress.recipe import Recipe
from autocompress.records import StageRecord
from autocompress.run.cache import DirCache, MemoryCache, child_key, root_key
from autocompress.stages import BuildContext, build_candidate
from autocompress.task import Task


def test_shared_prefix_is_built_once(tmp_path: Path, tiny_task: Task) -> None:
    teacher = tiny_task.teacher.build()
    ctx = BuildContext(tiny_task.data, teacher)
    cache = DirCache(tmp_path / "cache")
    key = root_key(tiny_task, seed=0)
    first = Recipe(student_width=0.5, sparsity=0.5, distill_epochs=1, finetune_epochs=1)
    second = Recipe(
        student_width=0.5,
        sparsity=0.5,
        clusters=4,
        quantization="int8",
        distill_epochs=1,
        finetune_epochs=1,
    )
    _, records1, _ = build_candidate(teacher, first, ctx, cache=cache, key=key)
    _, records2, _ = build_candidate(teacher, second, ctx, cache=cache, key=key)
    assert [r.reused for r in records1] == [False, False, False]  # distill, prune, convert
    reused = {r.stage: r.reused for r in records2}
    assert reused == {"distill": True, "prune": True, "cluster": False, "convert": False}
    assert records2[1].facts == records1[1].facts  # the very same pruned model's facts
    other = Recipe(student_width=0.5, sparsity=0.5, distill_epochs=2, finetune_epochs=1)
    _, records3, _ = build_candidate(teacher, other, ctx, cache=cache, key=key)
    assert not records3[0].reused  # different distillation epochs: a different key


def test_root_key_depends_on_teacher_data_and_seed(tiny_task: Task) -> None:
    base = root_key(tiny_task, 0)
    assert root_key(tiny_task, 1) != base
    weights = [w.copy() for w in tiny_task.teacher.weights]
    weights[0][0] += 1.0
    changed = Task(
        "t", type(tiny_task.teacher)(tiny_task.teacher.config_json, weights), tiny_task.data
    )
    assert root_key(changed, 0) != base


def test_concurrent_writers_of_one_key_leave_a_valid_entry(tmp_path: Path, tiny_task: Task):
    cache = DirCache(tmp_path)
    model = tiny_task.teacher.build()
    key = child_key("root", "prune", {"sparsity": 0.5})
    record = StageRecord("prune", 1.0, {"sparsity": 0.5})
    errors: list[BaseException] = []
    seen: list[bool] = []

    def write() -> None:
        try:
            for _ in range(3):
                cache.store(key, model, record)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        for _ in range(20):
            hit = cache.load(key)
            if hit is not None:
                loaded, rec = hit
                ok = all(
                    np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights())
                )
                seen.append(ok and rec == record)

    threads = [threading.Thread(target=write) for _ in range(4)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    hit = cache.load(key)  # after every writer: a hit for certain, so `seen` is never empty
    assert hit is not None
    seen.append(
        all(np.array_equal(a, b) for a, b in zip(hit[0].get_weights(), model.get_weights()))
        and hit[1] == record
    )
    assert all(seen)
    assert cache.load(key) is not None
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_corrupt_entry_is_a_miss(tmp_path: Path, tiny_task: Task) -> None:
    cache = DirCache(tmp_path)
    key = child_key("root", "distill", {})
    cache.store(key, tiny_task.teacher.build(), StageRecord("distill", 1.0))
    entry = tmp_path / f"{key}.entry"
    entry.write_bytes(entry.read_bytes()[:100])
    assert cache.load(key) is None


def test_worker_starts_from_the_deepest_entry_it_is_given(tmp_path: Path, tiny_task: Task):
    """What a Ray worker sees: only the entries the driver sends, no shared directory. It
    builds from the deepest one, reports earlier stages as reused, and returns what it built."""
    from autocompress.stages.build import cache_plan, float_key, template_key

    teacher = tiny_task.teacher.build()
    ctx = BuildContext(tiny_task.data, teacher)
    key = root_key(tiny_task, seed=0)
    first = Recipe(student_width=0.5, sparsity=0.5, distill_epochs=1, finetune_epochs=1)
    node_a = MemoryCache()
    build_candidate(teacher, first, ctx, cache=node_a, key=key)
    # distill and prune entries go back to the driver, with the float file and the template
    # of the student's architecture (see autocompress.litert.refill)
    assert set(node_a.added) == {
        *(k for _, k in cache_plan(first, key)),
        float_key(first, key),
        template_key(first, key),
    }
    second = Recipe(
        student_width=0.5, sparsity=0.5, clusters=4, distill_epochs=1, finetune_epochs=1
    )
    chain = [k for _, k in cache_plan(second, key) if k is not None]
    node_b = MemoryCache({k: node_a.added[k] for k in chain if k in node_a.added})
    _, records, _ = build_candidate(teacher, second, ctx, cache=node_b, key=key)
    assert [(r.stage, r.reused) for r in records] == [
        ("distill", True),
        ("prune", True),
        ("cluster", False),
        ("convert", False),
    ]
    # the new cluster entry and its float file; node_b had no template (not sent), so its
    # conversion made one for the same architecture
    assert list(node_b.added) == [chain[2], float_key(second, key), template_key(second, key)]
    assert template_key(second, key) == template_key(first, key)


def test_a_longer_distillation_continues_a_cached_shorter_one(tiny_task: Task) -> None:
    """A candidate promoted to more distillation epochs trains only the missing ones."""
    from autocompress.stages.build import shorter_keys

    teacher = tiny_task.teacher.build()
    ctx = BuildContext(data=tiny_task.data, teacher=teacher)
    cache = MemoryCache()
    short = Recipe(student_width=0.5, distill_epochs=2, quantization="int8")
    first = build_candidate(teacher, short, ctx, cache=cache, key="root")[0]
    long = replace(short, distill_epochs=12)
    assert any(k in cache.added for k in shorter_keys(long, "root"))
    continued, records, _ = build_candidate(teacher, long, ctx, cache=cache, key="root")
    assert records[0].stage == "distill" and records[0].facts["continued_from"] == 2
    fresh, fresh_records, _ = build_candidate(teacher, long, ctx, cache=None)
    assert "continued_from" not in fresh_records[0].facts

    def acc(tflite: bytes) -> float:
        return quality(tflite, ctx.data.x_val, ctx.data.y_val, ACCURACY)

    # 2 + 10 epochs learn what 12 do, and more than 2 (measured with a student from the
    # teacher at Adam 6e-3: 0.855 after 2 epochs, 0.915 after 2 + 10).
    assert acc(continued) > acc(first)
    assert abs(acc(continued) - acc(fresh)) < 0.1
