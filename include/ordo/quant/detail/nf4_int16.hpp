// ordo/quant/detail/nf4_int16.hpp — the opt-in integer NF4 GEMV of nf4_cpu.hpp (Gemv::int16):
// the codebook as int16 (value x 8192, rounded), the activations as int16 per group of 32 (an
// fp32 scale max|x| / 32767 each), exact integer sums per group, then one fp32 multiply-add per
// group by absmax x scale. Against the exact fp32 GEMV it trades a relative error of about 1e-4
// (weights within 6.1e-5 of absmax, activations within 1.5e-5 of their group's largest) for
// fewer shuffles per weight: AVX2 looks the int16 weights up with two byte-plane shuffles and
// multiplies 16 pairs per instruction (pmaddwd; each int32 lane sums 4 products, below 2^31).
// Portable and AVX2 paths compute the same integer products; they differ only in where the
// integers become fp32 (per group, or per lane of 4 products) and the order of the fp32 sums.
#pragma once

#include <array>    // std::array
#include <cmath>    // std::fabs, std::isfinite, std::lrint
#include <cstddef>  // std::size_t
#include <cstdint>  // std::int16_t, std::int32_t, std::uint8_t
#include <vector>   // std::vector

#include <ordo/quant/cpu_features.hpp>       // ORDO_NF4_HAVE_X86, ORDO_NF4_AVX2
#include <ordo/quant/detail/nf4_avx2.hpp>  // hsum
#include <ordo/quant/nf4_codebook.hpp>       // codebook, high_code, low_code

namespace ordo::quant::nf4::detail {

/// Activations per group sharing one scale, and the groups' alignment with the packed codes.
inline constexpr std::size_t int16_group = 32;
/// The int16 weights are the codebook values times this (|value| <= 1: at most 8192). With
/// activations of at most 32767 a pmaddwd pair stays below 2^29 and a group's sum below 2^31.
inline constexpr float int16_weight_scale = 8192.0f;

/// The 16 codebook values times int16_weight_scale, rounded to the nearest integer.
inline const std::array<std::int16_t, 16>& codebook_int16() {
  static const std::array<std::int16_t, 16> table = [] {
    std::array<std::int16_t, 16> t{};
    for (std::size_t c = 0; c < 16; ++c) t[c] = static_cast<std::int16_t>(std::lrint(codebook[c] * int16_weight_scale));
    return t;
  }();
  return table;
}

/// x quantized to int16 per group of 32: scale = max|x| / 32767, q = round(x / scale) (0 for an
/// all-zero group). `avx2_order` stores each group in the order gemv_rows_int16_avx2 multiplies
/// (elements 0,2,..,14, 1,3,..,15, 16,18,..,30, 17,19,..,31). False when x has a non-finite value
/// (the caller then takes the fp32 path, which carries it into y).
struct int16_activations {
  std::vector<std::int16_t> q;
  std::vector<float> scale;  ///< per group, times 1/int16_weight_scale (folded in once)
};
inline bool quantize_activations_int16(const float* x, std::size_t cols, bool avx2_order, int16_activations& out) {
  const std::size_t groups = cols / int16_group;
  out.q.resize(cols);
  out.scale.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    const float* xg = x + g * int16_group;
    float amax = 0.0f;
    for (std::size_t i = 0; i < int16_group; ++i) {
      if (!std::isfinite(xg[i])) return false;
      amax = std::fmax(amax, std::fabs(xg[i]));
    }
    const float s = amax / 32767.0f;
    const float inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
    out.scale[g] = s / int16_weight_scale;
    for (std::size_t i = 0; i < int16_group; ++i) {
      // position of element i in the AVX2 order: groups of 16 elements, evens then odds
      const std::size_t at = avx2_order ? (i / 16) * 16 + (i % 2) * 8 + (i % 16) / 2 : i;
      long v = std::lrint(xg[i] * inv);
      v = v > 32767 ? 32767 : v < -32767 ? -32767 : v;
      out.q[g * int16_group + at] = static_cast<std::int16_t>(v);
    }
  }
  return true;
}

/// Rows [r0, r1) of y = W x with the int16 arithmetic, x from quantize_activations_int16 in
/// natural order. cols a multiple of 32 and of the blocksize bs.
inline void gemv_rows_int16_portable(const std::uint8_t* w, const float* absmax, std::size_t cols, std::size_t bs,
                                     const int16_activations& xa, float* y, std::size_t r0, std::size_t r1) {
  const auto& cb = codebook_int16();
  const std::size_t blocks_per_row = cols / bs, per_block = bs / int16_group;
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = w + r * (cols / 2);
    float acc = 0.0f;
    for (std::size_t b = 0, g = 0; b < blocks_per_row; ++b)
      for (std::size_t end = g + per_block; g < end; ++g) {
        std::int64_t sum = 0;  // up to 32 x 8192 x 32767: more than an int32 holds
        for (std::size_t j = 0; j < int16_group; j += 2) {
          const std::uint8_t byte = row[(g * int16_group + j) / 2];
          sum += std::int32_t{cb[high_code(byte)]} * xa.q[g * int16_group + j] +
                 std::int32_t{cb[low_code(byte)]} * xa.q[g * int16_group + j + 1];
        }
        acc += static_cast<float>(sum) * (absmax[r * blocks_per_row + b] * xa.scale[g]);
      }
    y[r] = acc;
  }
}

#if ORDO_NF4_HAVE_X86
/// As gemv_rows_int16_portable, x in the AVX2 order: per 32 codes one load, two byte-plane
/// shuffles give the int16 weights, two pmaddwd multiply them with x.
ORDO_NF4_AVX2 inline void gemv_rows_int16_avx2(const std::uint8_t* w, const float* absmax, std::size_t cols,
                                               std::size_t bs, const int16_activations& xa, float* y,
                                               std::size_t r0, std::size_t r1) {
  const auto& cb = codebook_int16();
  alignas(16) std::uint8_t lo[16], hi[16];
  for (std::size_t c = 0; c < 16; ++c) {
    const auto u = static_cast<std::uint16_t>(cb[c]);
    lo[c] = static_cast<std::uint8_t>(u & 0xFF);
    hi[c] = static_cast<std::uint8_t>(u >> 8);
  }
  const __m256i plane_lo = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(lo)));
  const __m256i plane_hi = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(hi)));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const std::size_t blocks_per_row = cols / bs, per_block = bs / int16_group;
  const std::int16_t* xq = xa.q.data();
  const std::size_t ahead = gemv_prefetch_distance(cols / 2);  // one row of cols / 2 bytes per step
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = w + r * (cols / 2);
    const float* row_absmax = absmax + r * blocks_per_row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (std::size_t b = 0, g = 0; b < blocks_per_row; ++b) {
      const float block_scale = row_absmax[b];
      for (std::size_t end = g + per_block; g < end; ++g) {
        if (g % 4 == 0) gemv_prefetch(row + g * int16_group / 2, ahead);  // each 64-byte line (4 groups)
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + g * int16_group / 2));
        const __m128i even = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);  // elements 0, 2, ..., 30
        const __m128i odd = _mm_and_si128(bytes, mask);                      // elements 1, 3, ..., 31
        const __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(even), odd, 1);
        const __m256i wl = _mm256_shuffle_epi8(plane_lo, codes), wh = _mm256_shuffle_epi8(plane_hi, codes);
        // per 128-bit lane: weights of elements 0..7 of that lane's list, then 8..15
        const __m256i w0 = _mm256_unpacklo_epi8(wl, wh), w1 = _mm256_unpackhi_epi8(wl, wh);
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * int16_group));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * int16_group + 16));
        const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1));
        const __m256 s = _mm256_set1_ps(block_scale * xa.scale[g]);
        if (g % 2 == 0)
          acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), s, acc0);
        else
          acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), s, acc1);
      }
    }
    y[r] = hsum(_mm256_add_ps(acc0, acc1));
  }
}
#endif

}  // namespace ordo::quant::nf4::detail
