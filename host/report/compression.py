"""The report's compression view (`[compress] mode = "front"` or "joint", docs/compression.md).

Per front member: storage against quality at every stage of BioNetExplorer's pipeline
(float -> [channels] -> pruned -> clustered -> int8 -> LUT) for the configuration kept (or,
when none was within the quality budget, the one that lost least), each figure with its
source; the grid that was tried (in the joint mode, the member's own point); one plot of
storage against quality per stage. Read from front.json's "compression" blocks; nothing is
shown when a run has none.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

STAGE_ORDER = ("float", "channels", "pruned", "clustered", "int8", "lut")
#: The file each stage's point on the plot stands for.
PRIMARY = {"float": "float32", "channels": "float32", "pruned": "float32",
           "clustered": "float32", "int8": "int8", "lut": "lut"}


def _members(front_doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["arch"], e["compression"]) for e in front_doc.get("front", [])
            if e.get("compression")]


def shown_point(block: dict[str, Any]) -> dict[str, Any] | None:
    """The configuration a member's view shows: the one kept, else the least loss."""
    if block.get("chosen"):
        return dict(block["chosen"])
    scored = [p for p in block.get("grid", []) if p.get("loss_pp") is not None]
    return min(scored, key=lambda p: p["loss_pp"]) if scored else None


def plots(run_dir: Path, front_doc: dict[str, Any], run_id: str) -> list[tuple[str, str]]:
    members = _members(front_doc)
    series = []
    for arch, block in members:
        point = shown_point(block)
        if point is None:
            continue
        pts = []
        for s in point["stages"]:
            b = (s.get("bytes") or {}).get(PRIMARY.get(s["stage"], ""))
            if b is not None and s.get("quality") is not None:
                pts.append((s["stage"], float(b["bytes"]), float(s["quality"])))
        if pts:
            channels = f"c={point['channels']:g}, " if point.get("channels") else ""
            series.append((f"{arch} ({channels}s={point['sparsity']:g}, k={point['clusters']})",
                           pts))
    if not series:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = members[0][1].get("metric", "quality")
    fig, ax = plt.subplots(figsize=(6.8, 4.6), dpi=110)
    for label, pts in series:
        xs = [p[1] for p in pts]
        ys = [p[2] for p in pts]
        ax.plot(xs, ys, marker="o", linewidth=1, alpha=0.8, label=label)
        for stage, x, y in pts:
            ax.annotate(stage, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("bytes of the stage's .tflite file (float32 up to clustered, then int8, LUT)")
    ax.set_ylabel(f"{metric} (validation)")
    ax.set_title(f"{run_id}: storage vs quality per compression stage", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "compression.png")
    plt.close(fig)
    return [("compression.png", "Storage against validation quality at each compression stage "
             "(float → [channels →] pruned → clustered → int8 → LUT) of each front member's "
             "configuration "
             "(file bytes)")]


def section(front_doc: dict[str, Any]) -> str:
    members = _members(front_doc)
    if not members:
        return ""
    e = html.escape
    first = members[0][1]
    scope = e(str(first.get("settings", {}).get("scope", "")))
    stages = (f"optional channel pruning, pruning ({scope} scope), k-means weight sharing, int8 "
              "post-training quantization and TFLite Micro LUT compression")
    if first.get("mode") == "joint":
        intro = (f"Compression searched with the architecture: {stages}, at each candidate's "
                 "own point (its compression genes), inside the candidate pipeline; the "
                 f"search scored each candidate by its compressed model. Loss is "
                 f"{e(first.get('loss_of', ''))}. ")
    else:
        intro = (f"BioNetExplorer's second stage on every front member: {stages}, over the "
                 "grid of sparsities and cluster counts. Kept per member: the smallest file "
                 f"an MCU runs whose {e(first.get('metric', ''))} loss is at most "
                 f"{first.get('max_quality_loss_pp')} pp; loss is "
                 f"{e(first.get('loss_of', ''))}. ")
    parts = [
        "<h2>Compression</h2>",
        f"<p>{intro}"
        "Bytes: <span class=\"src\">file</span> (a .tflite written and measured) or "
        "<span class=\"src src-estimated\">estimated</span> (CSR sparse storage: no runtime "
        "here loads it).</p>",
    ]
    for arch, block in members:
        parts.append(_member(arch, block))
    return "".join(parts)


def _loss(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:+.2f}"


def _bytes_cell(b: dict[str, Any], f32: int) -> str:
    e = html.escape
    src = b.get("source", "")
    kind = "src-estimated" if src == "estimated" else ""
    where = f" {e(b['file'])}" if b.get("file") else ""
    return (f"{b['bytes']:,} B ({f32 / b['bytes']:.2f}x) <span class=\"src {kind}\">"
            f"{e(src)}{where}</span>")


def _member(arch: str, block: dict[str, Any]) -> str:
    e = html.escape
    point = shown_point(block)
    head = f"<h3><code>{e(arch)}</code></h3>"
    if point is None:
        return head + f"<p>{e(block.get('why', 'no result'))}</p>"
    f32 = point["storage_float32_bytes"]["bytes"]
    kept = "kept" if block.get("chosen") else "not kept (least loss shown)"
    channels = (f"{point['channels']:g} of the channels removed, "
                if point.get("channels") else "")
    text = (f"<p>{channels.capitalize() if channels else ''}"
            f"{'sparsity' if channels else 'Sparsity'} {point['sparsity']:g}, "
            f"k = {point['clusters']}: {kept}. "
            f"{e(block.get('why', ''))}.</p>")
    rows = []
    for s in sorted(point["stages"], key=lambda s: STAGE_ORDER.index(s["stage"])
                    if s["stage"] in STAGE_ORDER else 99):
        cells = "<br>".join(f"{e(kind)}: {_bytes_cell(b, f32)}"
                            for kind, b in (s.get("bytes") or {}).items()) or "&ndash;"
        q = s.get("quality")
        loss = s.get("loss_pp")
        rows.append(
            f"<tr><td>{e(s['stage'])}</td><td>{cells}</td>"
            f"<td>{'&ndash;' if q is None else f'{q:.4f}'}</td>"
            f"<td>{_loss(loss)}</td>"
            f"<td><span class=\"src\">{e(s.get('quality_source', ''))}</span></td></tr>"
        )
    d = point["storage_deployed_bytes"]
    sparse = point["storage_sparse_bytes"]
    deployed = (
        f"<p>Deployed: MCU {_bytes_cell(d['mcu'], f32)} &ndash; {e(d['mcu'].get('why', ''))}; "
        f"LiteRT {_bytes_cell(d['linux'], f32)}; sparse {_bytes_cell(sparse, f32)}.</p>"
    )
    runs_on = point.get("runs_on") or {}
    if runs_on:
        deployed += "<p>On the run's devices: " + "; ".join(
            f"{e(dev)}: {e(r)}" for dev, r in sorted(runs_on.items())) + "</p>"
    grid = "".join(
        f"<tr><td>{p['sparsity']:g}</td><td>{p['clusters']}</td>"
        f"<td>{p['storage_deployed_bytes']['mcu']['bytes']:,} "
        f"({e(p['storage_deployed_bytes']['mcu']['file'])})</td>"
        f"<td>{p['storage_deployed_bytes']['linux']['bytes']:,}</td>"
        f"<td>{p['storage_sparse_bytes']['bytes']:,}</td>"
        f"<td>{_loss(p['loss_pp'])}</td>"
        f"<td>{e(p.get('lut', ''))}</td></tr>"
        for p in block.get("grid", [])
    )
    return (head + text
            + "<table><tr><th>stage</th><th>bytes (x float32, source)</th><th>quality</th>"
            "<th>loss (pp)</th><th>quality measured</th></tr>" + "".join(rows) + "</table>"
            + deployed
            + "<table><tr><th>sparsity</th><th>k</th><th>MCU bytes (file)</th>"
            "<th>LiteRT bytes</th><th>sparse bytes (estimated)</th><th>loss (pp)</th>"
            "<th>LUT</th></tr>" + grid + "</table>")
