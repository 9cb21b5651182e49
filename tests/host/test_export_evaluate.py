"""LiteRT quality of exported models on real windows, and metadata-driven configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.data import EcgDatasetConfig, load_ecg_dataset
from host.errors import ConfigError
from host.export.evaluate import config_from_metadata, evaluate_tflite
from host.export.tflite import convert_many
from host.spaces import BioNetArch, build_keras_model


def test_config_from_metadata_restores_windowing_and_custom_classes() -> None:
    meta = {
        "preset": "custom",
        "scheme": {
            "name": "custom",
            "source": "beat",
            "classes": ["normal", "lbbb"],
            "mapping": {"N": "normal", "L": "lbbb"},
            "priority": ["lbbb", "normal"],
        },
        "window": 128,
        "stride": 64,
        "lead": "MLII",
        "normalization": "minmax",
        "resample": None,
    }
    cfg = config_from_metadata(meta, records=("109",))
    assert cfg.window == 128 and cfg.stride == 64 and cfg.normalization == "minmax"
    assert cfg.scheme().classes == ("normal", "lbbb")
    assert cfg.records == ("109",)
    with pytest.raises(ConfigError, match="no hilnas metadata"):
        config_from_metadata({})


def test_evaluate_float_and_int8_on_real_records(data_dir: Path, tmp_path: Path) -> None:
    cfg = EcgDatasetConfig(
        records=("100", "119", "203", "208", "213", "201", "202"),
        window=64,
        max_windows_per_record=80,
        cache_dir=str(tmp_path),
    )
    ds = load_ecg_dataset(cfg)
    model = build_keras_model(BioNetArch(0, 1, 4), 64, 1, 2, batch_size=1, seed=0)
    models = convert_many(model, ["float32", "int8"], ds.x_train, metadata=ds.metadata())
    q_float = evaluate_tflite(models["float32"], ds, side="test")
    q_int8 = evaluate_tflite(models["int8"], ds, side="test", isolate=True)
    assert q_float["n"] == q_int8["n"] == len(ds.y_test)
    for q in (q_float, q_int8):
        assert set(q) >= {"accuracy", "balanced_accuracy", "f1_macro", "confusion_matrix"}
    assert q_int8["quantization"] == "int8"
    # untrained but identical weights: predictions mostly agree
    assert abs(q_float["accuracy"] - q_int8["accuracy"]) < 0.2
    # None: config and test records read from the metadata inside the model
    q_meta = evaluate_tflite(models["int8"], None)
    assert q_meta["data"] == "records " + ",".join(ds.records["test"])
    assert q_meta["n"] >= q_int8["n"]  # all windows, not the subsample
    assert np.isfinite(q_meta["accuracy"])
