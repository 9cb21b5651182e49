// hilnas::ModelRunner on TensorFlow Lite Micro's MicroInterpreter.
#ifndef HILNAS_TFLM_RUNNER_H_
#define HILNAS_TFLM_RUNNER_H_

#include <new>

#include "src/core/hilnas_runner.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"

namespace hilnas {

class TflmRunner : public ModelRunner {
 public:
  TflmRunner(const tflite::MicroOpResolver& resolver, uint8_t* arena, uint32_t arena_bytes)
      : resolver_(resolver), arena_(arena), arena_bytes_(arena_bytes), interp_(nullptr) {}
  RunnerStatus allocate(const uint8_t* model, uint32_t size, char* detail, size_t cap) override;
  uint32_t arena_used() const override;
  uint32_t arena_capacity() const override { return arena_bytes_; }
  uint8_t num_inputs() const override;
  uint8_t num_outputs() const override;
  bool input_desc(uint8_t index, TensorDesc* out) const override;
  bool output_desc(uint8_t index, TensorDesc* out) const override;
  uint8_t* input_data(uint8_t index) override;
  const uint8_t* output_data(uint8_t index) const override;
  bool invoke() override;
  bool reset_state() override;
  void release() override;

 private:
  const tflite::MicroOpResolver& resolver_;
  uint8_t* arena_;
  uint32_t arena_bytes_;
  tflite::MicroInterpreter* interp_;
  // The interpreter is placement-constructed here so that a new model never needs the heap.
  alignas(tflite::MicroInterpreter) uint8_t storage_[sizeof(tflite::MicroInterpreter)];
};

}  // namespace hilnas

#endif  // HILNAS_TFLM_RUNNER_H_
