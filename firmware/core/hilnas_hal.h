// The small hardware interfaces the portable core needs: a byte serial port with a
// microsecond clock, and a store for the uploaded model (flash on a board, RAM in tests).
// The sketch implements them with Arduino/mbed calls; tests implement them with buffers.
#ifndef HILNAS_HAL_H_
#define HILNAS_HAL_H_

#include <stddef.h>
#include <stdint.h>

namespace hilnas {

class Hal {
 public:
  virtual ~Hal() {}
  // Free-running microsecond clock (Arduino micros()); wraps after ~71 minutes.
  virtual uint32_t micros() = 0;
  // One received byte, or -1 when none is waiting. Never blocks.
  virtual int read_byte() = 0;
  virtual void write(const uint8_t* data, size_t len) = 0;
  // Reset the whole board (NVIC_SystemReset on a Cortex-M). May return in tests.
  virtual void system_reset() = 0;
};

// Where an uploaded model lives. On the Nano 33 BLE this is a slot at the top of the
// internal flash, so the model survives resets and does not take RAM from the arena.
class ModelStore {
 public:
  virtual ~ModelStore() {}
  virtual uint32_t capacity() const = 0;
  // Prepare to receive `size` bytes (size <= capacity()).
  virtual bool begin(uint32_t size) = 0;
  // Bytes arrive strictly in order; offset is where they go.
  virtual bool write(uint32_t offset, const uint8_t* data, uint32_t len) = 0;
  // All bytes received and hashed: commit `sha256` as the held model (or forget on false).
  virtual bool commit(const uint8_t sha256[32], bool valid) = 0;
  // The held, verified model: nullptr when none. `size` and `sha256` describe it.
  virtual const uint8_t* model(uint32_t* size, uint8_t sha256[32]) const = 0;
};

}  // namespace hilnas

#endif  // HILNAS_HAL_H_
