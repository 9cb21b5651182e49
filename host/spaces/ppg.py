"""The starting models for pulse rate: GOS's two, and a convolutional spectral peak picker.

GOS (section 4.3) adapts two models that estimate the heart rate in BPM from TROIKA's wrist
PPG and accelerometer (host/tasks/ppg.py):

- `ppg_peaks`, the "RF model": a band-pass filter and a Fourier transform give each
  channel's spectrum (the task's `input = "spectral"`, computed on the host), the spectral
  peaks are picked and a regressor maps them to BPM. A random forest is not a graph a
  TFLite runtime can run, so the regressor is a small tanh MLP (GOS's own optimised
  version also replaced the forest with a tanh MLP). The peak picker is a per-channel
  `MaxPooling1D(pool)`: each output keeps the height of the largest bin among `pool`
  neighbours, so a peak survives at a `pool`-times coarser resolution (and a shift by a
  bin within a pool does not change the features) while the MLP's input shrinks `pool`
  times. Spectra (bins, 5) -> pool -> flatten -> 1 or 2 x Dense(hidden, tanh) -> head.
- `ppg_cnnlstm`, "PPG_NAS" (NAS-PPG, Song et al. 2021): a 1-D convolution, two LSTM layers
  and a fully connected output on the raw signals (`input = "raw"`, (200, 5) at 25 Hz):
  Conv1D(filters, kernel, same, ReLU) -> LSTM(units, sequences) -> LSTM(units) -> head.

hilnas adds a third, `ppg_spectral`, because the first two score poorly on subjects they
have not seen (docs/ppg.md): convolutions over the frequency axis of the same spectra score
each bin as the pulse, the same rule at every heart rate, and the head reads the BPM off the
softmax of those scores (its expectation). Spectra (bins, 5) -> depth x Conv1D(filters,
kernel, same, ReLU) -> Conv1D(1, 1) `bin_score` -> flatten -> softmax `bin_prob` -> head.

Each is a small grid, listed in full, with one integer gene per choice (the index of the
choice in its grid, so genes are ordered like the values). Every layer has a stable name
(`pool`, `flatten`, `dense1`, `dense2`, `conv`, `lstm1`, `lstm2`, `conv1`.., `bin_score`,
`bin_prob`, then the task's head
`out_unit` and `out`), and every model is a plain chain: each layer has exactly one
inbound layer, so a module that rewrites the models layer by layer can walk them.

`bind` refuses a task other than ppg, or the other input kind, naming the setting to
change. The exported graph is the trained one at a static batch of one (the default
`Space.export_model`), which is what gives TFLite fused int8 LSTMs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from host.errors import ConfigError
from host.hw.costs import Conv1DSpec, Costs, DenseSpec, LayerSpec, LSTMSpec, layer_costs
from host.spaces.base import BuildOptions, Gene, InputSpec, Space, register_space

if TYPE_CHECKING:
    from host.tasks.base import Task

#: ppg_peaks: pool sizes of the peak picker, hidden units, hidden layers
POOLS = (1, 2, 4, 8)
HIDDEN = (16, 32, 64, 128)
DEPTHS = (1, 2)
#: ppg_cnnlstm: convolution filters and kernels, LSTM units
FILTERS = (8, 16, 32, 64)
KERNELS = (3, 5, 9)
UNITS = (16, 32, 64)
#: ppg_spectral: filters and kernel (in bins) of each convolution over frequency, depth
SPECTRAL_FILTERS = (8, 16, 32)
SPECTRAL_KERNELS = (5, 9, 15)
SPECTRAL_DEPTHS = (1, 2, 3, 4)


def _check(name: str, value: int, choices: Sequence[int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in choices:
        raise ConfigError(f"{name}: must be one of {list(choices)}, not {value!r}")


class _GridArch:
    """What every grid architecture shares: its choices, its key and its JSON.

    A subclass is a frozen dataclass of integer fields and names its space, the choices of
    each field (`GRID`), its key's format over those fields (`KEY`), the key's pattern and
    an example key.
    """

    SPACE: ClassVar[str]
    GRID: ClassVar[dict[str, tuple[int, ...]]]
    KEY: ClassVar[str]
    PATTERN: ClassVar[re.Pattern[str]]
    EXAMPLE: ClassVar[str]

    def __post_init__(self) -> None:
        for name, choices in self.GRID.items():
            _check(name, getattr(self, name), choices)

    def key(self) -> str:
        """A stable id, e.g. `EXAMPLE`."""
        return self.KEY.format(**{name: getattr(self, name) for name in self.GRID})

    def to_json(self) -> dict[str, Any]:
        return {"space": self.SPACE, "key": self.key(),
                **{name: getattr(self, name) for name in self.GRID}}


@dataclass(frozen=True, order=True)
class PeaksArch(_GridArch):
    """A `ppg_peaks` network: max-pool `pool` bins, then `layers` x Dense(`hidden`, tanh)."""

    pool: int = 2
    hidden: int = 64
    layers: int = 2

    GRID: ClassVar[dict[str, tuple[int, ...]]] = {
        "pool": POOLS, "hidden": HIDDEN, "layers": DEPTHS,
    }
    SPACE: ClassVar[str] = "ppg_peaks"
    KEY: ClassVar[str] = "ppg_peaks-p{pool}-h{hidden}x{layers}"
    PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"ppg_peaks-p(\d+)-h(\d+)x(\d+)")
    EXAMPLE: ClassVar[str] = "ppg_peaks-p4-h32x1"

    def layer_specs(self, length: int, channels: int, outputs: int) -> list[LayerSpec]:
        """The layers with weights, for host.hw.costs (pooling and flatten have none)."""
        width = (length // self.pool) * channels
        specs: list[LayerSpec] = []
        for _ in range(self.layers):
            specs.append(DenseSpec(width, self.hidden))
            width = self.hidden
        specs.append(DenseSpec(width, outputs))
        return specs


@dataclass(frozen=True, order=True)
class CnnLstmArch(_GridArch):
    """A `ppg_cnnlstm` network: Conv1D(`filters`, `kernel`) -> 2 x LSTM(`units`) -> head."""

    filters: int = 32
    kernel: int = 5
    units: int = 32

    GRID: ClassVar[dict[str, tuple[int, ...]]] = {
        "filters": FILTERS, "kernel": KERNELS, "units": UNITS,
    }
    SPACE: ClassVar[str] = "ppg_cnnlstm"
    KEY: ClassVar[str] = "ppg_cnnlstm-f{filters}-k{kernel}-u{units}"
    PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"ppg_cnnlstm-f(\d+)-k(\d+)-u(\d+)")
    EXAMPLE: ClassVar[str] = "ppg_cnnlstm-f32-k5-u32"

    def layer_specs(self, length: int, channels: int, outputs: int) -> list[LayerSpec]:
        """The layers, for host.hw.costs ('same' convolution: every step is kept)."""
        return [
            Conv1DSpec(length, channels, self.filters, self.kernel),
            LSTMSpec(length, self.filters, self.units),
            LSTMSpec(length, self.units, self.units),
            DenseSpec(self.units, outputs),
        ]


@dataclass(frozen=True, order=True)
class SpectralArch(_GridArch):
    """A `ppg_spectral` network: `depth` x Conv1D(`filters`, `kernel`) over frequency.

    Then a score per bin, a softmax over the bins and its expectation in BPM (a soft arg-max).
    """

    filters: int = 16
    kernel: int = 9
    depth: int = 4

    GRID: ClassVar[dict[str, tuple[int, ...]]] = {
        "filters": SPECTRAL_FILTERS, "kernel": SPECTRAL_KERNELS, "depth": SPECTRAL_DEPTHS,
    }
    SPACE: ClassVar[str] = "ppg_spectral"
    KEY: ClassVar[str] = "ppg_spectral-f{filters}-k{kernel}-d{depth}"
    PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"ppg_spectral-f(\d+)-k(\d+)-d(\d+)")
    EXAMPLE: ClassVar[str] = "ppg_spectral-f16-k9-d3"

    def layer_specs(self, length: int, channels: int, outputs: int) -> list[LayerSpec]:
        """The convolutions ('same': every bin kept), the per-bin score and the expectation."""
        specs: list[LayerSpec] = []
        width = channels
        for _ in range(self.depth):
            specs.append(Conv1DSpec(length, width, self.filters, self.kernel))
            width = self.filters
        specs.append(Conv1DSpec(length, width, 1, 1))
        specs.append(DenseSpec(length, outputs))
        return specs


P = TypeVar("P", PeaksArch, CnnLstmArch, SpectralArch)


class PpgGridSpace(Space[P], Generic[P]):
    """A small grid of one GOS starting model (the module docstring); no options.

    Subclasses name the architecture type, the task input they take and how to build it.
    """

    arch_type: ClassVar[type[Any]]
    #: the task's `input` the networks take, and what it is (for bind's message)
    input_kind: ClassVar[str] = ""
    input_text: ClassVar[str] = ""

    def __init__(self, input: InputSpec) -> None:
        super().__init__(input)
        input.require_single_input(self.name, "a GOS starting model takes one window")

    # ------------------------------------------------------------------ the task
    def bind(self, task: Task) -> None:
        """ConfigError unless the task is ppg with this space's input kind."""
        if task.name != "ppg":
            raise ConfigError(
                f"space {self.name!r} estimates the heart rate from TROIKA's PPG (a GOS "
                f"starting model), not task {task.name!r}: set [data] task = \"ppg\" "
                f"and input = \"{self.input_kind}\" (hilnas train --task ppg)"
            )
        kind = getattr(task.config, "input", None)
        if kind != self.input_kind:
            raise ConfigError(
                f"{self.name} takes {self.input_text}, not the {kind!r} input: set [data] "
                f"input = \"{self.input_kind}\" (hilnas train --input {self.input_kind})"
            )

    # ------------------------------------------------------------------ grid and genes
    @classmethod
    def grid(cls) -> dict[str, tuple[int, ...]]:
        """Each architecture field and its choices, in gene order."""
        return dict(cls.arch_type.GRID)

    def default_architecture(self) -> P:
        """The architecture `hilnas train --task ppg` trains when no --arch is given."""
        arch: P = self.arch_type()
        return arch

    def genes(self) -> tuple[Gene, ...]:
        """One gene per field: the index of its value in the field's choices."""
        return tuple(Gene(name, 0, len(choices) - 1) for name, choices in self.grid().items())

    def encode_int(self, arch: P) -> list[int]:
        if not self.contains(arch):
            raise ConfigError(f"encode: {arch!r} is not in space {self.name!r}")
        return [choices.index(getattr(arch, name)) for name, choices in self.grid().items()]

    def decode_int(self, genes: Sequence[int]) -> P | None:
        grid = self.grid()
        if len(genes) != len(grid):
            raise ConfigError(f"genes: expected {len(grid)} ({', '.join(grid)}), got {genes!r}")
        values: dict[str, int] = {}
        for gene, (name, choices) in zip(genes, grid.items(), strict=True):
            if not 0 <= int(gene) < len(choices):
                return None
            values[name] = choices[int(gene)]
        arch: P = self.arch_type(**values)
        return arch

    # ------------------------------------------------------------------ identity, listing
    def from_key(self, key: str) -> P:
        match = self.arch_type.PATTERN.fullmatch(key.strip()) if isinstance(key, str) else None
        if match is None:
            raise ConfigError(
                f"arch: {key!r} is not a {self.name} key like {self.arch_type.EXAMPLE!r}"
            )
        names = [f.name for f in fields(self.arch_type)]
        arch: P = self.arch_type(**dict(zip(names, map(int, match.groups()), strict=True)))
        return arch

    def contains(self, arch: Any) -> bool:
        return isinstance(arch, self.arch_type)

    def size(self) -> int:
        n = 1
        for choices in self.grid().values():
            n *= len(choices)
        return n

    def architectures(self) -> list[P]:
        """Every network of the grid, the first field varying slowest."""
        out: list[P] = []
        grid = list(self.grid().items())

        def walk(i: int, values: dict[str, int]) -> None:
            if i == len(grid):
                out.append(self.arch_type(**values))
                return
            name, choices = grid[i]
            for v in choices:
                walk(i + 1, {**values, name: v})

        walk(0, {})
        return out

    # ------------------------------------------------------------------ costs
    def costs(self, arch: P) -> Costs:
        i = self.input
        costs = layer_costs(arch.layer_specs(i.length, i.channels, i.outputs))
        return replace(costs, input_buffer_bytes=i.length * i.channels)  # the int8 window


def _keras() -> Any:
    from host.train.tfenv import import_keras

    return import_keras()


def _initializer(keras: Any, seed: int | None, counter: list[int]) -> Any:
    # One seeded initializer per layer: a shared one would give every layer equal weights.
    counter[0] += 1
    return keras.initializers.GlorotUniform(seed=None if seed is None else seed + counter[0])


@register_space("ppg_peaks")
class PpgPeaksSpace(PpgGridSpace[PeaksArch]):
    """GOS's "RF model" on spectra: max-pool peak picker, tanh MLP, the task's head.

    4 pools x 4 widths x 2 depths = 32 networks (module docstring).
    """

    arch_type = PeaksArch
    input_kind = "spectral"
    input_text = "the spectra (bins, 5) of the band-passed window"

    def build_model(self, arch: PeaksArch, task: Task,
                    options: BuildOptions | None = None) -> Any:
        """Spectra -> MaxPooling1D `pool` -> Flatten -> Dense(tanh) x layers -> task head."""
        keras, o, i = _keras(), options or BuildOptions(), self.input
        if i.length < arch.pool:
            raise ConfigError(f"{arch.key()}: pool {arch.pool} is wider than the "
                              f"{i.length} bins of the input")
        layers, counter = keras.layers, [0]
        inp = layers.Input((i.length, i.channels), batch_size=o.batch_size, name="spectrum")
        h = layers.MaxPooling1D(arch.pool, strides=arch.pool, padding="valid", name="pool")(inp)
        h = layers.Flatten(name="flatten")(h)
        for n in range(1, arch.layers + 1):
            h = layers.Dense(arch.hidden, activation="tanh", name=f"dense{n}",
                             kernel_initializer=_initializer(keras, o.seed, counter))(h)
        head: Any = task.head  # every task's head takes the Dense layer's options
        out = head(keras, h, name="out", kernel_initializer=_initializer(keras, o.seed, counter))
        return keras.Model(inp, out, name=arch.key())


@register_space("ppg_cnnlstm")
class PpgCnnLstmSpace(PpgGridSpace[CnnLstmArch]):
    """GOS's "PPG_NAS" model on the raw signals: Conv1D, two LSTMs, the task's head.

    4 filter counts x 3 kernels x 3 LSTM widths = 36 networks (module docstring).
    """

    arch_type = CnnLstmArch
    input_kind = "raw"
    input_text = "the raw signal (samples, 5) of the band-passed window"

    def build_model(self, arch: CnnLstmArch, task: Task,
                    options: BuildOptions | None = None) -> Any:
        """Window -> Conv1D(same, ReLU) -> LSTM (sequences) -> LSTM -> task head.

        Pass `batch_size=1` for the graph to export: static shapes are what give TFLite a
        fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM (docs/decisions-ecg.md).
        """
        keras, o, i = _keras(), options or BuildOptions(), self.input
        layers, counter = keras.layers, [0]
        inp = layers.Input((i.length, i.channels), batch_size=o.batch_size, name="ppg")
        h = layers.Conv1D(arch.filters, arch.kernel, padding="same", activation="relu",
                          name="conv", kernel_initializer=_initializer(keras, o.seed, counter))(inp)
        h = layers.LSTM(arch.units, return_sequences=True, name="lstm1",
                        kernel_initializer=_initializer(keras, o.seed, counter))(h)
        h = layers.LSTM(arch.units, name="lstm2",
                        kernel_initializer=_initializer(keras, o.seed, counter))(h)
        head: Any = task.head  # every task's head takes the Dense layer's options
        out = head(keras, h, name="out", kernel_initializer=_initializer(keras, o.seed, counter))
        return keras.Model(inp, out, name=arch.key())


def _expectation_initializer(keras: Any, task: Task, length: int, outputs: int) -> Any:
    """The head's start as the expectation of the bins' BPM under the softmax (ppg only).

    The ppg head is one linear unit rescaled by BPM_SCALE around BPM_CENTRE, so weight
    (bpm_i - centre) / scale on bin i makes the output sum_i p_i bpm_i: a soft arg-max that
    training then only refines. Another task's head starts as usual (Glorot).
    """
    if task.name != "ppg":
        return keras.initializers.GlorotUniform(seed=0)
    import numpy as np

    from host.data.troika import LOW_BPM
    from host.tasks.ppg import BPM_CENTRE, BPM_SCALE

    bpm = LOW_BPM + task.config.resolution_bpm * np.arange(length)
    kernel = np.tile(((bpm - BPM_CENTRE) / BPM_SCALE)[:, None], (1, outputs))
    return keras.initializers.Constant(kernel.astype("float32"))


@register_space("ppg_spectral")
class PpgSpectralSpace(PpgGridSpace[SpectralArch]):
    """A spectral peak picker that is the same at every frequency.

    Convolutions over the spectra score each bin as the pulse, and the head reads the BPM
    off the softmax of the scores. Why (docs/ppg.md): `ppg_peaks` maps each bin position to
    BPM through a dense layer, so it must learn every heart rate from the rates its 8
    training subjects happened to have. A convolution over frequency learns one rule for all
    rates ("a PPG peak that the accelerometer does not share") and the softmax's expectation
    turns the scores into BPM. 3 filter counts x 3 kernels x 4 depths = 36 networks.
    """

    arch_type = SpectralArch
    input_kind = "spectral"
    input_text = "the spectra (bins, 5) of the band-passed window"

    def build_model(self, arch: SpectralArch, task: Task,
                    options: BuildOptions | None = None) -> Any:
        """Spectra -> depth x Conv1D(same, ReLU) -> Conv1D(1, 1) -> softmax over bins -> head."""
        keras, o, i = _keras(), options or BuildOptions(), self.input
        layers, counter = keras.layers, [0]
        inp = layers.Input((i.length, i.channels), batch_size=o.batch_size, name="spectrum")
        h = inp
        for n in range(1, arch.depth + 1):
            h = layers.Conv1D(arch.filters, arch.kernel, padding="same", activation="relu",
                              name=f"conv{n}",
                              kernel_initializer=_initializer(keras, o.seed, counter))(h)
        h = layers.Conv1D(1, 1, padding="same", name="bin_score",
                          kernel_initializer=_initializer(keras, o.seed, counter))(h)
        h = layers.Flatten(name="flatten")(h)
        h = layers.Activation("softmax", name="bin_prob")(h)
        head: Any = task.head  # every task's head takes the Dense layer's options
        out = head(keras, h, name="out",
                   kernel_initializer=_expectation_initializer(keras, task, i.length, i.outputs))
        return keras.Model(inp, out, name=arch.key())


__all__ = [
    "CnnLstmArch",
    "PeaksArch",
    "PpgCnnLstmSpace",
    "PpgGridSpace",
    "PpgPeaksSpace",
    "PpgSpectralSpace",
    "SpectralArch",
]
