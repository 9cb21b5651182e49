// The board side of the protocol: reads frames from the Hal, dispatches commands to the
// ModelStore and ModelRunner, times INVOKE with the Hal's micros(), and replies.
#ifndef HILNAS_AGENT_H_
#define HILNAS_AGENT_H_

#include <stddef.h>
#include <stdint.h>

#include "hilnas_frame.h"
#include "hilnas_hal.h"
#include "hilnas_protocol.h"
#include "hilnas_runner.h"
#include "hilnas_sha256.h"

namespace hilnas {

// Static facts about the board, reported by INFO.
struct BoardConfig {
  const char* board;         // "nano33ble"
  const char* cpu;           // "nRF52840 Cortex-M4F"
  uint32_t clock_hz;
  uint32_t ram_bytes;
  uint32_t flash_bytes;
  const char* tflm_version;
  const char* ops;           // comma-separated builtin op names registered in the resolver
  const char* firmware_version;
  uint32_t chunk_ms;         // worst-case time to apply one chunk (flash page erase)
};

class Agent {
 public:
  Agent(Hal& hal, ModelStore& store, ModelRunner& runner, const BoardConfig& config);
  // Announce readiness (READY frame). Call once after reset.
  void begin();
  // Read whatever bytes are waiting and handle complete frames. Call from loop().
  void poll();
  // Handle one byte (exposed for tests that drive the agent byte by byte).
  void feed(uint8_t byte);

 private:
  void on_frame();
  void reply(uint8_t command, const uint8_t* payload, size_t len);
  void error(ErrorCode code, uint8_t request, const char* detail);
  void error_seq(uint8_t seq, ErrorCode code, uint8_t request, const char* detail);

  void do_info(const uint8_t* p, size_t n);
  void do_upload_begin(const uint8_t* p, size_t n);
  void do_upload_chunk(const uint8_t* p, size_t n);
  void do_upload_end(size_t n);
  void do_allocate(size_t n);
  void do_set_input(const uint8_t* p, size_t n);
  void do_invoke(const uint8_t* p, size_t n);
  void do_get_output(const uint8_t* p, size_t n);
  void do_get_timings(const uint8_t* p, size_t n);
  void do_reset(size_t n);

  Hal& hal_;
  ModelStore& store_;
  ModelRunner& runner_;
  const BoardConfig& config_;
  FrameParser parser_;

  // upload state
  bool uploading_;
  uint32_t upload_size_;
  uint32_t upload_next_;
  uint8_t upload_sha_[32];
  Sha256 sha_;
  bool allocated_;

  uint8_t seq_;  // SEQ of the request being handled
  uint16_t n_timings_;
  uint32_t timings_[kMaxTimedRuns];
  uint32_t sorted_[kMaxTimedRuns];
  uint8_t tx_[kMaxFrame];
  uint8_t body_[kMaxPayload];
};

}  // namespace hilnas

#endif  // HILNAS_AGENT_H_
