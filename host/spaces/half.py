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

Objectives: HALF's hardware objectives from host/hw/half.py for the space's `board`
(power, energy and latency with minimal and maximal unrolling, and throughput; all
estimated, known before training: `estimates`), the parameter count, and the task's
detection and false-alarm rates, which HALF bounds by acceptance limits (90% and 20%; a
search states them as constraints, see configs/half_ecg.toml). `preselect` is HALF's
two-step selection: rank untrained candidates on the cheap hardware objectives and train
only the best (the search's `strategy.surrogate = "cheap"`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from host.errors import ConfigError
from host.hw.costs import (
    BatchNormSpec,
    Conv1DSpec,
    Costs,
    DenseSpec,
    LayerSpec,
    layer_costs,
)
from host.hw.half import Board, HwLayer, estimate, load_board, objectives
from host.metrics import MetricKind, MetricSpec
from host.spaces.base import (
    BuildOptions,
    Gene,
    InputSpec,
    RandomSource,
    Space,
    register_space,
)

if TYPE_CHECKING:
    from host.tasks.base import Task

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

    @classmethod
    def from_key(cls, key: str) -> HalfArch:
        """Parse `key()` back ('half:s3.1.1.4-p2')."""
        try:
            prefix, _, body = key.partition(":")
            if prefix != "half" or not body:
                raise ValueError(key)
            layers: list[Layer] = []
            for part in body.split("-"):
                if part.startswith("s"):
                    k, st, m, f = (int(v) for v in part[1:].split("."))
                    layers.append(SepConv(k, st, m, f))
                elif part.startswith("p"):
                    layers.append(MaxPool(int(part[1:])))
                else:
                    raise ValueError(part)
        except ValueError as exc:
            raise ConfigError(f"arch: {key!r} is not a HALF key like 'half:s3.1.1.4-p2'") from exc
        return cls(tuple(layers))

    def to_json(self) -> dict[str, Any]:
        return {
            "space": "half",
            "key": self.key(),
            "layers": [
                {"kind": "sepconv", **vars(layer)} if isinstance(layer, SepConv)
                else {"kind": "maxpool", "stride": layer.stride}
                for layer in self.layers
            ],
        }


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


#: HALF's hardware objectives, per unrolling ("min": one MAC lane per layer, "max": full
#: unrolling), estimated by the analytic models of host/hw/half.py; all known before training.
HALF_METRICS: tuple[MetricSpec, ...] = tuple(
    MetricSpec(f"fpga_{what}_{tag}_unroll", maximise, MetricKind.ANALYTIC, unit, text)
    for tag in ("min", "max")
    for what, maximise, unit, text in (
        ("latency_us", False, "us", "latency of one window (HALF Eq. 1)"),
        ("power_w", False, "W", "accelerator power (HALF Eq. 3)"),
        ("energy_uj", False, "uJ", "energy of one window (HALF Eq. 4)"),
        ("throughput", True, "1/s", "windows per second, one instance"),
    )
)


@register_space("half")
class HalfSpace(Space[HalfArch]):
    """HALF's depthwise-separable 1-D CNN space (see the module docstring)."""

    has_binary_encoding = True
    output_logits = True  # the accelerator returns logits; argmax is the class

    def __init__(
        self,
        input: InputSpec,
        *,
        min_depth: int = MIN_DEPTH,
        max_depth: int = MAX_DEPTH,
        kernels: Sequence[int] = KERNELS,
        strides: Sequence[int] = STRIDES,
        multipliers: Sequence[int] = MULTIPLIERS,
        filters: Sequence[int] = FILTERS,
        pool_strides: Sequence[int] = POOL_STRIDES,
        board: str = "pynq-z1",
    ) -> None:
        super().__init__(input)
        input.require_single_input(
            "half", "HALF's dataflow accelerator streams one window through its layers and "
            "the HLS generator has no second input port"
        )
        if not 1 <= min_depth <= max_depth <= MAX_DEPTH:
            raise ConfigError(f"depth bounds must satisfy 1 <= {min_depth} <= {max_depth} <= 15")
        self.min_depth, self.max_depth = min_depth, max_depth
        self.kernels, self.strides = tuple(kernels), tuple(strides)
        self.multipliers, self.filters = tuple(multipliers), tuple(filters)
        self.pool_strides = tuple(pool_strides)
        self.layer_types: list[Layer] = [
            *conv_configs(kernels, strides, multipliers, filters),
            *(MaxPool(s) for s in pool_strides),
        ]
        if not self.layer_types:
            raise ConfigError("the HALF space needs at least one layer type")
        if len(self.layer_types) > 2 ** (SLOT_BITS - 1):
            raise ConfigError(f"{len(self.layer_types)} layer types do not fit 6 bits")
        self.board = load_board(board)  # ConfigError naming the known boards

    # ------------------------------------------------------------------ structure
    def is_valid(self, arch: HalfArch) -> bool:
        if not self.min_depth <= len(arch.layers) <= self.max_depth:
            return False
        if not any(isinstance(layer, SepConv) for layer in arch.layers):
            return False
        length = self.input.length
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

    def from_key(self, key: str) -> HalfArch:
        return HalfArch.from_key(key)

    def size(self) -> int:
        """Sequences of layer types of every allowed depth (an upper bound: some are invalid)."""
        n = len(self.layer_types)
        return sum(n**d for d in range(self.min_depth, self.max_depth + 1))

    def architectures(self) -> list[HalfArch]:
        if not self.enumerable:
            return super().architectures()  # raises, naming the size
        out = []
        for d in range(self.min_depth, self.max_depth + 1):
            for combo in itertools.product(self.layer_types, repeat=d):
                arch = HalfArch(tuple(combo))
                if self.is_valid(arch):
                    out.append(arch)
        return out

    def sample(self, n: int, seed: int = 0) -> list[HalfArch]:
        """Draw `n` distinct valid architectures (uniform depth, uniform layer types)."""
        if self.enumerable:
            return super().sample(n, seed)
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
            if not self.is_valid(arch) or arch in seen:
                continue
            seen.add(arch)
            out.append(arch)
        return out

    def draw(self, rng: RandomSource) -> HalfArch:
        """A valid architecture: a uniform depth, then uniform layer types (retried)."""
        if self.enumerable:
            return super().draw(rng)
        for _ in range(10_000):
            depth = rng.randint(self.min_depth, self.max_depth)
            arch = HalfArch(tuple(rng.choice(self.layer_types) for _ in range(depth)))
            if self.is_valid(arch):
                return arch
        raise ConfigError(f"the HALF space for a {self.input.length}-sample input has no "
                          "valid architecture within 10,000 draws; loosen its bounds")

    # ------------------------------------------------------------------ encodings
    def genes(self) -> tuple[Gene, ...]:
        """Per slot: active (0/1) and layer type; an inactive slot's type is dormant."""
        return tuple(
            gene
            for slot in range(self.max_depth)
            for gene in (Gene(f"active{slot}", 0, 1),
                         Gene(f"type{slot}", 0, len(self.layer_types) - 1))
        )

    def encode_int(self, arch: HalfArch) -> list[int]:
        if not self.contains(arch):
            raise ConfigError(f"encode: {arch.key()} is not in this space")
        genes: list[int] = []
        for slot in range(self.max_depth):
            if slot < len(arch.layers):
                genes += [1, self.layer_types.index(arch.layers[slot])]
            else:
                genes += [0, 0]
        return genes

    def decode_int(self, genes: Sequence[int]) -> HalfArch | None:
        if len(genes) != 2 * self.max_depth:
            raise ConfigError(f"decode: {len(genes)} genes, expected {2 * self.max_depth}")
        layers = []
        for slot in range(self.max_depth):
            active, t = int(genes[2 * slot]), int(genes[2 * slot + 1])
            if not active:
                continue
            if not 0 <= t < len(self.layer_types):
                return None
            layers.append(self.layer_types[t])
        arch = HalfArch(tuple(layers))
        return arch if self.is_valid(arch) else None

    @property
    def chromosome_length(self) -> int:
        return SLOT_BITS * self.max_depth

    # The paper's chromosome is the integer genes in bits: per slot, the active bit, then
    # the layer type in 6 bits (MSB first).
    def encode(self, arch: HalfArch) -> list[int]:
        genes = self.encode_int(arch)
        bits: list[int] = []
        for active, t in zip(genes[::2], genes[1::2], strict=True):
            bits += [active] + ([(t >> (5 - i)) & 1 for i in range(6)] if active else [0] * 6)
        return bits

    def decode(self, bits: Sequence[int]) -> HalfArch | None:
        if len(bits) != self.chromosome_length:
            raise ConfigError(f"decode: {len(bits)} bits, expected {self.chromosome_length}")
        genes: list[int] = []
        for slot in range(self.max_depth):
            gene = bits[slot * SLOT_BITS : (slot + 1) * SLOT_BITS]
            genes += [int(gene[0]), int("".join(str(int(b)) for b in gene[1:]), 2)]
        return self.decode_int(genes)

    # ------------------------------------------------------------------ hardware view
    def hw_layers(self, arch: HalfArch) -> list[HwLayer]:
        """Return the accelerator's layers (depthwise, pointwise, pooling, GAP, dense)."""
        out: list[HwLayer] = []
        length, ch = self.input.length, self.input.channels
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
        out.append(HwLayer("dense", 1, ch, self.input.outputs))
        return out

    def hardware_objectives(self, arch: HalfArch, board: Board | str) -> dict[str, float]:
        """HALF's cheap objectives for `board` (estimated, all to minimise)."""
        return objectives(self.hw_layers(arch), board)

    def layer_specs(self, arch: HalfArch) -> list[LayerSpec]:
        """The trained network's layers for host.hw.costs.

        Batch norm follows each pointwise convolution and is folded into it when deployed.
        """
        specs: list[LayerSpec] = []
        for layer in self.hw_layers(arch):
            if layer.kind == "dwconv":
                specs.append(Conv1DSpec(layer.out_length, layer.cin, layer.cout, layer.kernel,
                                        bias=False, depthwise=True))
            elif layer.kind == "pwconv":
                specs += [Conv1DSpec(layer.length, layer.cin, layer.cout, 1, bias=False),
                          BatchNormSpec(layer.length, layer.cout)]
            elif layer.kind == "dense":
                specs.append(DenseSpec(layer.cin, layer.cout))
        return specs

    def costs(self, arch: HalfArch) -> Costs:
        i = self.input
        costs = layer_costs(self.layer_specs(arch))
        return replace(costs, input_buffer_bytes=i.length * i.channels)

    def metrics(self) -> tuple[MetricSpec, ...]:
        return (*super().metrics(), *HALF_METRICS)

    def estimates(self, arch: HalfArch) -> dict[str, float]:
        layers = self.hw_layers(arch)
        out: dict[str, float] = {}
        for tag in ("min", "max"):
            e = estimate(layers, self.board, tag)
            seconds = float(e.latency.value or 0.0)
            out[f"fpga_latency_us_{tag}_unroll"] = seconds * 1e6
            out[f"fpga_power_w_{tag}_unroll"] = float(e.power.value or 0.0)
            out[f"fpga_energy_uj_{tag}_unroll"] = float(e.energy.value or 0.0) * 1e6
            out[f"fpga_throughput_{tag}_unroll"] = 1.0 / seconds if seconds > 0 else 0.0
        return out

    def estimate_source(self) -> str:
        return f"estimated (HALF model, {self.board.name} at {self.board.clock_mhz:g} MHz)"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "board": self.board.name}

    # ------------------------------------------------------------------ keras
    def build_model(
        self, arch: HalfArch, task: Task, options: BuildOptions | None = None
    ) -> Any:
        """A tf-keras model of `arch` that outputs logits (the accelerator's output).

        Each separable block is DW -> PW -> BN -> ReLU; `export_model` folds the batch norm
        into the pointwise convolution, so the int8 TFLite graph maps one-to-one onto the
        HLS library.
        """
        batch_size = options.batch_size if options else None
        return build_half_model(arch, self.input, batch_size, head=task.head)

    def export_model(self, trained: Any, arch: HalfArch, task: Task) -> Any:
        return _fold_half_batchnorm(trained, arch, 1, head=task.head)


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
    from host.search.pareto import nondominated_order

    if keep < 0:
        raise ConfigError(f"preselect: keep must be >= 0, not {keep}")
    if not candidates or keep == 0:
        return []
    values = [cheap_objectives(c) for c in candidates]
    names = list(keys) if keys is not None else sorted(values[0])
    order = nondominated_order(np.array([[v[k] for k in names] for v in values]))
    return [candidates[i] for i in order[:keep]]


# ---------------------------------------------------------------- tf-keras (lazy)
# TensorFlow is imported only here, so the space, its encoding and its hardware objectives
# work without it (the search pre-selects before any training).


def _keras() -> Any:
    from host.train.tfenv import import_keras

    return import_keras()


def build_half_model(
    arch: HalfArch,
    input: InputSpec,
    batch_size: int | None = None,
    batchnorm: bool = True,
    head: Any = None,
) -> Any:
    """A tf-keras model of `arch` with a logits head (`head`: a task's, or a plain Dense).

    With `batchnorm` (training) each separable block is DW -> PW -> BN -> ReLU; without it
    (the folded inference graph) DW -> PW(ReLU), as the HLS library computes it.
    """
    keras = _keras()
    layers = keras.layers
    n_classes = input.outputs
    inp = layers.Input((input.length, input.channels), batch_size=batch_size, name="ecg")
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
    # Logits: the accelerator's output (the task's head without its final activation).
    if head is None:
        out = layers.Dense(n_classes, name="logits")(x)
    else:
        out = head(keras, x, logits=True, name="logits")
    return keras.Model(inp, out, name="half")


def _fold_half_batchnorm(
    model: Any, arch: Any, batch_size: int | None, head: Any = None
) -> Any:
    shape = InputSpec(model.input_shape[1], model.input_shape[2], model.output_shape[-1])
    folded = build_half_model(arch, shape, batch_size, batchnorm=False, head=head)
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
    "HALF_METRICS",
    "HalfArch",
    "HalfSpace",
    "MaxPool",
    "SepConv",
    "build_half_model",
    "conv_configs",
    "fold_batchnorm",
    "preselect",
]
