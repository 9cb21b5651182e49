"""HALF's analytic latency, power and energy models of a streaming dataflow accelerator.

Ney et al., "HALF: Holistic Auto Machine Learning for FPGAs" (FPL 2021), Section IV. A
candidate is a chain of layers, each a hardware process connected to the next by a FIFO;
all layers work concurrently. Every figure these models return is an ESTIMATE
(`Source.ESTIMATED`): they screen candidates during the search and never stand in for a
board's measurement.

Latency (Eq. 1), in clock cycles, for one window:

    t_total = sum_j (n_in_j - 1) * sigma_{j-1} + l_j
    sigma_j = max(l_j, s_j * sigma_{j-1})          sigma_0 = cycles per input position

`l_j` is the cycles layer j needs per output position (from its shape and its unrolling),
`n_in_j` the input positions it must buffer before its first output (the kernel size for a
convolution, the whole sequence for global pooling) and `s_j` the input positions it
consumes per output (its stride). With 'same' padding the line buffer starts with its left
padding already in place, so a convolution waits for `kernel - pad_left` input positions,
and it emits ceil(length / stride) outputs. The text extraction of the paper lost the stride in the
recursion (it reads sigma_i = max(l_i, sigma_{i-1})); a strided layer cannot emit faster
than one output per s_j inputs, so it is restored here (docs/decisions-fpga.md).

Power (Eq. 3) and energy (Eq. 4):

    P_total = sum_i alpha_i * P*_idle + alpha_i * (t_a_i / t_total) * P*_calc
    E_total = t_total * P_total

with alpha_i the layer's unrolling factor (parallel MAC lanes), t_a_i its active cycles
(outputs x l_i) and P*_idle, P*_calc the per-lane constants of the board data file
(device_agent/fpga/boards.json), the dynamic part scaled by the clock. The board's own
power (P_board) is outside Eq. 3; `platform_power_w` adds it for comparison with a wall or
rail measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from device_agent.errors import ConfigError
from device_agent.fpga.boards import Board, as_board, board_names, load_board
from device_agent.types import Figure, Source

LayerKind = Literal["conv", "dwconv", "pwconv", "maxpool", "gap", "dense", "relu"]
KINDS: tuple[str, ...] = ("conv", "dwconv", "pwconv", "maxpool", "gap", "dense", "relu")
#: Layers that slide a window along the sequence (and so have a padding).
WINDOWED: tuple[str, ...] = ("conv", "dwconv", "maxpool")
#: TFLite's two paddings. 'same' splits the total as TFLite does: left = total // 2.
PADDINGS: tuple[str, ...] = ("valid", "same")


@dataclass(frozen=True)
class Unroll:
    """HALF's unrolling of one layer: parallel filters, kernel taps and input channels."""

    filters: int = 1
    kernel: int = 1
    channels: int = 1

    @property
    def alpha(self) -> int:
        return self.filters * self.kernel * self.channels


@dataclass(frozen=True)
class HwLayer:
    """One layer of the accelerator, shape only (no weights).

    `length` is the input length in positions, `cin`/`cout` channels, `kernel` the window
    (pool size for max pooling), `stride` input positions per output, `multiplier` the
    depthwise channel multiplier, `padding` "valid" or "same" (windowed layers only). For
    dense, `cin` is the input vector and `length` is 1.
    """

    kind: str
    length: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    multiplier: int = 1
    padding: str = "valid"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"layer kind {self.kind!r} unknown; known: {KINDS}")
        if self.padding not in PADDINGS:
            raise ConfigError(f"layer {self}: padding must be one of {PADDINGS}")
        if min(self.length, self.cin, self.cout, self.kernel, self.stride) < 1:
            raise ConfigError(f"layer {self}: dimensions must be >= 1")
        if self.kind in WINDOWED and self.padding == "valid" and self.length < self.kernel:
            raise ConfigError(f"layer {self}: input shorter than its window")

    @property
    def out_length(self) -> int:
        if self.kind in WINDOWED:
            if self.padding == "same":
                return -(-self.length // self.stride)
            return (self.length - self.kernel) // self.stride + 1
        if self.kind in ("gap", "dense"):
            return 1
        return self.length

    @property
    def pad_total(self) -> int:
        """Padded positions around the input ('same': what makes ceil(length/stride) fit)."""
        if self.kind not in WINDOWED or self.padding != "same":
            return 0
        return max((self.out_length - 1) * self.stride + self.kernel - self.length, 0)

    @property
    def pad_left(self) -> int:
        """Padded positions before the input: TFLite puts the odd one on the right."""
        return self.pad_total // 2

    @property
    def params(self) -> int:
        """Weights plus biases (int8 weights, int32 biases after folding)."""
        if self.kind == "conv":
            return self.cout * self.kernel * self.cin + self.cout
        if self.kind == "dwconv":
            return self.cout * self.kernel + self.cout
        if self.kind in ("pwconv", "dense"):
            return self.cout * self.cin + self.cout
        return 0

    @property
    def macs(self) -> int:
        per_position = {
            "conv": self.cout * self.kernel * self.cin,
            "dwconv": self.cout * self.kernel,
            "pwconv": self.cout * self.cin,
            "dense": self.cout * self.cin,
        }.get(self.kind, 0)
        return per_position * self.out_length

    def max_unroll(self) -> Unroll:
        """Full unrolling: every MAC of one output position in the same cycle."""
        if self.kind == "conv":
            return Unroll(self.cout, self.kernel, self.cin)
        if self.kind == "dwconv":
            return Unroll(self.cout, self.kernel, 1)
        if self.kind in ("pwconv", "dense"):
            return Unroll(self.cout, 1, self.cin)
        return Unroll(self.cout, 1, 1)  # pooling, relu: all channels per cycle

    def cycles_per_output(self, u: Unroll, stream_width: int = 1) -> int:
        """l_i: cycles per output position, with the output-stream floor.

        Compute tiles: ceil(COUT/UF) * ceil(K/UK) * ceil(CIN/UC) (HALF's l_i). The library's
        streams carry `stream_width` values per cycle, so emitting COUT values takes at least
        ceil(COUT/stream_width) cycles however far the layer is unrolled.
        """
        c = math.ceil
        if self.kind == "conv":
            tiles = c(self.cout / u.filters) * c(self.kernel / u.kernel) * c(self.cin / u.channels)
        elif self.kind == "dwconv":
            tiles = c(self.cout / u.filters) * c(self.kernel / u.kernel)
        elif self.kind in ("pwconv", "dense"):
            tiles = c(self.cout / u.filters) * c(self.cin / u.channels)
        else:
            tiles = c(self.cout / u.filters)
        return max(tiles, c(self.cout / stream_width))


UnrollSpec = Literal["min", "max"] | Sequence[Unroll]


def resolve_unroll(layers: Sequence[HwLayer], unroll: UnrollSpec) -> list[Unroll]:
    """'min' (no unrolling, alpha=1), 'max' (every layer fully unrolled) or explicit."""
    if unroll == "min":
        return [Unroll() for _ in layers]
    if unroll == "max":
        return [layer.max_unroll() for layer in layers]
    if isinstance(unroll, str):
        raise ConfigError(f"unroll must be 'min', 'max' or one Unroll per layer, not {unroll!r}")
    explicit = list(unroll)
    if len(explicit) != len(layers):
        raise ConfigError(f"unroll: {len(explicit)} factors for {len(layers)} layers")
    return explicit


@dataclass(frozen=True)
class LayerEstimate:
    layer: HwLayer
    unroll: Unroll
    cycles_per_output: int  # l_i
    sigma: int  # output interval, cycles per output position
    fill_cycles: int  # (n_in - 1) * sigma_{i-1} + l_i
    active_cycles: int  # t_a_i
    power_w: float  # this layer's share of Eq. 3


@dataclass(frozen=True)
class HalfEstimate:
    """Modelled figures of one candidate on one board with one unrolling. All ESTIMATED."""

    board: str
    clock_mhz: float
    unroll_name: str
    latency_cycles: int
    latency: Figure  # seconds per window
    throughput: Figure  # windows per second (batch 1, HALF's definition)
    power: Figure  # watts, Eq. 3 (architecture only)
    energy: Figure  # joules per window, Eq. 4
    platform_power: Figure  # watts, P_board + Eq. 3
    platform_energy: Figure  # joules per window with the board's power
    alpha_total: int
    fits: bool  # alpha_total within the board's MAC units
    bottleneck: int  # index of the layer with the largest l_i
    layers: tuple[LayerEstimate, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "clock_mhz": self.clock_mhz,
            "unroll": self.unroll_name,
            "latency_cycles": self.latency_cycles,
            "latency_s": self.latency.to_json(),
            "throughput_per_s": self.throughput.to_json(),
            "power_w": self.power.to_json(),
            "energy_j": self.energy.to_json(),
            "platform_power_w": self.platform_power.to_json(),
            "platform_energy_j": self.platform_energy.to_json(),
            "alpha_total": self.alpha_total,
            "fits": self.fits,
            "bottleneck": self.bottleneck,
        }


def _n_in(layer: HwLayer) -> int:
    if layer.kind in WINDOWED:
        # The left padding is in the line buffer before the first input arrives.
        return max(1, layer.kernel - layer.pad_left)
    if layer.kind == "gap":
        return layer.length
    return 1


def _consumed_per_output(layer: HwLayer) -> int:
    if layer.kind == "gap":
        return layer.length
    if layer.kind in WINDOWED:
        return layer.stride
    return 1


def _active_cycles(layer: HwLayer, l_i: int, u: Unroll) -> int:
    if layer.kind == "gap":  # accumulates every input position, emits once
        return layer.length * math.ceil(layer.cin / u.filters)
    return layer.out_length * l_i


def estimate(
    layers: Sequence[HwLayer],
    board: Board | str,
    unroll: UnrollSpec = "min",
    *,
    clock_mhz: float | None = None,
) -> HalfEstimate:
    """Latency (Eq. 1), power (Eq. 3) and energy (Eq. 4) of one window, all estimated."""
    if not layers:
        raise ConfigError("estimate: no layers")
    b = as_board(board, clock_mhz)
    unrolls = resolve_unroll(layers, unroll)
    width = max(1, b.stream_width)
    sigma_prev = math.ceil(layers[0].cin / width)  # the DMA delivers one value per cycle
    t_total = 0
    partial: list[tuple[HwLayer, Unroll, int, int, int, int]] = []
    for layer, u in zip(layers, unrolls, strict=True):
        l_i = layer.cycles_per_output(u, width)
        fill = (_n_in(layer) - 1) * sigma_prev + l_i
        sigma = max(l_i, _consumed_per_output(layer) * sigma_prev)
        t_total += fill
        partial.append((layer, u, l_i, sigma, fill, _active_cycles(layer, l_i, u)))
        sigma_prev = sigma
    f_hz = b.clock_mhz * 1e6
    seconds = t_total / f_hz
    # The dynamic constant is given at the board's nominal clock; it scales with frequency.
    calc_mw = b.p_calc_unit_mw * b.clock_mhz / b.nominal_clock_mhz
    estimates = []
    power_w = 0.0
    for layer, u, l_i, sigma, fill, active in partial:
        frac = min(1.0, active / t_total)
        p = (u.alpha * b.p_idle_unit_mw + u.alpha * frac * calc_mw) / 1000.0
        power_w += p
        estimates.append(LayerEstimate(layer, u, l_i, sigma, fill, active, p))
    alpha_total = sum(u.alpha for u in unrolls)
    name = unroll if isinstance(unroll, str) else "explicit"
    note = f"HALF model, {b.name} at {b.clock_mhz:g} MHz, unroll={name}"
    est = Source.ESTIMATED
    return HalfEstimate(
        board=b.name,
        clock_mhz=b.clock_mhz,
        unroll_name=name,
        latency_cycles=t_total,
        latency=Figure(seconds, est, note),
        throughput=Figure(1.0 / seconds, est, note),
        power=Figure(power_w, est, note + " (Eq. 3, architecture only)"),
        energy=Figure(power_w * seconds, est, note + " (Eq. 4)"),
        platform_power=Figure(b.p_board_w + power_w, est, note + " + P_board"),
        platform_energy=Figure((b.p_board_w + power_w) * seconds, est, note + " + P_board"),
        alpha_total=alpha_total,
        fits=alpha_total <= b.mac_units,
        bottleneck=max(range(len(estimates)), key=lambda i: estimates[i].cycles_per_output),
        layers=tuple(estimates),
    )


def objectives(layers: Sequence[HwLayer], board: Board | str) -> dict[str, float]:
    """Return HALF's hardware objectives (all to minimise, all estimated).

    Power, energy and latency with minimal and maximal unrolling, and the parameter count.
    """
    lo = estimate(layers, board, "min")
    hi = estimate(layers, board, "max")
    out: dict[str, float] = {"params": float(sum(layer.params for layer in layers))}
    for tag, e in (("min", lo), ("max", hi)):
        out[f"power_w_{tag}_unroll"] = float(e.power.value or 0.0)
        out[f"energy_j_{tag}_unroll"] = float(e.energy.value or 0.0)
        out[f"latency_s_{tag}_unroll"] = float(e.latency.value or 0.0)
    return out


__all__ = [
    "KINDS",
    "PADDINGS",
    "WINDOWED",
    "Board",
    "HalfEstimate",
    "HwLayer",
    "LayerEstimate",
    "LayerKind",
    "Unroll",
    "UnrollSpec",
    "board_names",
    "estimate",
    "load_board",
    "objectives",
    "resolve_unroll",
]
