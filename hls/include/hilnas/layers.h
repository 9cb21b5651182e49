// hilnas HLS layer library: streaming 1-D CNN layers for a dataflow accelerator (HALF's
// "DNNU"): every layer is a process that reads int8 activations from an hls::stream and
// writes int8 activations to the next one, all layers run concurrently under DATAFLOW.
//
// Stream layout: one int8 value per transfer, position-major and channel-minor (NWC, the
// layout of TFLite tensors), so the raw bytes of a TFLite input tensor are the stream.
//
// Unrolling: the template parameters UF (filters / output channels), UK (kernel taps) and
// UC (input channels) are HALF's unrolling factors. The loop nests are tiled so that the
// inner UF x UK x UC multiply-accumulates happen in one pipelined cycle (II=1); a layer's
// cycles per output position are therefore ceil(COUT/UF) * ceil(K/UK) * ceil(CIN/UC), the
// l_i of the latency model in device_agent/fpga/half.py. The factors must divide their dimension
// (static_assert), so no partial tiles need guarding. Unrolling never changes the results.
//
// Weights and biases are const arrays: synthesis maps them to on-chip ROM (BRAM/LUTRAM),
// partitioned by the unrolled dimensions. Nothing is ever read from external memory.
//
// Padding: the sliding-window layers (conv1d, depthwise1d, maxpool1d) take TFLite's 'valid'
// or 'same' as their last template parameter. 'same' shifts padded positions into the line
// buffer without reading the stream: the input zero point for the convolutions (in int8
// arithmetic that is a real 0, so a padded tap adds nothing, as in TFLite's kernels, which
// skip it) and -128 for max pooling (never larger than a real value, as TFLite ignores it).
#ifndef HILNAS_LAYERS_H
#define HILNAS_LAYERS_H

#include <cstdint>

#include "ap_int.h"
#include "hls_stream.h"
#include "hilnas/quant.h"

namespace hilnas {

// Per-layer quantization constants shared by every output channel.
struct QuantCtx {
  int32_t in_zp;    // input zero point (weights are symmetric: zero point 0)
  int32_t out_zp;   // output zero point
  int32_t act_min;  // fused activation clamp, in the output's quantized domain
  int32_t act_max;
};

// TFLite's paddings of a sliding window.
enum Padding { VALID = 0, SAME = 1 };

// The geometry of a window of K positions moved by STRIDE over L input positions.
// 'valid': (L - K) / STRIDE + 1 outputs, no padding. 'same': ceil(L / STRIDE) outputs, and
// the padding that needs split as TFLite splits it: LEFT = TOTAL / 2, the rest on the right.
template <int L, int K, int STRIDE, int PADDING>
struct Window {
  static_assert(PADDING == VALID || PADDING == SAME, "padding must be VALID or SAME");
  static_assert(PADDING == SAME || L >= K, "input shorter than the window ('valid' padding)");
  static constexpr int LOUT = PADDING == SAME ? (L + STRIDE - 1) / STRIDE : (L - K) / STRIDE + 1;
  static constexpr int NEEDED = (LOUT - 1) * STRIDE + K - L;
  static constexpr int TOTAL = NEEDED > 0 ? NEEDED : 0;
  static constexpr int LEFT = TOTAL / 2;
  static constexpr int POSITIONS = L + TOTAL;  // input positions including the padding

  // Whether padded position `pos` lies outside the real input.
  static bool padded(const int pos) {
#pragma HLS INLINE
    return pos < LEFT || pos >= LEFT + L;
  }

  // Whether the window that ends at padded position `pos` yields an output: complete,
  // aligned to the stride and not past the last output. `produced` counts the outputs.
  static bool emits(const int pos, int& produced) {
#pragma HLS INLINE
    const int first = pos - (K - 1);  // padded index of the window's first tap
    if (first < 0 || first % STRIDE != 0 || produced >= LOUT) return false;
    ++produced;
    return true;
  }
};

// ----------------------------------------------------------------------------------------
// The line buffer of the sliding-window layers: shift the K x C window by one position and
// append the next position (a shift register in hardware). A padded position (`pad`) is
// `pad_value` in every channel and reads nothing from the stream.
template <int K, int C>
inline void shift_in(act_t win[K][C], hls::stream<act_t>& in, const bool pad,
                     const act_t pad_value) {
#pragma HLS INLINE
  for (int k = 0; k < K - 1; ++k) {
#pragma HLS UNROLL
    for (int c = 0; c < C; ++c) win[k][c] = win[k + 1][c];
  }
  for (int c = 0; c < C; ++c) {
#pragma HLS PIPELINE II = 1
    win[K - 1][c] = pad ? pad_value : in.read();
  }
}

// An empty line buffer (its content is shifted out before the first output).
template <int K, int C>
inline void clear_window(act_t win[K][C]) {
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c) win[k][c] = 0;
}

// ----------------------------------------------------------------------------------------
// Standard 1-D convolution, 'valid' or 'same' padding.
//   W[COUT][K][CIN] (TFLite CONV_2D filter [COUT, 1, K, CIN]), B[COUT] int32,
//   M[COUT], S[COUT]: per-channel requantization multiplier and shift.
// A line buffer of the last K input positions is the only state; an output is produced
// whenever a window is complete and aligned to the stride.
template <int L, int CIN, int COUT, int K, int STRIDE, int UF = 1, int UK = 1, int UC = 1,
          int PADDING = VALID>
void conv1d(hls::stream<act_t>& in, hls::stream<act_t>& out, const wgt_t W[COUT][K][CIN],
            const acc_t B[COUT], const int32_t M[COUT], const int32_t S[COUT],
            const QuantCtx q) {
  static_assert(COUT % UF == 0 && K % UK == 0 && CIN % UC == 0,
                "unrolling factors must divide COUT, K and CIN");
  typedef Window<L, K, STRIDE, PADDING> Geometry;
  act_t win[K][CIN];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 1
  clear_window<K, CIN>(win);
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UF dim = 1
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UK dim = 2
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UC dim = 3
  int produced = 0;
pos_loop:
  for (int pos = 0; pos < Geometry::POSITIONS; ++pos) {
    shift_in<K, CIN>(win, in, Geometry::padded(pos), act_t(q.in_zp));
    if (!Geometry::emits(pos, produced)) continue;
  filter_tiles:
    for (int f0 = 0; f0 < COUT; f0 += UF) {
      int32_t acc[UF];
#pragma HLS ARRAY_PARTITION variable = acc complete
      for (int fu = 0; fu < UF; ++fu) acc[fu] = B[f0 + fu];
    dot_tiles:
      for (int k0 = 0; k0 < K; k0 += UK) {
        for (int c0 = 0; c0 < CIN; c0 += UC) {
#pragma HLS PIPELINE II = 1
          for (int fu = 0; fu < UF; ++fu) {
#pragma HLS UNROLL
            for (int ku = 0; ku < UK; ++ku) {
#pragma HLS UNROLL
              for (int cu = 0; cu < UC; ++cu) {
#pragma HLS UNROLL
                const int32_t x = static_cast<int32_t>(win[k0 + ku][c0 + cu]) - q.in_zp;
                acc[fu] += x * static_cast<int32_t>(W[f0 + fu][k0 + ku][c0 + cu]);
              }
            }
          }
        }
      }
      for (int fu = 0; fu < UF; ++fu) {
#pragma HLS PIPELINE II = 1
        const int f = f0 + fu;
        out.write(requantize(acc[fu], M[f], S[f], q.out_zp, q.act_min, q.act_max));
      }
    }
  }
}

// ----------------------------------------------------------------------------------------
// The matrix-vector core shared by pointwise convolution and dense layers: for one input
// vector x[NIN], UF outputs x UC inputs per cycle, int32 accumulation from the bias, then
// requantization of each output to int8 (ROUNDING as in requantize()).
template <int NIN, int NOUT, int UF, int UC, int ROUNDING = DOUBLE_ROUNDING>
inline void matvec_requant(const act_t x[NIN], hls::stream<act_t>& out,
                           const wgt_t W[NOUT][NIN], const acc_t B[NOUT],
                           const int32_t M[NOUT], const int32_t S[NOUT], const QuantCtx q) {
#pragma HLS INLINE
  for (int f0 = 0; f0 < NOUT; f0 += UF) {
    int32_t acc[UF];
#pragma HLS ARRAY_PARTITION variable = acc complete
    for (int fu = 0; fu < UF; ++fu) acc[fu] = B[f0 + fu];
    for (int c0 = 0; c0 < NIN; c0 += UC) {
#pragma HLS PIPELINE II = 1
      for (int fu = 0; fu < UF; ++fu) {
#pragma HLS UNROLL
        for (int cu = 0; cu < UC; ++cu) {
#pragma HLS UNROLL
          const int32_t v = static_cast<int32_t>(x[c0 + cu]) - q.in_zp;
          acc[fu] += v * static_cast<int32_t>(W[f0 + fu][c0 + cu]);
        }
      }
    }
    for (int fu = 0; fu < UF; ++fu) {
#pragma HLS PIPELINE II = 1
      const int f = f0 + fu;
      out.write(requantize(acc[fu], M[f], S[f], q.out_zp, q.act_min, q.act_max, ROUNDING));
    }
  }
}

// ----------------------------------------------------------------------------------------
// Pointwise (kernel 1, stride 1) convolution: the second half of a depthwise-separable
// block. No line buffer: each input position is a vector of CIN values.
//   W[COUT][CIN] (TFLite CONV_2D filter [COUT, 1, 1, CIN]).
template <int L, int CIN, int COUT, int UF = 1, int UC = 1>
void pointwise1d(hls::stream<act_t>& in, hls::stream<act_t>& out, const wgt_t W[COUT][CIN],
                 const acc_t B[COUT], const int32_t M[COUT], const int32_t S[COUT],
                 const QuantCtx q) {
  static_assert(COUT % UF == 0 && CIN % UC == 0, "unrolling factors must divide COUT and CIN");
  act_t x[CIN];
#pragma HLS ARRAY_PARTITION variable = x cyclic factor = UC
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UF dim = 1
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UC dim = 2
pos_loop:
  for (int pos = 0; pos < L; ++pos) {
    for (int c = 0; c < CIN; ++c) {
#pragma HLS PIPELINE II = 1
      x[c] = in.read();
    }
    matvec_requant<CIN, COUT, UF, UC>(x, out, W, B, M, S, q);
  }
}

// ----------------------------------------------------------------------------------------
// Depthwise 1-D convolution with channel multiplier MULT, 'valid' or 'same' padding.
// Output channel o = c * MULT + m reads only input channel c (TFLite DEPTHWISE_CONV_2D).
//   W[K][CIN * MULT] (TFLite filter [1, 1, K, CIN*MULT]).
// Unrolling: UF output channels and UK taps per cycle (there is no input-channel
// reduction to unroll in a depthwise layer).
template <int L, int CIN, int MULT, int K, int STRIDE, int UF = 1, int UK = 1,
          int PADDING = VALID>
void depthwise1d(hls::stream<act_t>& in, hls::stream<act_t>& out,
                 const wgt_t W[K][CIN * MULT], const acc_t B[CIN * MULT],
                 const int32_t M[CIN * MULT], const int32_t S[CIN * MULT], const QuantCtx q) {
  constexpr int COUT = CIN * MULT;
  static_assert(COUT % UF == 0 && K % UK == 0, "unrolling factors must divide COUT and K");
  typedef Window<L, K, STRIDE, PADDING> Geometry;
  act_t win[K][CIN];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 1
  clear_window<K, CIN>(win);
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UK dim = 1
#pragma HLS ARRAY_PARTITION variable = W cyclic factor = UF dim = 2
  int produced = 0;
pos_loop:
  for (int pos = 0; pos < Geometry::POSITIONS; ++pos) {
    shift_in<K, CIN>(win, in, Geometry::padded(pos), act_t(q.in_zp));
    if (!Geometry::emits(pos, produced)) continue;
    for (int o0 = 0; o0 < COUT; o0 += UF) {
      int32_t acc[UF];
#pragma HLS ARRAY_PARTITION variable = acc complete
      for (int ou = 0; ou < UF; ++ou) acc[ou] = B[o0 + ou];
      for (int k0 = 0; k0 < K; k0 += UK) {
#pragma HLS PIPELINE II = 1
        for (int ou = 0; ou < UF; ++ou) {
#pragma HLS UNROLL
          for (int ku = 0; ku < UK; ++ku) {
#pragma HLS UNROLL
            const int o = o0 + ou;
            const int32_t x = static_cast<int32_t>(win[k0 + ku][o / MULT]) - q.in_zp;
            acc[ou] += x * static_cast<int32_t>(W[k0 + ku][o]);
          }
        }
      }
      for (int ou = 0; ou < UF; ++ou) {
#pragma HLS PIPELINE II = 1
        const int o = o0 + ou;
        out.write(requantize(acc[ou], M[o], S[o], q.out_zp, q.act_min, q.act_max));
      }
    }
  }
}

// ----------------------------------------------------------------------------------------
// 1-D max pooling, 'valid' or 'same' padding (TFLite MAX_POOL_2D: input and output share
// scale and zero point, so only the fused-activation clamp applies). UF channels compared
// per cycle.
template <int L, int C, int POOL, int STRIDE, int UF = 1, int PADDING = VALID>
void maxpool1d(hls::stream<act_t>& in, hls::stream<act_t>& out, const int32_t act_min = -128,
               const int32_t act_max = 127) {
  static_assert(C % UF == 0, "unrolling factor must divide C");
  typedef Window<L, POOL, STRIDE, PADDING> Geometry;
  act_t win[POOL][C];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 1
  clear_window<POOL, C>(win);
  int produced = 0;
  for (int pos = 0; pos < Geometry::POSITIONS; ++pos) {
    shift_in<POOL, C>(win, in, Geometry::padded(pos), act_t(-128));
    if (!Geometry::emits(pos, produced)) continue;
    for (int c0 = 0; c0 < C; c0 += UF) {
#pragma HLS PIPELINE II = 1
      for (int cu = 0; cu < UF; ++cu) {
#pragma HLS UNROLL
        int32_t m = win[0][c0 + cu];
        for (int p = 1; p < POOL; ++p) {
#pragma HLS UNROLL
          const int32_t v = win[p][c0 + cu];
          m = v > m ? v : m;
        }
        out.write(act_t(clamp(m, act_min, act_max)));
      }
    }
  }
}

// ----------------------------------------------------------------------------------------
// Global average pooling over the L positions (TFLite MEAN over the length axis).
// TFLite's integer mean: sum the raw int8 values in int32, subtract zp_in * L, and fold
// 1/L into the (input_scale / output_scale) multiplier M, S with
//   shift = min(floor(log2 L), 32, 31 + S);  M' = (M << shift) / L;  S' = S - shift.
template <int L, int C, int UF = 1>
void global_avg_pool1d(hls::stream<act_t>& in, hls::stream<act_t>& out, const int32_t M,
                       const int32_t S, const int32_t in_zp, const int32_t out_zp) {
  static_assert(C % UF == 0, "unrolling factor must divide C");
  int32_t sum[C];
#pragma HLS ARRAY_PARTITION variable = sum cyclic factor = UF
  for (int c = 0; c < C; ++c) sum[c] = 0;
  for (int pos = 0; pos < L; ++pos) {
    for (int c = 0; c < C; ++c) {
#pragma HLS PIPELINE II = 1
      sum[c] += static_cast<int32_t>(in.read());
    }
  }
  int shift = floor_log2(L);
  if (shift > 32) shift = 32;
  if (shift > 31 + S) shift = 31 + S;
  const int32_t m = static_cast<int32_t>((static_cast<int64_t>(M) << shift) / L);
  const int s = S - shift;
  for (int c = 0; c < C; ++c) {
#pragma HLS PIPELINE II = 1
    const int32_t centered = sum[c] - in_zp * L;
    const int32_t v = multiply_by_quantized_multiplier(centered, m, s) + out_zp;
    out.write(act_t(clamp(v, -128, 127)));
  }
}

// ----------------------------------------------------------------------------------------
// Dense (TFLite FULLY_CONNECTED): W[NOUT][NIN], B[NOUT]; per-tensor quantization is passed
// as NOUT copies of the same multiplier. UF neurons x UC inputs per cycle. ROUNDING selects
// TFLite's double (default) or single rounding (LiteRT's per-channel FULLY_CONNECTED).
template <int NIN, int NOUT, int UF = 1, int UC = 1, int ROUNDING = DOUBLE_ROUNDING>
void dense(hls::stream<act_t>& in, hls::stream<act_t>& out, const wgt_t W[NOUT][NIN],
           const acc_t B[NOUT], const int32_t M[NOUT], const int32_t S[NOUT],
           const QuantCtx q) {
  static_assert(NOUT % UF == 0 && NIN % UC == 0, "unrolling factors must divide NOUT and NIN");
  act_t x[NIN];
#pragma HLS ARRAY_PARTITION variable = x cyclic factor = UC
  for (int i = 0; i < NIN; ++i) {
#pragma HLS PIPELINE II = 1
    x[i] = in.read();
  }
  matvec_requant<NIN, NOUT, UF, UC, ROUNDING>(x, out, W, B, M, S, q);
}

// ----------------------------------------------------------------------------------------
// Standalone ReLU (TFLite RELU on int8): rescale from the input to the output quantization,
//   y = clamp(out_zp + MBQM(x - in_zp, M, S), max(-128, out_zp), 127).
// Most ReLUs are fused into the preceding layer's clamp; this is for unfused ones.
template <int N, int UF = 1>
void relu(hls::stream<act_t>& in, hls::stream<act_t>& out, const int32_t M, const int32_t S,
          const QuantCtx q) {
  static_assert(N % UF == 0, "unrolling factor must divide N");
  for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II = 1
    const int32_t x = static_cast<int32_t>(in.read()) - q.in_zp;
    const int32_t y = q.out_zp + multiply_by_quantized_multiplier(x, M, S);
    out.write(act_t(clamp(y, q.act_min, q.act_max)));
  }
}

}  // namespace hilnas

#endif  // HILNAS_LAYERS_H
