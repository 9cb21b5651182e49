// hilnas HLS layer library: AXI-Stream edges of the accelerator.
//
// The top level talks to an AXI DMA (MM2S in, S2MM out) with 8-bit AXI-Stream beats: one
// int8 value per beat, in the model's NWC layout. The DMA needs TLAST on the final beat of
// each window's output, and TKEEP set, so both are driven here.
#ifndef HILNAS_IO_H
#define HILNAS_IO_H

#include "ap_axi_sdata.h"
#include "hls_stream.h"
#include "hilnas/quant.h"

namespace hilnas {

typedef ap_axis<8, 0, 0, 0> axis_t;

// Read N beats of one window from the DMA into the first layer's stream.
template <int N>
void axis_to_stream(hls::stream<axis_t>& in, hls::stream<act_t>& out) {
  for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II = 1
    axis_t beat = in.read();
    out.write(act_t(static_cast<long long>(beat.data)));
  }
}

// Write N values of one window's output to the DMA, TLAST on the last beat.
template <int N>
void stream_to_axis(hls::stream<act_t>& in, hls::stream<axis_t>& out) {
  for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II = 1
    axis_t beat;
    beat.data = static_cast<long long>(in.read());
    beat.keep = 1;
    beat.strb = 1;
    beat.last = (i == N - 1) ? 1 : 0;
    out.write(beat);
  }
}

}  // namespace hilnas

#endif  // HILNAS_IO_H
