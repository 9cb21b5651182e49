"""Device-first fitness in a real search: candidates measured untrained before any training,
the latency predictor asked before every measurement and audited after it, and the front's
test windows run through the device's Validate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search_fixtures import config_doc  # type: ignore[import-not-found]

from host.cli import main
from host.search.config import parse_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

DATA = {"records": ["100", "106", "119", "208"], "max_windows_per_record": 30}
MEASURE = {"warmup_runs": 2, "min_runs": 10, "max_runs": 30, "time_budget_seconds": 1}


def _doc(tmp_path: Path, limit_us: float, **sections: Any) -> dict[str, Any]:
    return config_doc(
        tmp_path,
        data=DATA,
        space={"name": "bionet", "max_blocks": 2, "max_lstm_cells": 32},
        train={"epochs": 1, "patience": None},
        objectives=[{"metric": "f1_macro"}, {"metric": "latency_p50_us", "device": "local"}],
        constraints=[{"metric": "latency_p50_us", "device": "local", "max": limit_us}],
        devices=[{"name": "local", "address": "local"}],
        measure=MEASURE,
        **sections,
    )


def test_a_limit_no_network_meets_is_settled_without_a_single_training(
    data_dir: Path, tmp_path: Path
) -> None:
    """A 1 us limit: the first networks are measured untrained and rejected; once the
    predictor has learned from two, the rest are rejected on its prediction, unmeasured."""
    cfg = parse_config(_doc(
        tmp_path, 1.0, strategy={"name": "nsga2", "population": 6, "generations": 1},
        search={"predictor_min_networks": 2, "skip_margin": 0.25},
    ))
    assert cfg.measure_before_train  # on by default: a constraint names a device
    result = run_search(cfg, progress=False, report=False)
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    assert result.trainings == 0 and store.count_trainings() == 0
    summary = store.device_first_summary(result.run_id)
    assert summary["rejected_before_training"] >= 2
    assert summary["skipped_on_prediction"] >= 1
    assert summary["rejected_before_training"] + summary["skipped_on_prediction"] == \
        summary["proposed"]
    sources = set()
    for ev in store.evaluations(result.run_id):
        if ev["arch_key"]:
            assert (ev["stage"], ev["status"]) == ("probe", "infeasible"), ev
            sources.add(ev["figures"]["sources"]["latency_p50_us@local"])
    assert "measured (untrained)" in sources
    assert any(s.startswith("predicted (") for s in sources)
    skipped = [p for p in store.predictions(result.run_id) if p["measured_us"] is None]
    assert skipped and all(p["low_us"] > 1.25 for p in skipped)
    # The predictor is kept for the next run on this device.
    assert (tmp_path / "runs" / "predictors" / "local.json").exists()


def test_measured_first_trained_after_audited_and_validated_on_the_device(
    data_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    cfg = parse_config(_doc(
        tmp_path, 1e7, strategy={"name": "nsga2", "population": 3, "generations": 1},
        search={"predictor_min_networks": 1},
    ))
    result = run_search(cfg, progress=False)
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    measured = {e["arch_key"]: e for e in store.evaluations(result.run_id)
                if e["stage"] == "measure"}
    assert measured and result.trainings == len(measured)
    for ev in measured.values():
        values, sources = ev["figures"]["values"], ev["figures"]["sources"]
        assert sources["untrained:latency_p50_us@local"] == "measured (untrained)"
        assert sources["latency_p50_us@local"] == "measured"
        assert values["untrained:latency_p50_us@local"] > 0
    kinds = {r[0] for r in store._query("SELECT kind FROM models")}
    assert {"int8", "int8-untrained", "keras"} <= kinds
    # Every measurement after the first network was predicted first, then audited.
    audited = [p for p in store.predictions(result.run_id) if p["measured_us"]]
    assert audited and {p["stage"] for p in audited} <= {"probe", "measure"}
    assert all(p["low_us"] <= p["predicted_us"] <= p["high_us"] for p in audited)
    # The front on the device: LiteRT's outputs are the host's int8 reference, bit for bit.
    validations = store.front_validations(result.run_id)
    assert set(validations) == {e["arch"] for e in result.front}
    for per_device in validations.values():
        local = per_device["local"]
        assert local["ok"] and local["identical_share"] == 1.0 and local["max_abs_diff_raw"] == 0
        assert local["device_source"] == "validated on local (device outputs)"
        assert local["n_windows"] > 0
    assert main(["runs", "--out", str(tmp_path / "runs"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["rejected_before_training"] == 0 and row["skipped_on_prediction"] == 0
    assert row["predictor"]["local"]["audited"] == len(audited)
    assert row["device_host_agreement"]["local"]["identical_share"] == 1.0
    page = (result.run_dir / "report.html").read_text()
    assert "Device first" in page and "The front on the devices" in page
    assert (result.run_dir / "predicted_vs_measured.png").exists()
    assert (result.run_dir / "untrained_vs_trained.png").exists()
