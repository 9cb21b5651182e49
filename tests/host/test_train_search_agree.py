"""`hilnas train` and `hilnas search` train the same network identically.

Both call `host.train.train_candidate` with a `TrainConfig` whose defaults live in one place;
this runs both on the same data and settings and compares what they report.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_search_matrix import _toml  # type: ignore[import-not-found]

from host.cli import main
from host.search.config import load_config
from host.search.runner import STORE_NAME
from host.store.sqlite import RunStore

RECORDS = ["100", "106", "119", "208"]


def test_train_command_and_search_train_identically(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "train"
    argv = ["train", "--arch", "bionet-b0-x1-l16", "--records", ",".join(RECORDS),
            "--max-windows-per-record", "30", "--split", "random", "--sample-rate", "180",
            "--window", "64", "--epochs", "2", "--batch-size", "32", "--seed", "1",
            "--out", str(out), "--no-export"]
    assert main(argv) == 0
    trained = json.loads((out / "metrics.json").read_text())

    config = tmp_path / "search.toml"
    config.write_text(_toml({
        "run": {"name": "agree", "seed": 1, "out_dir": str(tmp_path / "runs")},
        "data": {"records": RECORDS, "max_windows_per_record": 30, "split": "random",
                 "sample_rate": 180, "window": 64},
        "space": {"name": "bionet", "max_blocks": 0, "max_lstm_cells": 16},
        "train": {"epochs": 2, "batch_size": 32},
        "strategy": {"name": "exhaustive", "population": 4},
        "budget": {"export_int8": False},
    }))
    cfg = load_config(config)
    from host.cli import build_parser
    from host.cli.train import train_config_from_args

    args = build_parser().parse_args(argv)
    assert train_config_from_args(args) == cfg.train  # one set of defaults
    assert main(["search", str(config), "--no-progress", "--no-report"]) == 0
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    (run,) = store.runs()
    (key,) = {e["train_key"] for e in store.evaluations(run.run_id) if e["train_key"]}
    searched = store.training(key)
    assert searched is not None
    assert searched["metrics"]["val"] == trained["val"]
    assert searched["metrics"]["test"] == trained["test"]
    assert searched["metrics"]["epochs_run"] == trained["epochs_run"]
