"""HALF's search space: depthwise-separable 1-D CNNs for FPGA dataflow accelerators.

Ney et al., HALF (FPL 2021), Section VI: depthwise-separable convolutions with 60
hyper-parameter configurations (kernel, stride, channel multiplier, filters), max pooling
with 4 strides, a depth of 2 to 15 layers, then global average pooling and a dense layer.
Only layers of the HLS library (hls/include/hilnas) are in the space, so every candidate
maps onto the accelerator.

Encoding (genetic search): 15 slots of 7 bits. Bit 0 says whether the slot is active; bits
1-6 choose one of 64 layer types (the 60 separable convolutions then the 4 poolings). An
inactive slot keeps its genes (HALF's "dormant genes", after Suganuma et al.). A chromosome
whose active depth is outside [2, 15], has no convolution, or whose feature map would shrink
below one position decodes to None.

Objectives: HALF's hardware objectives from host/hw/half.py (power, energy and latency
with minimal and maximal unrolling, parameter count; all estimated) and the task's
detection and false-alarm rates against configurable acceptance limits (defaults 90% and
20%). `preselect` is HALF's two-step selection: rank untrained candidates on the cheap
hardware objectives and train only the best.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from host.errors import ConfigError
from host.hw.half import Board, HwLayer, objectives
from host.spaces.base import Space, register_space

# The default grids: 5 kernels x 2 strides x 2 multipliers x 3 filter counts = 60.
KERNELS = (1, 3, 5, 9, 17)
STRIDES = (1, 2)
MULTIPLIERS = (1, 2)
FILTERS = (4, 8, 16)
POOL_STRIDES = (2, 3, 4, 8)
MAX_DEPTH = 15
MIN_DEPTH = 2
SLOT_BITS = 7  # 1 active bit + 6 type bits (64 layer types)


@dataclass(frozen=True)
class SepConv:
    """Depthwise conv (kernel, stride, multiplier) -> pointwise conv (filters) -> BN -> ReLU."""

    kernel: int
    stride: int
    multiplier: int
    filters: int


@dataclass(frozen=True)
class MaxPool:
    """Max pooling with pool size = stride."""

    stride: int


Layer = SepConv | MaxPool


@dataclass(frozen=True)
class HalfArch:
    """A HALF candidate: its layers in order (global pooling and the dense head implied)."""

    layers: tuple[Layer, ...]

    def key(self) -> str:
        parts = []
        for layer in self.layers:
            if isinstance(layer, SepConv):
                parts.append(f"s{layer.kernel}.{layer.stride}.{layer.multiplier}.{layer.filters}")
            else:
                parts.append(f"p{layer.stride}")
        return "half:" + "-".join(parts)


@dataclass(frozen=True)
class AcceptanceLimits:
    """HALF's hard limits on the task's quality: detection >= 90%, false alarms <= 20%."""

    min_detection_rate: float = 0.90
    max_false_alarm_rate: float = 0.20

    def __post_init__(self) -> None:
        for name in ("min_detection_rate", "max_false_alarm_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], not {v!r}")

    def accepts(self, detection_rate: float, false_alarm_rate: float) -> bool:
        return (
            detection_rate >= self.min_detection_rate
            and false_alarm_rate <= self.max_false_alarm_rate
        )


def detection_rates(
    y_true: np.ndarray, y_pred: np.ndarray, positive: Sequence[int] | int = 1
) -> tuple[float, float]:
    """Return (detection rate, false-alarm rate) of a detector.

    Detection = TP / (TP + FN) over windows whose true class is positive; false alarm =
    FP / (FP + TN) over the negative windows. `positive` is the class index (or indices,
    e.g. every anomalous class of a multi-class scheme) that counts as a detection.
    """
    pos = np.atleast_1d(np.asarray(positive))
    t = np.isin(np.asarray(y_true), pos)
    p = np.isin(np.asarray(y_pred), pos)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    detection = float((t & p).sum() / n_pos) if n_pos else float("nan")
    false_alarm = float((~t & p).sum() / n_neg) if n_neg else float("nan")
    return detection, false_alarm


def conv_configs(
    kernels: Sequence[int] = KERNELS,
    strides: Sequence[int] = STRIDES,
    multipliers: Sequence[int] = MULTIPLIERS,
    filters: Sequence[int] = FILTERS,
) -> list[SepConv]:
    return [
        SepConv(k, s, m, f)
        for k, s, m, f in itertools.product(kernels, strides, multipliers, filters)
    ]


@register_space("half")
class HalfSpace(Space):
    """HALF's depthwise-separable 1-D CNN space (see the module docstring)."""

    def __init__(
        self,
        input_length: int = 256,
        n_channels: int = 1,
        n_classes: int = 2,
        min_depth: int = MIN_DEPTH,
        max_depth: int = MAX_DEPTH,
        kernels: Sequence[int] = KERNELS,
        strides: Sequence[int] = STRIDES,
        multipliers: Sequence[int] = MULTIPLIERS,
        filters: Sequence[int] = FILTERS,
        pool_strides: Sequence[int] = POOL_STRIDES,
        limits: AcceptanceLimits | None = None,
    ) -> None:
        if not 1 <= min_depth <= max_depth <= MAX_DEPTH:
            raise ConfigError(f"depth bounds must satisfy 1 <= {min_depth} <= {max_depth} <= 15")
        self.input_length = int(input_length)
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.min_depth, self.max_depth = min_depth, max_depth
        self.layer_types: list[Layer] = [
            *conv_configs(kernels, strides, multipliers, filters),
            *(MaxPool(s) for s in pool_strides),
        ]
        if len(self.layer_types) > 2 ** (SLOT_BITS - 1):
            raise ConfigError(f"{len(self.layer_types)} layer types do not fit 6 bits")
        self.limits = limits or AcceptanceLimits()

    # ------------------------------------------------------------------ structure
    def is_valid(self, arch: HalfArch) -> bool:
        if not self.min_depth <= len(arch.layers) <= self.max_depth:
            return False
        if not any(isinstance(layer, SepConv) for layer in arch.layers):
            return False
        length = self.input_length
        for layer in arch.layers:
            window = layer.kernel if isinstance(layer, SepConv) else layer.stride
            if length < window:
                return False
            length = (length - window) // layer.stride + 1
        return length >= 1

    def contains(self, arch: Any) -> bool:
        return (
            isinstance(arch, HalfArch)
            and all(layer in self.layer_types for layer in arch.layers)
            and self.is_valid(arch)
        )

    def size(self, bounded: bool = True) -> int:
        """Sequences of layer types of every allowed depth (an upper bound: some collapse)."""
        n = len(self.layer_types)
        return sum(n**d for d in range(self.min_depth, self.max_depth + 1))

    def architectures(self, bounded: bool = True) -> list[Any]:
        if self.size() > 1_000_000:
            raise ConfigError(
                f"the HALF space has ~{self.size():.3g} architectures and cannot be listed; "
                "use sample() or the genetic encoding"
            )
        out = []
        for d in range(self.min_depth, self.max_depth + 1):
            for combo in itertools.product(self.layer_types, repeat=d):
                arch = HalfArch(tuple(combo))
                if self.is_valid(arch):
                    out.append(arch)
        return out

    def sample(self, n: int, seed: int = 0, replace: bool = False) -> list[Any]:
        """Draw `n` valid architectures (uniform depth, uniform layer types), seeded."""
        rng = np.random.default_rng(seed)
        out: list[HalfArch] = []
        seen: set[HalfArch] = set()
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 1000 * max(n, 1):
                raise ConfigError(f"sample: found only {len(out)} valid architectures of {n}")
            depth = int(rng.integers(self.min_depth, self.max_depth + 1))
            idx = rng.integers(0, len(self.layer_types), size=depth)
            arch = HalfArch(tuple(self.layer_types[int(i)] for i in idx))
            if not self.is_valid(arch) or (not replace and arch in seen):
                continue
            seen.add(arch)
            out.append(arch)
        return out

    # ------------------------------------------------------------------ encoding
    @property
    def chromosome_length(self) -> int:
        return SLOT_BITS * self.max_depth

    def encode(self, arch: Any) -> list[int]:
        if not self.contains(arch):
            raise ConfigError(f"encode: {arch!r} is not in this space")
        bits: list[int] = []
        for slot in range(self.max_depth):
            if slot < len(arch.layers):
                t = self.layer_types.index(arch.layers[slot])
                bits += [1] + [(t >> (5 - i)) & 1 for i in range(6)]
            else:
                bits += [0] * SLOT_BITS
        return bits

    def decode(self, bits: Sequence[int]) -> HalfArch | None:
        if len(bits) != self.chromosome_length:
            raise ConfigError(f"decode: {len(bits)} bits, expected {self.chromosome_length}")
        layers = []
        for slot in range(self.max_depth):
            gene = bits[slot * SLOT_BITS : (slot + 1) * SLOT_BITS]
            if not gene[0]:
                continue  # dormant
            t = int("".join(str(int(b)) for b in gene[1:]), 2)
            if t >= len(self.layer_types):
                return None
            layers.append(self.layer_types[t])
        arch = HalfArch(tuple(layers))
        return arch if self.is_valid(arch) else None

    # ------------------------------------------------------------------ hardware view
    def hw_layers(self, arch: HalfArch) -> list[HwLayer]:
        """Return the accelerator's layers (depthwise, pointwise, pooling, GAP, dense)."""
        out: list[HwLayer] = []
        length, ch = self.input_length, self.n_channels
        for layer in arch.layers:
            if isinstance(layer, SepConv):
                dw = HwLayer(
                    "dwconv",
                    length,
                    ch,
                    ch * layer.multiplier,
                    layer.kernel,
                    layer.stride,
                    layer.multiplier,
                )
                out.append(dw)
                length, ch = dw.out_length, dw.cout
                out.append(HwLayer("pwconv", length, ch, layer.filters))
                ch = layer.filters
            else:
                mp = HwLayer("maxpool", length, ch, ch, layer.stride, layer.stride)
                out.append(mp)
                length = mp.out_length
        out.append(HwLayer("gap", length, ch, ch))
        out.append(HwLayer("dense", 1, ch, self.n_classes))
        return out

    def hardware_objectives(self, arch: HalfArch, board: Board | str) -> dict[str, float]:
        """HALF's cheap objectives (estimated, all to minimise)."""
        return objectives(self.hw_layers(arch), board)

    # ------------------------------------------------------------------ keras
    def build_keras_model(
        self,
        arch: Any,
        input_length: int,
        n_channels: int,
        n_classes: int,
        batch_size: int | None = None,
        batchnorm: bool = True,
    ) -> Any:
        """Return a tf-keras model of `arch` that outputs logits (no softmax).

        With `batchnorm=True` (training) each separable block is DW -> PW -> BN -> ReLU;
        `fold_batchnorm` turns a trained model into the BN-free export model whose int8
        TFLite graph maps one-to-one onto the HLS library. The head has no softmax because
        the accelerator returns logits (argmax is the class); train with from_logits=True.
        """
        return _build_half_model(arch, input_length, n_channels, n_classes, batch_size, batchnorm)


def fold_batchnorm(model: Any, arch: HalfArch, batch_size: int | None = 1) -> Any:
    """Return the BN-free model of `arch`, every BatchNormalization folded.

    Into the preceding pointwise convolution: w' = w * g / sqrt(v + eps), b' = beta +
    (b - m) * g / sqrt(v + eps). The result computes the same function (in float).
    """
    return _fold_half_batchnorm(model, arch, batch_size)


def preselect(
    candidates: Sequence[Any],
    cheap_objectives: Callable[[Any], dict[str, float]],
    keep: int,
    keys: Sequence[str] | None = None,
) -> list[Any]:
    """Keep the `keep` most promising candidates on cheap objectives (HALF's step one).

    The cheap objectives are untrained and estimated, all minimised; this runs before any
    candidate is trained.

    Candidates are ranked by non-dominated sorting (Pareto fronts); within a front, by the
    sum of their per-objective ranks (a simple, scale-free spread). Returns the kept
    candidates, best first.
    """
    if keep < 0:
        raise ConfigError(f"preselect: keep must be >= 0, not {keep}")
    if not candidates or keep == 0:
        return []
    values = [cheap_objectives(c) for c in candidates]
    names = list(keys) if keys is not None else sorted(values[0])
    f = np.array([[v[k] for k in names] for v in values], dtype=np.float64)
    n = len(candidates)
    dominated_by = [0] * n
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if np.all(f[i] <= f[j]) and np.any(f[i] < f[j]):
                dominates[i].append(j)
                dominated_by[j] += 1
            elif np.all(f[j] <= f[i]) and np.any(f[j] < f[i]):
                dominates[j].append(i)
                dominated_by[i] += 1
    ranks = np.argsort(np.argsort(f, axis=0), axis=0).sum(axis=1)
    order: list[int] = []
    front = [i for i in range(n) if dominated_by[i] == 0]
    while front:
        order += sorted(front, key=lambda i: (ranks[i], i))
        nxt = []
        for i in front:
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        front = nxt
    return [candidates[i] for i in order[:keep]]


def estimated_params(arch: HalfArch, space: HalfSpace) -> int:
    """Weights + biases of the folded model (what the FPGA stores on chip)."""
    return int(math.fsum(layer.params for layer in space.hw_layers(arch)))


# ---------------------------------------------------------------- tf-keras (lazy)
# TensorFlow is imported only here, so the space, its encoding and its hardware objectives
# work without it (the search pre-selects before any training).


def _keras() -> Any:
    # tf-keras (Keras 2) is the working int8 export path; it must be chosen before import.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


def _build_half_model(
    arch: Any,
    input_length: int,
    n_channels: int,
    n_classes: int,
    batch_size: int | None,
    batchnorm: bool,
) -> Any:
    keras = _keras()
    layers = keras.layers
    inp = layers.Input((input_length, n_channels), batch_size=batch_size, name="ecg")
    x = inp
    for i, layer in enumerate(arch.layers):
        if isinstance(layer, SepConv):
            x = layers.DepthwiseConv1D(
                layer.kernel,
                strides=layer.stride,
                depth_multiplier=layer.multiplier,
                padding="valid",
                use_bias=False,
                name=f"b{i}_dw",
            )(x)
            if batchnorm:
                x = layers.Conv1D(layer.filters, 1, use_bias=False, name=f"b{i}_pw")(x)
                x = layers.BatchNormalization(name=f"b{i}_bn")(x)
                x = layers.ReLU(name=f"b{i}_relu")(x)
            else:
                x = layers.Conv1D(layer.filters, 1, activation="relu", name=f"b{i}_pw")(x)
        else:
            x = layers.MaxPooling1D(
                layer.stride, strides=layer.stride, padding="valid", name=f"b{i}_pool"
            )(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    out = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out, name="half")


def _fold_half_batchnorm(model: Any, arch: Any, batch_size: int | None) -> Any:
    inp = model.input_shape
    folded = _build_half_model(arch, inp[1], inp[2], model.output_shape[-1], batch_size, False)
    for i, layer in enumerate(arch.layers):
        if not isinstance(layer, SepConv):
            continue
        folded.get_layer(f"b{i}_dw").set_weights(model.get_layer(f"b{i}_dw").get_weights())
        pw = model.get_layer(f"b{i}_pw").get_weights()
        kernel = pw[0]
        bias = pw[1] if len(pw) > 1 else np.zeros(kernel.shape[-1], dtype=kernel.dtype)
        bn = model.get_layer(f"b{i}_bn")
        gamma, beta, mean, var = bn.get_weights()
        scale = gamma / np.sqrt(var + bn.epsilon)
        folded.get_layer(f"b{i}_pw").set_weights([kernel * scale, beta + (bias - mean) * scale])
    folded.get_layer("logits").set_weights(model.get_layer("logits").get_weights())
    return folded


__all__ = [
    "AcceptanceLimits",
    "HalfArch",
    "HalfSpace",
    "MaxPool",
    "SepConv",
    "conv_configs",
    "detection_rates",
    "estimated_params",
    "fold_batchnorm",
    "preselect",
]
