"""Structured pruning: whole channels removed, so the deployed file itself gets smaller.

Magnitude pruning (`prune.py`) zeroes single weights, but TFLite and TFLite Micro store every
zero (TFLM's pruning compression is a stub in the wheel), so on a device it saves nothing by
itself. Channel pruning removes whole output channels (a convolution's filters, a Dense or
LSTM layer's units) together with the input rows of every layer that reads them, and rebuilds a
narrower network. The converter then writes smaller tensors: the saving is in the file.

Which channels must go together is found on the model's graph ("channel groups"). Every
layer that makes new channels (Conv1D, Conv2D, Dense, LSTM) starts a group for its output;
layers that keep the channel axis as it is (BatchNormalization, activations, dropout,
pooling) pass their input's group on; an element-wise merge (Add, Subtract, Multiply, ...)
joins its inputs' groups into one, so a residual stream keeps the same channels in every
block it crosses. A group is never pruned when it reaches a model input or output, or a layer
this module does not know (Flatten, Reshape, Concatenate, a custom layer): there the channels
mean something outside the group.

Which channels of a group go: those with the least mean absolute activation over training
windows, summed over every tensor of the group (each tensor's means first divided by their
own mean, so a convolution's raw output and the BatchNormalization after it count alike).
The criterion is data-driven because a small kernel norm says little when a BatchNormalization
rescales the channel afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.compress.prune import _keras
from host.errors import ConfigError

#: Layers that make new channels: their output is a new group, their kernels are sliced.
PRODUCERS = ("Conv1D", "Conv2D", "Dense", "LSTM")
#: Layers whose output has the input's channels, one for one.
PASS_THROUGH = (
    "BatchNormalization", "ReLU", "Activation", "LeakyReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "GaussianNoise", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D",
)
#: Element-wise merges: all inputs and the output share one group.
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
#: Activations that mix channels: their input cannot lose channels without changing the rest.
CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")
#: Training windows the activation criterion looks at.
SCORE_WINDOWS = 256


@dataclass
class ChannelReport:
    """What channel pruning did: per group, the channels before and after, and what it kept."""

    fraction: float
    groups: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, str]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    epochs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "criterion": "mean |activation| over training windows, summed over the group's "
                         "tensors (each normalised by its own mean)",
            "fine_tune_epochs": self.epochs,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "groups": self.groups,
            "not_pruned": self.fixed,
        }


def check_channel_fraction(value: Any, name: str) -> None:
    """A fraction of channels to remove must be a number in [0, 1); `name` is the flag or key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name}: the fraction of channels removed must be in [0, 1), "
                          f"not {value!r}")


class _Groups:
    """Union-find over channel groups, with the tensors and layers in each."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.why_fixed: dict[int, str] = {}

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.why_fixed:
                self.why_fixed.setdefault(ra, self.why_fixed.pop(rb))
        return ra

    def fix(self, g: int, why: str) -> None:
        self.why_fixed.setdefault(self.find(g), why)

    def fixed(self, g: int) -> bool:
        return self.find(g) in self.why_fixed


@dataclass
class ChannelGraph:
    """The model's layers with the group of each one's input and output channels."""

    config: dict[str, Any]
    groups: _Groups
    out_group: dict[str, int]  # layer name -> group of its output's channels
    in_group: dict[str, int]  # layer name -> group of its (first) input's channels
    kinds: dict[str, str]  # layer name -> class name
    tensors: dict[int, list[str]]  # root group -> layer names whose outputs are in it

    def root(self, g: int) -> int:
        return self.groups.find(g)


def _inbound(layer_cfg: dict[str, Any]) -> list[str]:
    nodes = layer_cfg.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ConfigError(
            f"channel pruning: layer {layer_cfg['config'].get('name')!r} is called more than "
            "once (a shared layer); its channels cannot be pruned per call"
        )
    if not nodes:
        return []
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3 style, not what tf-keras writes
        raise ConfigError("channel pruning: the model's config is not tf-keras's functional "
                          "format")
    return [str(entry[0]) for entry in node]


def _on_last_axis(layer: Any) -> bool:
    """Whether a pass-through layer's per-channel parameters sit on the channel axis.

    Only a BatchNormalization has an `axis`; the other pass-through layers are element-wise.
    """
    axis = getattr(layer, "axis", None)
    if axis is None:
        return True
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = len(layer.input_shape)
    return [a % rank for a in axes] == [rank - 1]


def channel_graph(model: Any) -> ChannelGraph:
    """The channel groups of a functional tf-keras `model` (see the module's docstring)."""
    keras = _keras()
    if isinstance(model, keras.Sequential) or not hasattr(model, "get_config"):
        raise ConfigError("channel pruning: needs a functional tf-keras model (not Sequential)")
    config = model.get_config()
    if "layers" not in config or "output_layers" not in config:
        raise ConfigError("channel pruning: needs a functional tf-keras model")
    groups = _Groups()
    out_group: dict[str, int] = {}
    in_group: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for lc in config["layers"]:
        name = lc["config"]["name"] if "name" in lc["config"] else lc["name"]
        kind = lc["class_name"]
        kinds[name] = kind
        sources = _inbound(lc)
        in_groups = [out_group[s] for s in sources]
        if in_groups:
            in_group[name] = in_groups[0]
        cfg = lc["config"]
        channels_last = cfg.get("data_format", "channels_last") == "channels_last"
        if kind == "InputLayer":
            g = groups.new()
            groups.fix(g, f"{name}: a model input")
        elif kind in PRODUCERS and channels_last and int(cfg.get("groups", 1)) == 1 and \
                not cfg.get("return_state", False) and len(in_groups) == 1:
            g = groups.new()
            if kind == "Dense" and cfg.get("activation") in CHANNEL_MIXING_ACTIVATIONS:
                groups.fix(g, f"{name}: its {cfg['activation']} mixes its channels")
        elif kind in PASS_THROUGH and len(in_groups) == 1 and channels_last and \
                _on_last_axis(model.get_layer(name)) and \
                cfg.get("activation") not in CHANNEL_MIXING_ACTIVATIONS:
            g = in_groups[0]
        elif kind in MERGES and in_groups:
            g = in_groups[0]
            for other in in_groups[1:]:
                g = groups.union(g, other)
        else:
            for ig in in_groups:
                groups.fix(ig, f"read by {name} ({kind}), which channel pruning does not know")
            g = groups.new()
            groups.fix(g, f"made by {name} ({kind})")
        out_group[name] = g
    for entry in config["output_layers"]:
        groups.fix(out_group[str(entry[0])], f"{entry[0]}: a model output")
    tensors: dict[int, list[str]] = {}
    for name, g in out_group.items():
        tensors.setdefault(groups.find(g), []).append(name)
    return ChannelGraph(config, groups, out_group, in_group, kinds, tensors)


def _channel_scores(model: Any, graph: ChannelGraph, x: np.ndarray) -> dict[int, np.ndarray]:
    """Per prunable group, each channel's importance (see the module's docstring)."""
    keras = _keras()
    names = [n for g, ns in graph.tensors.items() if not graph.groups.fixed(g) for n in ns]
    if not names:
        return {}
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe.predict(x, batch_size=64, verbose=0)
    if not isinstance(outs, list):
        outs = [outs]
    scores: dict[int, np.ndarray] = {}
    for name, out in zip(names, outs, strict=True):
        a = np.abs(np.asarray(out, dtype=np.float64))
        per_channel = a.reshape(-1, a.shape[-1]).mean(axis=0)
        norm = per_channel.mean()
        if norm > 0:
            per_channel = per_channel / norm
        g = graph.root(graph.out_group[name])
        scores[g] = scores.get(g, 0.0) + per_channel
    return scores


def _slice_weights(kind: str, weights: list[np.ndarray], keep_in: np.ndarray | None,
                   keep_out: np.ndarray | None) -> list[np.ndarray]:
    """`weights` of one layer with its input and output channels cut to `keep_*` (None: all)."""
    if kind == "LSTM":
        kernel, recurrent, *bias = weights
        units = recurrent.shape[0]
        cols = (None if keep_out is None else
                np.concatenate([gate * units + keep_out for gate in range(4)]))
        if keep_in is not None:
            kernel = kernel[keep_in, :]
        if cols is not None:
            kernel, recurrent = kernel[:, cols], recurrent[keep_out][:, cols]
            bias = [b[cols] for b in bias]
        return [kernel, recurrent, *bias]
    if kind in ("Conv1D", "Conv2D", "Dense"):
        kernel, *bias = weights
        if keep_in is not None:
            kernel = np.take(kernel, keep_in, axis=-2)
        if keep_out is not None:
            kernel = np.take(kernel, keep_out, axis=-1)
            bias = [b[keep_out] for b in bias]
        return [kernel, *bias]
    if kind == "BatchNormalization" and keep_out is not None:
        return [w[keep_out] for w in weights]
    return weights


def prune_channels(
    model: Any,
    fraction: float,
    x: np.ndarray,
    *,
    fit: Callable[[Any, int, list[Any]], None] | None = None,
    epochs: int = 2,
) -> tuple[Any, ChannelReport]:
    """Remove `fraction` of the channels of every prunable group of `model`; fine-tune.

    `x`: training windows for the criterion. `fit(model, epochs, callbacks)` fine-tunes the
    narrower model (it compiles it). Returns a new model (the caller's is not changed) and
    what was removed. A group keeps at least one channel.
    """
    check_channel_fraction(fraction, "--channels")
    graph = channel_graph(model)
    report = ChannelReport(float(fraction), params_before=int(model.count_params()),
                           epochs=epochs if fit else 0)
    report.fixed = sorted(
        ({"layers": ", ".join(n for n in graph.tensors.get(g, [])
                              if graph.kinds[n] in PRODUCERS), "reason": why}
         for g, why in graph.groups.why_fixed.items() if graph.groups.find(g) == g
         and any(graph.kinds[n] in PRODUCERS for n in graph.tensors.get(g, []))),
        key=lambda d: d["layers"])
    scores = _channel_scores(model, graph, x[:SCORE_WINDOWS])
    keep: dict[int, np.ndarray] = {}
    for g, s in scores.items():
        n = len(s)
        k = max(1, int(round(n * (1.0 - fraction))))
        kept = np.sort(np.argsort(-s, kind="stable")[:k])
        keep[g] = kept
        report.groups.append({
            "layers": [m for m in graph.tensors[g] if graph.kinds[m] in PRODUCERS],
            "channels_before": n, "channels_after": int(k),
        })
    narrow = rebuild(model, graph, keep)
    if fit is not None and epochs > 0 and keep:
        fit(narrow, epochs, [])
    report.params_after = int(narrow.count_params())
    return narrow, report


def rebuild(model: Any, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> Any:
    """A new model of `model`'s graph, narrowed to the channels `keep` lists.

    `keep` maps a root group to the channel indices it keeps; unlisted groups keep all. The
    trained weights are sliced to the channels kept.
    """
    keras = _keras()
    config = copy.deepcopy(graph.config)
    for lc in config["layers"]:
        name = lc["config"]["name"]
        g = graph.root(graph.out_group[name])
        if lc["class_name"] in PRODUCERS and g in keep:
            key = "filters" if "filters" in lc["config"] else "units"
            lc["config"][key] = int(len(keep[g]))
    narrow = keras.Model.from_config(config)
    for layer in model.layers:
        w = layer.get_weights()
        if not w:
            continue
        kind = graph.kinds[layer.name]
        gin = graph.in_group.get(layer.name)
        keep_in = keep.get(graph.root(gin)) if gin is not None else None
        keep_out = keep.get(graph.root(graph.out_group[layer.name]))
        if kind not in PRODUCERS and kind != "BatchNormalization":
            keep_in = keep_out = None
        narrow.get_layer(layer.name).set_weights(_slice_weights(kind, w, keep_in, keep_out))
    return narrow
