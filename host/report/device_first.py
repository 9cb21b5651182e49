"""The report's device-first view.

What was measured before training, the latency predictors' audit, and the front's quality
measured on each device next to the host's.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from host.store.sqlite import RunStore

# (x, y) pairs by device
Series = dict[str, list[tuple[float, float]]]


def _band_scatter(path: Path, series: Series, xlabel: str, ylabel: str, title: str) -> None:
    """Scatter with the identity line and a ±10% band (predicted vs measured, etc.)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=110)
    everything = [v for pts in series.values() for p in pts for v in p]
    lo, hi = min(everything), max(everything)
    line = [lo * 0.9, hi * 1.1]
    ax.plot(line, line, color="black", linewidth=1, label="equal")
    ax.fill_between(line, [v * 0.9 for v in line], [v * 1.1 for v in line], color="grey",
                    alpha=0.2, label="±10%")
    for device, pts in series.items():
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.scatter(xs, ys, s=16, alpha=0.7, label=f"{device} ({len(pts)})")
    if lo > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def untrained_vs_trained(evaluations: list[dict[str, Any]]) -> Series:
    """Per device: (untrained, trained) median latency of each network measured both ways."""
    series: Series = {}
    for ev in evaluations:
        values = (ev.get("figures") or {}).get("values") or {}
        for label, untrained in values.items():
            if not label.startswith("untrained:latency_p50_us@") or untrained is None:
                continue
            trained = values.get(label.removeprefix("untrained:"))
            sources = (ev.get("figures") or {}).get("sources") or {}
            if trained is None or "untrained" in sources.get(label.removeprefix(
                    "untrained:"), "untrained"):
                continue  # rejected before training: only the untrained figure exists
            series.setdefault(label.split("@", 1)[1], []).append((untrained, trained))
    return series


def plots(store: RunStore, run_id: str, run_dir: Path,
          evaluations: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    predicted: Series = {}
    for p in store.predictions(run_id):
        if p["measured_us"]:
            predicted.setdefault(p["device"], []).append((p["measured_us"], p["predicted_us"]))
    if predicted:
        _band_scatter(run_dir / "predicted_vs_measured.png", predicted,
                      "measured latency p50 (us)", "predicted before measuring (us)",
                      f"{run_id}: latency predictor audit")
        out.append(("predicted_vs_measured.png",
                    "Latency predicted before each measurement against what was measured "
                    "(grey: ±10%)"))
    pairs = untrained_vs_trained(evaluations)
    if pairs:
        _band_scatter(run_dir / "untrained_vs_trained.png", pairs,
                      "untrained network, latency p50 (us)", "trained network (us)",
                      f"{run_id}: do the weights change latency?")
        out.append(("untrained_vs_trained.png",
                    "Latency of each network measured before training against its trained "
                    "model's (grey: ±10%)"))
    return out


def section(store: RunStore, run_id: str, front_doc: dict[str, Any]) -> str:
    e = html.escape
    summary = store.device_first_summary(run_id)
    parts = ["<h2>Device first</h2>"]
    parts.append(
        f"<p>{summary['proposed']} networks proposed; {summary['rejected_before_training']} "
        f"rejected on a measurement of the untrained network, before any training; "
        f"{summary['skipped_on_prediction']} not measured because the latency predictor "
        "put them far beyond a limit.</p>"
    )
    sources: dict[str, set[str]] = {}
    for p in store.predictions(run_id):
        sources.setdefault(p["device"], set()).add(p["source"])
    if summary["predictor"]:
        rows = "".join(
            f"<tr><td>{e(d)}</td><td>{a['audited']}</td><td>{a['share_within_10pct']:.0%}</td>"
            f"<td>{a['mean_abs_pct_error']:.1f}%</td>"
            f"<td>{e('; '.join(sorted(sources.get(d, set()))))}</td></tr>"
            for d, a in summary["predictor"].items()
        )
        parts.append("<h3>Latency predictor audit</h3><p>Each measurement against the "
                     "prediction made before it.</p><table><tr><th>device</th><th>audited</th>"
                     "<th>within ±10%</th><th>mean abs error</th><th>predicted from</th></tr>"
                     f"{rows}</table>")
    validations = store.front_validations(run_id)
    if validations:
        parts.append(_validation_table(front_doc, validations))
    return "".join(parts)


def _validation_table(front_doc: dict[str, Any],
                      validations: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per front model and device: quality from the device's outputs next to the host's."""
    e = html.escape
    rows = []
    order = [entry["arch"] for entry in front_doc.get("front", [])] or sorted(validations)
    for arch in order:
        for device, result in sorted(validations.get(arch, {}).items()):
            if "identical_share" not in result:
                rows.append(f"<tr><td><code>{e(arch)}</code></td><td>{e(device)}</td>"
                            f"<td colspan=5>{e(result.get('error', 'not validated'))}</td></tr>")
                continue
            metric = result.get("metric", "")
            dev_q = (result.get("device_metrics") or {}).get(metric)
            host_q = (result.get("host_metrics") or {}).get(metric)
            rows.append(
                f"<tr><td><code>{e(arch)}</code></td><td>{e(device)}</td>"
                f"<td>{_num(dev_q)} <span class=\"src\">{e(result.get('device_source', ''))}"
                f"</span></td><td>{_num(host_q)} <span class=\"src\">"
                f"{e(result.get('host_source', ''))}</span></td>"
                f"<td>{result['identical_share']:.1%}</td><td>{_num(result['max_abs_diff_raw'])}</td>"
                f"<td>{result['n_windows']}</td></tr>"
            )
    return ("<h3>The front on the devices (test windows)</h3><p>Quality computed from each "
            "device's own outputs, next to the host's int8 reference (LiteRT), and how often "
            "the two int8 outputs are identical.</p><table><tr><th>architecture</th>"
            "<th>device</th><th>device quality</th><th>host quality</th><th>identical "
            "outputs</th><th>max abs diff (int8 steps)</th><th>windows</th></tr>"
            + "".join(rows) + "</table>")


def _num(value: Any) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))
