"""BioNetExplorer's space: ResNet blocks of 1-D convolutions followed by one LSTM layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from host.errors import ConfigError
from host.hw.costs import (
    AddSpec,
    BatchNormSpec,
    Conv1DSpec,
    Costs,
    DenseSpec,
    LayerSpec,
    LSTMSpec,
    layer_costs,
)
from host.spaces.base import BuildOptions, Gene, InputSpec, Space, register_space

if TYPE_CHECKING:
    from host.tasks.base import Task

KERNEL = 16
BASE_FILTERS = 32
BLOCKS = range(0, 16)  # 4 bits
FILTER_STEPS = range(1, 5)  # x: 2 bits
LSTM_EXPONENTS = range(4, 9)  # z: 3 bits, codes 5..7 are invalid
BITS = (4, 2, 3)
#: units of the ReLU layer that maps a second input (RR features) before the head
AUX_UNITS = 8

# The paper bounds its space with "the number of parameters and storage size" of the
# state-of-the-art reference network but does not print the bound. With this block
# definition a bound of 1.05 M parameters (about 4.2 MB in float32) on the two-class,
# 256-sample network reproduces its 320 -> 135 (any bound in [1,036,226, 1,065,090) does).
REFERENCE_MAX_PARAMS = 1_050_000


@dataclass(frozen=True, order=True)
class BioNetArch:
    """One network of the space.

    `blocks` ResNet blocks whose filters are 32 x 2^y with y = block index // `filter_step`
    (the paper's x), then an LSTM of 2^`lstm_exp` cells (the paper's z).
    """

    blocks: int
    filter_step: int
    lstm_exp: int

    def __post_init__(self) -> None:
        if self.blocks not in BLOCKS:
            raise ConfigError(f"blocks: must be in 0..15, not {self.blocks}")
        if self.filter_step not in FILTER_STEPS:
            raise ConfigError(f"filter_step: must be in 1..4, not {self.filter_step}")
        if self.lstm_exp not in LSTM_EXPONENTS:
            raise ConfigError(f"lstm_exp: must be in 4..8, not {self.lstm_exp}")

    @property
    def lstm_cells(self) -> int:
        return 2**self.lstm_exp

    @property
    def filters(self) -> tuple[int, ...]:
        """Filters of each block."""
        return tuple(BASE_FILTERS * 2 ** (i // self.filter_step) for i in range(self.blocks))

    def key(self) -> str:
        """Return a stable string id, e.g. 'bionet-b3-x2-l32'."""
        return f"bionet-b{self.blocks}-x{self.filter_step}-l{self.lstm_cells}"

    @classmethod
    def from_key(cls, key: str) -> BioNetArch:
        """Parse `key()` back."""
        try:
            name, b, x, lcells = key.split("-")
            if name != "bionet":
                raise ValueError(name)
            cells = int(lcells[1:])
            return cls(int(b[1:]), int(x[1:]), cells.bit_length() - 1)
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"arch: {key!r} is not a bionet key like 'bionet-b3-x2-l32'") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "space": "bionet",
            "key": self.key(),
            "blocks": self.blocks,
            "filter_step": self.filter_step,
            "lstm_cells": self.lstm_cells,
            "filters": list(self.filters),
        }

    def layer_specs(
        self, input_length: int, n_channels: int, n_classes: int, aux_features: int = 0
    ) -> list[LayerSpec]:
        """Return the layers, for `host.hw.costs` (with the RR branch when `aux_features`)."""
        specs: list[LayerSpec] = []
        ch = n_channels
        for f in self.filters:
            specs += [
                Conv1DSpec(input_length, ch, f, KERNEL),
                BatchNormSpec(input_length, f),
                Conv1DSpec(input_length, f, f, KERNEL),
                BatchNormSpec(input_length, f),
            ]
            if ch != f:
                specs.append(Conv1DSpec(input_length, ch, f, 1))  # projection shortcut
            specs.append(AddSpec(input_length, f))
            ch = f
        specs.append(LSTMSpec(input_length, ch, self.lstm_cells))
        if aux_features:
            specs.append(DenseSpec(aux_features, AUX_UNITS))
            specs.append(DenseSpec(self.lstm_cells, n_classes))  # the sequence's logits
            specs.append(DenseSpec(AUX_UNITS, n_classes))  # the rhythm's logits
        else:
            specs.append(DenseSpec(self.lstm_cells, n_classes))
        return specs


@register_space("bionet")
class BioNetSpace(Space[BioNetArch]):
    """The BioNetExplorer space with configurable upper bounds.

    Bounds (each None to disable): `max_params` (Keras parameters of the network for the
    task's input and outputs; default: the reference network's, which gives the paper's 135
    of 320 on a two-class, 256-sample window), `max_blocks`, `max_filters` (widest block),
    `max_lstm_cells`, `max_storage_bytes` (float32 storage). `all_architectures()` is the
    unbounded 16 x 4 x 5 = 320.
    """

    has_binary_encoding = True

    def __init__(
        self,
        input: InputSpec,
        *,
        max_params: int | None = REFERENCE_MAX_PARAMS,
        max_blocks: int | None = None,
        max_filters: int | None = None,
        max_lstm_cells: int | None = None,
        max_storage_bytes: int | None = None,
    ) -> None:
        super().__init__(input)
        for key, value in (
            ("max_params", max_params),
            ("max_blocks", max_blocks),
            ("max_filters", max_filters),
            ("max_lstm_cells", max_lstm_cells),
            ("max_storage_bytes", max_storage_bytes),
        ):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{key}: must be a non-negative integer or None, not {value!r}")
        self.max_params = max_params
        self.max_blocks = max_blocks
        self.max_filters = max_filters
        self.max_lstm_cells = max_lstm_cells
        self.max_storage_bytes = max_storage_bytes

    def bounds(self) -> dict[str, int | None]:
        return {
            "max_params": self.max_params,
            "max_blocks": self.max_blocks,
            "max_filters": self.max_filters,
            "max_lstm_cells": self.max_lstm_cells,
            "max_storage_bytes": self.max_storage_bytes,
        }

    @cached_property
    def _all(self) -> list[BioNetArch]:
        return [BioNetArch(b, x, z) for b in BLOCKS for x in FILTER_STEPS for z in LSTM_EXPONENTS]

    @cached_property
    def _bounded(self) -> list[BioNetArch]:
        return [a for a in self._all if self._within_bounds(a)]

    def _within_bounds(self, a: BioNetArch) -> bool:
        if self.max_blocks is not None and a.blocks > self.max_blocks:
            return False
        if self.max_filters is not None and a.filters and max(a.filters) > self.max_filters:
            return False
        if self.max_lstm_cells is not None and a.lstm_cells > self.max_lstm_cells:
            return False
        if self.max_params is None and self.max_storage_bytes is None:
            return True
        c = self.costs(a)
        if self.max_params is not None and c.params > self.max_params:
            return False
        return self.max_storage_bytes is None or c.storage_float32_bytes <= self.max_storage_bytes

    # ------------------------------------------------------------------ listing
    def size(self) -> int:
        return len(self._bounded)

    def architectures(self) -> list[BioNetArch]:
        """Every gene combination of the bounded space, sorted by (blocks, x, z).

        That is how the paper counts them (135 with the default bound).

        With 0 blocks the filter step changes nothing, so some entries build the same
        network; `distinct_architectures` drops those.
        """
        return list(self._bounded)

    def all_architectures(self) -> list[BioNetArch]:
        """The unbounded space: every one of the 320 gene combinations."""
        return list(self._all)

    @cached_property
    def _canonical(self) -> dict[tuple[tuple[int, ...], int], BioNetArch]:
        seen: dict[tuple[tuple[int, ...], int], BioNetArch] = {}
        for a in self._all:
            seen.setdefault((a.filters, a.lstm_cells), a)
        return seen

    def canonical(self, arch: BioNetArch) -> BioNetArch:
        """With 0 blocks the filter step changes nothing: b0-x1..x4 are one network."""
        return self._canonical.get((arch.filters, arch.lstm_cells), arch)

    def contains(self, arch: Any) -> bool:
        return isinstance(arch, BioNetArch) and self._within_bounds(arch)

    def from_key(self, key: str) -> BioNetArch:
        return BioNetArch.from_key(key)

    # ------------------------------------------------------------------ genes
    def genes(self) -> tuple[Gene, ...]:
        return (Gene("blocks", 0, 15), Gene("filter_step", 1, 4), Gene("lstm_exp", 4, 8))

    @property
    def chromosome_length(self) -> int:
        return sum(BITS)

    # Binary chromosome (Fig. 5): 4 bits blocks, 2 bits x - 1, 3 bits z - 4; MSB first.
    def encode(self, arch: BioNetArch) -> list[int]:
        values = (arch.blocks, arch.filter_step - 1, arch.lstm_exp - 4)
        bits: list[int] = []
        for v, n in zip(values, BITS, strict=True):
            bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]
        return bits

    def decode(self, bits: Sequence[int]) -> BioNetArch | None:
        """Return the architecture, or None when the z gene is 5..7 or bounds exclude it."""
        if len(bits) != self.chromosome_length or any(b not in (0, 1) for b in bits):
            raise ConfigError(f"chromosome: expected {self.chromosome_length} bits, got {bits!r}")
        values, pos = [], 0
        for n in BITS:
            v = 0
            for b in bits[pos : pos + n]:
                v = (v << 1) | int(b)
            values.append(v)
            pos += n
        blocks, x, z = values[0], values[1] + 1, values[2] + 4
        if z not in LSTM_EXPONENTS:
            return None
        arch = BioNetArch(blocks, x, z)
        return arch if self._within_bounds(arch) else None

    # Direct integer encoding: one gene per parameter (blocks, x, z).
    def encode_int(self, arch: BioNetArch) -> list[int]:
        return [arch.blocks, arch.filter_step, arch.lstm_exp]

    def decode_int(self, genes: Sequence[int]) -> BioNetArch | None:
        """Return the architecture of (blocks, x, z), or None outside the bounded space."""
        if len(genes) != 3:
            raise ConfigError(f"genes: expected (blocks, x, z), got {genes!r}")
        try:
            arch = BioNetArch(int(genes[0]), int(genes[1]), int(genes[2]))
        except ConfigError:
            return None
        return arch if self._within_bounds(arch) else None

    # ------------------------------------------------------------------ costs and models
    def costs(self, arch: BioNetArch) -> Costs:
        i = self.input
        costs = layer_costs(arch.layer_specs(i.length, i.channels, i.outputs, i.aux_features))
        # The device holds the int8 window and the int8 RR features.
        return replace(costs, input_buffer_bytes=i.length * i.channels + i.aux_features)

    def build_model(
        self, arch: BioNetArch, task: Task, options: BuildOptions | None = None
    ) -> Any:
        i, o = self.input, options or BuildOptions()
        return build_keras_model(arch, i.length, i.channels, i.outputs, o.batch_size,
                                 dropout=o.dropout, seed=o.seed, head=task.head,
                                 aux_features=i.aux_features,
                                 output_activation=task.output_activation)

    def aux_branch(self, model: Any, task: Task) -> tuple[Any, list[Any]] | None:
        """The RR branch (rr_dense and its own head): see `rhythm_branch`."""
        return rhythm_branch(model, task.output_activation)


def rhythm_branch(model: Any, output_activation: str | None) -> tuple[Any, list[Any]] | None:
    """The RR branch of a two-input `build_keras_model` network as a model of its own.

    From the "rr" input through `rr_dense` to the rhythm's head (`out_rr`, and the task's
    activation after it); the layers it returns are the branch's, shared with `model`.
    None for a one-input network.
    """
    from host.train.tfenv import import_keras

    if len(model.inputs) < 2:
        return None
    keras = import_keras()
    head = model.get_layer("out_rr")
    out = head.output
    if output_activation:
        out = keras.layers.Activation(output_activation, name="out_rr_activation")(out)
    branch = keras.Model(model.inputs[1], out, name=f"{model.name}-rhythm")
    # Every layer between the input and the head: rr_dense, the head (and a head's own
    # inner layers, e.g. a regression's unit before its rescaling).
    layers = [layer for layer in branch.layers
              if layer.weights and layer.name != "out_rr_activation"]
    return branch, layers


def build_keras_model(
    arch: BioNetArch,
    input_length: int,
    n_channels: int,
    n_classes: int,
    batch_size: int | None = None,
    dropout: float = 0.2,
    seed: int | None = None,
    head: Any = None,
    aux_features: int = 0,
    output_activation: str | None = "softmax",
) -> Any:
    """Return an uncompiled tf-keras model of `arch` (a softmax over `n_classes` by default).

    Each block: Conv1D(f, 16, same) -> BN -> ReLU -> Dropout, twice, plus a shortcut (a 1x1
    projection when the width changes). Pass `batch_size=1` for a model to export: static
    shapes are what gives TFLite a fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM. `head` is a
    task's output layer (`Task.head`); None is a softmax classifier.

    `aux_features` > 0 adds a second input, "rr" (a beat's RR-interval features): a small
    ReLU layer of `AUX_UNITS` maps it, and the head's logits are the sum of the LSTM's and
    the rhythm's (two heads without activation, added, then `output_activation`, the
    task's own: softmax for classification). The rhythm is what tells a premature beat from
    a normal one of the same shape. The sum is the same function as one head over the two
    concatenated, but int8 keeps it: TFLite's int8 CONCATENATION gives all its inputs one
    scale, which clipped the rhythm branch to the LSTM's range and cost 5 points of
    balanced accuracy; ADD rescales each input (docs/decisions.md, issue 18).
    """
    from host.train.tfenv import import_keras

    keras = import_keras()
    layers = keras.layers
    counter = iter(range(1_000_000))

    def init() -> Any:
        # One initializer per layer: a shared seeded one would give every layer equal weights.
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed + next(counter))

    inp = layers.Input(shape=(input_length, n_channels), batch_size=batch_size, name="ecg")
    h = inp
    ch = n_channels
    for i, f in enumerate(arch.filters):
        y = h
        for j in range(2):
            y = layers.Conv1D(
                f, KERNEL, padding="same", kernel_initializer=init(), name=f"b{i}_conv{j}"
            )(y)
            y = layers.BatchNormalization(name=f"b{i}_bn{j}")(y)
            y = layers.ReLU(name=f"b{i}_relu{j}")(y)
            y = layers.Dropout(dropout, name=f"b{i}_drop{j}")(y)
        shortcut = h
        if ch != f:
            shortcut = layers.Conv1D(f, 1, kernel_initializer=init(), name=f"b{i}_proj")(h)
        h = layers.Add(name=f"b{i}_add")([y, shortcut])
        ch = f
    h = layers.LSTM(arch.lstm_cells, kernel_initializer=init(), name="lstm")(h)
    if aux_features:
        rr = layers.Input(shape=(aux_features,), batch_size=batch_size, name="rr")
        r = layers.Dense(AUX_UNITS, activation="relu", kernel_initializer=init(),
                         name="rr_dense")(rr)
        if head is None:
            seq = layers.Dense(n_classes, kernel_initializer=init(), name="out_seq")(h)
            rhythm = layers.Dense(n_classes, kernel_initializer=init(), name="out_rr")(r)
        else:
            seq = head(keras, h, logits=True, name="out_seq", kernel_initializer=init())
            rhythm = head(keras, r, logits=True, name="out_rr", kernel_initializer=init())
        logits = layers.Add(name="out_logits")([seq, rhythm])
        out = (layers.Activation(output_activation, name="out")(logits)
               if output_activation else logits)
        return keras.Model([inp, rr], out, name=arch.key())
    if head is None:
        out = layers.Dense(
            n_classes, activation="softmax", kernel_initializer=init(), name="out"
        )(h)
    else:
        out = head(keras, h, name="out", kernel_initializer=init())
    return keras.Model(inp, out, name=arch.key())


def arch_from_any(value: BioNetArch | str | Sequence[int]) -> BioNetArch:
    """Return an architecture from an arch, a key ('bionet-b3-x2-l32') or (blocks, x, z)."""
    if isinstance(value, BioNetArch):
        return value
    if isinstance(value, str):
        return BioNetArch.from_key(value)
    blocks, x, z = value
    return BioNetArch(int(blocks), int(x), int(z))
