"""Data-aware runs: every explored network by its input's granularity.

Quality against each hardware objective, each point coloured by its sample rate and
marked by its representation, so it can be read off which granularities the front holds
(Data Aware NAS's argument: the fittest systems sample coarser than the recordings). The
data-aware and the fixed-data fronts on one plot come from `hilnas report RUN --compare
FIXED_RUN` (host/report/__init__.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = {"raw": "s", "spectrogram": "^", "mel": "o", "mfcc": "D"}


def _granularity(arch_key: str) -> tuple[int, str] | None:
    from host.errors import ConfigError
    from host.spaces.data_aware import DataAwareArch

    try:
        arch = DataAwareArch.from_key(arch_key)
    except ConfigError:
        return None
    return arch.sample_rate, arch.representation


def plots(run_dir: Path, evaluations: list[dict[str, Any]], quality: str,
          axes: list[tuple[str, str]], run_id: str) -> list[tuple[str, str]]:
    """One PNG per (label, source) in `axes`; [] when the run is not data-aware."""
    points = []
    for ev in evaluations:
        g = _granularity(ev.get("arch_key") or "")
        q = (ev.get("objectives") or {}).get(quality)
        if g is not None and q is not None and ev.get("violation") == 0:
            points.append((g, float(q), ev["objectives"]))
    if not points:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    rates = sorted({p[0][0] for p in points})
    norm = LogNorm(vmin=min(rates), vmax=max(rates) * (1.0001 if len(rates) == 1 else 1))
    out = []
    for label, source in axes:
        pts = [(p[0], p[1], p[2].get(label)) for p in points if p[2].get(label) is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6.8, 4.6), dpi=110)
        scatter = None
        for rep, marker in MARKERS.items():
            sel = [p for p in pts if p[0][1] == rep]
            if not sel:
                continue
            scatter = ax.scatter([float(p[2]) for p in sel], [p[1] for p in sel],
                                 c=[p[0][0] for p in sel], cmap="viridis", norm=norm,
                                 marker=marker, s=30, alpha=0.8, edgecolors="black",
                                 linewidths=0.3, label=f"{rep} ({len(sel)})")
        if scatter is not None:
            bar = fig.colorbar(scatter, ax=ax, label="sample rate (Hz)", ticks=rates)
            bar.ax.minorticks_off()
            bar.ax.set_yticklabels([f"{r:g}" for r in rates])
        xs = [float(p[2]) for p in pts]
        if min(xs) > 0 and max(xs) / min(xs) > 10:  # log only where it spreads the points
            ax.set_xscale("log")
        ax.set_xlabel(f"{label} [{source}]")
        ax.set_ylabel(f"{quality} (validation)")
        ax.set_title(f"{run_id}: {quality} vs {label} by granularity", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="representation", title_fontsize=8)
        fig.tight_layout()
        name = f"granularity_{label}.png".replace("@", "_at_").replace("/", "_")
        fig.savefig(run_dir / name)
        plt.close(fig)
        out.append((name, f"Quality against {label} ({source}), coloured by sample rate, "
                    "marked by representation"))
    return out
