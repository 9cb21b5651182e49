"""Magnitude pruning with TFMOT: per layer ("layer") or one global threshold ("global").

BioNetExplorer compares layer-wise pruning (every layer loses the same fraction of its weights)
with class-blind pruning (Marchisio et al.'s PruNet: one magnitude threshold over the whole
network, so layers with many small weights lose more). TFMOT's `prune_low_magnitude` prunes each
layer to its own target; class-blind pruning is built on it here in two steps: one threshold
is computed over the kernels of every prunable layer at the requested sparsity, each layer's
fraction of weights under it becomes that layer's target, and then each layer is pruned per
layer with that target. The overall sparsity is then the requested one (up to rounding),
distributed as one global threshold distributes it.

What TFMOT prunes in the BioNet model: Conv1D and Dense kernels, and both kernels of the LSTM
(`kernel` and `recurrent_kernel`, through its RNN-cell registry). Biases and BatchNormalization
parameters are not pruned (TFMOT's registry lists no prunable weights for them); they are
recorded as skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.errors import ConfigError

SCOPES = ("layer", "global")
SCHEDULES = ("constant", "polynomial")
MAX_LAYER_SPARSITY = 0.99  # TFMOT's schedules refuse a target of 1


@dataclass
class PruneReport:
    """What pruning did: targets and achieved sparsity per layer, and what it skipped."""

    scope: str
    target: float
    schedule: str
    layer_targets: dict[str, float] = field(default_factory=dict)
    achieved: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    epochs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "target_sparsity": self.target,
            "schedule": self.schedule,
            "fine_tune_epochs": self.epochs,
            "layer_targets": {k: round(v, 4) for k, v in self.layer_targets.items()},
            "achieved_sparsity": {k: round(v, 4) for k, v in self.achieved.items()},
            "overall_sparsity": round(self.overall, 4),
            "skipped": self.skipped,
        }


def tfmot() -> Any:
    """The tensorflow_model_optimization module (after TensorFlow is set up for tf-keras)."""
    from host.train.tfenv import import_keras

    import_keras()  # TFMOT needs tf-keras (TF_USE_LEGACY_KERAS=1) set before its import
    try:
        import tensorflow_model_optimization as mot
    except ImportError as exc:
        raise ConfigError(
            "compression needs tensorflow-model-optimization: pip install 'hilnas[host]'"
        ) from exc
    return mot


def layer_kernels(layer: Any) -> list[Any]:
    """The weights TFMOT prunes or clusters in `layer` (empty: the layer is left alone)."""
    keras = _keras()
    if isinstance(layer, keras.layers.LSTM):
        return [layer.cell.kernel, layer.cell.recurrent_kernel]
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)):
        return [layer.kernel]
    return []


def _keras() -> Any:
    from host.train.tfenv import import_keras

    return import_keras()


def skipped_layers(model: Any, what: str) -> list[dict[str, str]]:
    """Layers with weights that `what` ("pruning", "clustering") leaves alone, and why."""
    keras = _keras()
    out = []
    for layer in model.layers:
        if not layer.weights or layer_kernels(layer):
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            why = (f"BatchNormalization: TFMOT's {what} registry lists no weights for it; the "
                   "converter folds it into the preceding convolution per output channel")
        else:
            why = f"{type(layer).__name__}: not supported by TFMOT's {what} registry"
        out.append({"layer": layer.name, "reason": why})
    out.append({"layer": "(every layer)", "reason": f"biases are not {what[:-3]}ed by TFMOT"})
    return out


def global_layer_targets(model: Any, sparsity: float) -> dict[str, float]:
    """Per-layer sparsities that one magnitude threshold over all prunable kernels gives."""
    mags = {
        layer.name: np.concatenate([np.abs(np.asarray(k.numpy())).ravel()
                                    for k in layer_kernels(layer)])
        for layer in model.layers
        if layer_kernels(layer)
    }
    if not mags:
        raise ConfigError("model: no layer that TFMOT can prune (Conv, Dense, LSTM)")
    everything = np.concatenate(list(mags.values()))
    threshold = np.quantile(everything, sparsity) if sparsity > 0 else -1.0
    return {
        name: float(min((m < threshold).mean() if threshold >= 0 else 0.0, MAX_LAYER_SPARSITY))
        for name, m in mags.items()
    }


def layer_sparsity(layer: Any) -> float:
    ks = [np.asarray(k.numpy()) for k in layer_kernels(layer)]
    n = sum(k.size for k in ks)
    return float(sum(int((k == 0).sum()) for k in ks) / max(n, 1))


def overall_sparsity(model: Any) -> float:
    ks = [np.asarray(k.numpy()) for layer in model.layers for k in layer_kernels(layer)]
    n = sum(k.size for k in ks)
    return float(sum(int((k == 0).sum()) for k in ks) / max(n, 1))


def prune(
    model: Any,
    sparsity: float,
    *,
    scope: str = "layer",
    schedule: str = "constant",
    fit: Callable[[Any, int, list[Any]], None] | None = None,
    epochs: int = 2,
    steps_per_epoch: int = 1,
) -> tuple[Any, PruneReport]:
    """Prune `model` to `sparsity` and return the stripped model and a report.

    `fit(model, epochs, callbacks)` fine-tunes the wrapped model (it must compile it and pass
    the callbacks to `fit`); `steps_per_epoch` sizes the polynomial schedule. With `epochs` 0
    or no `fit`, the weights under each layer's threshold are zeroed at once (one-shot
    magnitude pruning, no recovery).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"--prune: sparsity must be in [0, 1), not {sparsity}")
    if scope not in SCOPES:
        raise ConfigError(f"--scope: must be one of {list(SCOPES)}, not {scope!r}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule: must be one of {list(SCHEDULES)}, not {schedule!r}")
    report = PruneReport(scope, sparsity, schedule, epochs=epochs if fit else 0,
                         skipped=skipped_layers(model, "pruning"))
    if scope == "global":
        targets = global_layer_targets(model, sparsity)
    else:
        targets = {layer.name: sparsity for layer in model.layers if layer_kernels(layer)}
    report.layer_targets = targets
    if sparsity == 0:
        report.achieved = {n: layer_sparsity(model.get_layer(n)) for n in targets}
        report.overall = overall_sparsity(model)
        return model, report
    if fit is None or epochs < 1:
        pruned = copy_model(model)
        _one_shot(pruned, targets)
    else:
        mot = tfmot()
        keras = _keras()
        total = max(1, epochs * steps_per_epoch)

        def sched(target: float) -> Any:
            if schedule == "polynomial":
                # Reach the target by 70% of the budget, leaving steps to recover at it.
                return mot.sparsity.keras.PolynomialDecay(
                    0.0, target, begin_step=0, end_step=max(1, int(0.7 * total)), frequency=1
                )
            # frequency=1: TFMOT's default (100 steps) never prunes within a short budget.
            return mot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=1)

        def clone(layer: Any) -> Any:
            target = targets.get(layer.name)
            if not target:
                return layer.__class__.from_config(layer.get_config())
            return mot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched(target))

        src = copy_model(model)
        wrapped = keras.models.clone_model(src, clone_function=clone)
        _copy_weights(src, wrapped)
        fit(wrapped, epochs, [mot.sparsity.keras.UpdatePruningStep()])
        pruned = mot.sparsity.keras.strip_pruning(wrapped)
        # The last mask update can precede the last optimizer step by one step; zero what the
        # masks say once more so the stripped weights hold exactly the pruned zeros.
        _one_shot(pruned, {n: t for n, t in targets.items() if layer_sparsity(
            pruned.get_layer(n)) < t - 1e-3})
    report.achieved = {n: layer_sparsity(pruned.get_layer(n)) for n in targets}
    report.overall = overall_sparsity(pruned)
    return pruned, report


def copy_model(model: Any) -> Any:
    """A copy of `model` with its own weights.

    TFMOT's wrappers wrap the layer instances they are given (a clustering wrapper takes its
    initial centroids from that layer's trained weights), so the stages wrap the layers of a
    copy and never train the caller's model.
    """
    keras = _keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _copy_weights(src: Any, dst: Any) -> None:
    """Copy weights into the layers `clone_model` re-created (same order as `src`'s).

    A TFMOT wrapper holds the very layer instance of `src` it wraps, so it has them already.
    """
    for a, b in zip(src.layers, dst.layers, strict=True):
        if getattr(b, "layer", None) is a:
            continue
        if a.get_weights():
            b.set_weights(a.get_weights())


def _one_shot(model: Any, targets: dict[str, float]) -> None:
    """Zero the smallest-magnitude fraction `targets[name]` of each layer's kernels."""
    for name, target in targets.items():
        if target <= 0:
            continue
        layer = model.get_layer(name)
        kernels = layer_kernels(layer)
        mags = np.concatenate([np.abs(np.asarray(k.numpy())).ravel() for k in kernels])
        threshold = np.quantile(mags, target)
        for k in kernels:
            w = np.asarray(k.numpy())
            k.assign(np.where(np.abs(w) <= threshold, 0.0, w).astype(w.dtype))
