"""What each command of the command line does (the parser is :mod:`autocompress.cli`): call
the library, print the result. Bad input raises :class:`InputError`; ``cli.main`` turns it into
one line and exit code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from autocompress._quiet import quiet_native_startup
from autocompress.errors import InputError
from autocompress.evaluation.tolerance import MaxDrop

if TYPE_CHECKING:
    from autocompress.study.options import Progress

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``20m``, ``1h30m`` -> seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.match(value)
        if not value or match is None or not any(match.groups()):
            raise InputError(
                "--timeout", f"cannot parse {text!r} (use e.g. 90s, 20m, 1h30m)"
            ) from None
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise InputError("--timeout", f"must be positive, got {text!r}")
    return seconds


# The search's own arguments, kept in its run directory: what `finish` rebuilds a trial with.
SEARCH_ARGS = "search_args.json"


def cmd_search(args: argparse.Namespace) -> int:
    """Search, then keep its arguments in the run directory: also when it was interrupted,
    never when the input was refused (a refused search changes nothing there)."""
    try:
        code = _search(args)
    except InputError:
        raise
    except BaseException:
        _keep_arguments(args)
        raise
    _keep_arguments(args)
    return code


def _keep_arguments(args: argparse.Namespace) -> None:
    """Write the search's arguments (files as absolute paths) into its run directory."""
    import json

    from autocompress._files import atomic_write_text

    kept = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    for key in ("task", "space", "enqueue"):
        if kept.get(key) and Path(kept[key]).exists():
            kept[key] = str(Path(kept[key]).resolve())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out) / SEARCH_ARGS, json.dumps(kept, indent=1))


def cmd_finish(args: argparse.Namespace) -> int:
    from autocompress.run.results import for_display, run_quality

    row = finish_trial(Path(args.run), args.trial, args.multiplier, args.patience)
    print(f"trial {int(row['trial'])}: trial {args.trial} trained {args.multiplier}x longer")
    print(_format(for_display(row.to_frame().T, wide=args.wide, quality=run_quality(args.run))))
    return 0


def finish_trial(run: Path, trial: int, multiplier: int = 3, patience: int = 2) -> Any:
    """Rebuild ``trial`` of the run with longer training (:mod:`autocompress.study.finish`),
    with the arguments the run was searched with; its row of ``trials.csv``."""
    import json

    from autocompress.run.results import load_trials
    from autocompress.study.finish import FINISHED_FROM, Finish

    stored = run / SEARCH_ARGS
    if not stored.is_file():
        raise InputError(
            str(run),
            f"holds no {SEARCH_ARGS} (searched from Python, or before `finish` existed): call "
            "autocompress.search(..., finish=Finish(trial)) with the search's arguments",
        )
    saved = argparse.Namespace(**json.loads(stored.read_text()))
    saved.out = str(run)
    _search(saved, Finish(trial, multiplier, patience))
    trials = load_trials(run)
    done = trials.iloc[0:0]
    if FINISHED_FROM in trials:
        done = trials[(trials[FINISHED_FROM] == trial) & (trials["state"] == "COMPLETE")]
    if done.empty:
        raise InputError(str(run), f"the finishing run of trial {trial} built no model")
    return done.iloc[-1]


def _search(args: argparse.Namespace, finish: Any = None) -> int:
    from autocompress.study.api import SearchSettings, search

    quiet_native_startup()
    timeout = parse_duration(args.timeout) if args.timeout else None
    progress = _ProgressLine(sys.stderr)
    settings = SearchSettings(
        trials=args.trials,
        timeout=timeout,
        workers=args.workers,
        out=args.out,
        seed=args.seed,
        sampler=args.sampler,
        ray_address=args.ray_address,
        stage_cache=not args.no_stage_cache,
        warm_start=not args.no_warm_start,
        enqueue=args.enqueue,
        max_latency_ms=args.max_latency_ms,
        min_quality=args.min_quality,
        max_drop=args.max_drop,
        max_size_kb=args.max_size_kb,
        trust_model=args.trust_model,
        stop_margin=None if args.no_early_stop else args.stop_margin,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        storage=args.storage,
        require_all_profiles=args.require_all_profiles,
        fidelity=args.fidelity,
        quiet_latency=not args.plain_latency,
    )
    result = search(
        task=args.task,
        space=args.space,
        profiles=args.profiles or ["cpu-host"],
        settings=settings,
        on_progress=progress,
        finish=finish,
    )
    progress.close()
    from autocompress.run.report import write_report
    from autocompress.run.results import for_display, run_quality

    if finish is None:
        print(f"Pareto front ({len(result.front)} models, latency on {result.profile}):")
        print(_format(for_display(result.front, wide=False, quality=run_quality(result.out_dir))))
    page = write_report(result.out_dir, storage=args.storage)
    if finish is None:
        print(f"\nresults in {result.out_dir}/ (trials.csv, pareto.csv, models/); report: {page}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from autocompress.run.results import (
        below_floor,
        for_display,
        load_front,
        load_trials,
        quality_floor,
        run_quality,
    )

    trials, quality = load_trials(Path(args.run)), run_quality(Path(args.run))
    if args.all:
        print(_format(for_display(trials, wide=args.wide, quality=quality)))
        return 0
    front, profile = load_front(Path(args.run), args.profile)
    front, over = _within_drop(Path(args.run), front, args)
    floor = quality_floor(trials, quality, args.min_quality)
    if args.max_drop is not None:
        floor = None  # the tolerance is the user's floor
    low = front[below_floor(front[quality.column], quality, floor)]
    print(f"Pareto front of {args.run} ({len(front)} models, latency on {profile}):")
    print(_format(for_display(front.drop(low.index), wide=args.wide, quality=quality)))
    if len(low):
        print(
            f"({len(low)} front member(s) {'below' if quality.maximize else 'above'} the "
            f"validation {quality.name} floor {floor:.4g} hidden; --all shows every trial)"
        )
    if over:
        bound = "upper bound" if args.confidence is not None else "point estimate"
        print(f"({over} front member(s) over --max-drop {args.max_drop} ({bound}) hidden)")
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    from autocompress.run.results import for_display, pick, run_quality

    quality = run_quality(Path(args.run))
    choice = pick(
        Path(args.run),
        profile=args.profile,
        max_latency_ms=args.max_latency_ms,
        min_quality=args.min_quality,
        max_size_kb=args.max_size_kb,
        max_class_drop=args.max_class_drop,
        max_drop=MaxDrop.parse(args.max_drop) if args.max_drop is not None else None,
        confidence=_confidence(args.confidence),
        prefer=args.prefer,
    )
    if choice is None:
        print("no model on the front meets these constraints", file=sys.stderr)
        return 1
    print(_format(for_display(choice.to_frame().T, wide=args.wide, quality=quality)))
    from autocompress.run.results import below_floor, load_trials, quality_floor

    floor = quality_floor(load_trials(Path(args.run)), quality)
    if args.max_drop is None and below_floor(choice[[quality.column]], quality, floor).any():
        print(
            f"note: trial {int(choice['trial'])} is below the {quality.name} floor {floor:.4g} "
            "(the baseline's minus 0.05)",
            file=sys.stderr,
        )
    if args.finish:
        choice = finish_trial(Path(args.run), int(choice["trial"]))
        print(f"finished (trial {int(choice['trial'])}, trained 3x longer):")
        print(_format(for_display(choice.to_frame().T, wide=args.wide, quality=quality)))
    if args.export:
        _print_export(Path(args.run), int(choice["trial"]), args.format, Path(args.export))
    return 0


def _confidence(value: float | None) -> float | None:
    if value is not None and not 0.5 <= value < 1:
        raise InputError("--confidence", f"must be at least 0.5 and below 1, got {value}")
    return value


def _within_drop(run: Path, front: Any, args: argparse.Namespace) -> tuple[Any, int]:
    """The front with its drop columns, less the members over ``--max-drop`` (and how many)."""
    from autocompress.run.results import with_drops

    confidence = _confidence(args.confidence)
    if args.max_drop is None:
        if confidence is not None:
            raise InputError("--confidence", "needs --max-drop (the drop it bounds)")
        return front, 0
    limit = MaxDrop.parse(args.max_drop)
    front, base = with_drops(run, front, confidence)
    column = "drop_bound" if confidence is not None else "drop"
    keep = front[column] <= limit.limit(base) + 1e-12
    return front[keep], int((~keep).sum())


def cmd_export(args: argparse.Namespace) -> int:
    _print_export(Path(args.run), args.trial, args.format, Path(args.out))
    return 0


def _print_export(run: Path, trial: int, fmt: str, out: Path) -> None:
    from autocompress.run.export import export

    quiet_native_startup(tensorflow=fmt in ("onnx", "saved_model", "keras"))
    done = export(run, trial, fmt, out)
    print(f"exported trial {trial} as {fmt} to {done.path} (audit: {done.audit_path})")
    for key, value in done.checks.items():
        print(f"  {key}: {value}")


def cmd_measure(args: argparse.Namespace) -> int:
    import dataclasses

    from autocompress.hardware.profile import load_profile
    from autocompress.run.device import measure_run

    settings = load_profile("cpu-host").measure
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads", f"must be at least 1, got {args.threads}")
        settings = dataclasses.replace(settings, threads=args.threads)
    if args.min_seconds is not None:
        if not args.min_seconds > 0:
            raise InputError("--min-seconds", f"must be positive, got {args.min_seconds}")
        settings = dataclasses.replace(settings, min_seconds=args.min_seconds)

    def progress(trial: int, ms: float) -> None:
        print(f"trial {trial}: {ms:.3f} ms", flush=True)

    quiet_native_startup(tensorflow=False)
    done = measure_run(Path(args.run), args.name, settings, on_candidate=progress)
    print(
        f"{done.profile}: {done.measured} candidates measured ({done.resumed} from an earlier "
        f"call) -> {done.path}; copy it into the run's profiles/ folder where you pick"
    )
    return 0


def cmd_retarget(args: argparse.Namespace) -> int:
    import time

    from autocompress.run.results import load_front
    from autocompress.run.retarget import retarget

    run = Path(args.run)
    for name in args.profiles:
        start = time.perf_counter()
        done = retarget(run, name)
        front, _ = load_front(run, done.profile)
        print(
            f"{done.profile}: {done.candidates} candidates estimated in "
            f"{time.perf_counter() - start:.1f} s, front of {len(front)} models ({done.path})"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from autocompress.run.report import write_report

    print(f"report written to {write_report(args.run, storage=args.storage)}")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    import json

    from autocompress.hardware import load_profile, read_tflite
    from autocompress.hardware.isolated import latency_in_subprocess
    from autocompress.hardware.limits import over_limits

    path = Path(args.model)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    quiet_native_startup(tensorflow=False)
    profile = load_profile(args.profile)
    data = path.read_bytes()
    graph = read_tflite(data, str(path))  # our own defensive reader, before anything else
    result = latency_in_subprocess(data, profile, str(path))
    out = {
        "model": str(path),
        "profile": profile.name,
        "backend": profile.backend,
        "latency_ms": None if result.median_ms != result.median_ms else result.median_ms,
        "deployable": result.deployable,
        "peak_ram_bytes": graph.peak_ram_bytes(),
        "size_bytes": len(data),
        "macs": graph.macs,
        "ops": len(graph.ops),
        **({"p90_ms": result.p90_ms, "runs": result.runs} if result.runs else {}),
        **result.details,
    }
    limits = over_limits(profile, len(data), out["peak_ram_bytes"], result)
    out["fits"] = {
        name.split(".", 1)[1]: value <= 0 for name, value in limits.items() if "max_" in name
    }
    if args.json:
        print(json.dumps(out))
        return 0
    for key, value in out.items():
        print(f"{key:22s} {value}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    """One line per profile file; a broken file gets its error line and the rest still list."""
    from autocompress.hardware import list_profiles, load_profile
    from autocompress.hardware.profile import PROFILES_DIR

    directory = args.dir if args.dir is not None else PROFILES_DIR
    if not directory.is_dir():
        raise InputError(str(directory), "not a folder")
    status = 0
    for name in list_profiles(directory):
        try:
            profile = load_profile(name, directory)
        except InputError as exc:
            print(f"autocompress: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{profile.name:20s} {profile.backend:12s} {profile.description}")
    return status


def _format(frame: object) -> str:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    if frame.empty:
        return "(no rows)"
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


class _ProgressLine:
    """A tqdm bar on a terminal (trials done / budget, failures, early stops, front size, time
    left under the timeout); silent when stderr is not a terminal (details go to search.log)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.bar: Any = None

    def __call__(self, p: Progress) -> None:
        if not self.tty:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.budget, file=self.stream, unit="trial", dynamic_ncols=True)
        self.bar.n = p.done
        left = f"  {p.time_left_s:.0f}s left" if p.time_left_s is not None else ""
        self.bar.set_postfix_str(
            f"failed {p.failed}  stopped {p.stopped}  running {p.running}  "
            f"front {p.front_size}{left}",
            refresh=False,
        )
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
