// ordo/quant/q8_rule.hpp — GGUF's Q8_0 rule for one block of 32 values, std-only: what
// ordo's GGUF writer stores and what q8_cpu.hpp's matrices hold.
#pragma once

#include <cmath>    // std::fabs, std::fmax, std::round
#include <cstddef>  // std::size_t
#include <cstdint>  // std::int8_t

#include <ordo/quant/float_bits.hpp>  // f16, to_f16

namespace ordo::quant::q8 {

/// Values per block (one scale each), as in GGUF's Q8_0.
inline constexpr std::size_t block = 32;

/// Q8_0's rule for the 32 values at x: writes the codes round(x * (1/d)) to q and returns the
/// scale d = max|x| / 127 rounded to fp16 (1/d is taken before that rounding, as llama.cpp's
/// reference does). The values must be finite.
inline quant::f16 quantize_block(const float* x, std::int8_t* q) noexcept {
  float amax = 0.0f;
  for (std::size_t i = 0; i < block; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (std::size_t i = 0; i < block; ++i) q[i] = static_cast<std::int8_t>(std::round(x[i] * id));
  return quant::to_f16(d);
}

}  // namespace ordo::quant::q8
