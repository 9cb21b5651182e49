"""The run report: Pareto plots (PNG) and one HTML page, built from the run store.

- Plots: the quality objective against every other objective, every explored point
  coloured by strategy (and run, when comparing) with the 2-D front drawn on top; the
  hypervolume per generation.
- The Pareto front's models with their files, the devices each can run on, and every
  figure with its source (measured, estimated, analytic, replayed...).
- One front per device: quality against that device's figure, with the device's figures
  and their sources, so a board's front is read off its own measurements.
- Winners by objective: which front member is best for each hardware objective (HALF's
  Table I: the topology that wins for power is not the one that wins for energy).
- Compression (`[compress] mode = "front"`): storage against quality per stage for each
  front member, each figure with its source (host/report/compression.py).
- A data-aware run: quality against each objective by sample rate and representation
  (host/report/granularity.py); `--compare` puts a fixed-data run's front on the same plots.
- Time per pipeline stage, and the measurements that devices missed.

Estimated figures say so everywhere they appear.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.report import compression, device_first, granularity
from host.store.files import write_atomic
from host.store.sqlite import RunRow, RunStore

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


@dataclass(frozen=True)
class Axis:
    """One objective of the run as the report shows it."""

    label: str
    metric: str
    device: str | None
    maximise: bool
    kind: str  # host.metrics.MetricKind value


def _axes(run: RunRow) -> list[Axis]:
    """The run's objectives with their directions, from its stored configuration."""
    from host.search.config import parse_config

    cfg = parse_config(run.config["source"])
    return [Axis(o.label, o.metric, o.device, o.maximise, o.kind.value) for o in cfg.objectives]


def _front_2d(points: list[tuple[float, float]], maximise_x: bool = False) -> list[int]:
    """Indices of the front of (x, quality to maximise) points; x minimised unless told."""
    sign = -1 if maximise_x else 1
    order = sorted(range(len(points)), key=lambda i: (sign * points[i][0], -points[i][1]))
    front, best = [], -math.inf
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
    maximise_x: bool = False,
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
        front = sorted(everything[i] for i in _front_2d(everything, maximise_x))
        ax.step([p[0] for p in front], [p[1] for p in front],
                where="pre" if maximise_x else "post", color="black", linewidth=1.2,
                label="Pareto front")
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=36, facecolors="none",
                   edgecolors="black")
        if min(p[0] for p in everything) > 0:
            ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _distinct(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One evaluation per network (the last one), valid chromosomes only."""
    seen: dict[str, dict[str, Any]] = {}
    for ev in evaluations:
        if ev["arch_key"] is not None:
            seen[ev["arch_key"]] = ev
    return list(seen.values())


def _figure(ev: dict[str, Any], label: str) -> tuple[float | None, str]:
    figures = ev.get("figures") or {}
    value = (figures.get("values") or {}).get(label)
    if value is None:
        value = ev["objectives"].get(label)
    source = (figures.get("sources") or {}).get(label, "")
    return (None if value is None else float(value)), source


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
    axes = _axes(run)
    quality = next(a for a in axes if a.kind == "quality")
    runs = [run_id, *(compare or [])]

    explored: dict[str, list[dict[str, Any]]] = {}
    for rid in runs:
        for ev in _distinct(store.evaluations(rid)):
            label = ev["strategy"] if len(runs) == 1 else f"{ev['strategy']} ({rid})"
            explored.setdefault(label, []).append(ev)
    own = _distinct(store.evaluations(run_id))

    def points(x: str) -> dict[str, list[tuple[float, float]]]:
        series: dict[str, list[tuple[float, float]]] = {}
        for label, evs in explored.items():
            pts = []
            for ev in evs:
                vx, vy = ev["objectives"].get(x), ev["objectives"].get(quality.label)
                if vx is not None and vy is not None and ev["violation"] == 0:
                    pts.append((float(vx), float(vy)))
            series[label] = pts
        return series

    plots = []
    for axis in axes:
        if axis is quality:
            continue
        source = next((s for ev in own if (s := _figure(ev, axis.label)[1])), "source unknown")
        name = f"pareto_{axis.label}.png".replace("@", "_at_").replace("/", "_")
        _scatter(
            run_dir / name,
            points(axis.label),
            f"{axis.label} [{source}]",
            f"{quality.label} (validation)",
            f"{run_id}: quality vs {axis.label}",
            maximise_x=axis.maximise,
        )
        plots.append((name, f"Quality against {axis.label} ({source})"))

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
            ax.plot([r["generation"] for r in rows], [r["hypervolume"] for r in rows],
                    marker="o", color=colour, label=label)
        ax.set_xlabel("generation (batch for baselines)")
        ax.set_ylabel("hypervolume (normalised)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(run_dir / "hypervolume.png")
        plt.close(fig)
        plots.append(("hypervolume.png", "Hypervolume per generation"))

    front_doc = (
        json.loads((run_dir / "front.json").read_text())
        if (run_dir / "front.json").exists()
        else {"front": []}
    )
    devices = [d["name"] for d in run.config["source"].get("devices", [])]
    plots.extend(device_first.plots(store, run_id, run_dir, own))
    plots.extend(compression.plots(run_dir, front_doc, run_id))
    hardware = [(a.label, next((s for ev in own if (s := _figure(ev, a.label)[1])), "source "
                               "unknown")) for a in axes if a is not quality]
    plots.extend(granularity.plots(run_dir, own, quality.label, hardware, run_id))
    sections = [
        _front_table(front_doc, axes, devices),
        _device_fronts(own, quality, devices),
        device_first.section(store, run_id, front_doc),
        compression.section(front_doc),
        _winners(front_doc, axes),
        _timings(store.timings(run_id)),
        _missing(store.missing(run_id)),
    ]
    # Which validation side the quality figures come from (its patients), as trained.
    selection = next(
        (sel for ev in own if ev.get("train_key")
         and (t := store.training(ev["train_key"])) and (sel := t["metrics"].get("selection"))),
        "",
    )
    page = _page(run, axes, plots, sections, selection)
    out = run_dir / "report.html"
    write_atomic(out, page)  # a report killed half-way leaves the previous one, or none
    return out


# ---------------------------------------------------------------------------- HTML pieces
def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _badge(source: str) -> str:
    if not source:
        return ""
    kind = html.escape(source.split()[0].strip("(),"))
    return f' <span class="src src-{kind}">{html.escape(source)}</span>'


def _front_table(front_doc: dict[str, Any], axes: list[Axis], devices: list[str]) -> str:
    e = html.escape
    entries = front_doc.get("front", [])
    labels = sorted({label for entry in entries for label in entry.get("figures", {})})
    objective_labels = {a.label for a in axes}
    shown = [lb for lb in labels if lb in objective_labels or lb.startswith(
        ("storage_int8", "macs", "latency_p50", "arena", "energy", "mean_power", "input_buffer"))]
    rows = []
    for entry in entries:
        cells = [f"<td><code>{e(entry['arch'])}</code></td>"]
        for label in shown:
            fig = entry.get("figures", {}).get(label, {})
            cells.append(f"<td>{_fmt(fig.get('value'))}{_badge(fig.get('source', ''))}</td>")
        runs_on = entry.get("runs_on") or {}
        cells.append("<td>" + "<br>".join(
            f"{e(d)}: {'yes' if runs_on.get(d) == 'ok' else e(runs_on.get(d, 'not measured'))}"
            for d in devices) + "</td>")
        test = entry.get("test_metrics", {})
        cells.append(f"<td>{_fmt(test.get('accuracy'))} / {_fmt(test.get('f1_macro'))}</td>")
        files = entry.get("files", {})
        cells.append("<td>" + "<br>".join(f"<code>{e(Path(p).name)}</code>"
                                          for p in files.values()) + "</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{e(label)}</th>" for label in shown)
    return (f"<h2>Pareto front ({len(entries)} models)</h2><table><tr><th>architecture</th>"
            f"{head}<th>runs on</th><th>test accuracy / F1</th><th>files</th></tr>"
            f"{''.join(rows)}</table>")


def _device_fronts(evaluations: list[dict[str, Any]], quality: Axis, devices: list[str]) -> str:
    """Per device: the front of quality against the device's latency, with its figures."""
    e = html.escape
    out = []
    for device in devices:
        x_label = f"latency_p50_us@{device}"
        pts, rows = [], []
        for ev in evaluations:
            x, _ = _figure(ev, x_label)
            y, _ = _figure(ev, quality.label)
            if x is not None and y is not None and ev["status"] in ("ok", "infeasible"):
                pts.append((x, y))
                rows.append(ev)
        if not pts:
            continue
        front = sorted(_front_2d(pts), key=lambda i: pts[i][0])
        labels = [f"{m}@{device}" for m in ("latency_p50_us", "arena_bytes", "model_bytes",
                                             "peak_rss_bytes", "energy_per_inference_uj")]
        head = "".join(f"<th>{e(lb)}</th>" for lb in labels)
        body = []
        for i in front:
            ev = rows[i]
            cells = [f"<td><code>{e(ev['arch_key'])}</code></td>",
                     f"<td>{_fmt(pts[i][1])}</td>"]
            for lb in labels:
                value, source = _figure(ev, lb)
                cells.append(f"<td>{_fmt(value)}{_badge(source)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        out.append(
            f"<h3>{e(device)}: {len(front)} of {len(pts)} measured networks</h3><table><tr>"
            f"<th>architecture</th><th>{e(quality.label)}</th>{head}</tr>{''.join(body)}</table>"
        )
    if not out:
        return ""
    return ("<h2>Front per device</h2><p>Quality against each device's own latency, over "
            "every network the device ran, with that device's figures and their sources.</p>"
            + "".join(out))


def _winners(front_doc: dict[str, Any], axes: list[Axis]) -> str:
    """Which front member is best for each hardware objective (HALF's Table I)."""
    e = html.escape
    entries = front_doc.get("front", [])
    if len(entries) < 2:
        return ""
    quality = [a for a in axes if a.kind == "quality"]
    targets = [a for a in axes if a.kind != "quality"]
    # Throughput figures a space estimates are worth a row even when not an objective.
    extra = sorted({lb for entry in entries for lb in entry.get("figures", {})
                    if "throughput" in lb and lb not in {a.label for a in axes}})
    targets += [Axis(lb, lb, None, True, "analytic") for lb in extra]
    rows, winners = [], set()
    for axis in targets:
        scored = [(entry["figures"].get(axis.label, {}).get("value"), entry) for entry in entries]
        scored = [(v, entry) for v, entry in scored if v is not None]
        if not scored:
            continue
        value, best = (max if axis.maximise else min)(scored, key=lambda t: t[0])
        source = best["figures"][axis.label].get("source", "")
        winners.add(best["arch"])
        layers = best.get("architecture", {}).get("layers")
        topology = (" &rarr; ".join(e(_layer_text(layer)) for layer in layers)
                    if layers else e(best["arch"]))
        params = best["figures"].get("params", {}).get("value")
        scores = "".join(f"<td>{_fmt(best['objectives'].get(q.label))}</td>" for q in quality)
        rows.append(
            f"<tr><td>{'max' if axis.maximise else 'min'} {e(axis.label)}</td>"
            f"<td><code>{e(best['arch'])}</code></td><td>{_fmt(value)}{_badge(source)}</td>"
            f"{scores}<td>{_fmt(params)}</td><td>{topology}</td></tr>"
        )
    note = (f"{len(winners)} different front members win across {len(rows)} objectives."
            if rows else "")
    return ("<h2>Winners by objective</h2><p>The front member that is best for each "
            f"hardware objective, with its topology. {note}</p><table><tr><th>objective</th>"
            "<th>architecture</th><th>value</th>"
            + "".join(f"<th>{e(q.label)}</th>" for q in quality)
            + "<th>params</th><th>topology</th></tr>"
            + "".join(rows) + "</table>")


def _layer_text(layer: dict[str, Any]) -> str:
    if layer.get("kind") == "sepconv":
        return (f"sep(k{layer['kernel']} s{layer['stride']} m{layer['multiplier']} "
                f"f{layer['filters']})")
    if layer.get("kind") == "maxpool":
        return f"maxpool({layer['stride']})"
    return json.dumps(layer)


def _timings(timings: list[dict[str, Any]]) -> str:
    phases: dict[str, list[float]] = {}
    for t in timings:
        phases.setdefault(t["phase"], []).append(t["seconds"])
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{len(v)}</td><td>{sum(v):.1f} s</td></tr>"
        for k, v in sorted(phases.items())
    )
    return ("<h2>Time per pipeline stage</h2><table><tr><th>stage</th><th>count</th>"
            f"<th>total</th></tr>{rows}</table>")


def _missing(missing: list[dict[str, Any]]) -> str:
    if not missing:
        return ""
    rows = "".join(
        f"<tr><td><code>{html.escape(m['arch_key'])}</code></td><td>{html.escape(m['device'])}"
        f"</td><td>{html.escape(m['reason'])}</td></tr>"
        for m in missing
    )
    return ("<h2>Missing measurements</h2><table><tr><th>architecture</th><th>device</th>"
            f"<th>reason</th></tr>{rows}</table>")


def _page(
    run: RunRow,
    axes: list[Axis],
    plots: list[tuple[str, str]],
    sections: list[str],
    selection: str = "",
) -> str:
    e = html.escape
    src = run.config["source"]
    strategy, data, space = src["strategy"], src["data"], src["space"]
    imgs = "".join(
        f'<figure><img src="{e(name)}" alt="{e(title)}"><figcaption>{e(title)}'
        f"</figcaption></figure>"
        for name, title in plots
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hilnas run {e(run.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1280px; }}
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
<p>Strategy <b>{e(strategy["name"])}</b> (population {strategy["population"]},
{strategy["generations"]} generations, crossover {strategy["crossover_prob"]},
mutation {strategy["mutation_prob"]}, pre-screening {e(strategy.get("surrogate", "none"))});
space <b>{e(space["name"])}</b>; task <b>{e(str(data.get("task", "ecg")))}</b>
(preset <b>{e(str(data.get("preset", "")))}</b>, split <b>{e(str(data.get("split", "")))}</b>);
objectives {", ".join(e(a.label) for a in axes)}.
Quality on the plots is measured on the validation set{
f" ({e(selection)})" if selection else ""}; the front table also gives test accuracy / F1.
Every hardware figure names its source:
<span class="src src-measured">measured</span> on the device,
<span class="src src-estimated">estimated</span> by a model,
<span class="src">analytic</span> from the architecture,
<span class="src src-replayed">replayed</span> by a stand-in.</p>
{imgs}
{"".join(sections)}
</body></html>
"""
