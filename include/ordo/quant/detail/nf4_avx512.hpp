// ordo/quant/detail/nf4_avx512.hpp — the AVX-512F NF4 block kernels of nf4_cpu.hpp: absmax,
// quantize (binary search over the thresholds in one register) and dequantize of one block, and
// GEMV rows by vpermps lookups. Compiled with target attributes (ORDO_NF4_AVX512), called only
// when the CPU has AVX-512F (cpu_features.hpp); same bytes as the portable path. Empty where
// ORDO_NF4_HAVE_X86 is 0.
#pragma once

#include <cmath>        // std::fabs
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <ordo/quant/cpu_features.hpp>         // ORDO_NF4_HAVE_X86, ORDO_NF4_AVX512, <immintrin.h>
#include <ordo/quant/detail/nf4_avx2.hpp>      // unpack32
#include <ordo/quant/detail/nf4_portable.hpp>  // absmax_start, block_scale, *_portable tails
#include <ordo/quant/float_bits.hpp>           // bf16, f16, to_float
#include <ordo/quant/nf4_codebook.hpp>         // codebook, midpoint, ZeroBlocks

namespace ordo::quant::nf4::detail {

#if ORDO_NF4_HAVE_X86

// ---- AVX-512F: one vpermps looks up 16 codes in the whole codebook ------------------------------
// GCC 12 reports the "undefined" pass-through operands inside its own AVX-512 intrinsics as
// uninitialized when they are inlined into target("avx512f") functions; silence that here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

ORDO_NF4_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
ORDO_NF4_AVX512 inline __m512 load16(const bf16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
ORDO_NF4_AVX512 inline __m512 load16(const f16* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <class T>
ORDO_NF4_AVX512 float block_absmax_avx512(const T* x, std::size_t len, bool partial) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  __m512 acc = _mm512_set1_ps(absmax_start(partial));
  std::size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(load16(x + i)), magnitude));
    acc = _mm512_max_ps(a, acc);  // returns the second operand when one is NaN
  }
  float m = _mm512_reduce_max_ps(acc);
  for (; i < len; ++i) {
    const float a = std::fabs(quant::to_float(x[i]));
    if (a > m) m = a;
  }
  return m;
}

/// 16 scaled values -> 8 packed bytes (in the low half). The code is the number of thresholds
/// a value exceeds, found by a four-step binary search over the 15 sorted thresholds held in one
/// register (strict >, so NaN stays at code 0): the same code as the decision tree.
ORDO_NF4_AVX512 inline __m128i pack16(__m512 v, __m512 thresholds) {
  __m512i code = _mm512_setzero_si512();
  for (int step = 8; step > 0; step /= 2) {
    const __m512i probe = _mm512_add_epi32(code, _mm512_set1_epi32(step - 1));
    const __mmask16 gt = _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(probe, thresholds), _CMP_GT_OQ);
    code = _mm512_mask_add_epi32(code, gt, code, _mm512_set1_epi32(step));
  }
  const __m128i codes = _mm512_cvtepi32_epi8(code);  // 16 codes, one per byte
  const __m128i first = _mm_and_si128(codes, _mm_set1_epi16(0x00FF));
  const __m128i pairs = _mm_or_si128(_mm_slli_epi16(first, 4), _mm_srli_epi16(codes, 8));
  return _mm_packus_epi16(pairs, pairs);
}

template <class T>
ORDO_NF4_AVX512 void quantize_pairs_avx512(const T* x, std::size_t len, float scale, std::uint8_t* out) {
  const __m512 s = _mm512_set1_ps(scale);
  alignas(64) float table[16];
  for (unsigned t = 0; t < 15; ++t) table[t] = midpoint(t);
  table[15] = midpoint(14);  // never probed
  const __m512 thresholds = _mm512_load_ps(table);
  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    const __m128i lo = pack16(_mm512_mul_ps(load16(x + i), s), thresholds);
    const __m128i hi = pack16(_mm512_mul_ps(load16(x + i + 16), s), thresholds);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), _mm_unpacklo_epi64(lo, hi));
  }
  quantize_pairs_portable(x + i, len - i, scale, out + i / 2);
}

template <class T>
ORDO_NF4_AVX512 void quantize_block_avx512(const T* x, std::size_t len, bool partial, ZeroBlocks zb, std::uint8_t* out,
                                           float* absmax) {
  const float m = block_absmax_avx512(x, len, partial);
  *absmax = m;
  quantize_pairs_avx512(x, len, block_scale(m, zb), out);
}

/// Stores 16 floats as Out, with the same bits as quant::to_bf16/to_f16 (see store8); Stream:
/// a non-temporal store, y aligned to its size (64 bytes for float, 32 for bf16/f16).
template <bool Stream = false, class Out>
ORDO_NF4_AVX512 inline void store16(Out* y, __m512 v) {
  if constexpr (std::is_same_v<Out, float>) {
    if constexpr (Stream)
      _mm512_stream_ps(y, v);
    else
      _mm512_storeu_ps(y, v);
  } else {
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m256i h;
    if constexpr (std::is_same_v<Out, bf16>) {
      const __m512i u = _mm512_castps_si512(v);
      const __m512i bias =
          _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
      const __m512i r =
          _mm512_mask_mov_epi32(_mm512_srli_epi32(_mm512_add_epi32(u, bias), 16), nan, _mm512_set1_epi32(0x7FC0));
      h = _mm512_cvtepi32_epi16(r);
    } else {
      const __m256i converted = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m512i wide = _mm512_mask_mov_epi32(_mm512_cvtepu16_epi32(converted), nan, _mm512_set1_epi32(0x7E00));
      h = _mm512_cvtepi32_epi16(wide);
    }
    if constexpr (Stream)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(y), h);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), h);
  }
}

/// One block; Stream: non-temporal stores (y 64-byte aligned; the caller fences).
template <bool Stream, class Out>
ORDO_NF4_AVX512 void dequantize_block_avx512(const std::uint8_t* packed, std::size_t len, float absmax, Out* y) {
  const __m512 lut = _mm512_loadu_ps(codebook.data());
  const __m512 s = _mm512_set1_ps(absmax);
  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    __m128i first, second;
    unpack32(packed + i / 2, first, second);
    const __m512 v0 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(first), lut), s);
    const __m512 v1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(second), lut), s);
    store16<Stream>(y + i, v0);
    store16<Stream>(y + i + 16, v1);
  }
  dequantize_block_portable(packed + i / 2, len - i, absmax, y + i);
}

/// x reordered for gemv_rows_avx512: within each chunk of 32 values, the 16 even elements (the
/// high nibbles of the chunk's 16 bytes) then the 16 odd ones (the low nibbles).
inline std::vector<float> gemv_x_order_avx512(const float* x, std::size_t cols) {
  std::vector<float> p(cols);
  for (std::size_t c = 0; c + 32 <= cols; c += 32)
    for (std::size_t j = 0; j < 16; ++j) {
      p[c + j] = x[c + 2 * j];
      p[c + 16 + j] = x[c + 2 * j + 1];
    }
  return p;
}

/// Rows [row_begin, row_end) of y = W x; `xp` is x in gemv_x_order_avx512's order. Each 16
/// packed bytes are widened once to 16 lanes; vpermps reads only the low 4 bits of an index, so
/// the lane itself looks up the low nibble and the lane shifted right by 4 the high one: per 32
/// weights one widening, one shift, two lookups and two FMAs, and no nibble interleaving.
ORDO_NF4_AVX512 inline void gemv_rows_avx512(const std::uint8_t* w, const float* absmax, std::size_t cols,
                                             std::size_t blocksize, const float* xp, float* y, std::size_t row_begin,
                                             std::size_t row_end) {
  const __m512 lut = _mm512_loadu_ps(codebook.data());
  const std::size_t blocks_per_row = cols / blocksize;
  const std::size_t ahead = gemv_prefetch_distance(cols);  // two rows of cols / 2 bytes per step
  std::size_t r = row_begin;
  // Two rows at a time: each x load serves both rows.
  for (; r + 2 <= row_end; r += 2) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    const std::uint8_t* row0 = w + r * (cols / 2);
    const std::uint8_t* row1 = row0 + cols / 2;
    const float* s0 = absmax + r * blocks_per_row;
    const float* s1 = s0 + blocks_per_row;
    for (std::size_t b = 0; b < blocks_per_row; ++b) {
      const std::size_t off = b * blocksize;
      __m512 e0 = _mm512_setzero_ps(), o0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps();
      for (std::size_t i = 0; i < blocksize; i += 32) {
        if ((off + i) % 128 == 0) {  // each 64-byte line of both rows, `ahead` bytes early
          gemv_prefetch(row0 + (off + i) / 2, ahead);
          gemv_prefetch(row1 + (off + i) / 2, ahead);
        }
        const __m512 xe = _mm512_loadu_ps(xp + off + i), xo = _mm512_loadu_ps(xp + off + i + 16);
        const __m512i v0 =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row0 + (off + i) / 2)));
        const __m512i v1 =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row1 + (off + i) / 2)));
        e0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), lut), xe, e0);
        o0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, lut), xo, o0);
        e1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), lut), xe, e1);
        o1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, lut), xo, o1);
      }
      acc0 = _mm512_fmadd_ps(_mm512_add_ps(e0, o0), _mm512_set1_ps(s0[b]), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_add_ps(e1, o1), _mm512_set1_ps(s1[b]), acc1);
    }
    y[r] = _mm512_reduce_add_ps(acc0);
    y[r + 1] = _mm512_reduce_add_ps(acc1);
  }
  for (; r < row_end; ++r) {
    __m512 acc = _mm512_setzero_ps();
    const std::uint8_t* row = w + r * (cols / 2);
    const float* scales = absmax + r * blocks_per_row;
    for (std::size_t b = 0; b < blocks_per_row; ++b) {
      const std::size_t off = b * blocksize;
      __m512 e = _mm512_setzero_ps(), o = _mm512_setzero_ps();
      for (std::size_t i = 0; i < blocksize; i += 32) {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (off + i) / 2)));
        e = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), _mm512_loadu_ps(xp + off + i), e);
        o = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, lut), _mm512_loadu_ps(xp + off + i + 16), o);
      }
      acc = _mm512_fmadd_ps(_mm512_add_ps(e, o), _mm512_set1_ps(scales[b]), acc);
    }
    y[r] = _mm512_reduce_add_ps(acc);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // ORDO_NF4_HAVE_X86

}  // namespace ordo::quant::nf4::detail
