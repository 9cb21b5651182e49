// hilnas stand-in for Vitis HLS's <ap_int.h>, for C simulation with g++ only.
//
// Why: Vitis HLS is not installed here, and its headers cannot be redistributed. This
// stand-in models the one behaviour the layer library relies on: an ap_int<W> holds a W-bit
// two's-complement value and wraps (not saturates) on assignment, as the real type does
// with its default AP_WRAP mode. Arithmetic promotes to 64-bit integers, which is exact for
// every width the library uses (W <= 32). It is NOT used by synthesis: the generated Tcl
// never adds include/hls_stub to the include path, so Vitis uses its own headers.
#ifndef HILNAS_HLS_STUB_AP_INT_H
#define HILNAS_HLS_STUB_AP_INT_H

#include <cstdint>

namespace hilnas_stub {
template <int W, bool SIGNED>
struct ap_bits {
  static_assert(W >= 1 && W <= 64, "ap_int stand-in supports 1..64 bits");
  long long v;
  static long long wrap(long long x) {
    if (W == 64) return x;
    const unsigned long long mask = (W >= 64) ? ~0ULL : ((1ULL << (W & 63)) - 1ULL);
    unsigned long long u = static_cast<unsigned long long>(x) & mask;
    if (SIGNED && ((u >> ((W - 1) & 63)) & 1ULL)) u |= ~mask;  // sign-extend
    return static_cast<long long>(u);
  }
  ap_bits() : v(0) {}
  ap_bits(long long x) : v(wrap(x)) {}  // NOLINT: implicit, like the real type
  operator long long() const { return v; }  // NOLINT
  ap_bits& operator=(long long x) { v = wrap(x); return *this; }
  ap_bits& operator+=(long long x) { v = wrap(v + x); return *this; }
  ap_bits& operator-=(long long x) { v = wrap(v - x); return *this; }
  ap_bits& operator*=(long long x) { v = wrap(v * x); return *this; }
  long long to_int64() const { return v; }
  int to_int() const { return static_cast<int>(v); }
};
}  // namespace hilnas_stub

template <int W>
using ap_int = hilnas_stub::ap_bits<W, true>;
template <int W>
using ap_uint = hilnas_stub::ap_bits<W, false>;

#endif  // HILNAS_HLS_STUB_AP_INT_H
