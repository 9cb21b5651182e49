// hilnas stand-in for Vitis HLS's <ap_axi_sdata.h> (AXI-Stream side-channel struct), for
// C simulation with g++ only. Only the fields the generated top level uses are modelled:
// TDATA, TKEEP, TSTRB and TLAST (the AXI DMA needs TKEEP and TLAST).
#ifndef HILNAS_HLS_STUB_AP_AXI_SDATA_H
#define HILNAS_HLS_STUB_AP_AXI_SDATA_H

#include "ap_int.h"

template <int D, int U, int TI, int TD>
struct ap_axis {
  static_assert(D % 8 == 0, "TDATA must be whole bytes");
  ap_int<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<(D + 7) / 8> strb;
  ap_uint<1> last;
};

template <int D, int U, int TI, int TD>
struct ap_axiu {
  static_assert(D % 8 == 0, "TDATA must be whole bytes");
  ap_uint<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<(D + 7) / 8> strb;
  ap_uint<1> last;
};

#endif  // HILNAS_HLS_STUB_AP_AXI_SDATA_H
