#include "tflm_runner.h"

#include <stdio.h>
#include <string.h>

#include "tensorflow/lite/schema/schema_generated.h"

namespace hilnas {
namespace {

void describe(const TfLiteTensor* t, TensorDesc* out) {
  out->type = static_cast<uint8_t>(t->type);
  out->bytes = static_cast<uint32_t>(t->bytes);
  out->ndim = static_cast<uint8_t>(t->dims->size > kMaxDims ? kMaxDims : t->dims->size);
  for (int i = 0; i < out->ndim; ++i) out->dims[i] = t->dims->data[i];
  out->scale = t->params.scale;
  out->zero_point = t->params.zero_point;
}

}  // namespace

RunnerStatus TflmRunner::allocate(const uint8_t* model_data, uint32_t size, char* detail,
                                  size_t cap) {
  release();
  (void)size;
  const tflite::Model* model = tflite::GetModel(model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    snprintf(detail, cap, "schema version %lu, firmware supports %d",
             static_cast<unsigned long>(model->version()), TFLITE_SCHEMA_VERSION);
    return RunnerStatus::kModelInvalid;
  }
  // TFLM only logs a missing op; find it first so the host gets its name.
  const auto* codes = model->operator_codes();
  for (flatbuffers::uoffset_t i = 0; codes && i < codes->size(); ++i) {
    const tflite::OperatorCode* oc = codes->Get(i);
    int code = oc->builtin_code() > oc->deprecated_builtin_code() ? oc->builtin_code()
                                                                   : oc->deprecated_builtin_code();
    if (oc->custom_code() != nullptr ||
        resolver_.FindOp(static_cast<tflite::BuiltinOperator>(code)) == nullptr) {
      snprintf(detail, cap, "op %s is not in the firmware's op resolver",
               oc->custom_code() ? "CUSTOM" : tflite::EnumNameBuiltinOperator(
                                                   static_cast<tflite::BuiltinOperator>(code)));
      return RunnerStatus::kUnsupportedOp;
    }
  }
  interp_ = new (storage_) tflite::MicroInterpreter(model, resolver_, arena_, arena_bytes_);
  if (interp_->AllocateTensors() != kTfLiteOk) {
    snprintf(detail, cap, "AllocateTensors failed: the model does not fit the %lu-byte arena",
             static_cast<unsigned long>(arena_bytes_));
    release();
    return RunnerStatus::kArenaTooSmall;
  }
  return RunnerStatus::kOk;
}

uint32_t TflmRunner::arena_used() const {
  return interp_ ? static_cast<uint32_t>(interp_->arena_used_bytes()) : 0;
}
uint8_t TflmRunner::num_inputs() const {
  return interp_ ? static_cast<uint8_t>(interp_->inputs_size()) : 0;
}
uint8_t TflmRunner::num_outputs() const {
  return interp_ ? static_cast<uint8_t>(interp_->outputs_size()) : 0;
}
bool TflmRunner::input_desc(uint8_t index, TensorDesc* out) const {
  if (!interp_ || index >= interp_->inputs_size()) return false;
  describe(interp_->input(index), out);
  return true;
}
bool TflmRunner::output_desc(uint8_t index, TensorDesc* out) const {
  if (!interp_ || index >= interp_->outputs_size()) return false;
  describe(interp_->output(index), out);
  return true;
}
uint8_t* TflmRunner::input_data(uint8_t index) {
  return interp_->input(index)->data.uint8;
}
const uint8_t* TflmRunner::output_data(uint8_t index) const {
  return interp_->output(index)->data.uint8;
}
bool TflmRunner::invoke() { return interp_ && interp_->Invoke() == kTfLiteOk; }
bool TflmRunner::reset_state() { return interp_ && interp_->Reset() == kTfLiteOk; }
void TflmRunner::release() {
  if (interp_) {
    interp_->~MicroInterpreter();
    interp_ = nullptr;
  }
}

}  // namespace hilnas
