// ordo/quant/nf4_cpu.hpp — NF4 on the CPU without LibTorch: blockwise quantize and dequantize,
// double quantization of the absmax statistics, and a batch-1 GEMV on packed weights, over raw
// pointers. The bit-level rules come from nf4_codebook.hpp (shared with kernels/nf4.cu); the
// bytes are those of bitsandbytes' CUDA kernel rule (docs/nf4.md says where and why bitsandbytes'
// own CPU path differs). Multi-threaded with std::thread; an AVX2 path
// and an AVX-512 path are chosen at run time and give the same bytes as the portable path
// (tests/quant/nf4_cpu_test.cpp checks every path the machine has).
//
//   std::vector<float> w = ...;                                   // [rows, cols], row-major
//   auto q = ordo::quant::nf4::quantize(std::span<const float>(w), {.blocksize = 64});
//   std::vector<float> back = ordo::quant::nf4::dequantize(q);           // what the NF4 weights stand for
//   ordo::quant::nf4::gemv(q, rows, cols, x.data(), y.data());           // y = W x
#pragma once

#include <algorithm>    // std::min, std::max
#include <cmath>        // std::fabs
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t
#include <limits>       // std::numeric_limits
#include <span>         // std::span
#include <stdexcept>    // std::invalid_argument, std::runtime_error
#include <string>       // std::to_string
#include <thread>       // std::thread
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <ordo/quant/float_bits.hpp>    // bf16, f16, to_float, from_float
#include <ordo/quant/nf4_codebook.hpp>  // codebook, quantize_code, dynamic_map, quantize_code8

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__CUDACC__)
#include <cpuid.h>      // __get_cpuid: the F16C bit (not every compiler's __builtin_cpu_supports knows it)
#include <immintrin.h>  // AVX2, FMA, F16C intrinsics (used only behind a run-time CPU check)
#define ORDO_NF4_HAVE_X86 1
#define ORDO_NF4_AVX2 __attribute__((target("avx2,fma,f16c")))
#define ORDO_NF4_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#else
#define ORDO_NF4_HAVE_X86 0
#endif

namespace ordo::quant::nf4 {

using quant::bf16;
using quant::f16;

/// Which CPU code path runs. `automatic` picks AVX-512 (AVX-512F) when the CPU has it, else AVX2
/// when the CPU has AVX2, FMA and F16C, else the portable path. All give the same bytes.
enum class Isa { automatic, portable, avx2, avx512 };

struct Options {
  std::size_t blocksize = 64;  ///< 32, 64, 128, 256, 512, 1024, 2048 or 4096
  ZeroBlocks zero_blocks = ZeroBlocks::zero_code;
  unsigned threads = 0;  ///< 0: std::thread::hardware_concurrency()
  Isa isa = Isa::automatic;
};

/// True when this CPU can run the AVX2 path (AVX2, FMA and F16C).
inline bool cpu_has_avx2() noexcept {
#if ORDO_NF4_HAVE_X86
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

/// True when this CPU can run the AVX-512 path (AVX-512F, and everything the AVX2 path needs).
inline bool cpu_has_avx512() noexcept {
#if ORDO_NF4_HAVE_X86
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

/// The path `isa` stands for on this CPU; throws std::runtime_error for a path the CPU lacks.
inline Isa resolve_isa(Isa isa) {
  if (isa == Isa::automatic) return cpu_has_avx512() ? Isa::avx512 : cpu_has_avx2() ? Isa::avx2 : Isa::portable;
  if (isa == Isa::avx2 && !cpu_has_avx2())
    throw std::runtime_error("ordo::quant::nf4: the AVX2 path was requested but this CPU lacks AVX2/FMA/F16C");
  if (isa == Isa::avx512 && !cpu_has_avx512())
    throw std::runtime_error("ordo::quant::nf4: the AVX-512 path was requested but this CPU lacks AVX-512F");
  return isa;
}

namespace detail {

inline void check_blocksize(std::size_t blocksize, const char* where) {
  if (!is_valid_blocksize(blocksize))
    throw std::invalid_argument(std::string(where) + ": blocksize " + std::to_string(blocksize) +
                                " is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096");
}

/// Runs f(begin, end) over [0, count) split into contiguous ranges on up to `threads` threads,
/// each range holding at least `grain` items; the calling thread takes the last range.
template <class F>
void parallel_for(std::size_t count, std::size_t grain, unsigned threads, const F& f) {
  if (count == 0) return;
  unsigned workers = threads != 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  const std::size_t by_grain = (count + std::max<std::size_t>(grain, 1) - 1) / std::max<std::size_t>(grain, 1);
  workers = static_cast<unsigned>(std::min<std::size_t>(workers, by_grain));
  if (workers <= 1) {
    f(std::size_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  const std::size_t per = count / workers, extra = count % workers;
  std::size_t begin = 0;
  for (unsigned w = 0; w < workers; ++w) {
    const std::size_t end = begin + per + (w < extra ? 1 : 0);
    if (w + 1 == workers)
      f(begin, end);
    else
      pool.emplace_back([&f, begin, end] { f(begin, end); });
    begin = end;
  }
  for (auto& t : pool) t.join();
}

/// Items of work per thread below which more threads do not pay.
inline constexpr std::size_t elements_per_thread = 1 << 16;

/// The scale every value of a block is multiplied by: 1/absmax, as the CUDA kernel computes it.
inline float block_scale(float absmax, ZeroBlocks zero_blocks) {
  if (absmax == 0.0f && zero_blocks == ZeroBlocks::zero_code) return 0.0f;
  return 1.0f / absmax;
}

/// absmax of a block: the largest |x| ignoring NaNs (fmaxf semantics, as the CUDA kernel's
/// per-thread fold), starting from -FLT_MAX for a full block; a partial (tail) block also sees
/// the zeros that pad it, as the CUDA kernel loads them.
inline float absmax_start(bool partial) {
  return partial ? 0.0f : -std::numeric_limits<float>::max();
}

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
    out[j / 2] = pack(quantize_code(quant::to_float(x[j]) * scale),
                      quantize_code(quant::to_float(x[j + 1]) * scale));
  if (j < len)  // odd tail: the kernel pads the input with 0, scaled like every value
    out[j / 2] = pack(quantize_code(quant::to_float(x[j]) * scale), quantize_code(0.0f * scale));
}

template <class T>
void quantize_block_portable(const T* x, std::size_t len, bool partial, ZeroBlocks zb,
                             std::uint8_t* out, float* absmax) {
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
ORDO_NF4_AVX2 void quantize_block_avx2(const T* x, std::size_t len, bool partial, ZeroBlocks zb,
                                       std::uint8_t* out, float* absmax) {
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
/// (nearest even, canonical NaN), so every path writes the same bits.
template <class Out>
ORDO_NF4_AVX2 inline void store8(Out* y, __m256 v) {
  if constexpr (std::is_same_v<Out, float>) {
    _mm256_storeu_ps(y, v);
  } else {
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(nan)),
                                          _mm256_extracti128_si256(_mm256_castps_si256(nan), 1));
    __m128i h;
    if constexpr (std::is_same_v<Out, bf16>) {
      const __m256i u = _mm256_castps_si256(v);
      const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7FFF),
                                            _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)));
      const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
      h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      h = _mm_blendv_epi8(h, _mm_set1_epi16(0x7FC0), nan16);
    } else {
      h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      h = _mm_blendv_epi8(h, _mm_set1_epi16(0x7E00), nan16);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), h);
  }
}

template <class Out>
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
    store8(y + i, v0);
    store8(y + i + 8, v1);
    store8(y + i + 16, v2);
    store8(y + i + 24, v3);
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
/// and two rounds of unpacking put the bytes of each float together.
ORDO_NF4_AVX2 inline __m256 block_dot_avx2(const std::uint8_t* packed, std::size_t len, const float* xp,
                                           const __m256i* planes) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (std::size_t i = 0; i < len; i += 32) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + i / 2));
    const __m128i even = _mm_and_si128(_mm_srli_epi16(b, 4), mask);  // elements 0, 2, ..., 30
    const __m128i odd = _mm_and_si128(b, mask);                       // elements 1, 3, ..., 31
    const __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(even), odd, 1);
    const __m256i b0 = _mm256_shuffle_epi8(planes[0], codes), b1 = _mm256_shuffle_epi8(planes[1], codes);
    const __m256i b2 = _mm256_shuffle_epi8(planes[2], codes), b3 = _mm256_shuffle_epi8(planes[3], codes);
    const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
    const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
    a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23)), _mm256_loadu_ps(xp + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23)), _mm256_loadu_ps(xp + i + 8), a1);
    a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23)), _mm256_loadu_ps(xp + i + 16), a0);
    a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23)), _mm256_loadu_ps(xp + i + 24), a1);
  }
  return _mm256_add_ps(a0, a1);
}

/// Rows [row_begin, row_end) of y = W x; `xp` is x in gemv_x_order_avx2's order.
ORDO_NF4_AVX2 inline void gemv_rows_avx2(const std::uint8_t* w, const float* absmax, std::size_t cols,
                                         std::size_t blocksize, const float* xp, float* y,
                                         std::size_t row_begin, std::size_t row_end) {
  __m256i planes[4];
  for (unsigned k = 0; k < 4; ++k) {
    alignas(16) std::uint8_t plane[16];
    for (unsigned c = 0; c < 16; ++c)
      plane[c] = static_cast<std::uint8_t>(quant::bits_from_float(codebook[c]) >> (8 * k));
    planes[k] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(plane)));
  }
  const std::size_t blocks_per_row = cols / blocksize;
  for (std::size_t r = row_begin; r < row_end; ++r) {
    __m256 acc = _mm256_setzero_ps();
    const std::uint8_t* row = w + r * (cols / 2);
    const float* scales = absmax + r * blocks_per_row;
    for (std::size_t b = 0; b < blocks_per_row; ++b) {
      const __m256 dot = block_dot_avx2(row + b * blocksize / 2, blocksize, xp + b * blocksize, planes);
      acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(scales[b]), acc);
    }
    y[r] = hsum(acc);
  }
}

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
ORDO_NF4_AVX512 void quantize_block_avx512(const T* x, std::size_t len, bool partial, ZeroBlocks zb,
                                           std::uint8_t* out, float* absmax) {
  const float m = block_absmax_avx512(x, len, partial);
  *absmax = m;
  quantize_pairs_avx512(x, len, block_scale(m, zb), out);
}

/// Stores 16 floats as Out, with the same bits as quant::to_bf16/to_f16 (see store8).
template <class Out>
ORDO_NF4_AVX512 inline void store16(Out* y, __m512 v) {
  if constexpr (std::is_same_v<Out, float>) {
    _mm512_storeu_ps(y, v);
  } else {
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m256i h;
    if constexpr (std::is_same_v<Out, bf16>) {
      const __m512i u = _mm512_castps_si512(v);
      const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF),
                                            _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
      const __m512i r = _mm512_mask_mov_epi32(_mm512_srli_epi32(_mm512_add_epi32(u, bias), 16), nan,
                                              _mm512_set1_epi32(0x7FC0));
      h = _mm512_cvtepi32_epi16(r);
    } else {
      const __m256i converted = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m512i wide = _mm512_mask_mov_epi32(_mm512_cvtepu16_epi32(converted), nan, _mm512_set1_epi32(0x7E00));
      h = _mm512_cvtepi32_epi16(wide);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), h);
  }
}

template <class Out>
ORDO_NF4_AVX512 void dequantize_block_avx512(const std::uint8_t* packed, std::size_t len, float absmax, Out* y) {
  const __m512 lut = _mm512_loadu_ps(codebook.data());
  const __m512 s = _mm512_set1_ps(absmax);
  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    __m128i first, second;
    unpack32(packed + i / 2, first, second);
    const __m512 v0 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(first), lut), s);
    const __m512 v1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(second), lut), s);
    store16(y + i, v0);
    store16(y + i + 16, v1);
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
                                             std::size_t blocksize, const float* xp, float* y,
                                             std::size_t row_begin, std::size_t row_end) {
  const __m512 lut = _mm512_loadu_ps(codebook.data());
  const std::size_t blocks_per_row = cols / blocksize;
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
        const __m512 xe = _mm512_loadu_ps(xp + off + i), xo = _mm512_loadu_ps(xp + off + i + 16);
        const __m512i v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row0 + (off + i) / 2)));
        const __m512i v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row1 + (off + i) / 2)));
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

}  // namespace detail

// ---- 4-bit blockwise quantization -------------------------------------------------------------

/// Quantizes n values (fp32, or f16/bf16 bit patterns) in blocks of `opt.blocksize`:
/// absmax[b] = max |x| over block b (NaNs ignored), each value becomes
/// quantize_code(x * (1.0f / absmax[b])), two codes per byte. `packed` holds packed_bytes(n)
/// bytes and `absmax` block_count(n, blocksize) floats. See docs/nf4.md for zeros, NaN and Inf.
template <class T>
void quantize_blocks(const T* x, std::size_t n, std::uint8_t* packed, float* absmax, const Options& opt = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>,
                "ordo::quant::nf4::quantize_blocks takes float, ordo::quant::nf4::bf16 or ordo::quant::nf4::f16 values");
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::quantize_blocks");
  const std::size_t bs = opt.blocksize;
  const std::size_t blocks = block_count(n, bs);
  const Isa isa = resolve_isa(opt.isa);
  detail::parallel_for(blocks, std::max<std::size_t>(1, detail::elements_per_thread / bs), opt.threads,
                       [&](std::size_t b0, std::size_t b1) {
                         for (std::size_t b = b0; b < b1; ++b) {
                           const std::size_t begin = b * bs, len = std::min(bs, n - begin);
                           const bool partial = len < bs;
#if ORDO_NF4_HAVE_X86
                           if (isa == Isa::avx512) {
                             detail::quantize_block_avx512(x + begin, len, partial, opt.zero_blocks,
                                                           packed + begin / 2, absmax + b);
                             continue;
                           }
                           if (isa == Isa::avx2) {
                             detail::quantize_block_avx2(x + begin, len, partial, opt.zero_blocks,
                                                         packed + begin / 2, absmax + b);
                             continue;
                           }
#endif
                           (void)isa;
                           detail::quantize_block_portable(x + begin, len, partial, opt.zero_blocks,
                                                           packed + begin / 2, absmax + b);
                         }
                       });
}

/// Dequantizes n values: y[i] = code_value(code_i) * absmax[i / blocksize] in fp32, then
/// rounded to Out (float, f16 or bf16; round to nearest even).
template <class Out>
void dequantize_blocks(const std::uint8_t* packed, const float* absmax, std::size_t n, Out* y,
                       const Options& opt = {}) {
  static_assert(std::is_same_v<Out, float> || std::is_same_v<Out, bf16> || std::is_same_v<Out, f16>,
                "ordo::quant::nf4::dequantize_blocks writes float, ordo::quant::nf4::bf16 or ordo::quant::nf4::f16 values");
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::dequantize_blocks");
  const std::size_t bs = opt.blocksize;
  const Isa isa = resolve_isa(opt.isa);
  detail::parallel_for(block_count(n, bs), std::max<std::size_t>(1, detail::elements_per_thread / bs),
                       opt.threads, [&](std::size_t b0, std::size_t b1) {
                         for (std::size_t b = b0; b < b1; ++b) {
                           const std::size_t begin = b * bs, len = std::min(bs, n - begin);
#if ORDO_NF4_HAVE_X86
                           if (isa == Isa::avx512) {
                             detail::dequantize_block_avx512(packed + begin / 2, len, absmax[b], y + begin);
                             continue;
                           }
                           if (isa == Isa::avx2) {
                             detail::dequantize_block_avx2(packed + begin / 2, len, absmax[b], y + begin);
                             continue;
                           }
#endif
                           (void)isa;
                           detail::dequantize_block_portable(packed + begin / 2, len, absmax[b], y + begin);
                         }
                       });
}

// ---- double quantization of absmax ------------------------------------------------------------

/// Number of second-level scales for `blocks` absmax values.
constexpr std::size_t absmax2_count(std::size_t blocks) { return block_count(blocks, absmax_blocksize); }

/// 8-bit blockwise quantization of (absmax[i] - offset) with blocksize 256 and the signed
/// dynamic map, by the CUDA kernel's rule: absmax2[k] = max |v| over 256-block k (NaNs ignored),
/// codes[i] = quantize_code8(dynamic_map, v_i * (1.0f / absmax2[k])). A 256-block of zeros gives
/// code 0 as on CUDA (its values dequantize to the offset either way).
inline void quantize_absmax(const float* absmax, std::size_t blocks, float offset, std::uint8_t* codes,
                            float* absmax2) {
  for (std::size_t k = 0; k * absmax_blocksize < blocks; ++k) {
    const std::size_t begin = k * absmax_blocksize;
    const std::size_t len = std::min(absmax_blocksize, blocks - begin);
    float m = detail::absmax_start(len < absmax_blocksize);
    for (std::size_t i = begin; i < begin + len; ++i) {
      const float a = std::fabs(absmax[i] - offset);
      if (a > m) m = a;
    }
    absmax2[k] = m;
    const float scale = 1.0f / m;
    for (std::size_t i = begin; i < begin + len; ++i)
      codes[i] = quantize_code8(dynamic_map.data(), (absmax[i] - offset) * scale);
  }
}

/// absmax[i] = dynamic_map[codes[i]] * absmax2[i / 256] + offset, as two fp32 roundings (the
/// product, then the sum: bitsandbytes dequantizes, then adds the offset).
inline void dequantize_absmax(const std::uint8_t* codes, const float* absmax2, std::size_t blocks, float offset,
                              float* absmax) {
  for (std::size_t i = 0; i < blocks; ++i) {
    volatile float product = dynamic_map[codes[i]] * absmax2[i / absmax_blocksize];  // no FMA contraction
    absmax[i] = product + offset;
  }
}

// ---- batch-1 GEMV -----------------------------------------------------------------------------

/// y = W x for W [rows, cols] quantized row-major (flattened, blocks of opt.blocksize), fp32 x
/// and y. Accumulates in fp32: per block, sum_k code_value * x_k, times the block's absmax.
/// When cols is not a multiple of the blocksize, blocks straddle rows and a scalar path runs.
inline void gemv(const std::uint8_t* w, const float* absmax, std::size_t rows, std::size_t cols, const float* x,
                 float* y, const Options& opt = {}) {
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::gemv");
  const std::size_t bs = opt.blocksize;
  const Isa isa = resolve_isa(opt.isa);
  const std::size_t grain = std::max<std::size_t>(1, detail::elements_per_thread / std::max<std::size_t>(cols, 1));
  if (cols % bs != 0) {
    detail::parallel_for(rows, grain, opt.threads, [&](std::size_t r0, std::size_t r1) {
      for (std::size_t r = r0; r < r1; ++r) {
        float acc = 0.0f;
        for (std::size_t k = 0; k < cols; ++k) {
          const std::size_t i = r * cols + k;
          const std::uint8_t b = w[i / 2];
          acc += codebook[(i % 2) ? low_code(b) : high_code(b)] * absmax[i / bs] * x[k];
        }
        y[r] = acc;
      }
    });
    return;
  }
#if ORDO_NF4_HAVE_X86
  const std::vector<float> x_order = isa == Isa::avx2     ? detail::gemv_x_order_avx2(x, cols)
                                     : isa == Isa::avx512 ? detail::gemv_x_order_avx512(x, cols)
                                                          : std::vector<float>();
#endif
  detail::parallel_for(rows, grain, opt.threads, [&](std::size_t r0, std::size_t r1) {
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx512) {
      detail::gemv_rows_avx512(w, absmax, cols, bs, x_order.data(), y, r0, r1);
      return;
    }
    if (isa == Isa::avx2) {
      detail::gemv_rows_avx2(w, absmax, cols, bs, x_order.data(), y, r0, r1);
      return;
    }
#endif
    (void)isa;
    const std::size_t blocks_per_row = cols / bs;
    for (std::size_t r = r0; r < r1; ++r) {
      float acc = 0.0f;
      for (std::size_t b = 0; b < blocks_per_row; ++b)
        acc += absmax[r * blocks_per_row + b] *
               detail::block_dot_portable(w + (r * cols + b * bs) / 2, bs, x + b * bs);
      y[r] = acc;
    }
  });
}

// ---- owning form --------------------------------------------------------------------------------

/// A quantized tensor as bitsandbytes' QuantState holds it (nf4, flattened).
struct Quantized {
  std::size_t numel = 0;
  std::size_t blocksize = 64;
  std::vector<std::uint8_t> packed;  ///< packed_bytes(numel)
  bool nested = false;               ///< double quantization of absmax
  std::vector<float> absmax;         ///< not nested: block_count(numel, blocksize) scales
  std::vector<std::uint8_t> absmax_codes;  ///< nested: one 8-bit code per block
  std::vector<float> absmax2;              ///< nested: absmax2_count(blocks) second-level scales
  float offset = 0.0f;                     ///< nested: mean of the first-level absmax

  std::size_t blocks() const { return block_count(numel, blocksize); }
  /// Bytes of the packed weights plus statistics (what a checkpoint stores, less the maps).
  std::size_t storage_bytes() const {
    return packed.size() + absmax.size() * 4 + absmax_codes.size() + absmax2.size() * 4 + (nested ? 4 : 0);
  }
};

/// Quantizes x; with double_quant (bitsandbytes' compress_statistics=True), absmax is replaced by
/// its 8-bit codes, absmax2 and offset (absmax_offset's fixed summation order).
template <class T>
Quantized quantize(std::span<const T> x, const Options& opt = {}, bool double_quant = true) {
  Quantized q;
  q.numel = x.size();
  q.blocksize = opt.blocksize;
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::quantize");
  q.packed.resize(packed_bytes(x.size()));
  std::vector<float> absmax(block_count(x.size(), opt.blocksize));
  quantize_blocks(x.data(), x.size(), q.packed.data(), absmax.data(), opt);
  if (!double_quant) {
    q.absmax = std::move(absmax);
    return q;
  }
  q.nested = true;
  q.offset = absmax_offset(absmax.data(), absmax.size());
  q.absmax_codes.resize(absmax.size());
  q.absmax2.resize(absmax2_count(absmax.size()));
  quantize_absmax(absmax.data(), absmax.size(), q.offset, q.absmax_codes.data(), q.absmax2.data());
  return q;
}

/// The per-block scales dequantization uses: absmax, or its double-quantized reconstruction.
inline std::vector<float> block_scales(const Quantized& q) {
  if (!q.nested) return q.absmax;
  std::vector<float> scales(q.absmax_codes.size());
  dequantize_absmax(q.absmax_codes.data(), q.absmax2.data(), scales.size(), q.offset, scales.data());
  return scales;
}

/// The values the quantized tensor stands for, rounded to Out.
template <class Out = float>
std::vector<Out> dequantize(const Quantized& q, Options opt = {}) {
  opt.blocksize = q.blocksize;
  const std::vector<float> scales = block_scales(q);
  std::vector<Out> y(q.numel);
  dequantize_blocks(q.packed.data(), scales.data(), q.numel, y.data(), opt);
  return y;
}

/// y = W x with W quantized as [rows, cols]. Rebuilds the per-block scales on every call; a
/// caller that multiplies by the same W many times (token by token) should keep
/// block_scales(q) and call the pointer form of gemv.
inline void gemv(const Quantized& q, std::size_t rows, std::size_t cols, const float* x, float* y,
                 Options opt = {}) {
  if (rows * cols != q.numel)
    throw std::invalid_argument("ordo::quant::nf4::gemv: rows * cols (" + std::to_string(rows * cols) +
                                ") differs from the quantized tensor's size (" + std::to_string(q.numel) + ")");
  opt.blocksize = q.blocksize;
  const std::vector<float> scales = block_scales(q);
  gemv(q.packed.data(), scales.data(), rows, cols, x, y, opt);
}

}  // namespace ordo::quant::nf4
