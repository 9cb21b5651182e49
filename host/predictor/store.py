"""Per-device predictors of a runs directory: where they live and how the store refits them.

A device's predictor lives at RUNS/predictors/<device>.json (the search saves it there
after each run and loads it at the next). `from_store` rebuilds one from the run store: every
Measure result of the device whose int8 model file is still on disk. The store keeps no
per-operator profiles, so those come from the saved predictor, which is merged in first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError
from host.predictor.model import LatencyPredictor

FOLDER = "predictors"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def predictor_path(runs_dir: str | Path, device: str) -> Path:
    """RUNS/predictors/<device>.json (characters unsafe in a file name become '_')."""
    return Path(runs_dir) / FOLDER / f"{_UNSAFE.sub('_', device)}.json"


def store_devices(store: Any) -> dict[str, int]:
    """Device name -> number of Measure results in the store."""
    rows = store._query(
        "SELECT device, COUNT(*) FROM measurements WHERE settings_hash NOT LIKE 'validate:%'"
        " GROUP BY device ORDER BY device"
    )
    return {str(r[0]): int(r[1]) for r in rows}


def store_measurements(store: Any, device: str) -> list[dict[str, Any]]:
    """The device's Measure results with their model files: sha256, path, p50_us, runtime."""
    rows = store._query(
        "SELECT m.sha256, m.runtime, m.result_json, m.created, d.path, d.kind"
        " FROM measurements m LEFT JOIN models d ON d.sha256 = m.sha256"
        " WHERE m.device = ? AND m.settings_hash NOT LIKE 'validate:%' ORDER BY m.created",
        (device,),
    )
    out = []
    for r in rows:
        try:
            result = json.loads(r["result_json"])
        except json.JSONDecodeError:
            continue
        p50 = (result.get("latency") or {}).get("p50_us")
        if not p50:
            continue
        out.append({"sha256": r["sha256"], "runtime": r["runtime"], "p50_us": float(p50),
                    "path": r["path"], "kind": r["kind"]})
    return out


def from_store(
    store: Any, device: str, base: LatencyPredictor | None = None
) -> tuple[LatencyPredictor, dict[str, int]]:
    """The device's predictor refitted on the store's measurements (plus `base`'s).

    Returns it with counts: used, model files missing, not a .tflite model.
    """
    known = store_devices(store)
    if device not in known:
        names = ", ".join(known) or "none"
        raise ConfigError(f"the run store has no measurements on device {device!r}; "
                          f"devices it knows: {names}")
    rows = store_measurements(store, device)
    pred = LatencyPredictor(device)
    if base is not None:
        pred.merge(base)
    counts = {"used": 0, "missing_file": 0, "not_tflite": 0}
    for row in rows:
        if row["path"] is None or not Path(row["path"]).is_file():
            counts["missing_file"] += 1
            continue
        if row["kind"] == "keras" or not str(row["path"]).endswith(".tflite"):
            counts["not_tflite"] += 1
            continue
        data = Path(row["path"]).read_bytes()
        already = pred.measured(data)
        if row["p50_us"] not in already:
            pred.observe_measure(data, row["p50_us"], runtime=row["runtime"])
        counts["used"] += 1
    if not pred.networks:
        raise ConfigError(
            f"no usable measurements on {device!r} yet: {len(rows)} in the store, "
            f"{counts['missing_file']} of their model files missing"
        )
    pred.fit()
    return pred, counts


__all__ = ["FOLDER", "from_store", "predictor_path", "store_devices", "store_measurements"]
