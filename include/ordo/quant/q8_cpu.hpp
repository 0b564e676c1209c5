// ordo/quant/q8_cpu.hpp — 8-bit weights by GGUF's Q8_0 rule on the CPU, without LibTorch:
// quantize a row-major matrix in blocks of 32 along each row (one scale per block), dequantize
// it, and a batch-1 GEMV with fp32 activations (y = W x, exact products of the int8 codes and
// fp32 x, fp32 sums). The rule is llama.cpp's reference Q8_0 (and ordo's GGUF writer uses this
// header for it): d = max|x| / 127 rounded to fp16, codes round(x / d). A weight whose values
// are Q8_0 values already (a GGUF's Q8_0 tensor, dequantized) comes back with the same values.
//
//   auto m = ordo::quant::q8::quantize(w.data(), rows, cols);   // cols a multiple of 32
//   ordo::quant::q8::gemv(m, x.data(), y.data());                // y = W x
//
// The GEMV has an AVX2 (+FMA) path, chosen at run time (on AVX-512 CPUs too: reading one byte
// per weight it is bound by memory, not by vector width), and a portable one; its options and row
// split are the dense fp32 GEMV's (f32_cpu.hpp).
#pragma once

#include <bit>        // std::bit_cast
#include <cmath>      // std::isfinite
#include <cstddef>    // std::size_t
#include <cstdint>    // std::int8_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string
#include <vector>     // std::vector

#include <ordo/quant/cpu_features.hpp>     // Isa, ORDO_NF4_HAVE_X86, ORDO_NF4_AVX2
#include <ordo/quant/f32_cpu.hpp>          // Options, split_gemv_rows
#include <ordo/quant/float_bits.hpp>       // to_float
#include <ordo/quant/nf4_cpu.hpp>          // range_runner, hsum
#include <ordo/quant/q8_rule.hpp>          // block, quantize_block

namespace ordo::quant::q8 {

using nf4::Isa;
using nf4::range_runner;

/// threads, isa, runner: the dense fp32 GEMV's options (f32_cpu.hpp).
using Options = f32::Options;

/// A matrix [rows, cols] in Q8_0: codes row-major, and the scale of each block of 32 along a row
/// (fp16 values, held as fp32 so the GEMV reads them directly).
struct Matrix {
  std::size_t rows = 0, cols = 0;
  std::vector<std::int8_t> codes;  ///< rows * cols
  std::vector<float> scales;       ///< rows * cols / 32

  std::size_t bytes() const { return codes.size() + scales.size() * 2; }  ///< as stored in a GGUF
};

namespace detail {

/// How a pass over the blocks of a matrix ended: at its end, or at `block` (and value `index`
/// within it) because a value was not finite, the block's scale was beyond fp16's range, or (when
/// asked to check) the block's values were not Q8_0 values.
struct BlockScan {
  enum Stop { end, non_finite, scale_overflow, not_q8_0_values } stop = end;
  std::size_t block = 0, index = 0;
};

/// Q8_0 of `blocks` blocks of 32 at w: codes into `codes` (blocks * 32; or nowhere when null) and
/// fp32 scales into `scales` (blocks; or nowhere when null). With `only_q8_0_values`, also stops at
/// the first block whose codes times its scale (in fp32, as dequantize computes them) do not give
/// back every value bit for bit.
inline BlockScan quantize_blocks(const float* w, std::size_t blocks, std::int8_t* codes, float* scales,
                                 bool only_q8_0_values) {
  std::int8_t scratch[block];
  for (std::size_t b = 0; b < blocks; ++b) {
    const float* x = w + b * block;
    for (std::size_t i = 0; i < block; ++i)
      if (!std::isfinite(x[i])) return {BlockScan::non_finite, b, i};
    std::int8_t* q = codes ? codes + b * block : scratch;
    const float d = quant::to_float(quantize_block(x, q));
    if (!std::isfinite(d)) return {BlockScan::scale_overflow, b, 0};
    if (scales) scales[b] = d;
    if (only_q8_0_values)
      for (std::size_t i = 0; i < block; ++i)
        if (std::bit_cast<std::uint32_t>(static_cast<float>(q[i]) * d) != std::bit_cast<std::uint32_t>(x[i]))
          return {BlockScan::not_q8_0_values, b, i};
  }
  return {};
}

}  // namespace detail

/// Q8_0 of w [rows, cols] (row-major fp32) into codes (rows * cols) and scales (rows * cols / 32,
/// the fp16 values as fp32). cols must be a multiple of 32, every value finite and every block's
/// scale within fp16's range (std::invalid_argument naming the row otherwise).
inline void quantize_into(const float* w, std::size_t rows, std::size_t cols, std::int8_t* codes, float* scales) {
  if (cols % block != 0)
    throw std::invalid_argument("ordo::quant::q8::quantize: rows of " + std::to_string(cols) +
                                " values; Q8_0 needs a multiple of 32");
  const auto scan = detail::quantize_blocks(w, rows * cols / block, codes, scales, /*only_q8_0_values=*/false);
  const std::size_t at = scan.block * block + scan.index;
  if (scan.stop == detail::BlockScan::non_finite)
    throw std::invalid_argument("ordo::quant::q8::quantize: a non-finite value at row " + std::to_string(at / cols) +
                                ", column " + std::to_string(at % cols));
  if (scan.stop == detail::BlockScan::scale_overflow)
    throw std::invalid_argument("ordo::quant::q8::quantize: values too large for Q8_0's fp16 scale at row " +
                                std::to_string(at / cols) + " (max |x| above 65504 * 127)");
}

/// Q8_0 of w [rows, cols] as a Matrix; the conditions and errors of quantize_into.
inline Matrix quantize(const float* w, std::size_t rows, std::size_t cols) {
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  if (cols % block == 0) {
    m.codes.resize(rows * cols);
    m.scales.resize(rows * cols / block);
  }
  quantize_into(w, rows, cols, m.codes.data(), m.scales.data());
  return m;
}

/// Whether w [rows, cols] holds Q8_0 values already: quantizing each block of 32 along a row and
/// multiplying the codes back by their scale (in fp32, as dequantize does) gives every value bit
/// for bit, as for a GGUF's Q8_0 tensor read into fp32. Meanwhile writes the Q8_0 codes and scales
/// into `codes` and `scales` (sized as for quantize_into; either may be null), so that a caller who
/// wants the 8-bit copy when the answer is yes quantizes once; their contents are unspecified when
/// the answer is no. Stops at the first block that differs; false for a row length that is not a
/// multiple of 32, a non-finite value, or a scale beyond fp16's range.
inline bool quantize_if_q8_0_values(const float* w, std::size_t rows, std::size_t cols, std::int8_t* codes,
                                    float* scales) {
  if (cols % block != 0) return false;
  return detail::quantize_blocks(w, rows * cols / block, codes, scales, /*only_q8_0_values=*/true).stop ==
         detail::BlockScan::end;
}

/// quantize_if_q8_0_values without keeping the codes.
inline bool holds_q8_0_values(const float* w, std::size_t rows, std::size_t cols) {
  return quantize_if_q8_0_values(w, rows, cols, nullptr, nullptr);
}

/// The values m stands for: code * scale, row-major into y (rows * cols floats).
inline void dequantize(const Matrix& m, float* y) {
  for (std::size_t i = 0; i < m.codes.size(); ++i) y[i] = static_cast<float>(m.codes[i]) * m.scales[i / block];
}

namespace detail {

/// sum over blocks of scale * (sum_k code_k * x_k) for rows [r0, r1).
inline void gemv_rows_portable(const std::int8_t* q, const float* d, std::size_t cols, const float* x, float* y,
                               std::size_t r0, std::size_t r1) {
  const std::size_t nb = cols / block;
  for (std::size_t r = r0; r < r1; ++r) {
    float acc = 0.0f;
    for (std::size_t b = 0; b < nb; ++b) {
      const std::int8_t* p = q + r * cols + b * block;
      float s = 0.0f;
      for (std::size_t i = 0; i < block; ++i) s += static_cast<float>(p[i]) * x[b * block + i];
      acc += d[r * nb + b] * s;
    }
    y[r] = acc;
  }
}

#if ORDO_NF4_HAVE_X86
/// 8 codes widened to fp32 (exact).
ORDO_NF4_AVX2 inline __m256 codes8(const std::int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

ORDO_NF4_AVX2 inline void gemv_rows_avx2(const std::int8_t* q, const float* d, std::size_t cols, const float* x,
                                         float* y, std::size_t r0, std::size_t r1) {
  const std::size_t nb = cols / block;
  const std::size_t ahead = nf4::gemv_prefetch_distance(cols);  // one row of cols bytes per step
  for (std::size_t r = r0; r < r1; ++r) {
    const std::int8_t* row = q + r * cols;
    const float* scale = d + r * nb;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (std::size_t b = 0; b < nb; ++b) {
      const std::int8_t* p = row + b * block;
      if (b % 2 == 0) nf4::gemv_prefetch(p, ahead);  // each 64-byte line (two blocks), `ahead` bytes early
      const float* xb = x + b * block;
      __m256 s0 = _mm256_mul_ps(codes8(p), _mm256_loadu_ps(xb));
      __m256 s1 = _mm256_mul_ps(codes8(p + 8), _mm256_loadu_ps(xb + 8));
      s0 = _mm256_fmadd_ps(codes8(p + 16), _mm256_loadu_ps(xb + 16), s0);
      s1 = _mm256_fmadd_ps(codes8(p + 24), _mm256_loadu_ps(xb + 24), s1);
      // Two accumulators over alternate blocks: the scale multiply-add is not one long chain.
      if (b % 2 == 0)
        acc0 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), _mm256_set1_ps(scale[b]), acc0);
      else
        acc1 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), _mm256_set1_ps(scale[b]), acc1);
    }
    y[r] = nf4::detail::hsum(_mm256_add_ps(acc0, acc1));
  }
}
#endif

}  // namespace detail

/// y = W x for W [rows, cols] in Q8_0 (codes row-major, one scale per 32 along a row), fp32 x
/// [cols] and y [rows]; cols a multiple of 32. Rows are split over threads (opt).
inline void gemv(const std::int8_t* codes, const float* scales, std::size_t rows, std::size_t cols, const float* x,
                 float* y, const Options& opt = {}) {
  if (cols % block != 0)
    throw std::invalid_argument("ordo::quant::q8::gemv: rows of " + std::to_string(cols) +
                                " values; Q8_0 needs a multiple of 32");
  f32::detail::split_gemv_rows(rows, cols, opt, [&]([[maybe_unused]] Isa isa, std::size_t r0, std::size_t r1) {
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx2) return detail::gemv_rows_avx2(codes, scales, cols, x, y, r0, r1);
#endif
    detail::gemv_rows_portable(codes, scales, cols, x, y, r0, r1);
  });
}

inline void gemv(const Matrix& m, const float* x, float* y, const Options& opt = {}) {
  gemv(m.codes.data(), m.scales.data(), m.rows, m.cols, x, y, opt);
}

}  // namespace ordo::quant::q8
