#!/usr/bin/env python3
"""Build the tabular benchmark of the bounded BioNetExplorer space.

Runs (or resumes) the exhaustive search of configs/tabular_bionet.toml: every architecture
is trained once on normal-vs-anomalous under the reduced budget written in that file,
exported to int8 and measured on the local device. Then writes one row per architecture
(validation and test quality, analytic costs, measured local latency with its source) to
benchmarks/tabular/bionet_nva.json. Interrupt it at will: a rerun continues where it
stopped (the run store keeps every finished training and measurement).

    HILNAS_DATA_DIR=../shared/data .venv/bin/python tools/build_tabular.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from host.search.config import load_config  # noqa: E402
from host.search.runner import STORE_NAME, run_search  # noqa: E402
from host.store.sqlite import RunStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "tabular_bionet.toml")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "tabular" / "bionet_nva.json"
    )
    parser.add_argument(
        "--dump-only",
        action="store_true",
        help="write the table from what the store holds now (a partial table while a build "
        "is still running); train nothing",
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    store_path = Path(cfg.run.out_dir) / STORE_NAME
    resume = None
    if store_path.exists():
        unfinished = [r for r in RunStore(store_path).runs() if r.status != "done"]
        resume = unfinished[-1].run_id if unfinished else None
    if args.dump_only:
        runs = RunStore(store_path).runs() if store_path.exists() else []
        if not runs:
            raise SystemExit(f"nothing to dump: no run in {store_path}")
        run_id, complete = runs[-1].run_id, runs[-1].status == "done"
    else:
        result = run_search(
            None if resume else cfg, resume=resume, out_dir=cfg.run.out_dir, report=False
        )
        run_id, complete = result.run_id, True
    store = RunStore(store_path)
    run_row = store.run(run_id)
    # Latency is measured on the build machine while the executor trains the next networks;
    # say so when those trainings take every core, so nobody reads it as a quiet figure.
    cores = os.cpu_count() or 1
    threads = cfg.executor.tf_threads or max(cores - 1, 1)
    loaded = cfg.executor.workers * threads >= cores
    rows = {}
    for ev in store.evaluations(run_id):
        if ev["arch_key"] is None or ev["train_key"] is None:
            continue
        training = store.training(ev["train_key"])
        if training is None:
            continue
        m = training["metrics"]
        model = store.model(ev["sha256"]) if ev["sha256"] else None
        row = {
            "arch": ev["arch_key"],
            "val": {k: v for k, v in m["val"].items() if not isinstance(v, (dict, list))},
            "test": {k: v for k, v in m["test"].items() if not isinstance(v, (dict, list))},
            "train_seconds": m.get("train_seconds"),
            "export_seconds": model["export_seconds"] if model else None,
            "model_bytes": model["bytes"] if model else None,
            "status": ev["status"],
        }
        latency = ev["objectives"].get("latency_p50_us@local")
        if latency is not None:
            row["latency_p50_us"] = latency
            row["latency_source"] = (
                f"measured on {platform.node() or 'the build machine'} "
                f"({platform.machine()}), LiteRT, 1 thread"
                + (f", while trainings used all {cores} cores" if loaded else "")
            )
        rows[ev["arch_key"]] = row
    doc = {
        "meta": {
            "space": "bionet (bounded: the reference network's parameter count)",
            "task": "normal-vs-anomalous",
            "config": str(args.config.relative_to(REPO)),
            "budget": cfg.to_json()["train"],
            "executor": cfg.to_json()["executor"],
            "data": cfg.to_json()["data"],
            "run": run_id,
            "complete": complete,
            "built": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            # From the run's first to its last write: the whole build, across resumes.
            "build_seconds": round(run_row.updated - run_row.created) if run_row else None,
        },
        "rows": sorted(rows.values(), key=lambda r: r["arch"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(rows)} architectures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
