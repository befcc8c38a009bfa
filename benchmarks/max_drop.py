"""Which front members a point estimate accepts under --max-drop that --confidence rejects.

Run: ``.venv/bin/python benchmarks/max_drop.py RUN [--max-drop 0.01] [--confidence 0.95]
[--profile P]`` on a finished run directory (the demo: ``autocompress search --out RUN``).
Prints every front member with its validation metric, its drop against the fp32 baseline and
the upper bound of that drop (paired bootstrap on the validation split), and which of the two
rules accepts it; then what ``pick --max-drop`` returns under each rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autocompress.evaluation.tolerance import MaxDrop
from autocompress.run.results import load_front, pick, run_quality, with_drops
from autocompress.run.tables import latency_column


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--max-drop", default="0.01")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    quality = run_quality(args.run)
    limit_spec = MaxDrop.parse(args.max_drop)
    front, profile = load_front(args.run, args.profile)
    front, base = with_drops(args.run, front, args.confidence)
    limit = limit_spec.limit(base)
    lat = latency_column(profile)
    print(
        f"{args.run}: baseline val {quality.name} {base:.4f}; --max-drop {limit_spec} "
        f"(= {limit:.4g}); bound at confidence {args.confidence}; latency on {profile}"
    )
    print(f"{'trial':>5} {'quantization':>12} {quality.name:>9} {'drop':>8} {'bound':>8} "
          f"{'ms':>8}  point  bound")  # fmt: skip
    for _, r in front.sort_values("drop").iterrows():
        point_ok, bound_ok = r["drop"] <= limit + 1e-12, r["drop_bound"] <= limit + 1e-12
        print(
            f"{int(r['trial']):>5} {r['quantization']:>12} {r[quality.column]:>9.4f} "
            f"{r['drop']:>8.4f} {r['drop_bound']:>8.4f} {r[lat]:>8.4f}  "
            f"{'yes' if point_ok else 'no':>5}  {'yes' if bound_ok else 'no':>5}"
            + ("   <- accepted by the point estimate only" if point_ok and not bound_ok else "")
        )
    for confidence in (None, args.confidence):
        chosen = pick(args.run, args.profile, max_drop=limit_spec, confidence=confidence)
        rule = "point estimate" if confidence is None else f"bound at {confidence}"
        shown = "none" if chosen is None else f"trial {int(chosen['trial'])} ({chosen[lat]:.4f} ms)"
        print(f"pick --max-drop {limit_spec} ({rule}): {shown}")


if __name__ == "__main__":
    main()
