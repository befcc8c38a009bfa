"""Does a search beat "convert and done"? (issue 39's goals)

One 40-trial search as a user runs it (2 workers, TPE, the default space or ``--space
techniques``), measured on ``cpu-host`` and ``pixel2-cpu``, with the teacher's plain conversions
(fp32, float16, dynamic, int8) enqueued first so that they are built and measured in the same run
as the candidates. Optionally, finishing runs (``autocompress finish RUN --trial N``) of the
fastest front members that are fast enough but short of the accuracy line; their time is counted.
Then every kept candidate is timed again on ``cpu-host`` with nothing else running, ``--passes``
times (``autocompress measure RUN --as quietN``), and the ``cpu-host`` goals are read on the median
of those passes (``pixel2-cpu`` is simulated: its figures are deterministic).

Per profile:

* the fastest plain conversion of the teacher (whichever mode is fastest on that profile) and the
  smallest plain conversion's gzip size;
* the front (the metric, that profile's latency, gzip) and its members within ``--points`` of the
  fp32 conversion's validation accuracy: the fastest (speed-up over the fastest plain conversion;
  goal >= 1.5x) and the smallest (gzip over the smallest plain one; goal <= 0.5x), with its recipe
  and test accuracy;
* front members at chance (``user.above_chance`` keeps them off every front: expected 0).

For issue 38 the same run gives the search's cpu-host figures against the quiet reference
(Spearman, pairs more than 10 % apart in the wrong order, over all candidates and the front).

    .venv/bin/python benchmarks/beat_convert.py run --task TASK.yaml --out /tmp/beat/default
    .venv/bin/python benchmarks/beat_convert.py run --task TASK.yaml --space techniques \\
        --out /tmp/beat/techniques --finish 2
    .venv/bin/python benchmarks/beat_convert.py table --out /tmp/beat/default   # no running
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from latency_ranking import quiet_figures, wrong_pairs
from scipy.stats import spearmanr

from autocompress.run.results import for_display, load_front, load_trials, unchanged
from autocompress.run.tables import front_frame, measured

PLAIN_MODES = ("none", "float16", "dynamic", "int8")
PROFILES = ("cpu-host", "pixel2-cpu")


def cli(*args: str) -> float:
    """One ``autocompress`` command; its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autocompress", *args], check=True)
    return time.perf_counter() - started


def is_plain(trials: pd.DataFrame) -> pd.Series:
    """The teacher converted in one of :data:`PLAIN_MODES` and nothing else."""
    return unchanged(trials, but=("quantization",)) & trials["quantization"].isin(PLAIN_MODES)


def run(args: argparse.Namespace) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    plain = out.parent / f"{out.name}_plain.yaml"
    plain.write_text("".join(f"- {{quantization: {m}}}\n" for m in PLAIN_MODES))
    cmd = ["search", *(["--task", args.task] if args.task else []), "--out", str(out),
           "--trials", str(args.trials),
           "--workers", str(args.workers), "--seed", str(args.seed), "--timeout", args.timeout,
           "--enqueue", str(plain), "--space", args.space]  # fmt: skip
    for profile in PROFILES:
        cmd += ["--profile", profile]
    seconds = {"search": cli(*cmd)}
    seconds["finish"] = 0.0
    for trial in to_finish(out, args.finish, args.points):
        seconds["finish"] += cli("finish", str(out), "--trial", str(trial))
    (out / "beat_convert.json").write_text(json.dumps(seconds))
    table(out, args.passes, args.points)


def to_finish(out: Path, count: int, points: float) -> list[int]:
    """The ``count`` fastest front members (first profile) at least 1.5x faster than the fastest
    plain conversion whose validation accuracy is short of the line: the ones a longer training
    could bring within it."""
    if count <= 0:
        return []
    trials = load_trials(out)
    front, profile = load_front(out, PROFILES[0])
    lat = f"latency_ms_{profile}"
    fp32 = float(trials[is_plain(trials) & (trials["quantization"] == "none")]["accuracy"].iloc[0])
    fastest_plain = float(trials[is_plain(trials)][lat].min())
    short = front[(front["accuracy"] < fp32 - points) & (front[lat] * 1.5 <= fastest_plain)]
    return [int(t) for t in short.sort_values(lat)["trial"].head(count)]


def table(out: Path, passes: int, points: float) -> None:
    done = measured(load_trials(out), PROFILES[0])
    profiles = out / "profiles"
    if not all((profiles / f"quiet{n}.csv").exists() for n in range(passes)):
        quiet_figures(out, passes)  # writes profiles/quietN.csv
    timed = [
        pd.read_csv(profiles / f"quiet{n}.csv").set_index("trial")[f"latency_ms_quiet{n}"]
        for n in range(passes)
    ]
    done = done.set_index("trial", drop=False)
    done["latency_ms_quiet"] = pd.concat(timed, axis=1).median(axis=1).reindex(done.index)
    done["recipe"] = for_display(done, wide=False)["recipe"].to_numpy()
    spent = out / "beat_convert.json"
    seconds = json.loads(spent.read_text()) if spent.exists() else {}
    plain = done[is_plain(done).to_numpy()]
    base = plain[plain["quantization"] == "none"].iloc[0]
    fp32 = float(base["accuracy"])
    print(
        f"run {out}: {len(done)} candidates; fp32 validation accuracy {fp32:.4f}, test "
        f"{float(base['test_accuracy']):.4f}; wall seconds {seconds}"
    )
    rows = []
    for shown, profile in (("cpu-host (quiet median)", "quiet"), ("pixel2-cpu", "pixel2-cpu")):
        column = f"latency_ms_{profile}"
        listed = ", ".join(
            f"{r['quantization']} {r[column]:.4g} ms / {int(r['gzip_bytes'])} B"
            for _, r in plain.iterrows()
        )
        front = done.loc[front_frame(done, profile)["trial"]]
        within = front[front["accuracy"] >= fp32 - points]
        print(f"\n{shown}: plain conversions {listed}")
        print(f"front {len(front)}, within {points:.0%} of fp32: {len(within)}")
        rows += goal_rows(shown, column, plain, within)
    print()
    print(pd.DataFrame(rows).to_string(index=False))
    searched = done["latency_ms_cpu-host"]
    quiet = done["latency_ms_quiet"]
    ids = load_front(out, "cpu-host")[0]["trial"]
    rho = spearmanr(searched, quiet).statistic
    print(
        f"\nissue 38 (cpu-host, the search's figures against the quiet median of {passes} "
        f"passes): Spearman {rho:.3f}, wrong pairs {wrong_pairs(searched, quiet)}, on the "
        f"front {wrong_pairs(searched[ids], quiet[ids])}"
    )


def goal_rows(
    profile: str, column: str, plain: pd.DataFrame, within: pd.DataFrame
) -> list[dict[str, object]]:
    """The fastest and the smallest candidate within the line, each against the plain
    conversion it has to beat (the fastest one, the smallest one)."""
    fastest = plain.loc[plain[column].idxmin()]
    smallest = plain.loc[plain["gzip_bytes"].idxmin()]
    rows: list[dict[str, object]] = []
    for goal, key, against, value in (
        ("fastest", column, fastest, f"{fastest['quantization']} {fastest[column]:.4g} ms"),
        ("smallest", "gzip_bytes", smallest, f"{smallest['quantization']} "
         f"{int(smallest['gzip_bytes'])} B"),
    ):  # fmt: skip
        if within.empty:
            rows.append({"profile": profile, "goal": goal, "trial": None, "against": value})
            continue
        r = within.sort_values(key).iloc[0]
        ratio = against[key] / r[key] if goal == "fastest" else r[key] / against[key]
        finished = r.get("finished_from")
        rows.append({
            "profile": profile, "goal": goal, "trial": int(r.name),
            "val": round(float(r["accuracy"]), 4), "test": round(float(r["test_accuracy"]), 4),
            "ms": round(float(r[column]), 4), "gzip_B": int(r["gzip_bytes"]),
            "ratio": round(float(ratio), 2), "against": value,
            "finished_from": None if pd.isna(finished) else int(finished),
            "recipe": r["recipe"],
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="search, finish, re-time, table")
    go.add_argument("--task", default=None, help="task YAML (default: the demo)")
    go.add_argument("--space", default="default")
    go.add_argument("--trials", type=int, default=40)
    go.add_argument("--workers", type=int, default=2)
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--timeout", default="6h")
    go.add_argument("--finish", type=int, default=0, help="finishing runs to make (0: none)")
    for p in (go, sub.add_parser("table", help="the table of a finished run")):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--passes", type=int, default=3, help="quiet passes (cpu-host reference)")
        p.add_argument("--points", type=float, default=0.01, help="accuracy line below fp32")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        table(args.out, args.passes, args.points)


if __name__ == "__main__":
    main()
