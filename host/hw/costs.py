"""Analytic hardware costs of a network, computed without training (params, bytes, MACs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol


@dataclass(frozen=True)
class Conv1DSpec:
    """A 1-D convolution producing `length` positions of `filters` channels.

    'same'-padded stride-1 convolutions (BioNet) produce as many positions as they read.
    A depthwise convolution (`depthwise=True`, HALF's separable blocks) has `filters` =
    `in_channels` x its channel multiplier and one `kernel`-tap filter per output channel.
    """

    length: int
    in_channels: int
    filters: int
    kernel: int
    bias: bool = True
    depthwise: bool = False

    @property
    def weights(self) -> int:
        return self.kernel * self.filters * (1 if self.depthwise else self.in_channels)


@dataclass(frozen=True)
class Conv2DSpec:
    """A 2-D convolution over a (height, width) map, e.g. a spectrogram's frames x bins.

    `height` x `width` output positions of `filters` channels ('same' padding, stride 1).
    """

    height: int
    width: int
    in_channels: int
    filters: int
    kernel_h: int
    kernel_w: int
    bias: bool = True

    @property
    def weights(self) -> int:
        return self.kernel_h * self.kernel_w * self.in_channels * self.filters


@dataclass(frozen=True)
class BatchNormSpec:
    """Batch normalization after a convolution; folded into it by the TFLite converter."""

    length: int
    channels: int


@dataclass(frozen=True)
class AddSpec:
    """An elementwise residual addition."""

    length: int
    channels: int


@dataclass(frozen=True)
class LSTMSpec:
    """An LSTM over `length` steps that returns its last state."""

    length: int
    input_dim: int
    units: int


@dataclass(frozen=True)
class DenseSpec:
    """A fully connected layer."""

    inputs: int
    units: int


LayerSpec = Conv1DSpec | Conv2DSpec | BatchNormSpec | AddSpec | LSTMSpec | DenseSpec


class HasLayerSpecs(Protocol):
    """An architecture that can describe its layers for a given input and output."""

    def layer_specs(
        self, input_length: int, n_channels: int, n_classes: int
    ) -> Sequence[LayerSpec]: ...


@dataclass(frozen=True)
class Costs:
    """Per-inference costs of one network.

    - `params`: every parameter Keras counts (batch-norm moving statistics included), so it
      equals `model.count_params()`.
    - `deployed_params`: what an inference graph stores once batch norm is folded into the
      convolutions (weights and biases only).
    - `storage_float32_bytes`: 4 bytes per deployed parameter.
    - `storage_int8_bytes`: 1 byte per weight and 4 per bias (int32 biases, TFLite's scheme).
      Model-file overhead (flatbuffer, quantization parameters) is not included.
    - `macs`: multiply-accumulates per inference; `flops` = 2 x MACs plus the elementwise
      work (residual adds, LSTM gate products and bias adds, counted one FLOP each).
    - `input_buffer_bytes`: the int8 input window (samples x channels) the device holds.
    """

    params: int
    deployed_params: int
    storage_float32_bytes: int
    storage_int8_bytes: int
    macs: int
    flops: int
    input_buffer_bytes: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def layer_costs(layers: Sequence[LayerSpec]) -> Costs:
    """Return the costs of a sequence of layer specs."""
    params = weights = biases = macs = elementwise = 0
    biased = True  # whether the last convolution has a bias
    for layer in layers:
        if isinstance(layer, (Conv1DSpec, Conv2DSpec)):
            w = layer.weights
            b = layer.filters if layer.bias else 0
            weights, biases, params = weights + w, biases + b, params + w + b
            positions = layer.length if isinstance(layer, Conv1DSpec) \
                else layer.height * layer.width
            macs += positions * w
            biased = layer.bias
        elif isinstance(layer, BatchNormSpec):
            params += 4 * layer.channels  # gamma, beta, moving mean and variance
            # Folded into the previous convolution: no deployed weights, but a convolution
            # without a bias gains one from the fold.
            if not biased:
                biases += layer.channels
                biased = True
        elif isinstance(layer, AddSpec):
            elementwise += layer.length * layer.channels
        elif isinstance(layer, LSTMSpec):
            u, d = layer.units, layer.input_dim
            w = 4 * (d * u + u * u)
            b = 4 * u
            weights, biases, params = weights + w, biases + b, params + w + b
            macs += layer.length * w
            # Per step: 4u bias adds, 3u gate products, u cell add.
            elementwise += layer.length * 8 * u
        elif isinstance(layer, DenseSpec):
            w = layer.inputs * layer.units
            weights, biases, params = weights + w, biases + layer.units, params + w + layer.units
            macs += w
            elementwise += layer.units
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown layer spec {layer!r}")
    deployed = weights + biases
    return Costs(
        params=params,
        deployed_params=deployed,
        storage_float32_bytes=4 * deployed,
        storage_int8_bytes=weights + 4 * biases,
        macs=macs,
        flops=2 * macs + elementwise,
    )


def analytic_costs(
    arch: HasLayerSpecs, input_length: int = 256, n_classes: int = 2, n_channels: int = 1
) -> Costs:
    """Return the costs of `arch` for an input of `input_length` x `n_channels` samples."""
    costs = layer_costs(arch.layer_specs(input_length, n_channels, n_classes))
    return replace(costs, input_buffer_bytes=input_length * n_channels)
