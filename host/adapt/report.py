"""What `hilnas adapt` writes: the adapted model, the replacements, the front, a plot.

- `adapted.keras`, `adapted-int8.tflite` (its metadata says what was adapted), and
  `original-int8.tflite`, the model as it came in, exported the same way;
- `adapt.json`: every step (which operator Algorithm 1 picked and on what profile, the
  equation before and after, measured latency, quality and parameters before and after),
  every evaluated candidate (with the reason of any failure), the operators that have no
  graph and why, and the Pareto front of validation quality vs measured latency;
- `adapt.md`: the same steps as a table a person reads;
- `front.png`: quality vs latency of every measured candidate, the front highlighted.

Latency figures carry their source (`measured` on a real runtime, `estimated` from the
emulated microcontroller's cycle model), quality its side (validation for every choice,
the run's test split once at the end).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from host.adapt.search import AdaptResult


def test_quality(result: AdaptResult) -> dict[str, Any]:
    """Quality of the original and the adapted int8 models on the test side, on the device."""
    from host.fleet.validation import validate_on_device

    a = result.adapter
    out: dict[str, Any] = {"side": "test (the run's held-out subjects), device outputs"}
    for name, blob in (("original", result.base.model_bytes),
                       ("adapted", result.final.model_bytes)):
        v = validate_on_device(a.device, blob, a.data.inputs("test"), a.data.y_test, a.task,
                               reference=False)
        out[name] = {k: v.device_metrics[k] for k in v.device_metrics
                     if isinstance(v.device_metrics[k], (int, float))}
        out["source"] = v.device_source
    return out


def write_outputs(result: AdaptResult, out: Path, *, extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Write the files of the module docstring into `out`; the JSON summary."""
    from host.export.flatbuf import read_metadata
    from host.export.tflite import add_metadata

    a = result.adapter
    out.mkdir(parents=True, exist_ok=True)
    summary = {**result.to_json(), **(extra or {})}
    model, _ = a.chain.build(a.keras)
    model.save(str(out / "adapted.keras"), save_format="keras_v3")
    (out / "original-int8.tflite").write_bytes(result.base.model_bytes)
    meta = {**read_metadata(result.final.model_bytes), "adaptation": {
        "speedup": summary["speedup"], "device": summary.get("device"),
        "steps": [{"operator": s["operator"], "accepted": s["accepted"],
                   "equation": (s["after"] or {}).get("equation")} for s in summary["steps"]],
    }}
    final = add_metadata(result.final.model_bytes, meta)
    (out / "adapted-int8.tflite").write_bytes(final)
    (out / "adapt.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "adapt.md").write_text(markdown(summary))
    plot_front(summary, out / "front.png")
    return summary


def markdown(summary: dict[str, Any]) -> str:
    q, unit = summary["quality_metric"], summary["quality_unit"]
    base, final = summary["base"], summary["final"]
    lines = [
        "# Operator adaptation (Grassroots Operator Search)", "",
        f"Device: {summary.get('device', '?')}; latency {base['latency_source']}; "
        f"{q} on the {summary['quality_side']}.", "",
        f"- original: {base['latency_us']:.0f} µs, {q} {base['quality']:.3f} {unit}",
        f"- adapted: {final['latency_us']:.0f} µs, {q} {final['quality']:.3f} {unit}, "
        f"{final['model_params']} parameters, {final['model_bytes']} B int8",
        f"- speedup: {summary['speedup']:.2f}x", "",
        "| step | operator | picked by | before | after | latency µs | " + q + " | accepted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summary["steps"]:
        after = s["after"] or {}
        lat = (f"{s['before']['latency_us']:.0f} → {after['latency_us']:.0f}"
               if after.get("latency_us") else f"{s['before']['latency_us']:.0f}")
        qual = (f"{s['before']['quality']:.2f} → {after['quality']:.2f}"
                if after.get("quality") is not None else f"{s['before']['quality']:.2f}")
        lines.append(
            f"| {s['step']} | {', '.join(s['operator'])} | {s['selection']['criterion']} | "
            f"`{s['before']['equation']}` | `{after.get('equation', '-')}` | {lat} | {qual} | "
            f"{'yes' if s['accepted'] else 'no: ' + s['reason']} |")
    if summary.get("skipped"):
        lines += ["", "Operators without an instruction graph (adapted around):", ""]
        lines += [f"- {k}: {v}" for k, v in summary["skipped"].items()]
    failures = [e for e in summary["evaluations"] if e["failure"] and e["latency_us"] is None]
    if failures:
        lines += ["", f"Candidates without a fitness ({len(failures)}):", ""]
        lines += [f"- `{e['equation']}`: {e['failure']}" for e in failures]
    if "test" in summary:
        t = summary["test"]
        lines += ["", f"Test side ({t['side']}): original {q} {t['original'].get(q)}, "
                  f"adapted {t['adapted'].get(q)}"]
    return "\n".join(lines) + "\n"


def plot_front(summary: dict[str, Any], path: Path) -> None:
    """Validation quality vs measured latency of every candidate, the front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evs = summary["evaluations"]
    pts = [(e["latency_us"], e["quality"], e["feasible"]) for e in evs
           if e["latency_us"] is not None and e["quality"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        ok = [(x, y) for x, y, f in pts if f]
        bad = [(x, y) for x, y, f in pts if not f]
        if ok:
            ax.scatter([p[0] for p in ok], [p[1] for p in ok], s=18,
                       label="within the quality margin")
        if bad:
            ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=18, marker="x",
                       c="grey", label="over the margin")
        front = sorted((evs[i]["latency_us"], evs[i]["quality"]) for i in summary["front"])
        if front:
            ax.plot(*zip(*front, strict=True), "r-", lw=1, label="Pareto front")
    b = summary["base"]
    if b["latency_us"] != float("inf"):
        ax.scatter([b["latency_us"]], [b["quality"]], marker="*", s=120, c="k",
                   label="original")
    ax.set_xlabel(f"latency (µs, {b['latency_source']})")
    ax.set_ylabel(f"{summary['quality_metric']} ({summary['quality_unit']}, validation)")
    ax.set_title("GOS adaptation: candidates on the device")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
