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


def conv1d(x, w, b, mult, shift, stride, in_zp, out_zp, act_min, act_max):
    """X (L, CIN) int8, w (COUT, K, CIN) int8, b (COUT,) int32 -> (LOUT, COUT) int8."""
    length, _ = x.shape
    cout, k, _ = w.shape
    lout = (length - k) // stride + 1
    xc = x.astype(np.int64) - in_zp
    acc = np.stack(
        [np.einsum("kc,fkc->f", xc[p * stride : p * stride + k], w.astype(np.int64))
         for p in range(lout)]
    ) + b.astype(np.int64)
    return requantize(_wrap32(acc), mult, shift, out_zp, act_min, act_max)


def depthwise1d(x, w, b, mult, shift, stride, multiplier, in_zp, out_zp, act_min, act_max):
    """X (L, CIN), w (K, CIN*MULT) -> (LOUT, CIN*MULT); output o reads input o // MULT."""
    length, _ = x.shape
    k, cout = w.shape
    lout = (length - k) // stride + 1
    xc = x.astype(np.int64) - in_zp
    src = np.arange(cout) // multiplier
    acc = np.stack(
        [(xc[p * stride : p * stride + k][:, src] * w.astype(np.int64)).sum(axis=0)
         for p in range(lout)]
    ) + b.astype(np.int64)
    return requantize(_wrap32(acc), mult, shift, out_zp, act_min, act_max)


def maxpool1d(x, pool, stride, act_min=-128, act_max=127):
    length, _ = x.shape
    lout = (length - pool) // stride + 1
    out = np.stack([x[p * stride : p * stride + pool].max(axis=0) for p in range(lout)])
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
