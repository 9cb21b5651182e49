"""Training with tf-keras on real windows, and the quality metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.data import EcgDatasetConfig, load_ecg_dataset
from host.errors import ConfigError
from host.spaces import BioNetArch
from host.spaces.base import get_space
from host.tasks.ecg import EcgClassification
from host.train import (
    TrainConfig,
    balanced_class_weights,
    class_weights_of,
    classification_metrics,
    detection_rates,
    train_candidate,
    train_model,
)


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
    # Detection: every class but the first counts; here 2 of 3 anomalous windows are caught
    # (the b called a is missed) and 1 of 3 normal windows raises a false alarm.
    assert m["detection_rate"] == pytest.approx(2 / 3)
    assert m["false_alarm_rate"] == pytest.approx(1 / 3)


def test_detection_rates_by_hand() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0])
    det, fa = detection_rates(y, p)
    assert det == pytest.approx(0.75) and fa == pytest.approx(0.4)
    det, fa = detection_rates(np.array([0, 2, 1]), np.array([0, 1, 2]), positive=[1, 2])
    assert det == 1.0 and fa == 0.0
    assert np.isnan(detection_rates(np.array([0]), np.array([0]))[0])


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="class_weights"):
        TrainConfig(class_weights="inverse")
    with pytest.raises(ConfigError, match="clipnorm: must be positive, 0 or None, not -1"):
        TrainConfig(clipnorm=-1)
    assert TrainConfig(clipnorm=0).clipnorm is None  # TOML has no null: 0 turns it off
    # verbosity does not make another training
    assert TrainConfig(verbose=2) == TrainConfig(verbose=0)
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == 0.0
    # Square roots, scaled so the mean weight over the windows stays 1.
    y = np.array([0] * 90 + [1] * 10)
    sq = balanced_class_weights(y, 2, power=0.5)
    assert sq[1] / sq[0] == pytest.approx(3.0)
    assert (90 * sq[0] + 10 * sq[1]) / 100 == pytest.approx(1.0)
    assert TrainConfig(class_weights="balanced_sqrt").class_weights == "balanced_sqrt"
    # Normal against the rest: the anomalous classes share half the loss in their own
    # proportions (here 30 of 40 anomalous windows are class 1).
    y4 = np.array([0] * 60 + [1] * 30 + [2] * 10)
    w4 = class_weights_of("balanced_binary", y4, 4)
    assert 60 * w4[0] == pytest.approx(40 * w4[1]) and w4[1] == w4[2] and w4[3] == 0.0
    assert class_weights_of("balanced_sqrt", y, 2) == sq
    with pytest.raises(ConfigError, match="balanced_sqrt"):
        TrainConfig(class_weights="sqrt")


def test_train_small_network_on_real_windows(data_dir: Path, tmp_path: Path) -> None:
    cfg = EcgDatasetConfig(
        preset="normal-vs-anomalous",
        records=("100", "106", "119", "203", "208", "213", "201", "202"),
        max_windows_per_record=120,
        window=128,
        cache_dir=str(tmp_path),
    )
    ds = load_ecg_dataset(cfg)
    task = EcgClassification(cfg)
    space = get_space("bionet", task.input_spec())
    res = train_candidate(
        space, BioNetArch(1, 1, 4), task, ds, TrainConfig(epochs=3, batch_size=32, seed=1)
    )
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


def test_gradients_are_clipped_as_configured(data_dir: Path, tmp_path: Path) -> None:
    from host.train.tfenv import import_keras

    keras = import_keras()
    cfg = EcgDatasetConfig(records=("100", "106"), max_windows_per_record=20, window=32,
                           split="random", cache_dir=str(tmp_path))
    ds = load_ecg_dataset(cfg)
    for clipnorm, expected in ((None, None), (1.0, 1.0)):
        model = keras.Sequential([keras.Input((32, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
        train_model(model, ds, TrainConfig(epochs=1, clipnorm=clipnorm, patience=None))
        assert model.optimizer.clipnorm == expected
    assert TrainConfig().clipnorm == 1.0  # the default guards the LSTM
