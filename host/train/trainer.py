"""Train one network on a task's dataset with tf-keras (Adam, early stopping, class weights).

`train_candidate` is what both `hilnas train` and a search's training job call: the same
function with the same `TrainConfig` (one set of defaults), so a network trained by either
is the same network.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from host.errors import ConfigError
from host.train.augment import Augmentation
from host.train.tfenv import import_keras

if TYPE_CHECKING:
    from host.spaces.base import Space
    from host.tasks.base import Task, TaskData


#: grouped cross-validation multiplies every training by its folds: more is rarely worth it
MAX_CV_FOLDS = 10
#: restarts multiply every training too
MAX_RESTARTS = 10
#: restart r trains from seed + RESTART_SEED_STEP * r, far from the seeds a user runs by hand
RESTART_SEED_STEP = 1000


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Validated on construction; errors name the bad key.

    `class_weights`: None (plain loss), "balanced" (weights n / (k * n_c), as
    scikit-learn's), "balanced_sqrt" (their square roots, scaled to a mean of 1) or
    "balanced_binary" (the first class against all others together; `class_weights_of`);
    classification tasks only. `patience`: epochs without `val_loss` improvement before
    stopping (None disables early stopping). `restore_best`: keep the weights of the best
    epoch. `clipnorm`: Adam clips each gradient to this L2 norm (0 or None: no clipping).
    Clipping is the usual guard for LSTMs, whose gradients through long sequences can
    explode: without it, the same BioNet trained twice with two seeds ended 0.44 and 0.58 in
    validation F1, with it 0.83 and 0.78 (docs/decisions.md, "Tabular benchmark").
    `dropout`: the rate a space puts after its convolutions.
    `augment`: perturb training windows (host.train.augment.Augmentation: amplitude,
    baseline, noise, shift) or drop frames and bins of the features while training
    (time_mask, bin_mask), a table in TOML; None or all zero: off. Validation and test
    windows are never augmented.
    `aux_first_epochs`: for a two-input model (an ECG beat with its RR features), first fit
    the second input's branch alone for up to this many epochs (the space's `aux_branch`,
    with the same early stopping), then freeze it and train the rest of the network on
    what it leaves: the morphology learns a correction to the rhythm's verdict instead of
    learning to override it. 0 (default): one joint fit. With 5-fold grouped
    cross-validation over de Chazal's DS1 patients, a b0-l32 BioNet scored 0.84-0.86
    balanced accuracy (normal vs ectopic) trained jointly, 0.91 with the RR branch alone
    and 0.92-0.93 rhythm first (docs/decisions.md, issue 18).
    `cv_folds`: 0 (default) or 1: the quality figure is the validation side's; k >= 2:
    grouped cross-validation over the patients (speakers for FSDD) of the training and
    validation sides (`Splits.grouped_folds`): k trainings, each validating on other
    patients, and the quality figure is their mean (the folds are kept under "folds"); the
    network kept is the one trained on the configured split. The test side never trains
    or validates.
    `refit`: with `cv_folds` >= 2, train the kept network once more, from its initial
    weights' seed, on the training and validation patients together, for the epochs the
    configured split's early stopping chose (the RR branch's and the rest's); no early
    stopping, since no patient is left to stop it. Its quality figure is the
    cross-validation mean, which measures the procedure on held-out patients; the
    validation side trained, so it no longer measures this network (the `selection` says
    so). In DS1 cross-validation with the epoch chosen on patients outside the scored fold,
    refitting on a fold's every training patient raised normal-vs-anomalous balanced
    accuracy over the early-stopped network (docs/decisions.md, "Early stopping on the
    scored patients, a smaller space and a refit").
    `restarts`: train each network this many times, restart r from seed
    `seed + 1000 r`, and keep the one whose validation figure ranks first
    (`Task.restart_value`: the task's quality; tracked AAE for the pulse-rate task). A
    small network's training can settle on different solutions from one seed to the next
    (`ppg_spectral` held out on one TROIKA subject: 31 BPM from one seed, 6 from another),
    and only the validation side says which; the test side chooses nothing. With
    `cv_folds`, each fold restarts on its own validation patients, and a refit starts from
    the kept network's seed. `result.restarts` lists each seed and its figure.
    `verbose` (the Keras fit verbosity) and `eval_batch_size` do not change the trained
    network, so they are not part of what makes two trainings the same.
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0
    patience: int | None = 3
    min_delta: float = 0.0
    restore_best: bool = True
    class_weights: str | None = "balanced"
    dropout: float = 0.2
    augment: Augmentation | None = None
    aux_first_epochs: int = 0
    cv_folds: int = 0
    refit: bool = False
    restarts: int = 1
    seed: int = 0
    verbose: int = field(default=0, compare=False)
    eval_batch_size: int = field(default=512, compare=False)

    def build_options(self) -> Any:
        """The `BuildOptions` of a network this configuration trains (seed, dropout, masks)."""
        from host.spaces.base import BuildOptions

        masks = self.augment
        return BuildOptions(seed=self.seed, dropout=self.dropout,
                            time_mask=masks.time_mask if masks else 0.0,
                            bin_mask=masks.bin_mask if masks else 0.0)

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs: must be a positive integer, not {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size: must be a positive integer, not {self.batch_size!r}")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: must be positive, not {self.learning_rate!r}")
        if self.clipnorm == 0:
            object.__setattr__(self, "clipnorm", None)  # "0 turns clipping off"
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"clipnorm: must be positive, 0 or None, not {self.clipnorm!r}")
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"patience: must be >= 0 or None, not {self.patience!r}")
        if self.class_weights is not None and self.class_weights not in CLASS_WEIGHT_SCHEMES:
            raise ConfigError(
                f"class_weights: must be None or one of {list(CLASS_WEIGHT_SCHEMES)}, "
                f"not {self.class_weights!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), not {self.dropout!r}")
        if (isinstance(self.aux_first_epochs, bool) or not isinstance(self.aux_first_epochs, int)
                or self.aux_first_epochs < 0):
            raise ConfigError(
                f"aux_first_epochs: must be an integer >= 0, not {self.aux_first_epochs!r}"
            )
        if (isinstance(self.cv_folds, bool) or not isinstance(self.cv_folds, int)
                or not 0 <= self.cv_folds <= MAX_CV_FOLDS):
            raise ConfigError(
                f"cv_folds: must be an integer from 0 to {MAX_CV_FOLDS}, not {self.cv_folds!r}"
            )
        if not isinstance(self.refit, bool):
            raise ConfigError(f"refit: must be true or false, not {self.refit!r}")
        if self.refit and self.cv_folds < 2:
            raise ConfigError(
                "refit: needs cv_folds >= 2; a network trained on its validation patients "
                "has no held-out quality figure unless cross-validation gives one"
            )
        if (isinstance(self.restarts, bool) or not isinstance(self.restarts, int)
                or not 1 <= self.restarts <= MAX_RESTARTS):
            raise ConfigError(
                f"restarts: must be an integer from 1 to {MAX_RESTARTS}, not {self.restarts!r}"
            )
        augment = Augmentation.from_any(self.augment)
        object.__setattr__(self, "augment", augment if augment and augment.enabled else None)

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
    #: which validation side chose the epoch and scores the model (Splits.selection)
    selection: str = ""
    #: `TrainConfig.restarts` > 1: each restart's seed and validation figure, in order
    restarts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-able summary (no model)."""
        return {
            "arch": self.arch.to_json() if hasattr(self.arch, "to_json") else self.arch,
            "split": self.split_description,
            "selection": self.selection,
            "train_seconds": self.train_seconds,
            "total_seconds": self.total_seconds,
            "epochs_run": self.epochs_run,
            "val": self.val_metrics,
            "test": self.test_metrics,
            "history": self.history,
            "train_config": self.config.to_json(),
            **({"restarts": self.restarts} if self.restarts else {}),
        }


#: the `class_weights` schemes (TrainConfig), each a function of the training labels
CLASS_WEIGHT_SCHEMES = ("balanced", "balanced_sqrt", "balanced_binary")


def balanced_class_weights(
    y: np.ndarray, n_classes: int, power: float = 1.0
) -> dict[int, float]:
    """Return (n / (k * n_c)) ** power per class present (absent classes get 0).

    Scaled so the mean weight over the windows stays 1 (power 1 needs no scaling), so the
    loss keeps its size and the learning rate its meaning.
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    k = int((counts > 0).sum())
    raw = np.where(counts > 0, (len(y) / (k * np.maximum(counts, 1))) ** power, 0.0)
    scale = len(y) / float((raw * counts).sum()) if len(y) else 1.0
    return {c: float(raw[c] * scale) for c in range(n_classes)}


def class_weights_of(scheme: str, y: np.ndarray, n_classes: int) -> dict[int, float]:
    """The per-class loss weights of a `class_weights` scheme for training labels `y`.

    - "balanced": every class weighs as much as any other in the loss;
    - "balanced_sqrt": the square roots of those, scaled to a mean of 1;
    - "balanced_binary": the first class (normal) weighs as much as all the others
      together, which keep their natural proportions among themselves: the weighting of a
      normal-vs-anomalous detector, for a model that still names the anomalous class.
    """
    if scheme == "balanced":
        return balanced_class_weights(y, n_classes)
    if scheme == "balanced_sqrt":
        return balanced_class_weights(y, n_classes, power=0.5)
    if scheme == "balanced_binary":
        two = balanced_class_weights((np.asarray(y) > 0).astype(np.int64), 2)
        counts = np.bincount(y, minlength=n_classes)
        return {c: (two[0] if c == 0 else two[1]) if counts[c] else 0.0
                for c in range(n_classes)}
    raise ConfigError(f"class_weights: unknown {scheme!r}; choose {list(CLASS_WEIGHT_SCHEMES)}")


def predict(model: Any, x: np.ndarray | list[np.ndarray], batch_size: int = 512) -> np.ndarray:
    """Raw outputs of a Keras model (an empty array for no windows).

    `x`: the windows, or [windows, aux] for a model with a second input.
    """
    if len(x[0] if isinstance(x, list) else x) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def default_task(data: Any) -> Task:
    """The ECG classification task of a dataset built by host.data (its config)."""
    from host.tasks.ecg import EcgClassification

    return EcgClassification(data.config)


def check_space(space: Space[Any], config: TrainConfig) -> None:
    """ConfigError if `config` asks `space` for what its networks do not have."""
    if config.augment is not None and config.augment.masks_features and not space.feature_masks:
        raise ConfigError(
            f"augment.time_mask/bin_mask: space {space.name!r} computes no spectral feature "
            "map to mask (data_aware does); remove them or use augment's window options"
        )


def train_candidate(
    space: Space[Any], arch: Any, task: Task, data: TaskData, config: TrainConfig
) -> TrainResult:
    """Build `arch` of `space` with the task's head (seeded) and train it (`train_model`).

    With `config.cv_folds` >= 2 the network is trained once per fold of a grouped
    cross-validation and the validation metrics are the folds' mean (TrainConfig).
    """
    check_space(space, config)
    if config.cv_folds < 2:
        return _train_restarts(space, arch, task, data, config)
    folds = data.grouped_folds(config.cv_folds, config.seed)
    kept = _train_restarts(space, arch, task, data, config)
    results = [kept] + [_train_restarts(space, arch, task, fold, config) for fold in folds[1:]]
    kept.val_metrics = cross_validation_metrics(
        [r.val_metrics for r in results], [r.selection for r in results])
    kept.selection = (f"mean of {config.cv_folds}-fold grouped cross-validation over the "
                      f"{data.group_kind}s of training and validation; the network kept: "
                      f"{data.selection}")
    for r in results[1:]:
        kept.train_seconds += r.train_seconds
        kept.total_seconds += r.total_seconds
    if config.refit:
        kept = refit_network(space, arch, task, data, config, kept)
    return kept


def _train_restarts(
    space: Space[Any], arch: Any, task: Task, data: TaskData, config: TrainConfig
) -> TrainResult:
    """`config.restarts` trainings of `arch` from different seeds; the best on validation.

    Restart r uses seed `config.seed + RESTART_SEED_STEP * r` (restart 0: the seed itself,
    so one restart is a plain training). The kept result keeps `config` as given (so a
    rerun with it reproduces the choice); its own seed is the one `restarts` marks kept.
    """
    if config.restarts == 1:
        return _train_once(space, arch, task, data, config)
    if not len(data.y_val):
        raise ConfigError("restarts: choosing among restarts needs a validation side")
    results = []
    for r in range(config.restarts):
        seed = config.seed + RESTART_SEED_STEP * r
        results.append(_train_once(space, arch, task, data, replace(config, seed=seed)))
    values = [task.restart_value(res.val_metrics) for res in results]
    best = int(np.argmax(values))
    kept = results[best]
    kept.restarts = [{"seed": res.config.seed, "value": v, "kept": i == best}
                     for i, (res, v) in enumerate(zip(results, values, strict=True))]
    kept.selection = (f"{kept.selection}; best of {config.restarts} restarts (seed "
                      f"{kept.config.seed}) by its validation figure")
    kept.config = config
    for i, res in enumerate(results):
        if i != best:
            kept.train_seconds += res.train_seconds
            kept.total_seconds += res.total_seconds
    return kept


def best_epoch(history: dict[str, list[float]], key: str = "val_loss") -> int:
    """The 1-based epoch of the lowest `key` in a Keras history: what early stopping kept."""
    values = history.get(key)
    if not values:
        raise ValueError(f"history has no {key!r}: {sorted(history)}")
    return int(np.argmin(values)) + 1


def refit_config(config: TrainConfig, history: dict[str, list[float]]) -> TrainConfig:
    """`config` for a second training of the epochs a first one's early stopping kept.

    Fixed epochs (the RR branch's and the rest's), no early stopping, no cross-validation,
    one training (no restarts: nothing is left to choose by): the validation side is still
    passed because Keras reports on it, but it chooses nothing.
    """
    aux = best_epoch(history, "aux_first_val_loss") if config.aux_first_epochs else 0
    return replace(config, epochs=best_epoch(history, "val_loss"), aux_first_epochs=aux,
                   patience=None, cv_folds=0, refit=False, restarts=1)


def refit_network(
    space: Space[Any], arch: Any, task: Task, data: TaskData, config: TrainConfig,
    kept: TrainResult,
) -> TrainResult:
    """`arch` trained again on training + validation together for `kept`'s epochs.

    `kept` is a training of `arch` on `data`'s configured split (its early stopping chose
    the epochs: the RR branch's and the rest's) and, with restarts, its kept seed is used
    again. No early stopping: no patient or speaker is left to stop it. The result's
    quality figure is `kept`'s (with `cv_folds`, the cross-validation mean), which
    measures the procedure on held-out groups, not this network: the validation side
    trained it, and `selection` says so. The test side is scored as usual.

    `[train] refit` calls it inside `train_candidate`; a benchmark or a user can call it
    on a search's chosen network to deploy one that has seen every non-test group (for
    FSDD: five speakers instead of four).
    """
    # (grouped_folds has already refused a dataset without patients.)
    # The kept network's own seed: with restarts, the one that won on validation.
    seed = next((r["seed"] for r in kept.restarts if r["kept"]), config.seed)
    cfg = replace(refit_config(config, kept.history), seed=seed)
    everyone = replace(
        data,
        x_train=np.concatenate([data.x_train, data.x_val]),
        y_train=np.concatenate([data.y_train, data.y_val]),
        groups_train=np.concatenate([data.groups_train, data.groups_val]),
        aux_train=(None if data.aux_train is None or data.aux_val is None
                   else np.concatenate([data.aux_train, data.aux_val])),
    )
    refitted = _train_once(space, arch, task, everyone, cfg)
    refitted.val_metrics = kept.val_metrics
    refitted.config = config
    quality = ("the cross-validation mean" if config.cv_folds >= 2
               else "the validation figure of the same network before the refit")
    first = f" (RR branch first: {cfg.aux_first_epochs})" if cfg.aux_first_epochs else ""
    refitted.selection = (
        f"{kept.selection}; then refitted on training and validation together for "
        f"{cfg.epochs} epochs{first}, so the validation side trained and the quality figure "
        f"is {quality}"
    )
    refitted.train_seconds += kept.train_seconds
    refitted.total_seconds += kept.total_seconds
    refitted.history.update({f"before_refit_{k}": v for k, v in kept.history.items()})
    return refitted


def cross_validation_metrics(
    folds: list[dict[str, Any]], selections: list[str]
) -> dict[str, Any]:
    """The mean of each scalar metric over the folds; each fold's own under "folds".

    Nested figures, such as a confusion matrix, belong to one fold and are left out.
    """

    def scalars(m: dict[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in m.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    names = set.intersection(*(set(scalars(m)) for m in folds))
    out: dict[str, Any] = {n: float(np.mean([scalars(m)[n] for m in folds])) for n in sorted(names)}
    out["cv_folds"] = len(folds)
    out["folds"] = [{**scalars(m), "selection": s} for m, s in zip(folds, selections, strict=True)]
    return out


def _train_once(
    space: Space[Any], arch: Any, task: Task, data: TaskData, config: TrainConfig
) -> TrainResult:
    keras = import_keras()
    keras.utils.set_random_seed(config.seed)

    model = space.build_model(arch, task, config.build_options())
    aux_history: dict[str, list[float]] = {}
    aux_seconds = 0.0
    if config.aux_first_epochs:
        t0 = time.perf_counter()
        aux_history = _fit_aux_first(space, model, task, data, config)
        aux_seconds = time.perf_counter() - t0
    result = train_model(model, data, config, task, logits=space.output_logits)
    result.arch = arch
    if config.aux_first_epochs:
        # The freeze is a training schedule, not part of the network: a later fine-tuning
        # (compression) trains every layer again.
        for layer in model.layers:
            layer.trainable = True
        result.history.update({f"aux_first_{k}": v for k, v in aux_history.items()})
        result.train_seconds += aux_seconds
        result.total_seconds += aux_seconds
    return result


def _fit_aux_first(
    space: Space[Any], model: Any, task: Task, data: TaskData, cfg: TrainConfig
) -> dict[str, list[float]]:
    """Fit `model`'s second-input branch alone, then freeze it; return its history.

    The branch is the space's `aux_branch` (TrainConfig.aux_first_epochs); the same
    optimizer settings, class weights and early stopping as the main fit.
    """
    if not data.has_aux:
        raise ConfigError(
            "aux_first_epochs: the dataset gives one input; the branch trained first is the "
            "second input's (ECG: data.rr_features = true with alignment = 'beat')"
        )
    stage = space.aux_branch(model, task)
    if stage is None:
        raise ConfigError(
            f"aux_first_epochs: space {space.name!r} has no second-input branch to train first"
        )
    branch, layers = stage
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    branch.compile(optimizer=_optimizer(keras, cfg), loss=task.loss(keras, logits=False))
    has_val = len(data.y_val) > 0
    aux_train, aux_val = data.inputs("train")[1], data.inputs("val")[1]
    hist = branch.fit(
        aux_train, data.y_train,
        validation_data=(aux_val, data.y_val) if has_val else None,
        epochs=cfg.aux_first_epochs, batch_size=cfg.batch_size,
        callbacks=_early_stopping(keras, cfg, has_val), shuffle=True, verbose=cfg.verbose,
        **task.fit_options(data, cfg.class_weights),
    )
    for layer in layers:
        layer.trainable = False
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def _optimizer(keras: Any, cfg: TrainConfig) -> Any:
    """Adam at the configured rate, clipping each gradient to `clipnorm`."""
    return keras.optimizers.Adam(learning_rate=cfg.learning_rate, clipnorm=cfg.clipnorm)


def _early_stopping(keras: Any, cfg: TrainConfig, has_val: bool) -> list[Any]:
    """The early-stopping callback of `cfg.patience` (none when it is None)."""
    if cfg.patience is None:
        return []
    return [keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_val else "loss", patience=cfg.patience,
        min_delta=cfg.min_delta, restore_best_weights=cfg.restore_best)]


def train_model(
    model: Any,
    data: TaskData,
    config: TrainConfig | None = None,
    task: Task | None = None,
    *,
    logits: bool = False,
) -> TrainResult:
    """Train a tf-keras model on a task's dataset and score it on validation and test.

    The model is compiled here unless it already is (Adam with `clipnorm`, the task's loss;
    `logits`: the model outputs logits, not the task's activation). Returns the trained
    model with validation and test metrics (`Task.score`), the history, and the time spent
    in `fit`. `task` defaults to ECG classification of a host.data dataset.
    """
    cfg = config or TrainConfig()
    task = task or default_task(data)
    t_total = time.perf_counter()
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    expected = task.input_spec().outputs
    if model.output_shape[-1] != expected:
        raise ConfigError(f"model: outputs {model.output_shape[-1]} values, the task {expected}")
    if not getattr(model, "optimizer", None) or not model._is_compiled:
        model.compile(optimizer=_optimizer(keras, cfg), loss=task.loss(keras, logits=logits))
    has_val = len(data.y_val) > 0
    callbacks = _early_stopping(keras, cfg, has_val)
    n_inputs = len(model.inputs)
    if n_inputs != (2 if data.has_aux else 1):
        raise ConfigError(
            f"model: takes {n_inputs} input(s), the dataset gives "
            f"{'windows and RR features' if data.has_aux else 'windows only'}"
        )
    fit_options = task.fit_options(data, cfg.class_weights)
    validation = (data.inputs("val"), data.y_val) if has_val else None
    t0 = time.perf_counter()
    if cfg.augment is not None and cfg.augment.perturbs_windows:
        from host.train.augment import augmented_batches

        # Training batches only: validation data goes to `fit` as arrays, untouched.
        batches = augmented_batches(keras, data.inputs("train"), data.y_train, cfg.augment,
                                    cfg.batch_size, cfg.seed, fit_options.get("class_weight"))
        hist = model.fit(batches, validation_data=validation, epochs=cfg.epochs,
                         callbacks=callbacks, verbose=cfg.verbose)
    else:
        hist = model.fit(
            data.inputs("train"),
            data.y_train,
            validation_data=validation,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            callbacks=callbacks,
            shuffle=True,
            verbose=cfg.verbose,
            **fit_options,
        )
    train_seconds = time.perf_counter() - t0
    val = task.score_side(data, "val", predict(model, data.inputs("val"), cfg.eval_batch_size))
    test = task.score_side(data, "test",
                           predict(model, data.inputs("test"), cfg.eval_batch_size))
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return TrainResult(
        model=model,
        val_metrics=val,
        test_metrics=test,
        history=history,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - t_total,
        epochs_run=len(history.get("loss", [])),
        arch=None,
        split_description=data.split_description,
        config=cfg,
        selection=data.selection,
    )
