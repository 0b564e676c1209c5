// ordo/io/ggml_types.hpp — the tensor element types of GGUF files (ggml's type ids), with the
// block size (elements) and block bytes of each; std only.
#pragma once

#include <cstdint>      // std::uint32_t
#include <optional>     // std::optional
#include <string_view>  // std::string_view

namespace ordo::io::gguf {

/// ggml type ids as stored in GGUF tensor infos. Gaps are ids ggml has retired.
enum class TensorType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct TypeTraits {
  std::string_view name;
  std::uint32_t block_size;   ///< elements per block
  std::uint32_t block_bytes;  ///< bytes per block
};

/// Traits of a type id read from a file; nothing for ids ggml does not define.
/// (Q8_1 is 36 bytes as ggml lays it out: two halves and 32 int8.)
constexpr std::optional<TypeTraits> type_traits(std::uint32_t id) noexcept {
  switch (id) {
    case 0:
      return TypeTraits{"F32", 1, 4};
    case 1:
      return TypeTraits{"F16", 1, 2};
    case 2:
      return TypeTraits{"Q4_0", 32, 18};
    case 3:
      return TypeTraits{"Q4_1", 32, 20};
    case 6:
      return TypeTraits{"Q5_0", 32, 22};
    case 7:
      return TypeTraits{"Q5_1", 32, 24};
    case 8:
      return TypeTraits{"Q8_0", 32, 34};
    case 9:
      return TypeTraits{"Q8_1", 32, 36};
    case 10:
      return TypeTraits{"Q2_K", 256, 84};
    case 11:
      return TypeTraits{"Q3_K", 256, 110};
    case 12:
      return TypeTraits{"Q4_K", 256, 144};
    case 13:
      return TypeTraits{"Q5_K", 256, 176};
    case 14:
      return TypeTraits{"Q6_K", 256, 210};
    case 15:
      return TypeTraits{"Q8_K", 256, 292};
    case 16:
      return TypeTraits{"IQ2_XXS", 256, 66};
    case 17:
      return TypeTraits{"IQ2_XS", 256, 74};
    case 18:
      return TypeTraits{"IQ3_XXS", 256, 98};
    case 19:
      return TypeTraits{"IQ1_S", 256, 50};
    case 20:
      return TypeTraits{"IQ4_NL", 32, 18};
    case 21:
      return TypeTraits{"IQ3_S", 256, 110};
    case 22:
      return TypeTraits{"IQ2_S", 256, 82};
    case 23:
      return TypeTraits{"IQ4_XS", 256, 136};
    case 24:
      return TypeTraits{"I8", 1, 1};
    case 25:
      return TypeTraits{"I16", 1, 2};
    case 26:
      return TypeTraits{"I32", 1, 4};
    case 27:
      return TypeTraits{"I64", 1, 8};
    case 28:
      return TypeTraits{"F64", 1, 8};
    case 29:
      return TypeTraits{"IQ1_M", 256, 56};
    case 30:
      return TypeTraits{"BF16", 1, 2};
    case 34:
      return TypeTraits{"TQ1_0", 256, 54};
    case 35:
      return TypeTraits{"TQ2_0", 256, 66};
    case 39:
      return TypeTraits{"MXFP4", 32, 17};
    case 40:
      return TypeTraits{"NVFP4", 64, 36};
    case 41:
      return TypeTraits{"Q1_0", 128, 18};
    default:
      return std::nullopt;
  }
}

constexpr TypeTraits traits(TensorType t) noexcept { return *type_traits(static_cast<std::uint32_t>(t)); }
constexpr std::string_view type_name(TensorType t) noexcept { return traits(t).name; }

}  // namespace ordo::io::gguf
