// Fakes of the hardware and the interpreter for driving the core's Agent on the host.
#ifndef HILNAS_FAKES_H_
#define HILNAS_FAKES_H_

#include <cstring>
#include <deque>
#include <vector>

#include "hilnas_agent.h"
#include "hilnas_frame.h"

namespace hilnas {

class FakeHal : public Hal {
 public:
  uint32_t now = 1000;
  uint32_t tick = 0;  // added to the clock on every micros() call
  std::deque<uint8_t> rx;
  std::vector<uint8_t> tx;
  int resets = 0;
  uint32_t micros() override {
    now += tick;
    return now;
  }
  int read_byte() override {
    if (rx.empty()) return -1;
    int c = rx.front();
    rx.pop_front();
    return c;
  }
  void write(const uint8_t* data, size_t len) override { tx.insert(tx.end(), data, data + len); }
  void system_reset() override { ++resets; }
};

class RamStore : public ModelStore {
 public:
  explicit RamStore(uint32_t cap) : buf(cap) {}
  std::vector<uint8_t> buf;
  uint32_t size = 0, pending = 0;
  bool valid = false;
  bool fail_write = false;
  uint8_t sha[32] = {};
  uint32_t capacity() const override { return static_cast<uint32_t>(buf.size()); }
  bool begin(uint32_t s) override {
    valid = false;
    pending = s;
    return true;
  }
  bool write(uint32_t off, const uint8_t* d, uint32_t len) override {
    if (fail_write) return false;
    std::memcpy(buf.data() + off, d, len);
    return true;
  }
  bool commit(const uint8_t s[32], bool ok) override {
    valid = ok;
    size = pending;
    std::memcpy(sha, s, 32);
    return true;
  }
  const uint8_t* model(uint32_t* s, uint8_t out[32]) const override {
    if (!valid) return nullptr;
    *s = size;
    std::memcpy(out, sha, 32);
    return buf.data();
  }
};

// A fake "model": output[i] = input[i] + 1; the arena use is the model size times two.
class FakeRunner : public ModelRunner {
 public:
  RunnerStatus next_status = RunnerStatus::kOk;
  bool fail_invoke = false;
  int invokes = 0, resets = 0, releases = 0, allocations = 0;
  uint32_t used = 0;
  uint8_t in[300] = {}, out[300] = {};
  uint32_t* clock = nullptr;  // when set, invoke() advances it by the next scripted duration
  std::vector<uint32_t> durations;
  size_t next_duration = 0;
  RunnerStatus allocate(const uint8_t*, uint32_t size, char* detail, size_t cap) override {
    ++allocations;
    if (next_status == RunnerStatus::kUnsupportedOp) std::snprintf(detail, cap, "op LSTM");
    if (next_status != RunnerStatus::kOk) return next_status;
    used = size * 2;
    return RunnerStatus::kOk;
  }
  uint32_t arena_used() const override { return used; }
  uint32_t arena_capacity() const override { return 196608; }
  uint8_t num_inputs() const override { return 1; }
  uint8_t num_outputs() const override { return 1; }
  bool desc(TensorDesc* t) const {
    t->type = 9;
    t->bytes = 300;
    t->ndim = 3;
    t->dims[0] = 1;
    t->dims[1] = 300;
    t->dims[2] = 1;
    t->scale = 0.5f;
    t->zero_point = -3;
    return true;
  }
  bool input_desc(uint8_t i, TensorDesc* t) const override { return i == 0 && desc(t); }
  bool output_desc(uint8_t i, TensorDesc* t) const override { return i == 0 && desc(t); }
  uint8_t* input_data(uint8_t) override { return in; }
  const uint8_t* output_data(uint8_t) const override { return out; }
  bool invoke() override {
    ++invokes;
    if (clock && next_duration < durations.size()) *clock += durations[next_duration++];
    for (int i = 0; i < 300; ++i) out[i] = static_cast<uint8_t>(in[i] + 1);
    return !fail_invoke;
  }
  bool reset_state() override {
    ++resets;
    return true;
  }
  void release() override { ++releases; }
};

}  // namespace hilnas

#endif  // HILNAS_FAKES_H_
