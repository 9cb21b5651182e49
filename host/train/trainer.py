"""Train one network on an ECG dataset with tf-keras (Adam, early stopping, class weights)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from host.data.dataset import EcgDataset
from host.errors import ConfigError
from host.train.metrics import classification_metrics
from host.train.tfenv import import_keras


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Validated on construction; errors name the bad key.

    `class_weights`: None (plain loss) or "balanced" (weights n / (k * n_c), as
    scikit-learn's). `patience`: epochs without `val_loss` improvement before stopping
    (None disables early stopping). `restore_best`: keep the weights of the best epoch.
    `clipnorm`: Adam clips each gradient to this L2 norm (None: no clipping). Clipping is
    the usual guard for LSTMs, whose gradients through long sequences can explode: without
    it, the same BioNet trained twice with two seeds ended 0.44 and 0.58 in validation F1,
    with it 0.83 and 0.78 (docs/decisions.md, "Tabular benchmark").
    `verbose`: the Keras fit verbosity (0 silent, 2 one line per epoch).
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0
    patience: int | None = 3
    min_delta: float = 0.0
    restore_best: bool = True
    class_weights: str | None = None
    dropout: float = 0.2
    seed: int = 0
    verbose: int = 0
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs: must be a positive integer, not {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size: must be a positive integer, not {self.batch_size!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: must be positive, not {self.learning_rate!r}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"clipnorm: must be positive or None, not {self.clipnorm!r}")
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"patience: must be >= 0 or None, not {self.patience!r}")
        if self.class_weights not in (None, "balanced"):
            raise ConfigError(
                f"class_weights: must be None or 'balanced', not {self.class_weights!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), not {self.dropout!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained model and its quality on the validation and test sides."""

    model: Any
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any]
    history: dict[str, list[float]]
    train_seconds: float
    total_seconds: float
    epochs_run: int
    arch: Any = None
    split_description: str = ""
    config: TrainConfig = field(default_factory=TrainConfig)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-able summary (no model)."""
        return {
            "arch": self.arch.to_json() if hasattr(self.arch, "to_json") else self.arch,
            "split": self.split_description,
            "train_seconds": self.train_seconds,
            "total_seconds": self.total_seconds,
            "epochs_run": self.epochs_run,
            "val": self.val_metrics,
            "test": self.test_metrics,
            "history": self.history,
            "train_config": self.config.to_json(),
        }


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Return n / (k * n_c) per class present (absent classes get 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    k = int((counts > 0).sum())
    return {c: (len(y) / (k * counts[c]) if counts[c] else 0.0) for c in range(n_classes)}


def predict_classes(model: Any, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Return argmax predictions of a Keras model."""
    if len(x) == 0:
        return np.zeros(0, np.int64)
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(probs).argmax(axis=-1).astype(np.int64)


def compile_model(model: Any, learning_rate: float, clipnorm: float | None = None) -> None:
    """Compile with Adam, gradients clipped to `clipnorm`, and cross-entropy."""
    keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def train_model(
    arch_or_model: Any, dataset: EcgDataset, config: TrainConfig | None = None
) -> TrainResult:
    """Train an architecture (built with its space's builder) or a Keras model.

    `arch_or_model` is a `BioNetArch`, a bionet key such as "bionet-b2-x1-l16", or any
    uncompiled/compiled tf-keras model whose input is (window, channels) and whose output is
    a softmax over `dataset.class_names`. Returns the trained model with validation and
    test metrics (see `host.train.metrics`), the history, and the time spent in `fit`.
    """
    cfg = config or TrainConfig()
    t_total = time.perf_counter()
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    arch = None
    if isinstance(arch_or_model, keras.Model):
        model = arch_or_model
    else:
        from host.spaces.bionet import arch_from_any, build_keras_model

        arch = arch_from_any(arch_or_model)
        model = build_keras_model(
            arch,
            dataset.window,
            int(dataset.x_train.shape[2]),
            dataset.n_classes,
            dropout=cfg.dropout,
            seed=cfg.seed,
        )
    if model.output_shape[-1] != dataset.n_classes:
        raise ConfigError(
            f"model: outputs {model.output_shape[-1]} classes, dataset has {dataset.n_classes}"
        )
    if not getattr(model, "optimizer", None) or not model._is_compiled:
        compile_model(model, cfg.learning_rate, cfg.clipnorm)
    callbacks = []
    has_val = len(dataset.y_val) > 0
    if cfg.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if has_val else "loss",
                patience=cfg.patience,
                min_delta=cfg.min_delta,
                restore_best_weights=cfg.restore_best,
            )
        )
    weights = (
        balanced_class_weights(dataset.y_train, dataset.n_classes)
        if cfg.class_weights == "balanced"
        else None
    )
    t0 = time.perf_counter()
    hist = model.fit(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val) if has_val else None,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        class_weight=weights,
        callbacks=callbacks,
        shuffle=True,
        verbose=cfg.verbose,
    )
    train_seconds = time.perf_counter() - t0
    names = dataset.class_names
    val = classification_metrics(
        dataset.y_val, predict_classes(model, dataset.x_val, cfg.eval_batch_size), names
    )
    test = classification_metrics(
        dataset.y_test, predict_classes(model, dataset.x_test, cfg.eval_batch_size), names
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return TrainResult(
        model=model,
        val_metrics=val,
        test_metrics=test,
        history=history,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - t_total,
        epochs_run=len(history.get("loss", [])),
        arch=arch,
        split_description=dataset.split_description,
        config=cfg,
    )

