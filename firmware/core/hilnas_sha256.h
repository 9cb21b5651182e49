// Incremental SHA-256 (FIPS 180-4): the board checks an uploaded model against the content
// address the host and the agent cache use.
#ifndef HILNAS_SHA256_H_
#define HILNAS_SHA256_H_

#include <stddef.h>
#include <stdint.h>

namespace hilnas {

class Sha256 {
 public:
  static constexpr size_t kDigestSize = 32;
  Sha256() { reset(); }
  void reset();
  void update(const uint8_t* data, size_t len);
  void finish(uint8_t out[kDigestSize]);

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_;
  uint64_t total_;
};

}  // namespace hilnas

#endif  // HILNAS_SHA256_H_
