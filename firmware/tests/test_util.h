// A minimal test harness (no external framework, so `make -C firmware test` needs only g++).
#ifndef HILNAS_TEST_UTIL_H_
#define HILNAS_TEST_UTIL_H_

#include <cstdio>
#include <cstdlib>

extern int g_failures;
extern int g_checks;

#define CHECK(cond)                                                               \
  do {                                                                            \
    ++g_checks;                                                                   \
    if (!(cond)) {                                                                \
      ++g_failures;                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                             \
  } while (0)

#define CHECK_EQ(a, b)                                                                  \
  do {                                                                                  \
    ++g_checks;                                                                         \
    auto va_ = (a);                                                                     \
    auto vb_ = (b);                                                                     \
    if (!(va_ == vb_)) {                                                                \
      ++g_failures;                                                                     \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__, \
                   __LINE__, #a, #b, static_cast<long long>(va_), static_cast<long long>(vb_)); \
    }                                                                                   \
  } while (0)

typedef void (*TestFn)();
struct TestCase {
  const char* name;
  TestFn fn;
};

#endif  // HILNAS_TEST_UTIL_H_
