// ordo/quant/detail/nf4_portable.hpp — the portable (scalar) NF4 block kernels of nf4_cpu.hpp:
// absmax, quantize and dequantize of one block, and one block's dot product for the GEMV. The
// AVX2 and AVX-512 paths (nf4_avx2.hpp, nf4_avx512.hpp) give the same bytes and fall back on
// these for their tails.
#pragma once

#include <cmath>    // std::fabs
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint8_t
#include <limits>   // std::numeric_limits

#include <ordo/quant/float_bits.hpp>    // to_float, from_float
#include <ordo/quant/nf4_codebook.hpp>  // codebook, code_value, quantize_code, pack, high_code, low_code, ZeroBlocks

namespace ordo::quant::nf4::detail {

/// The scale every value of a block is multiplied by: 1/absmax, as the CUDA kernel computes it.
inline float block_scale(float absmax, ZeroBlocks zero_blocks) {
  if (absmax == 0.0f && zero_blocks == ZeroBlocks::zero_code) return 0.0f;
  return 1.0f / absmax;
}

/// absmax of a block: the largest |x| ignoring NaNs (fmaxf semantics, as the CUDA kernel's
/// per-thread fold), starting from -FLT_MAX for a full block; a partial (tail) block also sees
/// the zeros that pad it, as the CUDA kernel loads them.
inline float absmax_start(bool partial) { return partial ? 0.0f : -std::numeric_limits<float>::max(); }

template <class T>
float block_absmax_portable(const T* x, std::size_t len, bool partial) {
  float m = absmax_start(partial);
  for (std::size_t i = 0; i < len; ++i) {
    const float a = std::fabs(quant::to_float(x[i]));
    if (a > m) m = a;  // NaN compares false: ignored
  }
  return m;
}

template <class T>
void quantize_pairs_portable(const T* x, std::size_t len, float scale, std::uint8_t* out) {
  std::size_t j = 0;
  for (; j + 1 < len; j += 2)
    out[j / 2] = pack(quantize_code(quant::to_float(x[j]) * scale), quantize_code(quant::to_float(x[j + 1]) * scale));
  if (j < len)  // odd tail: the kernel pads the input with 0, scaled like every value
    out[j / 2] = pack(quantize_code(quant::to_float(x[j]) * scale), quantize_code(0.0f * scale));
}

template <class T>
void quantize_block_portable(const T* x, std::size_t len, bool partial, ZeroBlocks zb, std::uint8_t* out,
                             float* absmax) {
  const float m = block_absmax_portable(x, len, partial);
  *absmax = m;
  quantize_pairs_portable(x, len, block_scale(m, zb), out);
}

template <class Out>
void dequantize_block_portable(const std::uint8_t* packed, std::size_t len, float absmax, Out* y) {
  std::size_t j = 0;
  for (; j + 1 < len; j += 2) {
    const std::uint8_t b = packed[j / 2];
    y[j] = quant::from_float<Out>(code_value(high_code(b)) * absmax);
    y[j + 1] = quant::from_float<Out>(code_value(low_code(b)) * absmax);
  }
  if (j < len) y[j] = quant::from_float<Out>(code_value(high_code(packed[j / 2])) * absmax);
}

/// Sum over one block of a row: sum_k code_value(c_k) * x_k, in fp32.
inline float block_dot_portable(const std::uint8_t* packed, std::size_t len, const float* x) {
  float acc = 0.0f;
  for (std::size_t j = 0; j < len; j += 2) {
    const std::uint8_t b = packed[j / 2];
    acc += codebook[high_code(b)] * x[j];
    acc += codebook[low_code(b)] * x[j + 1];
  }
  return acc;
}

}  // namespace ordo::quant::nf4::detail
