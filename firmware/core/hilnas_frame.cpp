#include "hilnas_frame.h"

#include <string.h>

#include "hilnas_crc16.h"

namespace hilnas {

size_t encode_frame(uint8_t command, uint8_t seq, const uint8_t* payload, size_t len,
                    uint8_t* out, size_t out_cap) {
  if (len > kMaxPayload || out_cap < kHeaderSize + len + kCrcSize) return 0;
  out[0] = kSync0;
  out[1] = kSync1;
  put_u16(out + 2, static_cast<uint16_t>(len));
  out[4] = command;
  out[5] = seq;
  if (len > 0) memmove(out + kHeaderSize, payload, len);
  uint16_t crc = crc16(out + 2, 4 + len);
  put_u16(out + kHeaderSize + len, crc);
  return kHeaderSize + len + kCrcSize;
}

void FrameParser::reset() {
  state_ = State::kHunt0;
  len_ = 0;
  pos_ = 0;
  cmd_ = 0;
  seq_ = 0;
  crc_rx_ = 0;
  header_seen_ = false;
  last_byte_us_ = 0;
}

FrameParser::Event FrameParser::poll(uint32_t now_us) {
  if (state_ == State::kHunt0) return Event::kNone;
  if (static_cast<uint32_t>(now_us - last_byte_us_) < kInterByteTimeoutUs) return Event::kNone;
  bool seen = state_ >= State::kPayload;
  state_ = State::kHunt0;
  header_seen_ = seen;
  return Event::kTruncated;
}

FrameParser::Event FrameParser::feed(uint8_t byte, uint32_t now_us) {
  // A byte after a long gap starts afresh: the partial frame before it is lost anyway.
  if (state_ != State::kHunt0 &&
      static_cast<uint32_t>(now_us - last_byte_us_) >= kInterByteTimeoutUs) {
    state_ = State::kHunt0;
  }
  last_byte_us_ = now_us;
  switch (state_) {
    case State::kHunt0:
      header_seen_ = false;
      if (byte == kSync0) state_ = State::kHunt1;
      return Event::kNone;
    case State::kHunt1:
      // A repeated A5 keeps us waiting for 5A (garbage ending in A5 before a real frame).
      state_ = (byte == kSync1) ? State::kLenLo : (byte == kSync0 ? State::kHunt1 : State::kHunt0);
      return Event::kNone;
    case State::kLenLo:
      len_ = byte;
      state_ = State::kLenHi;
      return Event::kNone;
    case State::kLenHi:
      len_ = static_cast<uint16_t>(len_ | (byte << 8));
      if (len_ > kMaxPayload) {
        state_ = State::kHunt0;
        return Event::kTooLong;
      }
      state_ = State::kCmd;
      return Event::kNone;
    case State::kCmd:
      cmd_ = byte;
      state_ = State::kSeq;
      return Event::kNone;
    case State::kSeq:
      seq_ = byte;
      pos_ = 0;
      state_ = len_ ? State::kPayload : State::kCrcLo;
      return Event::kNone;
    case State::kPayload:
      payload_[pos_++] = byte;
      if (pos_ == len_) state_ = State::kCrcLo;
      return Event::kNone;
    case State::kCrcLo:
      crc_rx_ = byte;
      state_ = State::kCrcHi;
      return Event::kNone;
    case State::kCrcHi: {
      crc_rx_ = static_cast<uint16_t>(crc_rx_ | (byte << 8));
      state_ = State::kHunt0;
      header_seen_ = true;
      uint8_t head[4] = {static_cast<uint8_t>(len_), static_cast<uint8_t>(len_ >> 8), cmd_, seq_};
      uint16_t crc = crc16_update(crc16(head, 4), payload_, len_);
      return crc == crc_rx_ ? Event::kFrame : Event::kBadCrc;
    }
  }
  return Event::kNone;
}

}  // namespace hilnas
