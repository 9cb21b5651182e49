"""k-means weight sharing with TFMOT (`cluster_weights`, linear centroid initialisation).

Each prunable kernel (Conv1D, Dense, and both LSTM kernels through TFMOT's RNN-cell registry)
is clustered on its own into at most k values; zeros left by pruning stay zero
(`preserve_sparsity`), and zero is then one of the k values. A kernel smaller than k is left
as it is (it already has at most k values only if it has at most k weights; TFMOT refuses
more clusters than weights), and recorded as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.compress.prune import (
    _copy_weights,
    _keras,
    copy_model,
    layer_kernels,
    overall_sparsity,
    skipped_layers,
    tfmot,
)
from host.errors import ConfigError

MIN_CLUSTERS, MAX_CLUSTERS = 2, 256
#: TFMOT's sparsity-preserving clustering needs more clusters than this (zero is one of them).
TFMOT_MIN_SPARSE_CLUSTERS = 2
SPARSE_K2 = ("--clusters: k = 2 after pruning is not possible: TFMOT's sparsity-preserving "
             "clustering keeps zero as one of the k values and needs k > 2; use k >= 3, or "
             "--prune 0")


@dataclass
class ClusterReport:
    """What clustering did: k, the distinct values per clustered kernel, what it skipped."""

    clusters: int
    unique: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    epochs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "centroid_init": "linear",
            "fine_tune_epochs": self.epochs,
            "unique_values_per_kernel": self.unique,
            "skipped": self.skipped,
        }


def check_clusters(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_CLUSTERS <= k <= MAX_CLUSTERS:
        raise ConfigError(
            f"--clusters: must be an integer in {MIN_CLUSTERS}..{MAX_CLUSTERS}, not {k!r}"
        )


def kernel_unique(model: Any) -> dict[str, int]:
    """Distinct values of each clusterable kernel ("layer" or "layer/recurrent_kernel")."""
    out = {}
    for layer in model.layers:
        for i, k in enumerate(layer_kernels(layer)):
            key = layer.name if i == 0 else f"{layer.name}/recurrent_kernel"
            out[key] = int(np.unique(np.asarray(k.numpy())).size)
    return out


def cluster(
    model: Any,
    k: int,
    *,
    fit: Callable[[Any, int, list[Any]], None] | None = None,
    epochs: int = 2,
) -> tuple[Any, ClusterReport]:
    """Cluster every clusterable kernel of `model` into `k` values; fine-tune; strip.

    `fit(model, epochs, callbacks)` fine-tunes the wrapped model (centroids train, the
    assignment of weights to them is fixed). Returns the stripped model and a report.
    """
    check_clusters(k)
    # Zeros left by pruning stay zeros (zero is then one of the k values). TFMOT refuses
    # k = 2 with that ("number_of_clusters must be greater than 2"), so a model without
    # zeros is clustered without it; CompressConfig refuses k = 2 after pruning up front.
    sparse = overall_sparsity(model) > 0
    if sparse and k <= TFMOT_MIN_SPARSE_CLUSTERS:
        raise ConfigError(SPARSE_K2)
    mot = tfmot()
    keras = _keras()
    C = mot.clustering.keras
    report = ClusterReport(k, epochs=epochs if fit else 0,
                           skipped=skipped_layers(model, "clustering"))
    chosen = set()
    for layer in model.layers:
        ks = layer_kernels(layer)
        if not ks:
            continue
        smallest = min(int(np.asarray(w.numpy()).size) for w in ks)
        if smallest <= k:
            report.skipped.append({
                "layer": layer.name,
                "reason": f"{smallest} weights, not more than k={k}: already <= k values",
            })
            continue
        chosen.add(layer.name)

    def clone(layer: Any) -> Any:
        if layer.name not in chosen:
            return layer.__class__.from_config(layer.get_config())
        return C.cluster_weights(
            layer,
            number_of_clusters=k,
            cluster_centroids_init=C.CentroidInitialization.LINEAR,
            preserve_sparsity=sparse,
        )

    src = copy_model(model)
    wrapped = keras.models.clone_model(src, clone_function=clone)
    _copy_weights(src, wrapped)
    if fit is not None and epochs > 0:
        fit(wrapped, epochs, [])
    stripped = C.strip_clustering(wrapped)
    report.unique = kernel_unique(stripped)
    return stripped, report
