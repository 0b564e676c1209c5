// ordo/io/ggml_dequantize.hpp — GGUF tensor data to float32: F32, F16, BF16, F64, I8, I16,
// I32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. std only.
//
// Each quantized type stores blocks of a fixed number of elements with one or two fp16 scales
// (the k-quants: 256-element super-blocks with 6- or 8-bit sub-block scales). The arithmetic
// follows ggml's reference dequantizers operation for operation, in float32, so the results
// are bit-identical to ggml's and gguf-py's provided the compiler does not contract a*b+c into
// a fused multiply-add (ordo's tests build with -ffp-contract=off; with contraction a value may
// differ in its last bit).
#pragma once

#include <cstddef>    // std::byte, std::size_t
#include <cstdint>    // std::uint8_t ...
#include <span>       // std::span
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <ordo/io/detail/bytes.hpp>  // load_le, half_to_float, bf16_to_float
#include <ordo/io/ggml_types.hpp>    // TensorType, traits

namespace ordo::io::gguf {

/// Whether `dequantize` handles this type.
constexpr bool can_dequantize(TensorType t) noexcept {
  switch (t) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
    case TensorType::F64:
    case TensorType::I8:
    case TensorType::I16:
    case TensorType::I32:
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q8_0:
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace detail {

using ordo::io::detail::half_to_float;
using ordo::io::detail::load_le;

inline std::uint8_t u8(const std::byte* p, std::size_t i) noexcept { return static_cast<std::uint8_t>(p[i]); }
inline float f16_at(const std::byte* p) noexcept { return half_to_float(load_le<std::uint16_t>(p)); }

// Block layouts (bytes): Q4_0 {f16 d; u8 qs[16]}, Q4_1 {f16 d, m; u8 qs[16]},
// Q5_0 {f16 d; u32 qh; u8 qs[16]}, Q5_1 {f16 d, m; u32 qh; u8 qs[16]}, Q8_0 {f16 d; i8 qs[32]}.
// In the 32-element types element j < 16 is the low nibble of qs[j], element j + 16 its high
// nibble; the Q5 types take bit j of qh as the fifth bit of element j.

inline void block_q4_0(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b);
  for (int j = 0; j < 16; ++j) {
    const int q = u8(b, 2 + j);
    y[j] = static_cast<float>((q & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((q >> 4) - 8) * d;
  }
}

inline void block_q4_1(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b), m = f16_at(b + 2);
  for (int j = 0; j < 16; ++j) {
    const int q = u8(b, 4 + j);
    y[j] = d * static_cast<float>(q & 0xF) + m;
    y[j + 16] = d * static_cast<float>(q >> 4) + m;
  }
}

inline void block_q5_0(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b);
  const auto qh = load_le<std::uint32_t>(b + 2);
  for (int j = 0; j < 16; ++j) {
    const int q = u8(b, 6 + j);
    const int lo = (q & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (q >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

inline void block_q5_1(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b), m = f16_at(b + 2);
  const auto qh = load_le<std::uint32_t>(b + 4);
  for (int j = 0; j < 16; ++j) {
    const int q = u8(b, 8 + j);
    const int lo = (q & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (q >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + 16] = d * static_cast<float>(hi) + m;
  }
}

inline void block_q8_0(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(u8(b, 2 + j))) * d;
}

// Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}: 16 sub-blocks of 16; scales[i] holds the
// sub-block's scale (low nibble) and min (high nibble). Element h*128 + s*32 + l (h < 2, s < 4,
// l < 32) is bits 2s..2s+1 of qs[32h + l].
inline void block_q2_k(const std::byte* b, float* y) noexcept {
  const std::byte* sc = b;
  const std::byte* qs = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int e = h * 128 + s * 32 + l;
        const int scale = u8(sc, e / 16);
        const float dl = d * static_cast<float>(scale & 0xF);
        const float ml = dmin * static_cast<float>(scale >> 4);
        const int q = (u8(qs, 32 * h + l) >> (2 * s)) & 3;
        y[e] = dl * static_cast<float>(q) - ml;
      }
}

// Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 16 sub-blocks of 16 with 6-bit signed
// scales (offset 32): the low 4 bits of scale j are nibble j/8 of scales[j % 8], the high 2
// bits are bits 2(j/4).. of scales[8 + j % 4]. Element h*128 + s*32 + l has low bits 2s.. of
// qs[32h + l]; when bit 4h + s of hmask[l] is clear, 4 is subtracted.
inline void block_q3_k(const std::byte* b, float* y) noexcept {
  const std::byte* hmask = b;
  const std::byte* qs = b + 32;
  const std::byte* sc = b + 96;
  const float d = f16_at(b + 108);
  float dl[16];
  for (int j = 0; j < 16; ++j) {
    const int lo = (u8(sc, j % 8) >> (4 * (j / 8))) & 0xF;
    const int hi = (u8(sc, 8 + j % 4) >> (2 * (j / 4))) & 3;
    dl[j] = d * static_cast<float>(static_cast<std::int8_t>(lo | (hi << 4)) - 32);
  }
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int e = h * 128 + s * 32 + l;
        const int low = (u8(qs, 32 * h + l) >> (2 * s)) & 3;
        const int high = (u8(hmask, l) >> (4 * h + s)) & 1;
        y[e] = dl[e / 16] * static_cast<float>(low - (high ? 0 : 4));
      }
}

// The 6-bit scale and min of sub-block j (< 8) of Q4_K and Q5_K, packed in 12 bytes: for j < 4
// the low 6 bits of bytes j and j + 4; for j >= 4 the nibbles of byte j + 4 with the top two
// bits of bytes j - 4 and j as their high bits.
inline void scale_min_k4(int j, const std::byte* s, int& scale, int& min) noexcept {
  if (j < 4) {
    scale = u8(s, j) & 63;
    min = u8(s, j + 4) & 63;
  } else {
    scale = (u8(s, j + 4) & 0xF) | ((u8(s, j - 4) >> 6) << 4);
    min = (u8(s, j + 4) >> 4) | ((u8(s, j) >> 6) << 4);
  }
}

// Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}: 8 sub-blocks of 32; qs[32c .. 32c+31] hold
// sub-block 2c in their low nibbles and 2c + 1 in their high nibbles.
inline void block_q4_k(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const std::byte* sc = b + 4;
  const std::byte* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int s, m;
    scale_min_k4(j, sc, s, m);
    const float d1 = d * static_cast<float>(s);
    const float m1 = dmin * static_cast<float>(m);
    const int c = j / 2, shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * static_cast<float>((u8(qs, 32 * c + l) >> shift) & 0xF) - m1;
  }
}

// Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: as Q4_K, with bit j of qh[l] as
// the fifth bit of element l of sub-block j.
inline void block_q5_k(const std::byte* b, float* y) noexcept {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const std::byte* sc = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int s, m;
    scale_min_k4(j, sc, s, m);
    const float d1 = d * static_cast<float>(s);
    const float m1 = dmin * static_cast<float>(m);
    const int c = j / 2, shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int q = ((u8(qs, 32 * c + l) >> shift) & 0xF) | (((u8(qh, l) >> j) & 1) << 4);
      y[32 * j + l] = d1 * static_cast<float>(q) - m1;
    }
  }
}

// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 16 sub-blocks of 16 with int8 scales.
// Element h*128 + r (h < 2, r < 128): low 4 bits are nibble r/64 of ql[64h + r%64], high 2 bits
// are bits 2(r/32).. of qh[32h + r%32]; the 6-bit value is offset by 32.
inline void block_q6_k(const std::byte* b, float* y) noexcept {
  const std::byte* ql = b;
  const std::byte* qh = b + 128;
  const std::byte* sc = b + 192;
  const float d = f16_at(b + 208);
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < 128; ++r) {
      const int e = h * 128 + r;
      const int low = (u8(ql, 64 * h + r % 64) >> (4 * (r / 64))) & 0xF;
      const int high = (u8(qh, 32 * h + r % 32) >> (2 * (r / 32))) & 3;
      const int q = (low | (high << 4)) - 32;
      const float dl = d * static_cast<float>(static_cast<std::int8_t>(u8(sc, e / 16)));
      y[e] = dl * static_cast<float>(q);
    }
}

template <void (*Block)(const std::byte*, float*) noexcept>
inline void blocks(std::span<const std::byte> src, std::span<float> dst, std::size_t bs, std::size_t bb) {
  const std::size_t n = dst.size() / bs;
  for (std::size_t i = 0; i < n; ++i) Block(src.data() + i * bb, dst.data() + i * bs);
}

template <class T, class Convert>
inline void elementwise(std::span<const std::byte> src, std::span<float> dst, Convert convert) {
  for (std::size_t i = 0; i < dst.size(); ++i) dst[i] = convert(load_le<T>(src.data() + i * sizeof(T)));
}

}  // namespace detail

/// Dequantizes `dst.size()` elements of type `type` from `src` (contiguous, in GGUF order).
/// Throws std::invalid_argument when the type is not handled (see `can_dequantize`), when the
/// element count is not a whole number of blocks, or when `src` is not exactly as long as
/// those blocks.
inline void dequantize(TensorType type, std::span<const std::byte> src, std::span<float> dst) {
  const TypeTraits tr = traits(type);
  if (!can_dequantize(type))
    throw std::invalid_argument("dequantization of " + std::string(tr.name) + " is not supported");
  if (dst.size() % tr.block_size != 0)
    throw std::invalid_argument(std::to_string(dst.size()) + " elements are not a whole number of " +
                                std::string(tr.name) + " blocks of " + std::to_string(tr.block_size));
  const std::size_t need = dst.size() / tr.block_size * tr.block_bytes;
  if (src.size() != need)
    throw std::invalid_argument(std::to_string(dst.size()) + " " + std::string(tr.name) + " elements need " +
                                std::to_string(need) + " bytes, got " + std::to_string(src.size()));
  using namespace detail;
  const std::size_t bs = tr.block_size, bb = tr.block_bytes;
  switch (type) {
    case TensorType::F32:
      elementwise<float>(src, dst, [](float v) { return v; });
      break;
    case TensorType::F16:
      elementwise<std::uint16_t>(src, dst, half_to_float);
      break;
    case TensorType::BF16:
      elementwise<std::uint16_t>(src, dst, ordo::io::detail::bf16_to_float);
      break;
    case TensorType::F64:
      elementwise<double>(src, dst, [](double v) { return static_cast<float>(v); });
      break;
    case TensorType::I8:
      elementwise<std::int8_t>(src, dst, [](std::int8_t v) { return static_cast<float>(v); });
      break;
    case TensorType::I16:
      elementwise<std::int16_t>(src, dst, [](std::int16_t v) { return static_cast<float>(v); });
      break;
    case TensorType::I32:
      elementwise<std::int32_t>(src, dst, [](std::int32_t v) { return static_cast<float>(v); });
      break;
    case TensorType::Q4_0:
      blocks<block_q4_0>(src, dst, bs, bb);
      break;
    case TensorType::Q4_1:
      blocks<block_q4_1>(src, dst, bs, bb);
      break;
    case TensorType::Q5_0:
      blocks<block_q5_0>(src, dst, bs, bb);
      break;
    case TensorType::Q5_1:
      blocks<block_q5_1>(src, dst, bs, bb);
      break;
    case TensorType::Q8_0:
      blocks<block_q8_0>(src, dst, bs, bb);
      break;
    case TensorType::Q2_K:
      blocks<block_q2_k>(src, dst, bs, bb);
      break;
    case TensorType::Q3_K:
      blocks<block_q3_k>(src, dst, bs, bb);
      break;
    case TensorType::Q4_K:
      blocks<block_q4_k>(src, dst, bs, bb);
      break;
    case TensorType::Q5_K:
      blocks<block_q5_k>(src, dst, bs, bb);
      break;
    case TensorType::Q6_K:
      blocks<block_q6_k>(src, dst, bs, bb);
      break;
    default:
      break;  // excluded by can_dequantize
  }
}

}  // namespace ordo::io::gguf
