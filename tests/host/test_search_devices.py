"""A search over several devices at once: configs/multi_device.toml, with a tiny budget.

Every candidate is measured on the local LiteRT agent, the emulated Nano 33 BLE and the
hls-csim stand-in; each figure keeps its device's own source, the front records where each
model runs, and the report has one front per device. Also HALF's smoke configuration end to
end, with quality measured on the accelerator's bit-exact outputs.
"""

from __future__ import annotations

from pathlib import Path

from host.search.config import load_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

TINY = {
    "data.records": ["100", "106", "119", "208"],
    "data.max_windows_per_record": 40,
    "train.epochs": 1,
    "strategy.population": 2,
    "strategy.generations": 1,
    "budget.max_trainings": 2,
}


def test_every_candidate_is_measured_on_every_device(data_dir: Path, tmp_path: Path) -> None:
    cfg = load_config("configs/multi_device.toml", {**TINY, "run.out_dir": str(tmp_path)})
    result = run_search(cfg, progress=False)
    store = RunStore(tmp_path / STORE_NAME)
    measured = [e for e in store.evaluations(result.run_id) if e["stage"] == "measure"]
    assert measured
    for ev in measured:
        assert ev["runs_on"] == {"local": "ok", "nano33": "ok", "fpga": "ok"}, ev["detail"]
        sources = ev["figures"]["sources"]
        assert sources["latency_p50_us@local"] == "measured"
        assert sources["latency_p50_us@nano33"] == "estimated"
        assert sources["arena_bytes@nano33"] == "measured"  # TFLM's real allocation
        assert sources["energy_per_inference_uj@fpga"] == "estimated"
    report = (result.run_dir / "report.html").read_text()
    for device in ("local", "nano33", "fpga"):
        assert f"<h3>{device}:" in report  # a front per device
    assert "runs on" in report


def test_half_smoke_search_measures_quality_on_the_accelerator(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = load_config("configs/half_ecg_smoke.toml",
                      {**TINY, "run.out_dir": str(tmp_path), "strategy.population": 3})
    result = run_search(cfg, progress=False)
    store = RunStore(tmp_path / STORE_NAME)
    trained = [e for e in store.evaluations(result.run_id) if e["stage"] == "measure"]
    assert trained
    for ev in trained:
        sources = ev["figures"]["sources"]
        assert sources["detection_rate@fpga"] == "validated on fpga (device outputs)"
        assert sources["fpga_energy_uj_max_unroll"].startswith("estimated (HALF model, pynq-z1")
        assert ev["status"] in ("ok", "infeasible")
    assert "Winners by objective" in (result.run_dir / "report.html").read_text() or \
        len(result.front) < 2
    runs = {r.run_id: r for r in store.runs()}
    assert runs[result.run_id].trainings == result.trainings
