"""Real MIT-BIH loading, presets, window labelling, splits and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.data import (
    PRESETS,
    EcgDatasetConfig,
    EcgRecord,
    custom_scheme,
    dechazal_split,
    load_ecg_dataset,
    load_record,
    make_windows,
    patient_split,
    random_split,
)
from host.data import dataset as dataset_mod
from host.data.splits import record_groups
from host.errors import ConfigError, DataError

SMALL = ("100", "101", "103", "106", "119", "201", "202", "203", "207", "208", "213", "217")


def _cfg(tmp_path: Path, **kw: object) -> EcgDatasetConfig:
    base: dict[str, object] = dict(
        records=SMALL, max_windows_per_record=200, cache_dir=str(tmp_path)
    )
    base.update(kw)
    return EcgDatasetConfig(**base)  # type: ignore[arg-type]


def test_load_record_reads_mlii_and_annotations(data_dir: Path) -> None:
    rec = load_record("100")
    assert rec.fs == 360.0
    assert rec.lead == "MLII"
    assert rec.signal.shape == (650000,)
    assert rec.signal.dtype == np.float32
    beats = [s for s in rec.ann_symbols if s == "N"]
    assert len(beats) == 2239  # MIT-BIH directory: 2239 normal beats in record 100
    assert rec.rhythm[-1] == "(N"


def test_lead_by_name_handles_swapped_and_missing_leads(data_dir: Path) -> None:
    assert load_record("114", lead="MLII").lead == "MLII"  # lead 1 in record 114
    assert load_record("114", lead=0).lead == "V5"
    with pytest.raises(DataError, match="102 has no lead 'MLII'.*V5, V2"):
        load_record("102", lead="MLII")


def test_missing_record_and_folder_are_clear_errors(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="record '110'"):
        load_record("110")
    with pytest.raises(DataError, match="does not exist"):
        load_ecg_dataset(EcgDatasetConfig(data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match="records: 121x"):
        load_ecg_dataset(_cfg(tmp_path, records=("100", "121x")))


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="preset: unknown preset .aami6."):
        EcgDatasetConfig(preset="aami6")
    with pytest.raises(ConfigError, match="split"):
        EcgDatasetConfig(split="by-day")
    with pytest.raises(ConfigError, match="window"):
        EcgDatasetConfig(window=4)
    with pytest.raises(ConfigError, match="unknown beat code 'Z'"):
        EcgDatasetConfig(preset="custom", custom={"normal": "N", "odd": "Z"})


def _synthetic(
    symbols: list[str], samples: list[int], rhythm: list[str] | None = None
) -> EcgRecord:
    return EcgRecord(
        name="syn",
        database="mitdb",
        signal=np.sin(np.arange(2048, dtype=np.float32)),
        fs=360.0,
        lead="MLII",
        ann_samples=np.array(samples, dtype=np.int64),
        ann_symbols=tuple(symbols),
        rhythm=np.array(rhythm or [""] * len(symbols), dtype=object),
    )


def test_window_label_is_highest_priority_class_inside() -> None:
    # windows [0,256) N N; [256,512) N V; [512,768) nothing; [768,1024) A F; [1024,1280) '+' only
    rec = _synthetic(["N", "N", "N", "V", "A", "F", "+"], [10, 200, 300, 400, 800, 900, 1100])
    x, y = make_windows(rec, PRESETS["aami5"], window=256)
    names = [PRESETS["aami5"].classes[i] for i in y]
    assert names == ["N", "V", "F"]  # empty and non-beat-only windows are dropped
    assert x.shape == (3, 256)
    assert np.allclose(x.mean(axis=1), 0, atol=1e-4) and np.allclose(x.std(axis=1), 1, atol=1e-2)
    _, y2 = make_windows(rec, PRESETS["normal-vs-anomalous"], window=256)
    assert list(y2) == [0, 1, 1]


def test_rhythm_windows_use_rhythm_at_centre() -> None:
    rec = _synthetic(["+", "+", "+"], [0, 600, 1100], ["(N", "(VT", "(VFL"])
    _, y = make_windows(rec, PRESETS["ventricular"], window=256)
    names = [PRESETS["ventricular"].classes[i] for i in y]
    # centres 128, 384, 640, 896, 1152, ...: N, N, VT, VT, VFL...
    assert names[:5] == ["normal", "normal", "VT", "VT", "VFL"]


def test_custom_scheme_keeps_a_condition_apart() -> None:
    s = custom_scheme({"normal": "N", "lbbb": "L", "other": ["R", "V", "A"]})
    assert s.classes == ("normal", "lbbb", "other")
    assert s.priority == ("other", "lbbb", "normal")
    with pytest.raises(ConfigError, match="'V' is in both"):
        custom_scheme({"a": "NV", "b": "V"})


def test_class_without_examples_is_named(data_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path, records=("100", "101"), preset="custom", custom={"normal": "N", "paced": "/"}
    )
    with pytest.raises(DataError, match="class 'paced'"):
        load_ecg_dataset(cfg)


def test_patient_split_keeps_patients_apart(data_dir: Path, tmp_path: Path) -> None:
    ds = load_ecg_dataset(_cfg(tmp_path, preset="aami5"))
    tr, va, te = (set(ds.records[k]) for k in ("train", "val", "test"))
    assert not (tr & te) and not (tr & va) and not (va & te)
    assert {"201", "202"} <= tr or {"201", "202"} <= va or {"201", "202"} <= te
    assert ds.x_train.shape[1:] == (256, 1) and ds.x_train.dtype == np.float32
    assert "patient-wise" in ds.split_description
    assert len(ds.y_train) > len(ds.y_test) > 0
    for i, name in enumerate(ds.class_names):
        assert (ds.y_train == i).any(), name  # every class reaches training


def test_split_functions() -> None:
    recs = [str(r) for r in range(100, 120)] + ["201", "202"]
    groups = record_groups(recs)
    assert ("201", "202") in groups
    classes = {r: {0} for r in recs}
    classes["105"] = {0, 1}
    classes["110"] = {0, 1}
    tr, va, te = patient_split(recs, classes, seed=3)
    assert sorted(tr + va + te) == sorted(recs)
    assert ("105" in tr or "110" in tr) and ("105" in te or "110" in te)
    tr2, _, te2 = dechazal_split(["101", "106", "201", "202", "100", "103"], seed=0)
    assert "202" not in te2 and set(te2) == {"100", "103"}
    y = np.array([0] * 700 + [1] * 300)
    a, b, c = random_split(y, seed=1)
    assert len(a) == 700 and len(b) == 100 and len(c) == 200
    assert len(set(a) | set(b) | set(c)) == 1000
    assert (y[c] == 1).sum() == 60  # stratified


def test_random_and_dechazal_datasets(data_dir: Path, tmp_path: Path) -> None:
    ds = load_ecg_dataset(_cfg(tmp_path, split="random"))
    assert ds.split_description.startswith("random 70/10/20")
    n = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert abs(len(ds.y_test) / n - 0.2) < 0.02
    dc = load_ecg_dataset(
        _cfg(tmp_path, split="dechazal", records=("101", "106", "108", "100", "103", "111"))
    )
    assert set(dc.records["test"]) == {"100", "103", "111"}


def test_cache_is_keyed_by_config(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, records=("100", "119", "203", "208", "213"), max_windows_per_record=50)
    first = load_ecg_dataset(cfg)
    assert list(tmp_path.glob(f"{first.config_hash}.npz"))

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("cache miss: records were read again")

    monkeypatch.setattr(dataset_mod, "load_record", boom)
    again = load_ecg_dataset(cfg)
    assert again.config_hash == first.config_hash
    assert np.array_equal(again.x_test, first.x_test)
    with pytest.raises(AssertionError, match="cache miss"):
        load_ecg_dataset(_cfg(tmp_path, records=cfg.records, max_windows_per_record=50, window=128))
