// Constants of the hilnas serial protocol (see firmware/PROTOCOL.md) and little-endian helpers.
// Header-only so that the sketch, the core and the host tests share one definition.
#ifndef HILNAS_PROTOCOL_H_
#define HILNAS_PROTOCOL_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace hilnas {

constexpr uint8_t kProtocolMajor = 1;
constexpr uint8_t kProtocolMinor = 0;

constexpr uint8_t kSync0 = 0xA5;
constexpr uint8_t kSync1 = 0x5A;
constexpr uint16_t kMaxPayload = 1024;
constexpr size_t kHeaderSize = 6;  // sync0 sync1 len_lo len_hi cmd seq
constexpr size_t kCrcSize = 2;
constexpr size_t kMaxFrame = kHeaderSize + kMaxPayload + kCrcSize;
// A partial frame is dropped after this much silence, so a lost byte cannot make the parser
// swallow the start of the next request.
constexpr uint32_t kInterByteTimeoutUs = 50000;
constexpr uint16_t kMaxTimedRuns = 512;
constexpr size_t kMaxErrorDetail = 200;

namespace cmd {
constexpr uint8_t kPing = 0x01;
constexpr uint8_t kInfo = 0x02;
constexpr uint8_t kUploadBegin = 0x10;
constexpr uint8_t kUploadChunk = 0x11;
constexpr uint8_t kUploadEnd = 0x12;
constexpr uint8_t kAllocate = 0x20;
constexpr uint8_t kSetInput = 0x21;
constexpr uint8_t kInvoke = 0x22;
constexpr uint8_t kGetOutput = 0x23;
constexpr uint8_t kGetTimings = 0x24;
constexpr uint8_t kReset = 0x30;
constexpr uint8_t kReady = 0x7E;
constexpr uint8_t kError = 0x7F;
constexpr uint8_t kReplyBit = 0x80;
}  // namespace cmd

enum class ErrorCode : uint8_t {
  kBadCrc = 1,
  kTruncated = 2,
  kTooLong = 3,
  kUnknownCommand = 4,
  kBadPayload = 5,
  kWrongState = 6,
  kModelTooLarge = 7,
  kHashMismatch = 8,
  kUploadIncomplete = 9,
  kNoModel = 10,
  kModelInvalid = 11,
  kUnsupportedOp = 12,
  kArenaTooSmall = 13,
  kBadTensor = 14,
  kInvokeFailed = 15,
  kFlashFailed = 16,
  kInternal = 17,
};

constexpr uint8_t kInvokeFlagResetState = 0x01;

inline void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_f32(uint8_t* p, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  put_u32(p, bits);
}
inline uint16_t get_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

}  // namespace hilnas

#endif  // HILNAS_PROTOCOL_H_
