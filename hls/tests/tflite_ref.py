"""NumPy reference of TFLite's int8 integer kernels, for the HLS library's unit tests.

Written from TFLite's reference kernels (conv, depthwise_conv, fully_connected, pooling,
reduce MEAN, RELU) and gemmlowp's fixed-point helpers, vectorised over whole arrays with
int64 intermediates. It is independent of the C++ templates it checks: different code,
same specification. The generator's end-to-end test (tests/host/test_hls_generator.py)
checks the whole chain against the real LiteRT interpreter.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = q * 2^shift with q in [0.5, 1) as Q0.31."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # std::round, q > 0
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s // (1 << 31), -((-s) // (1 << 31)))  # truncate toward zero
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mbqm(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (double rounding), elementwise with broadcasting."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def mbqm_single(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Single-rounding MultiplyByQuantizedMultiplier: (x*M + 2^(30-s)) >> (31-s)."""
    total = 31 - np.asarray(shift, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64) * np.asarray(multiplier, dtype=np.int64)
    return (x + (np.int64(1) << (total - 1))) >> total


def requantize(acc, mult, shift, out_zp, act_min, act_max, single=False) -> np.ndarray:
    scaled = mbqm_single(acc, mult, shift) if single else mbqm(acc, mult, shift)
    return np.clip(scaled + out_zp, act_min, act_max).astype(np.int8)


def same_padding(length: int, k: int, stride: int) -> tuple[int, int, int]:
    """TFLite's 'same' padding along one axis: (outputs, left, right).

    ComputePaddingHeightWidth: out = ceil(L / stride), total = max((out - 1) * stride + k - L,
    0), left = total // 2 (the odd position goes to the right).
    """
    out = -(-length // stride)
    total = max((out - 1) * stride + k - length, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, k: int, stride: int, padding: str, fill: int):
    """Rows of x seen by each output of a sliding window, x padded with `fill` if 'same'.

    TFLite's kernels skip the taps that fall outside the input; a convolution pads with the
    input zero point (a tap of x - zp = 0 adds nothing) and max pooling with the int8
    minimum (it never wins), which is the same.
    """
    length = x.shape[0]
    if padding == "same":
        lout, left, right = same_padding(length, k, stride)
        x = np.concatenate([np.full((left, *x.shape[1:]), fill, x.dtype), x,
                            np.full((right, *x.shape[1:]), fill, x.dtype)])
    else:
        lout = (length - k) // stride + 1
    return [x[p * stride : p * stride + k] for p in range(lout)]


def conv1d(x, w, b, mult, shift, stride, in_zp, out_zp, act_min, act_max, padding="valid"):
    """X (L, CIN) int8, w (COUT, K, CIN) int8, b (COUT,) int32 -> (LOUT, COUT) int8."""
    _, k, _ = w.shape
    xc = x.astype(np.int64) - in_zp
    acc = np.stack(
        [np.einsum("kc,fkc->f", win, w.astype(np.int64))
         for win in _windows(xc, k, stride, padding, 0)]
    ) + b.astype(np.int64)
    return requantize(_wrap32(acc), mult, shift, out_zp, act_min, act_max)


def depthwise1d(x, w, b, mult, shift, stride, multiplier, in_zp, out_zp, act_min, act_max,
                padding="valid"):
    """X (L, CIN), w (K, CIN*MULT) -> (LOUT, CIN*MULT); output o reads input o // MULT."""
    k, cout = w.shape
    xc = x.astype(np.int64) - in_zp
    src = np.arange(cout) // multiplier
    acc = np.stack(
        [(win[:, src] * w.astype(np.int64)).sum(axis=0)
         for win in _windows(xc, k, stride, padding, 0)]
    ) + b.astype(np.int64)
    return requantize(_wrap32(acc), mult, shift, out_zp, act_min, act_max)


def maxpool1d(x, pool, stride, act_min=-128, act_max=127, padding="valid"):
    out = np.stack([win.max(axis=0) for win in _windows(x, pool, stride, padding, -128)])
    return np.clip(out, act_min, act_max).astype(np.int8)


def global_avg_pool1d(x, mult, shift, in_zp, out_zp):
    """TFLite reference QuantizedMeanOrSum (mean) over axis 0 of x (L, C)."""
    length = x.shape[0]
    total = x.astype(np.int64).sum(axis=0)
    s = min(int(length).bit_length() - 1, 32, 31 + shift)
    m = (mult << s) // length
    out = mbqm(_wrap32(total - in_zp * length), m, shift - s) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)


def dense(x, w, b, mult, shift, in_zp, out_zp, act_min, act_max, single=False):
    """X (NIN,), w (NOUT, NIN) -> (NOUT,)."""
    acc = w.astype(np.int64) @ (x.astype(np.int64) - in_zp) + b.astype(np.int64)
    return requantize(_wrap32(acc), mult, shift, out_zp, act_min, act_max, single)


def relu(x, mult, shift, in_zp, out_zp, act_min, act_max):
    y = out_zp + mbqm(x.astype(np.int64) - in_zp, mult, shift)
    return np.clip(y, act_min, act_max).astype(np.int8)
