"""Command line: ``autocompress search | show | pick | profiles``. Thin: parse, call, print.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from autocompress.errors import InputError

if TYPE_CHECKING:
    from autocompress.study.driver import Progress

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"autocompress: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nautocompress: interrupted; finished trials are saved", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autocompress", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    parser.set_defaults(func=lambda a: parser.print_help())

    s = sub.add_parser("search", help="run or resume a compression search (default: the demo)")
    s.add_argument("--task", help="task YAML (model + data); default: the built-in digits demo")
    s.add_argument(
        "--space",
        default=None,
        help="search space YAML or shipped name (default: 'default', or 'tflite' for a .tflite "
        "model)",
    )
    s.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        help="hardware profile (repeatable; the first is the latency objective). Default cpu-host",
    )
    s.add_argument("--trials", type=int, default=40, help="total trial budget of the study")
    s.add_argument("--timeout", default=None, help="wall time after which no trial starts: 20m")
    s.add_argument("--workers", type=int, default=2, help="trials in flight at once")
    s.add_argument("--out", default="runs/demo", help="run directory (resumed if it exists)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--sampler", default="tpe", help="tpe (default), tpe-multivariate, nsga2 or random"
    )
    s.add_argument("--ray-address", default=None, help="connect to an existing Ray cluster")
    s.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per trial (TF threads)"
    )
    s.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs Ray reserves per trial")
    s.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL of a study shared by several drivers (postgresql://...); "
        "default: a journal file in --out",
    )
    s.add_argument("--no-stage-cache", action="store_true", help="build every stage of every trial")
    s.add_argument(
        "--trust-model",
        action="store_true",
        help="allow a model file that needs code to load (Lambda / custom layers)",
    )
    s.add_argument("--no-warm-start", action="store_true", help="skip the well-known recipes")
    s.add_argument("--enqueue", default=None, help="YAML list of recipes to try first")
    s.add_argument("--max-latency-ms", type=float, default=None, help="constraint (first profile)")
    s.add_argument("--min-accuracy", type=float, default=None, help="constraint")
    s.add_argument("--max-size-kb", type=float, default=None, help="constraint on the .tflite size")
    s.add_argument(
        "--require-all-profiles",
        action="store_true",
        help="a candidate must run on every --profile to stand on any front",
    )
    s.add_argument(
        "--stop-margin",
        type=float,
        default=0.1,
        help="stop a candidate after 1 fine-tuning epoch when its accuracy is this far below a "
        "front model that is at least as compressed in every dimension (default 0.1)",
    )
    s.add_argument("--no-early-stop", action="store_true", help="finish every candidate")
    s.add_argument(
        "--fidelity",
        choices=("auto", "off"),
        default="auto",
        help="auto: build candidates with less training first and promote the best to full "
        "training, when the space file has a 'fidelity:' entry; off: full training always",
    )
    s.set_defaults(func=_search)

    sh = sub.add_parser("show", help="print the Pareto front of a run")
    sh.add_argument("run", help="run directory")
    sh.add_argument("--profile", default=None, help="recompute the front for this profile")
    sh.add_argument(
        "--all",
        action="store_true",
        help="print every trial instead (the front hides members below the accuracy floor)",
    )
    sh.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="accuracy floor of the printed front (default: the baseline's minus 0.05)",
    )
    sh.add_argument("--wide", action="store_true", help="print every column")
    sh.set_defaults(func=_show)

    p = sub.add_parser("pick", help="choose the most accurate front model meeting constraints")
    p.add_argument("run", help="run directory")
    p.add_argument("--profile", default=None, help="profile whose latency the limits refer to")
    p.add_argument("--max-latency-ms", type=float, default=None)
    p.add_argument("--min-accuracy", type=float, default=None)
    p.add_argument("--max-size-kb", type=float, default=None, help="limit on the .tflite size")
    p.add_argument(
        "--max-class-drop",
        type=float,
        default=None,
        help="refuse models whose accuracy on any class is more than this below the teacher's",
    )
    p.add_argument("--wide", action="store_true", help="print every column")
    p.add_argument("--export", default=None, help="export the chosen model to this path")
    p.add_argument("--format", default="tflite", help="export format (see `export --help`)")
    p.set_defaults(func=_pick)

    x = sub.add_parser("export", help="export one trial of a run for its target")
    x.add_argument("run", help="run directory")
    x.add_argument("--trial", type=int, required=True, help="trial number (see `show`)")
    x.add_argument(
        "--format",
        default="tflite",
        help="tflite (the measured file), edgetpu, onnx, saved_model or keras",
    )
    x.add_argument("--out", required=True, help="output path")
    x.set_defaults(func=_export)

    r = sub.add_parser("report", help="write DIR/report.html (front plots, audit, importance)")
    r.add_argument("run", help="run directory")
    r.add_argument("--storage", default=None, help="the study's storage URL if search used one")
    r.set_defaults(func=_report)

    me = sub.add_parser(
        "measure",
        help="time a run's candidates on this machine as a measured profile (light install)",
    )
    me.add_argument("run", help="run directory (a copy, or a shared folder)")
    me.add_argument("--as", dest="name", required=True, help="profile name, e.g. my-pi")
    me.add_argument("--threads", type=int, default=None, help="LiteRT threads (default 1)")
    me.add_argument(
        "--min-seconds", type=float, default=None, help="time each candidate at least this long"
    )
    me.set_defaults(func=_measure)

    rt = sub.add_parser(
        "retarget", help="add a simulated profile to a finished run (no candidate is rebuilt)"
    )
    rt.add_argument("run", help="run directory")
    rt.add_argument(
        "--profile", action="append", dest="profiles", required=True, help="profile (repeatable)"
    )
    rt.set_defaults(func=_retarget)

    e = sub.add_parser("estimate", help="latency, deployability and peak RAM of a .tflite file")
    e.add_argument("model", help="a .tflite file")
    e.add_argument("--profile", default="cpu-host", help="hardware profile name or YAML file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_estimate)

    pr = sub.add_parser("profiles", help="list the shipped hardware profiles")
    pr.add_argument(
        "--dir", type=Path, default=None, help="list the profiles in this folder instead"
    )
    pr.set_defaults(func=_profiles)
    return parser


def _search(args: argparse.Namespace) -> int:
    from autocompress.study.api import SearchSettings, search

    _quiet_tensorflow_startup()
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
        min_accuracy=args.min_accuracy,
        max_size_kb=args.max_size_kb,
        trust_model=args.trust_model,
        stop_margin=None if args.no_early_stop else args.stop_margin,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        storage=args.storage,
        require_all_profiles=args.require_all_profiles,
        fidelity=args.fidelity,
    )
    result = search(
        task=args.task,
        space=args.space,
        profiles=args.profiles or ["cpu-host"],
        settings=settings,
        on_progress=progress,
    )
    progress.close()
    from autocompress.results import for_display

    print(f"Pareto front ({len(result.front)} models, latency on {result.profile}):")
    print(_format(for_display(result.front, wide=False)))
    from autocompress.report import write_report

    page = write_report(result.out_dir, storage=args.storage)
    print(f"\nresults in {result.out_dir}/ (trials.csv, pareto.csv, models/); report: {page}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from autocompress.results import accuracy_floor, for_display, load_front, load_trials

    trials = load_trials(Path(args.run))
    if args.all:
        print(_format(for_display(trials, wide=args.wide)))
        return 0
    front, profile = load_front(Path(args.run), args.profile)
    floor = accuracy_floor(trials, args.min_accuracy)
    low = front[front["accuracy"] < floor] if floor is not None else front.iloc[0:0]
    print(f"Pareto front of {args.run} ({len(front)} models, latency on {profile}):")
    print(_format(for_display(front.drop(low.index), wide=args.wide)))
    if len(low):
        print(
            f"({len(low)} front member(s) below the validation accuracy floor {floor:.4g} "
            "hidden; --all shows every trial)"
        )
    return 0


def _pick(args: argparse.Namespace) -> int:
    from autocompress.results import for_display, pick

    choice = pick(
        Path(args.run),
        profile=args.profile,
        max_latency_ms=args.max_latency_ms,
        min_accuracy=args.min_accuracy,
        max_size_kb=args.max_size_kb,
        max_class_drop=args.max_class_drop,
    )
    if choice is None:
        print("no model on the front meets these constraints", file=sys.stderr)
        return 1
    print(_format(for_display(choice.to_frame().T, wide=args.wide)))
    from autocompress.results import accuracy_floor, load_trials

    floor = accuracy_floor(load_trials(Path(args.run)))
    if floor is not None and float(choice["accuracy"]) < floor:
        print(
            f"note: trial {int(choice['trial'])} is below the accuracy floor {floor:.4g} (the "
            "baseline's validation accuracy minus 0.05)",
            file=sys.stderr,
        )
    if args.export:
        _print_export(Path(args.run), int(choice["trial"]), args.format, Path(args.export))
    return 0


def _export(args: argparse.Namespace) -> int:
    _print_export(Path(args.run), args.trial, args.format, Path(args.out))
    return 0


def _print_export(run: Path, trial: int, fmt: str, out: Path) -> None:
    from autocompress.export import export

    if fmt in ("onnx", "saved_model", "keras"):
        _quiet_tensorflow_startup()
    done = export(run, trial, fmt, out)
    print(f"exported trial {trial} as {fmt} to {done.path} (audit: {done.audit_path})")
    for key, value in done.checks.items():
        print(f"  {key}: {value}")


def _measure(args: argparse.Namespace) -> int:
    import dataclasses

    from autocompress.device import measure_run
    from autocompress.hardware.profile import load_profile

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

    done = measure_run(Path(args.run), args.name, settings, on_candidate=progress)
    print(
        f"{done.profile}: {done.measured} candidates measured ({done.resumed} from an earlier "
        f"call) -> {done.path}; copy it into the run's profiles/ folder where you pick"
    )
    return 0


def _retarget(args: argparse.Namespace) -> int:
    import time

    from autocompress.results import load_front
    from autocompress.retarget import retarget

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


def _report(args: argparse.Namespace) -> int:
    from autocompress.report import write_report

    print(f"report written to {write_report(args.run, storage=args.storage)}")
    return 0


def _quiet_tensorflow_startup() -> None:
    """Import TensorFlow with the process's native stderr pointed away from the terminal: its
    C++ start-up lines (oneDNN, CUDA probing) are noise to a user; Python errors still show."""
    import os

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _estimate(args: argparse.Namespace) -> int:
    import json

    from autocompress.hardware import load_profile, read_tflite
    from autocompress.hardware.isolated import latency_in_subprocess

    path = Path(args.model)
    if not path.is_file():
        raise InputError(str(path), "file not found")
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
    fits = []
    if profile.max_model_bytes is not None:
        fits.append(("max_model_bytes", len(data) <= profile.max_model_bytes))
    if profile.max_ram_bytes is not None:
        fits.append(("max_ram_bytes", out["peak_ram_bytes"] <= profile.max_ram_bytes))
    out["fits"] = dict(fits)
    if args.json:
        print(json.dumps(out))
        return 0
    for key, value in out.items():
        print(f"{key:22s} {value}")
    return 0


def _profiles(args: argparse.Namespace) -> int:
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
        print(f"{profile.name:20s} {profile.backend:10s} {profile.description}")
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
