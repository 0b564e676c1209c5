// ordo/quant/detail/nf4_avx2.hpp — the AVX2 (+FMA, F16C) NF4 block kernels of nf4_cpu.hpp:
// absmax, quantize and dequantize of one block (fp32, bf16, f16), and GEMV rows by a byte-plane
// codebook lookup. Compiled with target attributes (ORDO_NF4_AVX2), called only when the CPU
// has the features (cpu_features.hpp); same bytes as the portable path (nf4_portable.hpp).
// Empty where ORDO_NF4_HAVE_X86 is 0.
#pragma once

#include <cmath>        // std::fabs
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <ordo/quant/cpu_features.hpp>         // ORDO_NF4_HAVE_X86, ORDO_NF4_AVX2, <immintrin.h>
#include <ordo/quant/detail/nf4_portable.hpp>  // absmax_start, block_scale, *_portable tails
#include <ordo/quant/float_bits.hpp>           // bf16, f16, to_float, bits_from_float
#include <ordo/quant/nf4_codebook.hpp>         // codebook, midpoint, ZeroBlocks

namespace ordo::quant::nf4::detail {

#if ORDO_NF4_HAVE_X86

ORDO_NF4_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
ORDO_NF4_AVX2 inline __m256 load8(const bf16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
ORDO_NF4_AVX2 inline __m256 load8(const f16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

ORDO_NF4_AVX2 inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

ORDO_NF4_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <class T>
ORDO_NF4_AVX2 float block_absmax_avx2(const T* x, std::size_t len, bool partial) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 acc = _mm256_set1_ps(absmax_start(partial));
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    const __m256 a = _mm256_andnot_ps(sign, load8(x + i));
    acc = _mm256_max_ps(a, acc);  // MAXPS returns the second operand when one is NaN
  }
  float m = hmax(acc);
  for (; i < len; ++i) {
    const float a = std::fabs(quant::to_float(x[i]));
    if (a > m) m = a;
  }
  return m;
}

/// Codes of 8 scaled values: the number of midpoints each value exceeds (NaN exceeds none).
ORDO_NF4_AVX2 inline __m256i codes8(__m256 v) {
  __m256i count = _mm256_setzero_si256();
  for (unsigned i = 0; i < 15; ++i) {
    const __m256 gt = _mm256_cmp_ps(v, _mm256_set1_ps(midpoint(i)), _CMP_GT_OQ);
    count = _mm256_sub_epi32(count, _mm256_castps_si256(gt));
  }
  return count;
}

/// 16 codes (int32, in order, in two vectors) -> 8 packed bytes as int32 lanes.
ORDO_NF4_AVX2 inline __m256i pair_bytes(__m256i c0, __m256i c1) {
  const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(c0, c1), 0xD8);
  const __m256i first = _mm256_and_si256(p, _mm256_set1_epi32(0xFFFF));
  return _mm256_or_si256(_mm256_slli_epi32(first, 4), _mm256_srli_epi32(p, 16));
}

template <class T>
ORDO_NF4_AVX2 void quantize_pairs_avx2(const T* x, std::size_t len, float scale, std::uint8_t* out) {
  const __m256 s = _mm256_set1_ps(scale);
  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    const __m256i c0 = codes8(_mm256_mul_ps(load8(x + i), s));
    const __m256i c1 = codes8(_mm256_mul_ps(load8(x + i + 8), s));
    const __m256i c2 = codes8(_mm256_mul_ps(load8(x + i + 16), s));
    const __m256i c3 = codes8(_mm256_mul_ps(load8(x + i + 24), s));
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(pair_bytes(c0, c1), pair_bytes(c2, c3)), 0xD8);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), bytes);
  }
  quantize_pairs_portable(x + i, len - i, scale, out + i / 2);
}

template <class T>
ORDO_NF4_AVX2 void quantize_block_avx2(const T* x, std::size_t len, bool partial, ZeroBlocks zb, std::uint8_t* out,
                                       float* absmax) {
  const float m = block_absmax_avx2(x, len, partial);
  *absmax = m;
  quantize_pairs_avx2(x, len, block_scale(m, zb), out);
}

/// Values of 8 codes (int32 lanes 0..15) through the 16-entry codebook in two registers.
ORDO_NF4_AVX2 inline __m256 lookup8(__m128i codes_u8, __m256 lut_lo, __m256 lut_hi) {
  const __m256i idx = _mm256_cvtepu8_epi32(codes_u8);
  const __m256 lo = _mm256_permutevar8x32_ps(lut_lo, idx);
  const __m256 hi = _mm256_permutevar8x32_ps(lut_hi, idx);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/// 16 packed bytes -> 32 codes in element order (two vectors of 16 bytes).
ORDO_NF4_AVX2 inline void unpack32(const std::uint8_t* p, __m128i& first, __m128i& second) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
  const __m128i lo = _mm_and_si128(b, mask);
  first = _mm_unpacklo_epi8(hi, lo);
  second = _mm_unpackhi_epi8(hi, lo);
}

/// Stores 8 floats as Out: as is, or rounded to bf16/f16 exactly as quant::to_bf16/to_f16 do
/// (nearest even, canonical NaN), so every path writes the same bits. Stream: a non-temporal
/// store, y aligned to its size (32 bytes for float, 16 for bf16/f16).
template <bool Stream = false, class Out>
ORDO_NF4_AVX2 inline void store8(Out* y, __m256 v) {
  if constexpr (std::is_same_v<Out, float>) {
    if constexpr (Stream)
      _mm256_stream_ps(y, v);
    else
      _mm256_storeu_ps(y, v);
  } else {
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(nan)),
                                          _mm256_extracti128_si256(_mm256_castps_si256(nan), 1));
    __m128i h;
    if constexpr (std::is_same_v<Out, bf16>) {
      const __m256i u = _mm256_castps_si256(v);
      const __m256i bias =
          _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)));
      const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
      h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      h = _mm_blendv_epi8(h, _mm_set1_epi16(0x7FC0), nan16);
    } else {
      h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      h = _mm_blendv_epi8(h, _mm_set1_epi16(0x7E00), nan16);
    }
    if constexpr (Stream)
      _mm_stream_si128(reinterpret_cast<__m128i*>(y), h);
    else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y), h);
  }
}

/// One block; Stream: non-temporal stores (y 64-byte aligned; the caller fences).
template <bool Stream, class Out>
ORDO_NF4_AVX2 void dequantize_block_avx2(const std::uint8_t* packed, std::size_t len, float absmax, Out* y) {
  const __m256 lut_lo = _mm256_loadu_ps(codebook.data());
  const __m256 lut_hi = _mm256_loadu_ps(codebook.data() + 8);
  const __m256 s = _mm256_set1_ps(absmax);
  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    __m128i first, second;
    unpack32(packed + i / 2, first, second);
    const __m256 v0 = _mm256_mul_ps(lookup8(first, lut_lo, lut_hi), s);
    const __m256 v1 = _mm256_mul_ps(lookup8(_mm_srli_si128(first, 8), lut_lo, lut_hi), s);
    const __m256 v2 = _mm256_mul_ps(lookup8(second, lut_lo, lut_hi), s);
    const __m256 v3 = _mm256_mul_ps(lookup8(_mm_srli_si128(second, 8), lut_lo, lut_hi), s);
    store8<Stream>(y + i, v0);
    store8<Stream>(y + i + 8, v1);
    store8<Stream>(y + i + 16, v2);
    store8<Stream>(y + i + 24, v3);
  }
  dequantize_block_portable(packed + i / 2, len - i, absmax, y + i);
}

/// x reordered for gemv_rows_avx2: within each chunk of 32 values, the order in which the
/// byte-plane lookup below produces weights: per group of 8, the four even then the four odd.
inline std::vector<float> gemv_x_order_avx2(const float* x, std::size_t cols) {
  std::vector<float> p(cols);
  for (std::size_t c = 0; c + 32 <= cols; c += 32)
    for (std::size_t g = 0; g < 4; ++g)
      for (std::size_t j = 0; j < 4; ++j) {
        p[c + 8 * g + j] = x[c + 8 * g + 2 * j];
        p[c + 8 * g + 4 + j] = x[c + 8 * g + 2 * j + 1];
      }
  return p;
}

/// sum_k code_value(c_k) * x_k over a block (length a multiple of 32), x in gemv_x_order_avx2's
/// order. The codebook is split into its four byte planes: four pshufb look up 32 codes at once
/// and two rounds of unpacking put the bytes of each float together. The 16 packed bytes are
/// read once into both lanes (high nibbles used in the first, low in the second: no lane insert),
/// and four accumulators keep the multiply-adds of consecutive chunks independent (with two, the
/// adds' latency bounded the loop: 1.06-1.15x faster on Zen 3, docs/nf4.md).
ORDO_NF4_AVX2 inline __m256 block_dot_avx2(const std::uint8_t* packed, std::size_t len, const float* xp,
                                           const __m256i* planes) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (std::size_t i = 0; i < len; i += 32) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + i / 2)));
    // first lane: elements 0, 2, ..., 30 (high nibbles); second: 1, 3, ..., 31 (low nibbles)
    const __m256i codes = _mm256_and_si256(_mm256_blend_epi32(_mm256_srli_epi16(b, 4), b, 0xF0), mask);
    const __m256i b0 = _mm256_shuffle_epi8(planes[0], codes), b1 = _mm256_shuffle_epi8(planes[1], codes);
    const __m256i b2 = _mm256_shuffle_epi8(planes[2], codes), b3 = _mm256_shuffle_epi8(planes[3], codes);
    const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
    const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
    a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23)), _mm256_loadu_ps(xp + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23)), _mm256_loadu_ps(xp + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23)), _mm256_loadu_ps(xp + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23)), _mm256_loadu_ps(xp + i + 24), a3);
  }
  return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
}

/// Rows [row_begin, row_end) of y = W x; `xp` is x in gemv_x_order_avx2's order.
ORDO_NF4_AVX2 inline void gemv_rows_avx2(const std::uint8_t* w, const float* absmax, std::size_t cols,
                                         std::size_t blocksize, const float* xp, float* y, std::size_t row_begin,
                                         std::size_t row_end) {
  __m256i planes[4];
  for (unsigned k = 0; k < 4; ++k) {
    alignas(16) std::uint8_t plane[16];
    for (unsigned c = 0; c < 16; ++c)
      plane[c] = static_cast<std::uint8_t>(quant::bits_from_float(codebook[c]) >> (8 * k));
    planes[k] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(plane)));
  }
  const std::size_t blocks_per_row = cols / blocksize;
  const std::size_t ahead = gemv_prefetch_distance(cols / 2);  // one row of cols / 2 bytes per step
  for (std::size_t r = row_begin; r < row_end; ++r) {
    __m256 acc = _mm256_setzero_ps();
    const std::uint8_t* row = w + r * (cols / 2);
    const float* scales = absmax + r * blocks_per_row;
    if (blocksize == 64) {  // the default: a constant length lets the block's loop unroll
      for (std::size_t b = 0; b < blocks_per_row; ++b) {
        if (b % 2 == 0) gemv_prefetch(row + b * 32, ahead);  // each 64-byte line, `ahead` bytes early
        acc = _mm256_fmadd_ps(block_dot_avx2(row + b * 32, 64, xp + b * 64, planes), _mm256_set1_ps(scales[b]), acc);
      }
    } else {
      for (std::size_t b = 0; b < blocks_per_row; ++b) {
        gemv_prefetch_lines(row, b * blocksize / 2, (b + 1) * blocksize / 2, ahead);
        const __m256 dot = block_dot_avx2(row + b * blocksize / 2, blocksize, xp + b * blocksize, planes);
        acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(scales[b]), acc);
      }
    }
    y[r] = hsum(acc);
  }
}

#endif  // ORDO_NF4_HAVE_X86

}  // namespace ordo::quant::nf4::detail
