"""The HLS generator's intermediate representation: a chain of int8 hardware layers.

The front end (`device_agent.fpga.parser`) fills it from a .tflite flatbuffer with TFLite's
exact integer constants; the back end (`device_agent.fpga.writer`) turns it into C++. Each
layer's shape is also a `HwLayer`, which the HALF models (`device_agent.fpga.half`) cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device_agent.fpga.half import HwLayer


@dataclass(frozen=True, eq=False)
class IrLayer(HwLayer):
    """One hardware layer: its shape (a `HwLayer`) and its int8 constants.

    Arrays are in the C library's layouts. Kinds: conv | dwconv | pwconv | maxpool | gap |
    dense | relu; equality and hashing are the shape's (the arrays do not take part).
    """

    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    mult: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = -128
    act_max: int = 127
    source_op: str = ""
    single_rounding: bool = False  # LiteRT rounds per-channel FULLY_CONNECTED once


@dataclass
class IrModel:
    """A whole candidate: one int8 input stream, a chain of layers, one int8 output."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    layers: list[IrLayer]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float windows -> the int8 the accelerator reads (the model's input quantization)."""
        q = np.round(np.asarray(x) / self.input_scale) + self.input_zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def hw_layers(self) -> list[HwLayer]:
        return list(self.layers)


__all__ = ["IrLayer", "IrModel"]
