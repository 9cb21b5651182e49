// hilnas HLS layer library: int8 requantization with TFLite's integer arithmetic.
//
// Every layer accumulates in 32-bit integers and rescales the accumulator to int8 exactly
// as TFLite's reference kernels do (tensorflow/lite/kernels/internal/common.h), so a C
// simulation of a generated accelerator is bit-exact with the int8 .tflite model:
//
//   MultiplyByQuantizedMultiplier(x, M, s)
//     = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(s,0), M), max(-s,0))
//
// M is a Q0.31 fixed-point multiplier in [2^30, 2^31) and s a power-of-two exponent; the
// generator derives both per output channel from the float scales (QuantizeMultiplier).
// This is TFLite's default "double rounding"; TFLITE_SINGLE_ROUNDING builds would differ by
// at most one LSB on ties (see docs/decisions-fpga.md).
#ifndef HILNAS_QUANT_H
#define HILNAS_QUANT_H

#include <cstdint>

#include "ap_int.h"

namespace hilnas {

typedef ap_int<8> act_t;    // activations on every stream
typedef ap_int<8> wgt_t;    // weights (symmetric int8, zero point 0)
typedef ap_int<32> acc_t;   // accumulators and biases (TFLite: int32)

// (a * b * 2) / 2^32 rounded to nearest (the nudge makes ties round toward +inf: -1.5 -> -1,
// 1.5 -> 2; this asymmetry is what TFLite does, so it is kept), saturating the one
// overflowing case INT32_MIN * INT32_MIN (gemmlowp's SaturatingRoundingDoublingHighMul).
inline int32_t srdhm(int32_t a, int32_t b) {
#pragma HLS INLINE
  const bool overflow = (a == b) && (a == INT32_MIN);
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t(1) << 30) : (1 - (int64_t(1) << 30));
  // C++ division truncates toward zero; with the sign-dependent nudge this is gemmlowp exactly.
  const int32_t high = static_cast<int32_t>((ab + nudge) / (int64_t(1) << 31));
  return overflow ? INT32_MAX : high;
}

// x / 2^exponent rounded to nearest, ties away from zero (gemmlowp's RoundingDivideByPOT).
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
#pragma HLS INLINE
  const int32_t mask = static_cast<int32_t>((int64_t(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
#pragma HLS INLINE
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  // The left shift is done in 32 bits on purpose, wrapping as TFLite's does.
  const int32_t shifted = static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
  return rounding_divide_by_pot(srdhm(shifted, multiplier), right_shift);
}

// TFLite's single-rounding variant: (x * M + 2^(30 - s)) >> (31 - s) in 64 bits, one
// rounding step (ties toward +inf). LiteRT uses it for per-channel FULLY_CONNECTED (found by
// bit-exact comparison; docs/decisions-fpga.md), so the dense layer can select it.
inline int32_t multiply_by_quantized_multiplier_single(int32_t x, int32_t multiplier, int shift) {
#pragma HLS INLINE
  const int total_shift = 31 - shift;
  const int64_t round = int64_t(1) << (total_shift - 1);
  return static_cast<int32_t>((static_cast<int64_t>(x) * multiplier + round) >> total_shift);
}

enum Rounding { DOUBLE_ROUNDING = 0, SINGLE_ROUNDING = 1 };

inline int32_t clamp(int32_t v, int32_t lo, int32_t hi) {
#pragma HLS INLINE
  return v < lo ? lo : (v > hi ? hi : v);
}

// int32 accumulator -> int8 output: rescale, add the output zero point, clamp to the fused
// activation's range (ReLU: [zero_point, 127]; none: [-128, 127]).
inline act_t requantize(int32_t acc, int32_t multiplier, int shift, int32_t out_zp,
                        int32_t act_min, int32_t act_max, int rounding = DOUBLE_ROUNDING) {
#pragma HLS INLINE
  const int32_t scaled = (rounding == SINGLE_ROUNDING
                              ? multiply_by_quantized_multiplier_single(acc, multiplier, shift)
                              : multiply_by_quantized_multiplier(acc, multiplier, shift)) +
                         out_zp;
  return act_t(clamp(scaled, act_min, act_max));
}

// floor(log2(n)) for n >= 1, at compile time (the global-pooling divisor's exponent).
constexpr int floor_log2(long long n) { return n <= 1 ? 0 : 1 + floor_log2(n / 2); }

}  // namespace hilnas

#endif  // HILNAS_QUANT_H
