// ordo/quant/float_bits.hpp — exact conversions between fp32 and the 16-bit float formats
// (IEEE binary16 "f16" and bfloat16 "bf16") carried as raw uint16 bit patterns.
//
// Widening (f16/bf16 -> f32) is exact for every pattern (subnormals included; NaN stays NaN).
// Narrowing (f32 -> f16/bf16) rounds to nearest, ties to even, as PyTorch's `.to(dtype)` and
// CUDA's __float2half_rn do; overflow gives infinity; every NaN becomes the canonical quiet NaN
// (0x7E00 for f16, 0x7FC0 for bf16), so results do not depend on NaN payloads or on which
// instruction set produced them. Usable from host and device code; std-only.
#pragma once

#include <cstdint>  // std::uint16_t, std::uint32_t

#include <ordo/quant/host_device.hpp>  // ORDO_HOST_DEVICE

#if !defined(__CUDA_ARCH__)
#include <bit>  // std::bit_cast
#endif

namespace ordo::quant {

/// A bfloat16 value as its bit pattern (the layout of torch.bfloat16 / __nv_bfloat16).
struct bf16 {
  std::uint16_t bits;
};
/// An IEEE binary16 value as its bit pattern (the layout of torch.float16 / __half).
struct f16 {
  std::uint16_t bits;
};
static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2, "16-bit float wrappers must be 2 bytes");

ORDO_HOST_DEVICE inline float float_from_bits(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

ORDO_HOST_DEVICE inline std::uint32_t bits_from_float(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}

ORDO_HOST_DEVICE inline float to_float(float x) { return x; }

ORDO_HOST_DEVICE inline float to_float(bf16 x) { return float_from_bits(static_cast<std::uint32_t>(x.bits) << 16); }

ORDO_HOST_DEVICE inline float to_float(f16 x) {
  const std::uint32_t sign = static_cast<std::uint32_t>(x.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (x.bits >> 10) & 0x1Fu;
  std::uint32_t mantissa = x.bits & 0x3FFu;
  if (exponent == 0x1Fu)  // infinity or NaN: keep the payload, widen it
    return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0)  // normal: rebias 15 -> 127
    return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return float_from_bits(sign);
  // subnormal f16: mantissa * 2^-24, a normal fp32; shift the leading one into place.
  std::uint32_t e = 113;  // exponent field of 2^-14
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return float_from_bits(sign | (e << 23) | ((mantissa & 0x3FFu) << 13));
}

/// fp32 -> bf16, round to nearest even; NaN -> 0x7FC0.
ORDO_HOST_DEVICE inline bf16 to_bf16(float x) {
  const std::uint32_t u = bits_from_float(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16{0x7FC0};
  const std::uint32_t rounding_bias = 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>((u + rounding_bias) >> 16)};
}

/// fp32 -> f16, round to nearest even; overflow -> infinity; NaN -> 0x7E00.
ORDO_HOST_DEVICE inline f16 to_f16(float x) {
  const std::uint32_t u = bits_from_float(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return f16{0x7E00};
  if (a >= 0x477FF000u) return f16{static_cast<std::uint16_t>(sign | 0x7C00u)};  // >= 65520: inf
  if (a >= 0x38800000u) {                                                        // normal f16 range (>= 2^-14)
    const std::uint32_t mant_odd = (a >> 13) & 1u;
    const std::uint32_t r = a + 0xFFFu + mant_odd - (112u << 23);
    return f16{static_cast<std::uint16_t>(sign | (r >> 13))};
  }
  if (a < 0x33000000u) return f16{sign};  // below half the smallest subnormal (2^-25): zero
  // subnormal f16: value / 2^-24 rounded to an integer, ties to even.
  const std::uint32_t exponent = a >> 23;  // biased, 102..112
  const std::uint32_t mantissa = (a & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126u - exponent;  // 14..24
  std::uint32_t q = mantissa >> shift;
  const std::uint32_t rem = mantissa & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
  return f16{static_cast<std::uint16_t>(sign | q)};
}

template <class T>
ORDO_HOST_DEVICE inline T from_float(float x);
template <>
ORDO_HOST_DEVICE inline float from_float<float>(float x) {
  return x;
}
template <>
ORDO_HOST_DEVICE inline bf16 from_float<bf16>(float x) {
  return to_bf16(x);
}
template <>
ORDO_HOST_DEVICE inline f16 from_float<f16>(float x) {
  return to_f16(x);
}

}  // namespace ordo::quant
