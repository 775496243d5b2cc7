// float16 <-> float32, bit for bit as numpy's astype: the L2 records and the span index keep keys as
// float16.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace acre {

// float32 -> float16, rounding to nearest even (numpy's astype(float16) gives the same bits).
inline uint16_t to_half(float value) {
  uint32_t f;
  std::memcpy(&f, &value, 4);
  const uint32_t sign = (f >> 16) & 0x8000u, abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) return uint16_t(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN, inf
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {                         // below 2^-14: a subnormal half, in units of 2^-24
    if (abs < 0x33000000u) return uint16_t(sign);  // below 2^-25 (2^-25 itself rounds to even 0)
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u, shift = 126 - (abs >> 23);
    uint32_t h = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = (abs >> 13) - (112u << 10);  // rebias the exponent from 127 to 15
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) ++h;  // a carry into the exponent is right
  return uint16_t(sign | h);
}

inline float from_half(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t f;
  if (exp == 0x1f) {
    f = sign | 0x7f800000u | (mant << 13);
  } else if (exp) {
    f = sign | ((exp + 112) << 23) | (mant << 13);
  } else {
    const float v = std::ldexp(float(mant), -24);
    std::memcpy(&f, &v, 4);
    f |= sign;
  }
  float out;
  std::memcpy(&out, &f, 4);
  return out;
}

}  // namespace acre
