#include "hilnas_agent.h"

#include <stdio.h>
#include <string.h>

namespace hilnas {
namespace {

void hex(const uint8_t* data, size_t n, char* out) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  out[2 * n] = '\0';
}

// Insertion sort: n <= 512 and this runs once per INVOKE, outside the timed window.
void sort_u32(uint32_t* a, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    uint32_t v = a[i];
    size_t j = i;
    while (j > 0 && a[j - 1] > v) {
      a[j] = a[j - 1];
      --j;
    }
    a[j] = v;
  }
}

size_t put_tensor(uint8_t* p, const TensorDesc& t) {
  size_t k = 0;
  p[k++] = t.type;
  put_u32(p + k, t.bytes);
  k += 4;
  p[k++] = t.ndim;
  for (int i = 0; i < t.ndim; ++i) {
    put_u32(p + k, static_cast<uint32_t>(t.dims[i]));
    k += 4;
  }
  put_f32(p + k, t.scale);
  k += 4;
  put_u32(p + k, static_cast<uint32_t>(t.zero_point));
  k += 4;
  return k;
}

constexpr size_t kTensorDescMax = 1 + 4 + 1 + 4 * kMaxDims + 4 + 4;

}  // namespace

Agent::Agent(Hal& hal, ModelStore& store, ModelRunner& runner, const BoardConfig& config)
    : hal_(hal),
      store_(store),
      runner_(runner),
      config_(config),
      uploading_(false),
      upload_size_(0),
      upload_next_(0),
      allocated_(false),
      seq_(0),
      n_timings_(0) {
  memset(upload_sha_, 0, sizeof upload_sha_);
}

void Agent::begin() {
  uint8_t p[2 + 32];
  p[0] = kProtocolMajor;
  p[1] = kProtocolMinor;
  size_t n = strlen(config_.board);
  if (n > 32) n = 32;
  memcpy(p + 2, config_.board, n);
  size_t len = encode_frame(cmd::kReady, 0, p, 2 + n, tx_, sizeof tx_);
  hal_.write(tx_, len);
}

void Agent::poll() {
  int c;
  while ((c = hal_.read_byte()) >= 0) feed(static_cast<uint8_t>(c));
  if (parser_.poll(hal_.micros()) == FrameParser::Event::kTruncated && parser_.header_seen()) {
    error_seq(parser_.seq(), ErrorCode::kTruncated, parser_.command(), "frame truncated");
  }
}

void Agent::feed(uint8_t byte) {
  switch (parser_.feed(byte, hal_.micros())) {
    case FrameParser::Event::kFrame:
      on_frame();
      break;
    case FrameParser::Event::kBadCrc:
      error_seq(parser_.seq(), ErrorCode::kBadCrc, parser_.command(), "bad crc");
      break;
    case FrameParser::Event::kTooLong:
      error_seq(0, ErrorCode::kTooLong, 0, "frame too long");
      break;
    case FrameParser::Event::kTruncated:
    case FrameParser::Event::kNone:
      break;
  }
}

void Agent::reply(uint8_t command, const uint8_t* payload, size_t len) {
  size_t n = encode_frame(static_cast<uint8_t>(command | cmd::kReplyBit), seq_, payload, len,
                          tx_, sizeof tx_);
  hal_.write(tx_, n);
}

void Agent::error_seq(uint8_t seq, ErrorCode code, uint8_t request, const char* detail) {
  uint8_t p[2 + kMaxErrorDetail];
  p[0] = static_cast<uint8_t>(code);
  p[1] = request;
  size_t n = detail ? strlen(detail) : 0;
  if (n > kMaxErrorDetail) n = kMaxErrorDetail;
  if (n) memcpy(p + 2, detail, n);
  size_t len = encode_frame(cmd::kError, seq, p, 2 + n, tx_, sizeof tx_);
  hal_.write(tx_, len);
}

void Agent::error(ErrorCode code, uint8_t request, const char* detail) {
  error_seq(seq_, code, request, detail);
}

void Agent::on_frame() {
  seq_ = parser_.seq();
  const uint8_t* p = parser_.payload();
  size_t n = parser_.length();
  switch (parser_.command()) {
    case cmd::kPing:
      reply(cmd::kPing, p, n);
      break;
    case cmd::kInfo:
      do_info(p, n);
      break;
    case cmd::kUploadBegin:
      do_upload_begin(p, n);
      break;
    case cmd::kUploadChunk:
      do_upload_chunk(p, n);
      break;
    case cmd::kUploadEnd:
      do_upload_end(n);
      break;
    case cmd::kAllocate:
      do_allocate(n);
      break;
    case cmd::kSetInput:
      do_set_input(p, n);
      break;
    case cmd::kInvoke:
      do_invoke(p, n);
      break;
    case cmd::kGetOutput:
      do_get_output(p, n);
      break;
    case cmd::kGetTimings:
      do_get_timings(p, n);
      break;
    case cmd::kReset:
      do_reset(n);
      break;
    default:
      error(ErrorCode::kUnknownCommand, parser_.command(), "unknown command");
      break;
  }
}

void Agent::do_info(const uint8_t* p, size_t n_in) {
  if (n_in != 0 && n_in != 4) {
    error(ErrorCode::kBadPayload, cmd::kInfo, "expected nothing or u16 offset + u16 max_len");
    return;
  }
  uint32_t size = 0;
  uint8_t sha[32];
  char sha_hex[65] = "";
  if (store_.model(&size, sha)) hex(sha, 32, sha_hex);
  int n = snprintf(reinterpret_cast<char*>(body_), sizeof body_,
                   "proto=%u.%u\nboard=%s\ncpu=%s\nclock_hz=%lu\nram=%lu\nflash=%lu\n"
                   "arena=%lu\nmodel_slot=%lu\ntflm=%s\nfw=%s\ntimer=micros\n"
                   "latency_source=measured\nemulated=0\nptr_bytes=%u\nmax_payload=%u\n"
                   "chunk_ms=%lu\nmodel_sha=%s\nops=%s\n",
                   kProtocolMajor, kProtocolMinor, config_.board, config_.cpu,
                   static_cast<unsigned long>(config_.clock_hz),
                   static_cast<unsigned long>(config_.ram_bytes),
                   static_cast<unsigned long>(config_.flash_bytes),
                   static_cast<unsigned long>(runner_.arena_capacity()),
                   static_cast<unsigned long>(store_.capacity()), config_.tflm_version,
                   config_.firmware_version, static_cast<unsigned>(sizeof(void*)),
                   static_cast<unsigned>(kMaxPayload), static_cast<unsigned long>(config_.chunk_ms),
                   sha_hex, config_.ops);
  if (n < 0 || static_cast<size_t>(n) >= sizeof body_) {
    error(ErrorCode::kInternal, cmd::kInfo, "info does not fit one frame");
    return;
  }
  size_t len = static_cast<size_t>(n);
  if (n_in == 0) {
    reply(cmd::kInfo, body_, len);
    return;
  }
  // A page of the text, so INFO also crosses a noisy line in short frames.
  size_t offset = get_u16(p), want = get_u16(p + 2);
  if (offset > len) offset = len;
  size_t take = len - offset < want ? len - offset : want;
  reply(cmd::kInfo, body_ + offset, take);
}

void Agent::do_upload_begin(const uint8_t* p, size_t n) {
  if (n != 4 + 32) {
    error(ErrorCode::kBadPayload, cmd::kUploadBegin, "expected u32 size + 32-byte sha256");
    return;
  }
  uint32_t size = get_u32(p);
  if (size == 0) {
    error(ErrorCode::kBadPayload, cmd::kUploadBegin, "empty model");
    return;
  }
  if (size > store_.capacity()) {
    char detail[96];
    snprintf(detail, sizeof detail, "model %lu B exceeds the flash model slot of %lu B",
             static_cast<unsigned long>(size), static_cast<unsigned long>(store_.capacity()));
    error(ErrorCode::kModelTooLarge, cmd::kUploadBegin, detail);
    return;
  }
  uint32_t held_size = 0;
  uint8_t held_sha[32];
  if (store_.model(&held_size, held_sha) && held_size == size &&
      memcmp(held_sha, p + 4, 32) == 0) {
    // Already in flash: no transfer, and an existing allocation stays valid.
    uploading_ = false;
    body_[0] = 1;
    put_u32(body_ + 1, size);
    reply(cmd::kUploadBegin, body_, 5);
    return;
  }
  runner_.release();
  allocated_ = false;
  if (!store_.begin(size)) {
    uploading_ = false;
    error(ErrorCode::kFlashFailed, cmd::kUploadBegin, "could not prepare the model slot");
    return;
  }
  uploading_ = true;
  upload_size_ = size;
  upload_next_ = 0;
  memcpy(upload_sha_, p + 4, 32);
  sha_.reset();
  body_[0] = 0;
  put_u32(body_ + 1, 0);
  reply(cmd::kUploadBegin, body_, 5);
}

void Agent::do_upload_chunk(const uint8_t* p, size_t n) {
  if (!uploading_) {
    error(ErrorCode::kWrongState, cmd::kUploadChunk, "no upload in progress");
    return;
  }
  if (n < 4) {
    error(ErrorCode::kBadPayload, cmd::kUploadChunk, "expected u32 offset + data");
    return;
  }
  uint32_t offset = get_u32(p);
  uint32_t len = static_cast<uint32_t>(n - 4);
  if (offset > upload_size_ || len > upload_size_ - offset) {
    error(ErrorCode::kBadPayload, cmd::kUploadChunk, "chunk past the announced size");
    return;
  }
  // Only the next expected chunk is applied; duplicates and gaps are answered with the
  // offset the board wants, which is how a lost reply or a lost chunk heals.
  if (offset == upload_next_ && len > 0) {
    if (!store_.write(offset, p + 4, len)) {
      uploading_ = false;
      error(ErrorCode::kFlashFailed, cmd::kUploadChunk, "flash write failed");
      return;
    }
    sha_.update(p + 4, len);
    upload_next_ += len;
  }
  put_u32(body_, upload_next_);
  reply(cmd::kUploadChunk, body_, 4);
}

void Agent::do_upload_end(size_t n) {
  if (n != 0) {
    error(ErrorCode::kBadPayload, cmd::kUploadEnd, "expected an empty payload");
    return;
  }
  if (!uploading_) {
    // A resent END after a lost reply: answer with the held model's hash.
    uint32_t size = 0;
    if (store_.model(&size, body_)) {
      reply(cmd::kUploadEnd, body_, 32);
    } else {
      error(ErrorCode::kWrongState, cmd::kUploadEnd, "no upload in progress");
    }
    return;
  }
  if (upload_next_ != upload_size_) {
    char detail[64];
    snprintf(detail, sizeof detail, "received %lu of %lu bytes",
             static_cast<unsigned long>(upload_next_), static_cast<unsigned long>(upload_size_));
    error(ErrorCode::kUploadIncomplete, cmd::kUploadEnd, detail);
    return;
  }
  uint8_t digest[32];
  sha_.finish(digest);
  uploading_ = false;
  bool ok = memcmp(digest, upload_sha_, 32) == 0;
  if (!store_.commit(digest, ok)) {
    error(ErrorCode::kFlashFailed, cmd::kUploadEnd, "could not commit the model slot");
    return;
  }
  if (!ok) {
    char detail[80];
    char got[17];
    hex(digest, 8, got);
    snprintf(detail, sizeof detail, "sha256 of received bytes starts %s", got);
    error(ErrorCode::kHashMismatch, cmd::kUploadEnd, detail);
    return;
  }
  memcpy(body_, digest, 32);
  reply(cmd::kUploadEnd, body_, 32);
}

void Agent::do_allocate(size_t n) {
  if (n != 0) {
    error(ErrorCode::kBadPayload, cmd::kAllocate, "expected an empty payload");
    return;
  }
  uint32_t size = 0;
  uint8_t sha[32];
  const uint8_t* model = uploading_ ? nullptr : store_.model(&size, sha);
  if (!model) {
    error(ErrorCode::kNoModel, cmd::kAllocate, "no verified model on the board");
    return;
  }
  if (!allocated_) {
    char detail[kMaxErrorDetail + 1] = "";
    RunnerStatus st = runner_.allocate(model, size, detail, sizeof detail);
    if (st != RunnerStatus::kOk) {
      ErrorCode code = st == RunnerStatus::kUnsupportedOp   ? ErrorCode::kUnsupportedOp
                       : st == RunnerStatus::kArenaTooSmall ? ErrorCode::kArenaTooSmall
                       : st == RunnerStatus::kModelInvalid  ? ErrorCode::kModelInvalid
                                                            : ErrorCode::kInternal;
      runner_.release();
      error(code, cmd::kAllocate, detail);
      return;
    }
    allocated_ = true;
  }
  size_t k = 0;
  put_u32(body_ + k, runner_.arena_used());
  k += 4;
  put_u32(body_ + k, runner_.arena_capacity());
  k += 4;
  uint8_t n_in = runner_.num_inputs(), n_out = runner_.num_outputs();
  body_[k++] = n_in;
  body_[k++] = n_out;
  for (int pass = 0; pass < 2; ++pass) {
    uint8_t count = pass == 0 ? n_in : n_out;
    for (uint8_t i = 0; i < count; ++i) {
      TensorDesc t;
      bool ok = pass == 0 ? runner_.input_desc(i, &t) : runner_.output_desc(i, &t);
      if (!ok || t.ndim > kMaxDims || k + kTensorDescMax > sizeof body_) {
        error(ErrorCode::kInternal, cmd::kAllocate, "tensor descriptions do not fit");
        return;
      }
      k += put_tensor(body_ + k, t);
    }
  }
  reply(cmd::kAllocate, body_, k);
}

void Agent::do_set_input(const uint8_t* p, size_t n) {
  if (!allocated_) {
    error(ErrorCode::kWrongState, cmd::kSetInput, "ALLOCATE first");
    return;
  }
  if (n < 5) {
    error(ErrorCode::kBadPayload, cmd::kSetInput, "expected u8 index + u32 offset + data");
    return;
  }
  TensorDesc t;
  if (p[0] >= runner_.num_inputs() || !runner_.input_desc(p[0], &t)) {
    error(ErrorCode::kBadTensor, cmd::kSetInput, "no such input");
    return;
  }
  uint32_t offset = get_u32(p + 1);
  uint32_t len = static_cast<uint32_t>(n - 5);
  if (offset > t.bytes || len > t.bytes - offset) {
    error(ErrorCode::kBadTensor, cmd::kSetInput, "data past the end of the input tensor");
    return;
  }
  memcpy(runner_.input_data(p[0]) + offset, p + 5, len);
  reply(cmd::kSetInput, nullptr, 0);
}

void Agent::do_invoke(const uint8_t* p, size_t n) {
  if (!allocated_) {
    error(ErrorCode::kWrongState, cmd::kInvoke, "ALLOCATE first");
    return;
  }
  if (n != 5) {
    error(ErrorCode::kBadPayload, cmd::kInvoke, "expected u16 runs + u16 warmup + u8 flags");
    return;
  }
  uint16_t runs = get_u16(p), warmup = get_u16(p + 2);
  uint8_t flags = p[4];
  if (runs == 0 || runs > kMaxTimedRuns) {
    error(ErrorCode::kBadPayload, cmd::kInvoke, "runs must be 1..512");
    return;
  }
  bool reset = flags & kInvokeFlagResetState;
  n_timings_ = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(warmup) + runs; ++i) {
    if (reset && !runner_.reset_state()) {
      error(ErrorCode::kInvokeFailed, cmd::kInvoke, "resetting variable tensors failed");
      return;
    }
    uint32_t t0 = hal_.micros();
    bool ok = runner_.invoke();
    uint32_t dt = hal_.micros() - t0;
    if (!ok) {
      error(ErrorCode::kInvokeFailed, cmd::kInvoke, "Invoke() failed");
      return;
    }
    if (i >= warmup) timings_[n_timings_++] = dt;
  }
  memcpy(sorted_, timings_, n_timings_ * sizeof(uint32_t));
  sort_u32(sorted_, n_timings_);
  uint64_t total = 0;
  for (uint16_t i = 0; i < n_timings_; ++i) total += timings_[i];
  uint32_t median = (n_timings_ % 2) ? sorted_[n_timings_ / 2]
                                     : static_cast<uint32_t>((static_cast<uint64_t>(sorted_[n_timings_ / 2 - 1]) +
                                                              sorted_[n_timings_ / 2]) / 2);
  put_u32(body_, n_timings_);
  put_u32(body_ + 4, sorted_[0]);
  put_u32(body_ + 8, median);
  put_u32(body_ + 12, sorted_[n_timings_ - 1]);
  put_u32(body_ + 16, static_cast<uint32_t>(total / n_timings_));
  put_u64(body_ + 20, total);
  reply(cmd::kInvoke, body_, 28);
}

void Agent::do_get_output(const uint8_t* p, size_t n) {
  if (!allocated_) {
    error(ErrorCode::kWrongState, cmd::kGetOutput, "ALLOCATE first");
    return;
  }
  if (n != 7) {
    error(ErrorCode::kBadPayload, cmd::kGetOutput, "expected u8 index + u32 offset + u16 max_len");
    return;
  }
  TensorDesc t;
  if (p[0] >= runner_.num_outputs() || !runner_.output_desc(p[0], &t)) {
    error(ErrorCode::kBadTensor, cmd::kGetOutput, "no such output");
    return;
  }
  uint32_t offset = get_u32(p + 1);
  uint32_t want = get_u16(p + 5);
  if (offset > t.bytes) {
    error(ErrorCode::kBadTensor, cmd::kGetOutput, "offset past the end of the output tensor");
    return;
  }
  uint32_t len = t.bytes - offset;
  if (len > want) len = want;
  if (len > kMaxPayload) len = kMaxPayload;
  reply(cmd::kGetOutput, runner_.output_data(p[0]) + offset, len);
}

void Agent::do_get_timings(const uint8_t* p, size_t n) {
  if (n != 4) {
    error(ErrorCode::kBadPayload, cmd::kGetTimings, "expected u16 first + u16 count");
    return;
  }
  uint16_t first = get_u16(p), count = get_u16(p + 2);
  if (first > n_timings_ || count > n_timings_ - first || count > kMaxPayload / 4) {
    error(ErrorCode::kBadPayload, cmd::kGetTimings, "range outside the last INVOKE's runs");
    return;
  }
  for (uint16_t i = 0; i < count; ++i) put_u32(body_ + 4 * i, timings_[first + i]);
  reply(cmd::kGetTimings, body_, 4u * count);
}

void Agent::do_reset(size_t n) {
  if (n != 0) {
    error(ErrorCode::kBadPayload, cmd::kReset, "expected an empty payload");
    return;
  }
  reply(cmd::kReset, nullptr, 0);
  runner_.release();
  allocated_ = false;
  uploading_ = false;
  n_timings_ = 0;
  parser_.reset();
  hal_.system_reset();
}

}  // namespace hilnas
