// hilnas agent firmware for the Arduino Nano 33 BLE (Sense): a thin sketch over the portable
// core in firmware/core (copied to src/core by tools/flash_nano33.sh). The protocol is in
// firmware/PROTOCOL.md. The op resolver below must list exactly the ops in
// device_agent/mcu/boards.json ("nano33ble"); tests/device_agent/test_mcu_emulator.py checks it.
#include <Arduino.h>
#include <TensorFlowLite.h>

#include "flash_store.h"
#include "src/core/hilnas_agent.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tflm_runner.h"

namespace {

// RAM left for the tensor arena after the firmware's reserve (docs/decisions-mcu.md):
// 256 KB - 64 KB for Mbed OS, the Arduino core, USB CDC, stacks and this firmware.
constexpr uint32_t kArenaBytes = 192 * 1024;
alignas(16) uint8_t tensor_arena[kArenaBytes];

constexpr char kOps[] =
    "ADD,AVERAGE_POOL_2D,CONCATENATION,CONV_2D,DEPTHWISE_CONV_2D,DEQUANTIZE,EXPAND_DIMS,"
    "FULLY_CONNECTED,LOGISTIC,MAX_POOL_2D,MEAN,MUL,PACK,PAD,QUANTIZE,RELU,RELU6,RESHAPE,SHAPE,"
    "SOFTMAX,SPLIT,SQUEEZE,STRIDED_SLICE,SUB,TANH,TRANSPOSE,UNIDIRECTIONAL_SEQUENCE_LSTM,UNPACK";

// The library version is pinned in tools/flash_nano33.sh; this string is what INFO reports.
const hilnas::BoardConfig kConfig = {
    "nano33ble", "nRF52840 Cortex-M4F", 64000000, 256 * 1024, 1024 * 1024,
    "Arduino_TensorFlowLite@tflite-micro-arduino-examples-07d1cca", kOps, "0.1.0",
    100,  // chunk_ms: one 4 KB page erase (85 ms on the nRF52840) plus programming
};

tflite::MicroMutableOpResolver<28> resolver;

void register_ops() {
  resolver.AddAdd();
  resolver.AddAveragePool2D();
  resolver.AddConcatenation();
  resolver.AddConv2D();
  resolver.AddDepthwiseConv2D();
  resolver.AddDequantize();
  resolver.AddExpandDims();
  resolver.AddFullyConnected();
  resolver.AddLogistic();
  resolver.AddMaxPool2D();
  resolver.AddMean();
  resolver.AddMul();
  resolver.AddPack();
  resolver.AddPad();
  resolver.AddQuantize();
  resolver.AddRelu();
  resolver.AddRelu6();
  resolver.AddReshape();
  resolver.AddShape();
  resolver.AddSoftmax();
  resolver.AddSplit();
  resolver.AddSqueeze();
  resolver.AddStridedSlice();
  resolver.AddSub();
  resolver.AddTanh();
  resolver.AddTranspose();
  resolver.AddUnidirectionalSequenceLSTM();
  resolver.AddUnpack();
}

class ArduinoHal : public hilnas::Hal {
 public:
  uint32_t micros() override { return ::micros(); }
  int read_byte() override { return Serial.available() > 0 ? Serial.read() : -1; }
  void write(const uint8_t* data, size_t len) override { Serial.write(data, len); }
  void system_reset() override {
    Serial.flush();
    delay(20);  // let the RESET reply leave the USB endpoint
    NVIC_SystemReset();
  }
};

ArduinoHal hal;
hilnas::FlashModelStore store;
hilnas::TflmRunner runner(resolver, tensor_arena, kArenaBytes);
hilnas::Agent agent(hal, store, runner, kConfig);

}  // namespace

void setup() {
  tflite::InitializeTarget();
  Serial.begin(115200);  // USB CDC: the rate is nominal
  // Wait briefly for a host, but never block forever: a board on a power bank still boots.
  const uint32_t t0 = millis();
  while (!Serial && millis() - t0 < 2000) {
  }
  register_ops();
  store.begin();
  agent.begin();  // READY
}

void loop() { agent.poll(); }
