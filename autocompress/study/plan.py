"""The plan of a search, before any trial runs: the space narrowed to what the model and the
first profile can take (:func:`narrowed`), and what every trial is sent (:func:`trial_context`:
the teacher's outputs on the validation split, run once here; its layers ranked by their
sensitivity to int8; the lineage), with the teacher's quality as the limits' baseline.

Each narrowing says in the log what it left out; a space left with nothing to offer for a
dimension is refused in one line naming the space file.
"""

from __future__ import annotations

import dataclasses
import logging

from autocompress._files import atomic_write_bytes
from autocompress.errors import InputError
from autocompress.hardware import HardwareProfile
from autocompress.models.loading import model_errors
from autocompress.models.tflite import TfliteTeacher, check_space
from autocompress.recipe import exclude_names
from autocompress.run.rundir import RunDir
from autocompress.space import SearchSpace
from autocompress.study.constraints import Limits
from autocompress.study.objective import TrialContext
from autocompress.study.promotion import chance_bound
from autocompress.task import Task

log = logging.getLogger("autocompress")


def narrowed(space: SearchSpace, task: Task, profile: HardwareProfile) -> SearchSpace:
    """The space the search samples: without what the first profile cannot run and what the
    model cannot take; checked against the model (the layers ``exclude`` names, a ``.tflite``
    teacher's post-training choices)."""
    space = for_profile(space, profile)
    if not task.teacher.trainable:
        check_space(space, task.source)
        return space
    with model_errors(task.teacher.source, "cannot be prepared for the search"):
        space = drop_unsupported(space, task)
    check_exclusions(space, task)
    return space


def trial_context(
    task: Task,
    space: SearchSpace,
    profiles: tuple[HardwareProfile, ...],
    rundir: RunDir,
    seed: int,
    threads: int,
    stage_cache: bool,
    quiet: bool,
) -> TrialContext:
    """What every trial of the search is sent: the teacher's outputs on the validation inputs,
    clean and noisy, computed once here (the audit's reference and the limits' baseline); the
    layers' sensitivity to int8 when the space can keep some float; the lineage every
    candidate shares; the stage cache's root key (``quiet``: measured latencies wait for a
    quiet window keyed by it)."""
    from autocompress.evaluation.audit import teacher_reference
    from autocompress.evaluation.lineage import task_lineage
    from autocompress.run.cache import root_key

    key = root_key(task, seed)
    with model_errors(task.teacher.source, "cannot be prepared for the search"):
        reference = teacher_reference(task.teacher.predict, task.data, seed, metric=task.metric)
        sensitive = sensitivity(space, task, rundir, f"{key}:{task.metric.spec}", seed)
    return TrialContext(
        task=task,
        profiles=profiles,
        seed=seed,
        threads=threads,
        stage_cache=stage_cache,
        cache_key=key,
        reference=reference,
        sensitive=sensitive,
        lineage=task_lineage(task, seed),
        quiet_key=key[:16] if quiet else "",
    )


def teacher_limits(limits: Limits, ctx: TrialContext) -> Limits:
    """The user's limits with the teacher's validation quality as the baseline (``--max-drop``)
    and the bound a constant answer scores (``user.above_chance``)."""
    assert ctx.reference is not None and ctx.reference.score is not None
    teacher_quality = ctx.reference.score.value
    return dataclasses.replace(
        limits, baseline=teacher_quality, chance=chance_bound(ctx, teacher_quality)
    )


def for_profile(space: SearchSpace, profile: HardwareProfile) -> SearchSpace:
    """The space without the quantization modes the first profile cannot run (a
    microcontroller's kernels are int8: its YAML lists ``quantization``); every file of another
    mode would be infeasible there. A space that offers none of them is refused."""
    allowed = profile.quantization
    offered = space.choices_of("quantization")
    if not allowed or not offered:
        return space
    if not set(offered) & set(allowed):
        raise InputError(
            space.source,
            f"offers no quantization mode {profile.name} runs (it runs {', '.join(allowed)})",
        )
    left_out = [mode for mode in offered if mode not in allowed]
    for mode in left_out:
        space = space.without_choice("quantization", mode)
    if left_out:
        log.warning(
            "quantization %s left out of the search: %s runs only %s",
            ", ".join(left_out),
            profile.name,
            ", ".join(allowed),
        )
    return space


def drop_unsupported(space: SearchSpace, task: Task) -> SearchSpace:
    """Take ``prune_mode: xnnpack`` out of the space when the teacher's architecture (which
    every student shares) has no subgraph XNNPACK's sparse inference can use, and resolutions
    below 1.0 when its weights follow its input size: every such trial would fail. A space
    that offers nothing else is refused."""
    from autocompress.stages.resolution import resolution_problem

    res = next(p for p in space.params if p.name == "resolution")
    if min(res.choices or (res.low,)) < 1.0:
        problem = resolution_problem(task.teacher.build())
        if problem is not None and 1.0 not in (res.choices or ()):
            raise InputError(
                space.source, f"resolution below 1.0 does not fit the model: {problem}"
            )
        if problem is not None:
            log.warning("resolution below 1.0 left out of the search: %s", problem)
            for value in res.choices or ():
                space = space.without_choice("resolution", value) if value < 1.0 else space
    if not space.offers("prune_mode", "xnnpack"):
        return space
    from autocompress.stages.prune import xnnpack_unsupported

    reason = xnnpack_unsupported(task.teacher.build())
    if reason is None:
        return space
    log.warning("prune_mode xnnpack left out of the search: %s", reason)
    return space.without_choice("prune_mode", "xnnpack")


def check_exclusions(space: SearchSpace, task: Task) -> None:
    """Every layer an ``exclude`` value names must be a weighted layer of the teacher (enqueued
    recipes can only use values the space offers)."""
    from autocompress.stages.training import WEIGHTED_LAYERS

    named = [n for v in space.choices_of("exclude") for n in exclude_names(v)]
    if not named:
        return
    teacher = task.teacher.build()
    weighted = [layer.name for layer in teacher.layers if isinstance(layer, WEIGHTED_LAYERS)]
    for name in named:
        if name not in weighted:
            shown = ", ".join(weighted[:8]) + (", ..." if len(weighted) > 8 else "")
            raise InputError(
                space.source,
                f"exclude names layer {name!r}, which is not a Conv/Dense layer of the model "
                f"(those are: {shown})",
            )


def sensitivity(
    space: SearchSpace, task: Task, rundir: RunDir, key: str, seed: int
) -> tuple[str, ...]:
    """The teacher's layers ranked by their sensitivity to int8, when the space can keep some
    float; measured once per study and kept in ``DIR/sensitivity.json`` (and the report)."""
    import json

    param = next(p for p in space.params if p.name == "keep_sensitive")
    top = max(param.choices) if param.choices is not None else param.high
    if not top:
        return ()
    path = rundir.path / "sensitivity.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return tuple(op["pattern"] for op in stored["ops"])
    from autocompress.litert.ptq import calibration_samples
    from autocompress.litert.sensitivity import measure_sensitivity

    teacher = task.teacher
    if isinstance(teacher, TfliteTeacher):
        float_file = teacher.content
    else:
        from autocompress.stages.convert import to_tflite

        float_file = to_tflite(teacher.build(), "none")
    d = task.data
    ops = measure_sensitivity(
        float_file,
        calibration_samples(d.x_train, task.calibration_samples, seed),
        d.x_val,
        d.y_val,
        metric=task.metric,
    )
    document = {"key": key, "ops": [dataclasses.asdict(op) for op in ops]}
    atomic_write_bytes(path, json.dumps(document, indent=1).encode())
    log.info("layer sensitivity measured on %d layers (sensitivity.json)", len(ops))
    return tuple(op.pattern for op in ops)
