"""The run report: Pareto plots (PNG) and one HTML page, built from the run store.

Plots: quality against int8 storage, and against measured latency on each device, with
every explored point coloured by strategy and the front drawn on top; hypervolume per
generation. The table lists the front's models with their files and every figure with its
source (measured, estimated, analytic, replayed...). Estimated figures say so.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from host.store.sqlite import RunStore

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def _front_2d(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the front of (cost to minimise, quality to maximise) points."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -float("inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _scatter(
    path: Path,
    series: dict[str, list[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    log_x: bool = True,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    everything: list[tuple[float, float]] = []
    for (label, pts), colour in zip(series.items(), COLOURS, strict=False):
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.scatter(xs, ys, s=18, alpha=0.6, color=colour, label=f"{label} ({len(pts)})")
        everything.extend(pts)
    if everything:
        front = sorted(everything[i] for i in _front_2d(everything))
        ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post",
            color="black",
            linewidth=1.2,
            label="Pareto front",
        )
        ax.scatter(
            [p[0] for p in front],
            [p[1] for p in front],
            s=36,
            facecolors="none",
            edgecolors="black",
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_report(
    store: RunStore, run_id: str, run_dir: Path, compare: list[str] | None = None
) -> Path:
    """Write RUN_DIR/report.html and its PNG plots; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = store.run(run_id)
    if run is None:
        from device_agent.errors import ConfigError

        raise ConfigError(f"no run {run_id!r} in {store.path}")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run.config
    objectives = [
        o["metric"] + (f"@{o['device']}" if o.get("device") else "") for o in cfg["objectives"]
    ]
    quality = next(
        o
        for o in objectives
        if o.split("@")[0]
        in ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")
    )
    runs = [run_id, *(compare or [])]

    # Every explored, valid point of each run, labelled by strategy (and run when comparing).
    explored: dict[str, list[dict[str, Any]]] = {}
    for rid in runs:
        for ev in store.evaluations(rid):
            if ev["arch_key"] is None:
                continue
            label = ev["strategy"] if len(runs) == 1 else f"{ev['strategy']} ({rid})"
            explored.setdefault(label, []).append(ev)

    def points(metric: str, feasible_only: bool = True) -> dict[str, list[tuple[float, float]]]:
        series: dict[str, list[tuple[float, float]]] = {}
        for label, evs in explored.items():
            seen: dict[str, tuple[float, float]] = {}
            for ev in evs:
                x, y = ev["objectives"].get(metric), ev["objectives"].get(quality)
                if x is None or y is None or (feasible_only and ev["violation"] > 0):
                    continue
                seen[ev["arch_key"]] = (float(x), float(y))
            series[label] = list(seen.values())
        return series

    # Figures outside the objectives (storage is always known analytically).
    front_doc = (
        json.loads((run_dir / "front.json").read_text())
        if (run_dir / "front.json").exists()
        else {"front": []}
    )
    plots = []
    storage_metric = "storage_int8_bytes"
    if storage_metric in objectives:
        name = "pareto_storage.png"
        _scatter(
            run_dir / name,
            points(storage_metric),
            "int8 storage [bytes] (analytic)",
            f"{quality} (validation)",
            f"{run_id}: quality vs storage",
        )
        plots.append((name, "Quality against int8 storage"))
    for metric in objectives:
        if "@" not in metric:
            continue
        base_metric, device = metric.split("@")
        source = _source_of(front_doc, metric)
        name = f"pareto_{base_metric}_{device}.png".replace("/", "_")
        _scatter(
            run_dir / name,
            points(metric),
            f"{base_metric} on {device} [{source}]",
            f"{quality} (validation)",
            f"{run_id}: quality vs {base_metric} on {device}",
        )
        plots.append((name, f"Quality against {base_metric} on {device} ({source})"))

    gens: list[dict[str, Any]] = []
    for rid in runs:
        gens.extend(dict(g, run=rid) for g in store.generations(rid))
    if gens:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        groups: dict[str, list[dict[str, Any]]] = {}
        for g in gens:
            key = g["strategy"] if len(runs) == 1 else f"{g['strategy']} ({g['run']})"
            groups.setdefault(key, []).append(g)
        for (label, rows), colour in zip(groups.items(), COLOURS, strict=False):
            ax.plot(
                [r["generation"] for r in rows],
                [r["hypervolume"] for r in rows],
                marker="o",
                color=colour,
                label=label,
            )
        ax.set_xlabel("generation (batch for baselines)")
        ax.set_ylabel("hypervolume (normalised)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(run_dir / "hypervolume.png")
        plt.close(fig)
        plots.append(("hypervolume.png", "Hypervolume per generation"))

    missing = store.missing(run_id)
    page = _html(run, objectives, plots, front_doc, gens, missing, store.timings(run_id))
    out = run_dir / "report.html"
    out.write_text(page)
    return out


def _source_of(front_doc: dict[str, Any], label: str) -> str:
    for entry in front_doc.get("front", []):
        fig = entry.get("figures", {}).get(label)
        if fig and fig.get("source"):
            return str(fig["source"])
    return "source unknown"


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _html(
    run: Any,
    objectives: list[str],
    plots: list[tuple[str, str]],
    front_doc: dict[str, Any],
    gens: list[dict[str, Any]],
    missing: list[dict[str, Any]],
    timings: list[dict[str, Any]],
) -> str:
    e = html.escape
    rows = []
    figure_labels = sorted(
        {label for entry in front_doc.get("front", []) for label in entry.get("figures", {})}
    )
    shown = [
        label
        for label in figure_labels
        if label in objectives
        or label.startswith(("storage_int8", "macs", "latency_p50", "peak_rss", "energy", "arena"))
    ]
    for entry in front_doc.get("front", []):
        cells = [f"<td><code>{e(entry['arch'])}</code></td>"]
        for label in shown:
            fig = entry.get("figures", {}).get(label, {})
            src = fig.get("source", "")
            badge = f' <span class="src src-{e(src.split()[0]) if src else "none"}">{e(src)}</span>'
            cells.append(f"<td>{_fmt(fig.get('value'))}{badge if src else ''}</td>")
        test = entry.get("test_metrics", {})
        cells.append(f"<td>{_fmt(test.get('accuracy'))} / {_fmt(test.get('f1_macro'))}</td>")
        files = entry.get("files", {})
        cells.append(
            "<td>"
            + "<br>".join(f"<code>{e(Path(p).name)}</code>" for p in files.values())
            + "</td>"
        )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{e(label)}</th>" for label in shown)
    phases: dict[str, float] = {}
    for t in timings:
        phases[t["phase"]] = phases.get(t["phase"], 0.0) + t["seconds"]
    timing_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{v:.1f} s</td></tr>" for k, v in sorted(phases.items())
    )
    missing_rows = "".join(
        f"<tr><td><code>{e(m['arch_key'])}</code></td><td>{e(m['device'])}</td>"
        f"<td>{e(m['reason'])}</td></tr>"
        for m in missing
    )
    imgs = "".join(
        f'<figure><img src="{e(name)}" alt="{e(title)}"><figcaption>{e(title)}'
        f"</figcaption></figure>"
        for name, title in plots
    )
    cfg = run.config
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hilnas run {e(run.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }}
th {{ background: #f3f3f3; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }}
figure img {{ max-width: 560px; border: 1px solid #ddd; }}
.src {{ font-size: 10px; padding: 0 4px; border-radius: 3px; background: #eee; }}
.src-measured {{ background: #d4f4d4; }} .src-estimated {{ background: #fde6c8; }}
.src-replayed {{ background: #f4d4f4; }} .src-unavailable {{ background: #eee; color: #888; }}
</style></head><body>
<h1>hilnas run <code>{e(run.run_id)}</code></h1>
<p>Status: <b>{e(run.status)}</b>. {e(run.message)}</p>
<p>Strategy <b>{e(cfg["strategy"]["name"])}</b> (population {cfg["strategy"]["population"]},
{cfg["strategy"]["generations"]} generations, crossover {cfg["strategy"]["crossover_prob"]},
mutation {cfg["strategy"]["mutation_prob"]}); space <b>{e(cfg["space"]["name"])}</b>;
data preset <b>{e(str(cfg["data"]["preset"]))}</b>, split <b>{e(str(cfg["data"]["split"]))}</b>;
objectives {", ".join(e(o) for o in objectives)}.
Quality on the Pareto plots is measured on the validation set; the table also gives test
accuracy / F1. Every hardware figure names its source:
<span class="src src-measured">measured</span> on the device,
<span class="src src-estimated">estimated</span> by a model,
<span class="src">analytic</span> from the architecture,
<span class="src src-replayed">replayed</span> by a stand-in.</p>
{imgs}
<h2>Pareto front ({len(front_doc.get("front", []))} models)</h2>
<table><tr><th>architecture</th>{head}<th>test accuracy / F1</th><th>files</th></tr>
{"".join(rows)}</table>
<h2>Time</h2><table><tr><th>phase</th><th>total</th></tr>{timing_rows}</table>
{
        (
            "<h2>Missing measurements</h2><table><tr><th>architecture</th>"
            "<th>device</th><th>reason</th></tr>"
            + missing_rows
            + "</table>"
        )
        if missing
        else ""
    }
</body></html>
"""
