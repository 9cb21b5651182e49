"""Training with tf-keras on real windows, and the quality metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.data import EcgDatasetConfig, load_ecg_dataset
from host.errors import ConfigError
from host.spaces import BioNetArch
from host.train import TrainConfig, balanced_class_weights, classification_metrics, train_model


def test_metrics_by_hand() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 0, 2])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1a = 2 * (2 / 3) * (2 / 3) / (4 / 3)
    assert m["f1_macro"] == pytest.approx((f1a + 0.5 + 1.0) / 3)
    # a class never predicted has precision 0, not NaN
    m2 = classification_metrics(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert m2["per_class"]["b"]["precision"] == 0.0


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="class_weights"):
        TrainConfig(class_weights="inverse")
    with pytest.raises(ConfigError, match="clipnorm: must be positive or None, not -1"):
        TrainConfig(clipnorm=-1)
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == 0.0


def test_train_small_network_on_real_windows(data_dir: Path, tmp_path: Path) -> None:
    cfg = EcgDatasetConfig(
        preset="normal-vs-anomalous",
        records=("100", "106", "119", "203", "208", "213", "201", "202"),
        max_windows_per_record=120,
        window=128,
        cache_dir=str(tmp_path),
    )
    ds = load_ecg_dataset(cfg)
    res = train_model(BioNetArch(1, 1, 4), ds, TrainConfig(epochs=3, batch_size=32, seed=1))
    assert res.train_seconds > 0 and 1 <= res.epochs_run <= 3
    assert set(res.history) >= {"loss", "val_loss"}
    for m in (res.val_metrics, res.test_metrics):
        assert 0.0 <= m["accuracy"] <= 1.0
        assert np.array(m["confusion_matrix"]).sum() == m["n"]
    assert res.test_metrics["n"] == len(ds.y_test)
    # better than the majority class on the training side after a few epochs
    assert res.history["loss"][-1] < res.history["loss"][0]
    summary = res.summary()
    assert summary["arch"]["key"] == "bionet-b1-x1-l16"
    assert "patient-wise" in summary["split"]


def test_gradients_are_clipped_as_configured() -> None:
    from host.search.config import TrainSection
    from host.train.tfenv import import_keras
    from host.train.trainer import compile_model

    keras = import_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_model(model, 1e-3, TrainConfig().clipnorm)
    assert model.optimizer.clipnorm == 1.0  # the default guards the LSTM
    compile_model(model, 1e-3, None)
    assert model.optimizer.clipnorm is None
    # In a search config, 0 turns clipping off (TOML has no null).
    assert TrainSection(clipnorm=0).train_config(0).clipnorm is None
