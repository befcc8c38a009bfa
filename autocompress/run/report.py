"""``DIR/report.html``: one self-contained page (plotly.js inlined, opens offline) showing the
front for every profile, the size / speed of the front against the baseline (also written as a
PNG for slides), how the front grew over the trials, which parameters mattered for each
objective, and the table of front members with their audit.

Plots come from the ecosystem: plotly for the interactive ones, Optuna's visualization module for
hypervolume history and parameter importances, matplotlib for the PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from autocompress._files import atomic_write_bytes, atomic_write_text
from autocompress.errors import InputError
from autocompress.metrics import DEFAULT_QUALITY, Quality
from autocompress.recipe import EPOCH_FIELDS, QUANT_MODES, RECIPE_FIELDS, Recipe
from autocompress.run.results import (
    baseline_row,
    below_floor,
    for_display,
    load_trials,
    quality_floor,
    with_drops,
)
from autocompress.run.rundir import STUDY_NAME, RunDir
from autocompress.run.tables import front_frame, latency_column, objective_columns, profiles_in

QUANT_COLOURS = {m.name: m.colour for m in QUANT_MODES}
FALLBACK_COLOUR = "#7f7f7f"  # a mode added later still gets drawn


def write_report(run: str | Path, storage: str | None = None) -> Path:
    """Write ``report.html`` and ``report_front.png`` into the run directory; return the page.

    ``storage`` is the study's storage URL when the search used ``--storage``.
    """
    rundir = RunDir(run)
    trials = load_trials(rundir.path)
    profiles = list(profiles_in(trials))
    if not profiles or not (trials["state"] == "COMPLETE").any():
        raise InputError(str(rundir.path), "has no completed trial to report on yet")
    study = _load_study(rundir, storage)
    primary = profiles[0]
    q = rundir.quality()
    png = _size_speed_png(trials, primary, q)
    atomic_write_bytes(rundir.path / "report_front.png", png)
    sections = [
        _section(
            f"Pareto front on {p}" + (" (the search's objective)" if p == primary else ""),
            _front_figure(trials, p, q).to_html(full_html=False, include_plotlyjs=False),
        )
        for p in profiles
    ]
    sections.append(
        _section(
            f"Size and speed-up of the front against the baseline ({primary})",
            f'<img alt="size and speed-up" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}" style="max-width:100%">',
        )
    )
    sections.append(_section("Hypervolume over the trials", _hypervolume_html(study, q)))
    sections.append(
        _section("What mattered (fANOVA importance per objective)", _importance_html(study))
    )
    front_table = _front_table(trials, primary, q, rundir.path)
    sections.append(_section(f"Front members ({primary})", front_table))
    if "level" in trials.columns and trials["level"].notna().any():
        sections.append(_section("Multi-fidelity levels", _fidelity_html(trials, q)))
    sensitivity = rundir.path / "sensitivity.json"
    if sensitivity.is_file():
        ops = pd.DataFrame(json.loads(sensitivity.read_text())["ops"])
        ops = ops.rename(columns={"accuracy_drop": "drop"})  # older runs
        table = ops[["op", "tensor", "drop"]].to_html(index=False, border=0)
        sections.append(
            _section(f"Layer sensitivity: {q.name} drop when the layer alone is int8", table)
        )
    page = _page(rundir.path.name, sections, trials, primary, q)
    atomic_write_text(rundir.report, page)
    return rundir.report


def _load_study(rundir: RunDir, url: str | None) -> optuna.Study:
    from optuna.storages import BaseStorage, JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = url or str(rundir.journal)
    if url is None and not rundir.journal.is_file():
        shared = rundir.path / "storage.txt"
        if shared.is_file():
            raise InputError(
                str(rundir.path),
                f"its study is in {shared.read_text().strip()}: pass --storage with that URL",
            )
        raise InputError(str(rundir.journal), "missing: the report needs the study storage")
    try:
        storage: BaseStorage = (
            optuna.storages.RDBStorage(url)
            if url is not None
            else JournalStorage(JournalFileBackend(str(rundir.journal)))
        )
        return optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except Exception as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(where if url is None else "--storage", f"cannot be read: {line}") from None


def _hover(row: pd.Series, lat: str, q: Quality) -> str:
    default = Recipe().to_dict()  # the hover names what the recipe changes
    changed = [k for k in RECIPE_FIELDS if k in row and k not in EPOCH_FIELDS]
    recipe = ", ".join(f"{k}={row[k]}" for k in changed if row[k] != default[k]) or "unchanged"
    test = row.get(q.test_column)
    tested = f"test {q.name} {test:.4f}<br>" if test is not None and test == test else ""
    return (
        f"trial {int(row['trial'])}<br>{recipe}<br>validation {q.name} {row[q.column]:.4f}<br>"
        f"{tested}latency {row[lat]:.4f} ms<br>gzip {row['gzip_bytes'] / 1024:.1f} KiB"
    )


def _front_figure(
    trials: pd.DataFrame, profile: str, q: Quality = DEFAULT_QUALITY
):  # -> plotly Figure
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lat = latency_column(profile)
    done = trials[(trials["state"] == "COMPLETE") & trials[lat].notna()].copy()
    done["gzip_kib"] = done["gzip_bytes"] / 1024
    front_ids = set(front_frame(trials, profile, q)["trial"])
    on_front = done["trial"].isin(front_ids)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"validation {q.name} vs latency",
            f"validation {q.name} vs gzip size",
        ),
        horizontal_spacing=0.08,
    )
    for col, x in ((1, lat), (2, "gzip_kib")):
        rest = done[~on_front]
        fig.add_trace(
            go.Scatter(
                x=rest[x],
                y=rest[q.column],
                mode="markers",
                marker={"color": "lightgrey", "size": 7},
                name="dominated or infeasible",
                legendgroup="rest",
                showlegend=col == 1,
                hovertext=[_hover(r, lat, q) for _, r in rest.iterrows()],
                hoverinfo="text",
            ),
            row=1,
            col=col,
        )
        floor = quality_floor(trials, q)
        for mode in sorted(set(done["quantization"].dropna())):
            colour = QUANT_COLOURS.get(mode, FALLBACK_COLOUR)
            part = done[on_front & (done["quantization"] == mode)]
            low = below_floor(part[q.column], q, floor)
            for members, symbol, suffix in (
                (part[~low], "circle", ""),
                (part[low], "circle-open", " (below floor)"),
            ):
                if members.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=members[x],
                        y=members[q.column],
                        mode="markers",
                        marker={"color": colour, "size": 10, "symbol": symbol},
                        name=f"front: {mode}{suffix}",
                        legendgroup=mode + suffix,
                        showlegend=col == 1,
                        hovertext=[_hover(r, lat, q) for _, r in members.iterrows()],
                        hoverinfo="text",
                    ),
                    row=1,
                    col=col,
                )
        if floor is not None:
            fig.add_hline(y=floor, line_dash="dot", line_color="grey", row=1, col=col)
        base = baseline_row(done)
        if base is not None:
            fig.add_trace(
                go.Scatter(
                    x=[base[x]],
                    y=[base[q.column]],
                    mode="markers",
                    marker={"symbol": "star", "size": 16, "color": "black"},
                    name="baseline (fp32 teacher)",
                    legendgroup="baseline",
                    showlegend=col == 1,
                    hovertext=[_hover(base, lat, q)],
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=f"latency on {profile} (ms)", type="log", row=1, col=1)
    fig.update_xaxes(title_text="gzip size (KiB)", type="log", row=1, col=2)
    fig.update_yaxes(title_text=f"validation {q.name}", row=1, col=1)
    fig.update_layout(height=460, margin={"t": 40, "b": 40})
    return fig


def _size_speed_png(trials: pd.DataFrame, profile: str, q: Quality) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = latency_column(profile)
    done = trials[(trials["state"] == "COMPLETE") & trials[lat].notna()]
    base = baseline_row(done)
    front = front_frame(trials, profile, q).sort_values("gzip_bytes", ascending=False)
    rows = ([base] if base is not None else []) + [r for _, r in front.iterrows()]
    labels = [
        ("baseline" if base is not None and i == 0 else f"trial {int(r['trial'])}")
        + f"\n{_quality_label(r, q)}"
        for i, r in enumerate(rows)
    ]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4), dpi=120)
    if not rows:  # every candidate violates a limit (or is at chance) and no baseline ran
        ax.text(0.5, 0.5, "no candidate meets the limits", ha="center", va="center")
        ax.set_axis_off()
        rows_png = io.BytesIO()
        fig.savefig(rows_png, format="png")
        plt.close(fig)
        return rows_png.getvalue()
    sizes = [r["gzip_bytes"] / 1024 for r in rows]
    ref = base[lat] if base is not None else rows[0][lat]
    speedups = [ref / r[lat] for r in rows]
    ax.bar(labels, sizes, color="#4c72b0")
    ax.set_ylabel("gzip size (KiB)")
    ax.tick_params(axis="x", rotation=60)
    ax2 = ax.twinx()
    ax2.plot(labels, speedups, color="#dd8452", marker="o")
    ax2.set_ylabel(f"speed-up on {profile} (x)")
    ax.set_title("Front members against the baseline")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _quality_label(row: pd.Series, q: Quality) -> str:
    """The test split's metric where the task has one, else the validation split's, named."""
    test = row.get(q.test_column)
    if test is not None and test == test:
        return f"test {q.name} {test:.4g}"
    return f"val {q.name} {row[q.column]:.4g}"


def _complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _hypervolume_html(study: optuna.Study, q: Quality) -> str:
    done = _complete_trials(study)
    if len(done) < 2:
        return "<p>Fewer than two completed trials: no history yet.</p>"
    values = np.array([t.values for t in done], dtype=float)
    # Reference point: a quality worse than every trial's (0 for a metric such as accuracy),
    # 1.1x the worst latency and size seen.
    worst = values[:, 0].min() if q.maximize else values[:, 0].max()
    ref_quality = min(0.0, 1.1 * worst) if q.maximize else 1.1 * worst + (worst <= 0)
    reference = [ref_quality, 1.1 * values[:, 1].max(), 1.1 * values[:, 2].max()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_hypervolume_history(study, reference_point=reference)
    fig.update_layout(height=380)
    note = (
        f"<p>Reference point ({html.escape(q.name)}, latency ms, gzip bytes): "
        f"{', '.join(f'{v:.4g}' for v in reference)}. Infeasible trials do not count.</p>"
    )
    return note + fig.to_html(full_html=False, include_plotlyjs=False)


def _importance_html(study: optuna.Study) -> str:
    names = study.metric_names or ["objective 0", "objective 1", "objective 2"]
    parts = []
    for i, name in enumerate(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = optuna.visualization.plot_param_importances(
                    study, target=lambda t, i=i: t.values[i], target_name=name
                )
        except (ValueError, RuntimeError) as exc:  # too few trials or a fixed space
            parts.append(f"<p>{html.escape(name)}: not computed ({html.escape(str(exc))})</p>")
            continue
        fig.update_layout(height=300, title=f"importance for {name}")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return "".join(parts)


def _front_table(trials: pd.DataFrame, profile: str, q: Quality, run: Path) -> str:
    """The front members with their stage facts, and their drop against the baseline beside
    its upper 95 % bound (paired bootstrap on the validation split; see tolerance.py)."""
    front = front_frame(trials, profile, q)
    try:
        front, _ = with_drops(run, front, confidence=0.95)
    except InputError:  # no baseline, or a run from before the validation evidence was kept
        pass
    facts = trials.set_index("trial")["stages"] if "stages" in trials else pd.Series(dtype=str)
    rows = []
    for _, r in front.iterrows():
        stages = json.loads(facts.get(r["trial"], "{}") or "{}")
        summary = "; ".join(
            f"{stage}: " + ", ".join(f"{k}={v}" for k, v in _short(f).items())
            for stage, f in stages.items()
        )
        rows.append({**r.to_dict(), "stage facts": summary})
    table = for_display(pd.DataFrame(rows), quality=q)
    return table.to_html(index=False, border=0, classes="front", float_format=lambda v: f"{v:.4g}")


def _fidelity_html(trials: pd.DataFrame, q: Quality) -> str:
    """Builds and build time per level, and each promoted candidate's metric at every level
    it reached (its lower levels are PRUNED trials: no model file, values kept)."""
    built = trials[trials["level"].notna() & trials[q.column].notna()]
    built = built[built["reused_from"].isna()] if "reused_from" in built else built
    per_level = (
        built.groupby("level")
        .agg(builds=("trial", "size"), seconds=("seconds", "sum"))
        .reset_index()
        .astype({"level": int})
    )
    table = built.pivot_table(index="candidate", columns="level", values=q.column)
    table.columns = [f"val_{q.name} L{int(c)}" for c in table.columns]
    climbed = table[table.notna().sum(axis=1) > 1].reset_index().astype({"candidate": int})
    return (
        "<p>Every candidate is first built with a share of its training; the best are promoted "
        "to more (successive halving). Only top-level builds are results (COMPLETE).</p>"
        + per_level.to_html(index=False, border=0, float_format="%.1f")
        + "<p>Candidates built at more than one level:</p>"
        + climbed.to_html(index=False, border=0, float_format="%.4f", na_rep="-")
    )


def _short(facts: dict) -> dict:
    """The scalar facts of a stage (per-layer dictionaries stay in trials.csv / audit JSON)."""
    return {k: v for k, v in facts.items() if not isinstance(v, (dict, list))}


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _page(name: str, sections: list[str], trials: pd.DataFrame, primary: str, q: Quality) -> str:
    from plotly.offline import get_plotlyjs

    counts = trials["state"].value_counts().to_dict()
    summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
    objectives = ", ".join(c for c, _ in objective_columns(primary, q))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>autocompress report: {html.escape(name)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1300px; }}
table.front {{ border-collapse: collapse; font-size: 0.85em; }}
table.front td, table.front th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; }}
</style></head>
<body>
<h1>autocompress report: {html.escape(name)}</h1>
<p>{len(trials)} trials ({html.escape(summary)}); objectives: {html.escape(objectives)}.
Every number was measured on the deployed <code>.tflite</code> file (latency simulated where the
profile says so).</p>
{"".join(sections)}
</body></html>
"""
