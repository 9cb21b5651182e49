// The interpreter interface the core drives. The sketch implements it with TFLite Micro's
// MicroInterpreter (firmware/arduino/hilnas_agent/tflm_runner.cpp); tests use a fake.
#ifndef HILNAS_RUNNER_H_
#define HILNAS_RUNNER_H_

#include <stddef.h>
#include <stdint.h>

namespace hilnas {

constexpr int kMaxDims = 6;

struct TensorDesc {
  uint8_t type;  // TfLiteType value
  uint32_t bytes;
  uint8_t ndim;
  int32_t dims[kMaxDims];
  float scale;
  int32_t zero_point;
};

enum class RunnerStatus : uint8_t {
  kOk = 0,
  kModelInvalid,
  kUnsupportedOp,
  kArenaTooSmall,
  kError,
};

class ModelRunner {
 public:
  virtual ~ModelRunner() {}
  // Build an interpreter for `model` and allocate its tensors in the arena. On failure,
  // `detail` gets a short reason (e.g. the missing op's name).
  virtual RunnerStatus allocate(const uint8_t* model, uint32_t size, char* detail,
                                size_t detail_cap) = 0;
  // Arena bytes actually used after allocate() (MicroInterpreter::arena_used_bytes()).
  virtual uint32_t arena_used() const = 0;
  virtual uint32_t arena_capacity() const = 0;
  virtual uint8_t num_inputs() const = 0;
  virtual uint8_t num_outputs() const = 0;
  virtual bool input_desc(uint8_t index, TensorDesc* out) const = 0;
  virtual bool output_desc(uint8_t index, TensorDesc* out) const = 0;
  virtual uint8_t* input_data(uint8_t index) = 0;
  virtual const uint8_t* output_data(uint8_t index) const = 0;
  virtual bool invoke() = 0;
  // Reset variable tensors (LSTM state) so the next invoke starts fresh.
  virtual bool reset_state() = 0;
  // Forget the interpreter (a new model is coming).
  virtual void release() = 0;
};

}  // namespace hilnas

#endif  // HILNAS_RUNNER_H_
