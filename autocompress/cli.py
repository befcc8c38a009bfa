"""Command line: ``autocompress search | show | pick | export | report | ...``: the parser; the
commands themselves are in :mod:`autocompress.commands`. Thin: parse, call, print.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from autocompress import commands
from autocompress.commands import parse_duration
from autocompress.errors import ClusterLost, InputError

__all__ = ["main", "parse_duration"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"autocompress: error: {exc}", file=sys.stderr)
        return 2
    except ClusterLost as exc:
        print(f"\nautocompress: error: {exc}", file=sys.stderr)
        return 1
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
    s.add_argument(
        "--min-quality",
        "--min-accuracy",
        dest="min_quality",
        type=float,
        default=None,
        help="constraint: validation metric at least this good (at most this for an error)",
    )
    s.add_argument("--max-size-kb", type=float, default=None, help="constraint on the .tflite size")
    s.add_argument(
        "--max-drop",
        default=None,
        help="constraint: at most this worse than the teacher in the metric (0.01, or 1%%)",
    )
    s.add_argument(
        "--require-all-profiles",
        action="store_true",
        help="a candidate must run on every --profile to stand on any front",
    )
    s.add_argument(
        "--stop-margin",
        type=float,
        default=0.1,
        help="stop a candidate after 1 fine-tuning epoch when its metric is this much worse than "
        "a front model that is at least as compressed in every dimension (default 0.1)",
    )
    s.add_argument("--no-early-stop", action="store_true", help="finish every candidate")
    s.add_argument(
        "--fidelity",
        choices=("auto", "off"),
        default="auto",
        help="auto: build candidates with less training first and promote the best to full "
        "training, when the space file has a 'fidelity:' entry; off: full training always",
    )
    s.add_argument(
        "--plain-latency",
        action="store_true",
        help="time each candidate once where it was built, beside the other trials, with no "
        "quiet window, no shared figure for same-op files and no re-timing at the end (faster, "
        "noisier)",
    )
    s.set_defaults(func=commands.cmd_search)

    sh = sub.add_parser("show", help="print the Pareto front of a run")
    sh.add_argument("run", help="run directory")
    sh.add_argument("--profile", default=None, help="recompute the front for this profile")
    sh.add_argument(
        "--all",
        action="store_true",
        help="print every trial instead (the front hides members worse than the floor)",
    )
    sh.add_argument(
        "--min-quality",
        "--min-accuracy",
        dest="min_quality",
        type=float,
        default=None,
        help="floor of the printed front in the run's metric (default for accuracy: the "
        "baseline's minus 0.05)",
    )
    _tolerance_arguments(sh)
    sh.add_argument("--wide", action="store_true", help="print every column")
    sh.set_defaults(func=commands.cmd_show)

    p = sub.add_parser("pick", help="choose the best front model meeting constraints")
    p.add_argument("run", help="run directory")
    p.add_argument("--profile", default=None, help="profile whose latency the limits refer to")
    p.add_argument("--max-latency-ms", type=float, default=None)
    p.add_argument(
        "--min-quality",
        "--min-accuracy",
        dest="min_quality",
        type=float,
        default=None,
        help="validation metric at least this good (at most this for an error)",
    )
    p.add_argument("--max-size-kb", type=float, default=None, help="limit on the .tflite size")
    p.add_argument(
        "--max-class-drop",
        type=float,
        default=None,
        help="refuse models whose accuracy on any class is more than this below the teacher's",
    )
    _tolerance_arguments(p)
    p.add_argument(
        "--prefer",
        choices=("speed", "size"),
        default="speed",
        help="with --max-drop: the fastest (default) or the smallest model within it",
    )
    p.add_argument("--wide", action="store_true", help="print every column")
    p.add_argument(
        "--finish",
        action="store_true",
        help="train the chosen model 3x longer first (see `finish --help`); it is then the choice",
    )
    p.add_argument("--export", default=None, help="export the chosen model to this path")
    p.add_argument("--format", default="tflite", help="export format (see `export --help`)")
    p.set_defaults(func=commands.cmd_pick)

    f = sub.add_parser(
        "finish",
        help="rebuild one trial with longer training, keeping each training's best epoch",
    )
    f.add_argument("run", help="run directory (searched with `autocompress search`)")
    f.add_argument("--trial", type=int, required=True, help="the trial to finish")
    f.add_argument(
        "--multiplier", type=int, default=3, help="times the search's epochs (default 3)"
    )
    f.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop a training after this many epochs without a better validation quality",
    )
    f.add_argument("--wide", action="store_true", help="print every column")
    f.set_defaults(func=commands.cmd_finish)

    x = sub.add_parser("export", help="export one trial of a run for its target")
    x.add_argument("run", help="run directory")
    x.add_argument("--trial", type=int, required=True, help="trial number (see `show`)")
    x.add_argument(
        "--format",
        default="tflite",
        help="tflite (the measured file), edgetpu, onnx, saved_model or keras",
    )
    x.add_argument("--out", required=True, help="output path")
    x.set_defaults(func=commands.cmd_export)

    r = sub.add_parser("report", help="write DIR/report.html (front plots, audit, importance)")
    r.add_argument("run", help="run directory")
    r.add_argument("--storage", default=None, help="the study's storage URL if search used one")
    r.set_defaults(func=commands.cmd_report)

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
    me.set_defaults(func=commands.cmd_measure)

    rt = sub.add_parser(
        "retarget", help="add a simulated profile to a finished run (no candidate is rebuilt)"
    )
    rt.add_argument("run", help="run directory")
    rt.add_argument(
        "--profile", action="append", dest="profiles", required=True, help="profile (repeatable)"
    )
    rt.set_defaults(func=commands.cmd_retarget)

    e = sub.add_parser("estimate", help="latency, deployability and peak RAM of a .tflite file")
    e.add_argument("model", help="a .tflite file")
    e.add_argument("--profile", default="cpu-host", help="hardware profile name or YAML file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=commands.cmd_estimate)

    pr = sub.add_parser("profiles", help="list the shipped hardware profiles")
    pr.add_argument(
        "--dir", type=Path, default=None, help="list the profiles in this folder instead"
    )
    pr.set_defaults(func=commands.cmd_profiles)
    return parser


def _tolerance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-drop",
        default=None,
        help="at most this worse than the baseline in the run's metric: 0.01, or 1%% of it",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="hold each model to the upper bound of its drop at this confidence (e.g. 0.95; "
        "paired bootstrap on the validation split) instead of the point estimate",
    )
