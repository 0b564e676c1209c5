// ordo/io/detail/bytes.hpp — little-endian loads, checked size arithmetic, half-float bits.
// Shared by the safetensors and GGUF readers; std only.
#pragma once

#include <bit>       // std::bit_cast, std::endian
#include <cstddef>   // std::byte, std::size_t
#include <cstdint>   // std::uint16_t ...
#include <cstring>   // std::memcpy
#include <limits>    // std::numeric_limits
#include <optional>  // std::optional
#include <string>    // std::string
#include <string_view>

namespace ordo::io::detail {

static_assert(std::endian::native == std::endian::little,
              "ordo's file readers assume a little-endian host (as GGUF and safetensors files are)");

template <class T>
inline T load_le(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// a * b, or nothing when it does not fit in 64 bits.
inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// IEEE binary16 bits to binary32, exact for every input (subnormals, infinities, NaN payloads),
/// the same as a hardware or numpy conversion.
constexpr float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t man = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {
    // subnormal half: normalise into a binary32 normal number
    exp = 113;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

constexpr float bf16_to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(std::uint32_t(b) << 16); }

/// `s` quote_name for an error message, cut at 80 bytes, non-printable bytes as \xNN.
inline std::string quote_name(std::string_view s) {
  std::string out = "'";
  std::size_t n = 0;
  for (char c : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F || c == '\'' || c == '\\') {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

}  // namespace ordo::io::detail
