// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the frame check of the serial protocol.
#ifndef HILNAS_CRC16_H_
#define HILNAS_CRC16_H_

#include <stddef.h>
#include <stdint.h>

namespace hilnas {

constexpr uint16_t kCrc16Init = 0xFFFF;

// Continue a CRC over more bytes; start with kCrc16Init.
uint16_t crc16_update(uint16_t crc, const uint8_t* data, size_t len);
inline uint16_t crc16(const uint8_t* data, size_t len) {
  return crc16_update(kCrc16Init, data, len);
}

}  // namespace hilnas

#endif  // HILNAS_CRC16_H_
