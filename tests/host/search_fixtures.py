"""Helpers for search tests: a synthetic tabular benchmark and small configurations.

The synthetic table is labelled as such: its quality is a smooth function of the network's
size plus seeded noise, so strategies have a real trade-off to find. It stands in for the
shipped table (benchmarks/tabular/) only to test the search machinery quickly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from host.hw.costs import analytic_costs
from host.spaces import get_space


def synthetic_table(path: Path, seed: int = 0) -> Path:
    space = get_space("bionet")
    rng = np.random.default_rng(seed)
    rows = []
    for arch in space.architectures():
        c = analytic_costs(arch, 256, 2)
        quality = 0.55 + 0.35 * (1 - math.exp(-c.params / 60_000)) + rng.normal(0, 0.02)
        rows.append({
            "arch": arch.key(),
            "val": {"f1_macro": quality, "accuracy": quality + 0.05},
            "test": {"f1_macro": quality - 0.01, "accuracy": quality + 0.04},
            "latency_p50_us": 50 + c.macs / 2e4,
            "latency_source": "synthetic (test fixture)",
            "train_seconds": 1.0,
        })
    path.write_text(json.dumps({"meta": {"synthetic": True}, "rows": rows}))
    return path


#: [data] of the smallest real search a compression test runs: 4 records, 40 windows each of
#: 128 samples, a random split (a minute or two on 2 cores with compression).
TINY_ECG_DATA = {"records": ["100", "101", "106", "119"], "max_windows_per_record": 40,
                 "window": 128, "split": "random"}


def config_doc(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "run": {"name": "t", "seed": 0, "out_dir": str(tmp_path / "runs")},
        "data": {"preset": "normal-vs-anomalous"},
        "strategy": {"name": "nsga2", "population": 8, "generations": 3},
        "objectives": [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc
