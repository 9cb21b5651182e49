// Frame encoding and a byte-at-a-time frame parser with resynchronisation and an inter-byte
// timeout (see firmware/PROTOCOL.md, "Frame").
#ifndef HILNAS_FRAME_H_
#define HILNAS_FRAME_H_

#include <stddef.h>
#include <stdint.h>

#include "hilnas_protocol.h"

namespace hilnas {

// Writes one frame into `out` and returns its size, or 0 when `len` exceeds kMaxPayload or
// `out_cap` is too small.
size_t encode_frame(uint8_t command, uint8_t seq, const uint8_t* payload, size_t len,
                    uint8_t* out, size_t out_cap);

class FrameParser {
 public:
  enum class Event {
    kNone,       // need more bytes
    kFrame,      // a complete, CRC-checked frame: see command()/seq()/payload()/length()
    kBadCrc,     // a frame arrived but its CRC failed (seq() is that frame's header SEQ)
    kTooLong,    // LEN > kMaxPayload
    kTruncated,  // a partial frame was dropped after kInterByteTimeoutUs of silence
  };

  FrameParser() { reset(); }
  void reset();
  // Feed one received byte; `now_us` is a free-running microsecond clock (wraps safely).
  Event feed(uint8_t byte, uint32_t now_us);
  // Call when no byte is available: reports kTruncated once when a partial frame timed out.
  Event poll(uint32_t now_us);

  uint8_t command() const { return cmd_; }
  uint8_t seq() const { return seq_; }
  uint16_t length() const { return len_; }
  const uint8_t* payload() const { return payload_; }
  // True when the header (LEN, CMD, SEQ) of the frame just reported was received.
  bool header_seen() const { return header_seen_; }

 private:
  enum class State { kHunt0, kHunt1, kLenLo, kLenHi, kCmd, kSeq, kPayload, kCrcLo, kCrcHi };
  State state_;
  uint16_t len_;
  uint16_t pos_;
  uint8_t cmd_;
  uint8_t seq_;
  uint16_t crc_rx_;
  bool header_seen_;
  uint32_t last_byte_us_;
  uint8_t payload_[kMaxPayload];
};

}  // namespace hilnas

#endif  // HILNAS_FRAME_H_
