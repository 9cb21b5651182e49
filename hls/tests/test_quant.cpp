// Hand-checked cases of the fixed-point helpers (gemmlowp semantics), independent of any
// generated reference: ties round away from zero, the one saturating case, shifts.
#include <climits>
#include <cstdio>

#include "hilnas/quant.h"

using namespace hilnas;

static int failures = 0;
static void check(const char* what, long long got, long long want) {
  if (got != want) {
    std::printf("test_quant: %s = %lld, want %lld\n", what, got, want);
    ++failures;
  }
}

int main() {
  check("rdbpot(5,1)", rounding_divide_by_pot(5, 1), 3);     // 2.5 -> 3
  check("rdbpot(-5,1)", rounding_divide_by_pot(-5, 1), -3);  // -2.5 -> -3
  check("rdbpot(-6,2)", rounding_divide_by_pot(-6, 2), -2);  // -1.5 -> -2
  check("rdbpot(-5,2)", rounding_divide_by_pot(-5, 2), -1);  // -1.25 -> -1
  check("rdbpot(7,0)", rounding_divide_by_pot(7, 0), 7);
  check("srdhm(min,min)", srdhm(INT32_MIN, INT32_MIN), INT32_MAX);
  check("srdhm(2^30,2^30)", srdhm(1 << 30, 1 << 30), 1 << 29);
  check("srdhm(-3,2^30)", srdhm(-3, 1 << 30), -1);  // -1.5 -> -1: the nudge rounds ties up
  check("srdhm(3,2^30)", srdhm(3, 1 << 30), 2);     // 1.5 -> 2
  // 0.5 * 2^-1 applied to 10 -> 2.5 -> 3
  check("mbqm(10, 2^30, -1)", multiply_by_quantized_multiplier(10, 1 << 30, -1), 3);
  // shift > 0: 0.5 * 2^2 = 2x
  check("mbqm(-7, 2^30, 2)", multiply_by_quantized_multiplier(-7, 1 << 30, 2), -14);
  check("requantize clamp", static_cast<int>(requantize(100000, 1 << 30, 0, 0, -128, 127)), 127);
  check("requantize relu", static_cast<int>(requantize(-5000, 1 << 30, -3, -128, -128, 127)), -128);
  check("ap_int<8> wraps", static_cast<long long>(act_t(200)), -56);
  check("floor_log2(64)", floor_log2(64), 6);
  check("floor_log2(65)", floor_log2(65), 6);
  std::printf("test_quant: %s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}
