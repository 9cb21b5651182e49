#include "flash_store.h"

#include <FlashIAP.h>
#include <string.h>

namespace hilnas {
namespace {

mbed::FlashIAP flash;

struct Header {
  uint32_t magic;
  uint32_t size;
  uint8_t sha256[32];
};
constexpr uint32_t kMagic = 0x484C4E31;  // "HLN1"

}  // namespace

void FlashModelStore::begin() {
  flash.init();
  base_ = flash.get_flash_start() + flash.get_flash_size() - kSlotBytes;
}

bool FlashModelStore::begin(uint32_t size) {
  // Forget the held model first: a reset in the middle leaves no stale header.
  if (flash.erase(base_ + capacity(), kSectorBytes) != 0) return false;
  size_ = size;
  erased_to_ = 0;
  word_fill_ = 0;
  word_offset_ = 0;
  return true;
}

bool FlashModelStore::flush_word() {
  if (word_fill_ == 0) return true;
  while (word_fill_ < 4) word_[word_fill_++] = 0xFF;
  // Sectors are erased lazily, so no single chunk waits for more than one page erase.
  while (erased_to_ <= word_offset_) {
    if (flash.erase(base_ + erased_to_, kSectorBytes) != 0) return false;
    erased_to_ += kSectorBytes;
  }
  if (flash.program(word_, base_ + word_offset_, 4) != 0) return false;
  word_offset_ += 4;
  word_fill_ = 0;
  return true;
}

bool FlashModelStore::write(uint32_t offset, const uint8_t* data, uint32_t len) {
  if (offset != word_offset_ + word_fill_) return false;
  for (uint32_t i = 0; i < len; ++i) {
    word_[word_fill_++] = data[i];
    if (word_fill_ == 4 && !flush_word()) return false;
  }
  return true;
}

bool FlashModelStore::commit(const uint8_t sha256[32], bool valid) {
  if (!flush_word()) return false;
  if (!valid) return true;
  Header h;
  h.magic = kMagic;
  h.size = size_;
  memcpy(h.sha256, sha256, 32);
  return flash.program(&h, base_ + capacity(), sizeof h) == 0;
}

const uint8_t* FlashModelStore::model(uint32_t* size, uint8_t sha256[32]) const {
  // The flash is memory-mapped: the interpreter reads the model in place.
  const Header* h = reinterpret_cast<const Header*>(base_ + capacity());
  if (h->magic != kMagic || h->size == 0 || h->size > capacity()) return nullptr;
  *size = h->size;
  memcpy(sha256, h->sha256, 32);
  return reinterpret_cast<const uint8_t*>(base_);
}

}  // namespace hilnas
