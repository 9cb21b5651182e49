// hilnas::ModelStore in the nRF52840's internal flash (Mbed FlashIAP): the model slot is
// the top 448 KB of flash; its last 4 KB sector holds a header (magic, size, SHA-256), so
// a verified model survives resets and the host can skip re-uploading it.
#ifndef HILNAS_FLASH_STORE_H_
#define HILNAS_FLASH_STORE_H_

#include "src/core/hilnas_hal.h"

namespace hilnas {

class FlashModelStore : public ModelStore {
 public:
  static constexpr uint32_t kSlotBytes = 448 * 1024;
  static constexpr uint32_t kSectorBytes = 4096;
  void begin();
  uint32_t capacity() const override { return kSlotBytes - kSectorBytes; }
  bool begin(uint32_t size) override;
  bool write(uint32_t offset, const uint8_t* data, uint32_t len) override;
  bool commit(const uint8_t sha256[32], bool valid) override;
  const uint8_t* model(uint32_t* size, uint8_t sha256[32]) const override;

 private:
  bool flush_word();
  uint32_t base_ = 0;        // flash address of the slot
  uint32_t size_ = 0;        // bytes announced by UPLOAD_BEGIN
  uint32_t erased_to_ = 0;   // slot offset up to which sectors are erased
  uint8_t word_[4] = {};     // FlashIAP programs whole 32-bit words
  uint32_t word_fill_ = 0;
  uint32_t word_offset_ = 0;
};

}  // namespace hilnas

#endif  // HILNAS_FLASH_STORE_H_
