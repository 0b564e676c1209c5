// ordo/quant/nf4_codebook.hpp — the bit-level rules of bitsandbytes' NF4 format, written once
// and shared by ordo's CPU path (nf4_cpu.hpp) and CUDA kernels (kernels/nf4.cu):
//   - the 16-entry NF4 codebook and the fp32 midpoints between neighbouring codes;
//   - code choice: the decision tree of bitsandbytes' CUDA kernel (strict `>` against its
//     fp32 thresholds, so a value on a threshold takes the lower code; NaN takes code 0);
//   - nibble packing: element 2j in the high nibble of byte j, 2j+1 in the low nibble;
//     an odd count pads with the value 0, i.e. code 7;
//   - the signed 8-bit dynamic map used for double quantization of the absmax statistics
//     (bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)) and the
//     CUDA 8-bit quantizer's rule (binary search from pivot 127, nearest neighbour by midpoint,
//     ties toward the pivot);
//   - the fixed summation order of the double-quantization offset (mean of absmax).
// The exact format is described in docs/nf4.md. Everything here is constexpr where the language
// allows, std-only, and usable from host and device code (ORDO_HOST_DEVICE).
#pragma once

#include <array>    // std::array
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint8_t

#include <ordo/quant/detail/dynamic_map.hpp>  // detail::dynamic_map_values
#include <ordo/quant/host_device.hpp>         // ORDO_HOST_DEVICE

namespace ordo::quant::nf4 {

/// The NF4 codebook, code -> value (every value is exact in fp32). A switch rather than an
/// array so that device code can call it without a copy of a host array.
ORDO_HOST_DEVICE constexpr float code_value(unsigned code) {
  switch (code & 0x0Fu) {
    case 0:
      return -1.0f;
    case 1:
      return -0.6961928009986877f;
    case 2:
      return -0.5250730514526367f;
    case 3:
      return -0.39491748809814453f;
    case 4:
      return -0.28444138169288635f;
    case 5:
      return -0.18477343022823334f;
    case 6:
      return -0.09105003625154495f;
    case 7:
      return 0.0f;
    case 8:
      return 0.07958029955625534f;
    case 9:
      return 0.16093020141124725f;
    case 10:
      return 0.24611230194568634f;
    case 11:
      return 0.33791524171829224f;
    case 12:
      return 0.44070982933044434f;
    case 13:
      return 0.5626170039176941f;
    case 14:
      return 0.7229568362236023f;
    default:
      return 1.0f;
  }
}

/// The codebook as an array, for host code.
inline constexpr std::array<float, 16> codebook = [] {
  std::array<float, 16> values{};
  for (unsigned i = 0; i < 16; ++i) values[i] = code_value(i);
  return values;
}();

/// The code that stands for 0.0 (used to pad an odd element count).
inline constexpr std::uint8_t zero_code = 7;

/// The thresholds of bitsandbytes' CUDA decision tree (dQuantizeNF4) between codes i and i+1
/// (0 <= i < 15): the fp32 values of its decimal literals, as nvcc and every C++ compiler
/// convert them (the nearest fp32 to the decimal; checked in PTX). Written here in hex so no
/// compiler can round them otherwise. For 11 of them this is (code[i] + code[i+1]) * 0.5f; for
/// i = 0, 8, 12, 14 the real midpoint lies exactly between two floats, (a + b) * 0.5f rounds it to
/// the even one, and the literal (printed from a double) rounds to the other: these four are one
/// ulp from rounded_midpoint(i), which is what bitsandbytes' CPU backend compares against.
ORDO_HOST_DEVICE constexpr float midpoint(unsigned i) {
  switch (i) {
    case 0:
      return -0x1.b239b2p-1f;  // -0.8480964004993439
    case 1:
      return -0x1.38a4ep-1f;  // -0.6106329262256622
    case 2:
      return -0x1.d709p-2f;  // -0.4599952697753906
    case 3:
      return -0x1.5bd4ecp-2f;  // -0.33967943489551544
    case 4:
      return -0x1.e079d8p-3f;  // -0.23460740596055984
    case 5:
      return -0x1.1a7178p-3f;  // -0.13791173323988914
    case 6:
      return -0x1.74f0e2p-5f;  // -0.045525018125772476
    case 7:
      return 0x1.45f5fep-5f;  // 0.03979014977812767
    case 8:
      return 0x1.ec90c6p-4f;  // 0.1202552504837513
    case 9:
      return 0x1.a0cfcp-3f;  // 0.2035212516784668
    case 10:
      return 0x1.2b05a8p-2f;  // 0.2920137718319893
    case 11:
      return 0x1.8ea7f2p-2f;  // 0.3893125355243683
    case 12:
      return 0x1.00da06p-1f;  // 0.5016634166240692
    case 13:
      return 0x1.491b5ep-1f;  // 0.6427869200706482
    default:
      return 0x1.b913b2p-1f;  // 0.8614784181118011
  }
}

/// (code[i] + code[i+1]) * 0.5f: the fp32 midpoint rounded to nearest even, as bitsandbytes' CPU
/// backend computes its bucketize boundaries. Differs from midpoint(i) for i = 0, 8, 12, 14.
ORDO_HOST_DEVICE constexpr float rounded_midpoint(unsigned i) { return (code_value(i) + code_value(i + 1)) * 0.5f; }

/// Code choice for a value already scaled by 1/absmax. The same decision tree as
/// bitsandbytes' dQuantizeNF4: strict `>` against the midpoints; a value exactly on a midpoint
/// takes the lower code; NaN fails every comparison and takes code 0; values beyond [-1, 1]
/// saturate to codes 0 and 15. Equal to "the number of midpoints m with x > m".
ORDO_HOST_DEVICE constexpr std::uint8_t quantize_code(float x) {
  if (x > midpoint(7)) {
    if (x > midpoint(11)) {
      if (x > midpoint(13)) return x > midpoint(14) ? 15 : 14;
      return x > midpoint(12) ? 13 : 12;
    }
    if (x > midpoint(9)) return x > midpoint(10) ? 11 : 10;
    return x > midpoint(8) ? 9 : 8;
  }
  if (x > midpoint(3)) {
    if (x > midpoint(5)) return x > midpoint(6) ? 7 : 6;
    return x > midpoint(4) ? 5 : 4;
  }
  if (x > midpoint(1)) return x > midpoint(2) ? 3 : 2;
  return x > midpoint(0) ? 1 : 0;
}

/// Byte for elements (2j, 2j+1): first element in the high nibble.
ORDO_HOST_DEVICE constexpr std::uint8_t pack(std::uint8_t first, std::uint8_t second) {
  return static_cast<std::uint8_t>((first << 4) | (second & 0x0F));
}
ORDO_HOST_DEVICE constexpr std::uint8_t high_code(std::uint8_t byte) { return byte >> 4; }
ORDO_HOST_DEVICE constexpr std::uint8_t low_code(std::uint8_t byte) { return byte & 0x0F; }

/// Packed size of n elements.
ORDO_HOST_DEVICE constexpr std::size_t packed_bytes(std::size_t n) { return (n + 1) / 2; }
/// Number of quantization blocks of n elements.
ORDO_HOST_DEVICE constexpr std::size_t block_count(std::size_t n, std::size_t blocksize) {
  return (n + blocksize - 1) / blocksize;
}

/// What a block whose absmax is 0 (all zeros, possibly with NaNs) packs.
enum class ZeroBlocks {
  /// Code 7 (the value 0; bytes 0x77), as bitsandbytes' default and CPU backends do. The
  /// default: such a block stays exactly zero even after double quantization perturbs its
  /// absmax, which the CUDA choice does not guarantee.
  zero_code,
  /// Code 0 (bytes 0x00), as bitsandbytes' CUDA kernel does: 0 * (1/0) is NaN, and NaN takes
  /// code 0. Dequantizes to -0.0 when the absmax stays 0.
  cuda,
};

/// Blocksizes bitsandbytes accepts for 4-bit quantization.
constexpr bool is_valid_blocksize(std::size_t blocksize) {
  return blocksize == 32 || blocksize == 64 || blocksize == 128 || blocksize == 256 || blocksize == 512 ||
         blocksize == 1024 || blocksize == 2048 || blocksize == 4096;
}

// ---- double quantization of absmax ------------------------------------------------------------

/// Blocksize of the 8-bit quantization of absmax (bitsandbytes quantize_4bit uses 256).
inline constexpr std::size_t absmax_blocksize = 256;

/// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), sorted:
/// 127 negative values, 0, 127 positive values below 1, and 1. Tabulated from the values
/// bitsandbytes produces (tests/quant recomputes them and compares with a fixture made by
/// bitsandbytes itself). For exponent i in 0..6 there are 2^i values
/// +-10^(i-6) * (b_k + b_{k+1}) / 2 with b = linspace(0.1, 1, 2^i + 1), all in fp32.
inline constexpr std::array<float, 256> dynamic_map = detail::dynamic_map_values;

/// The CUDA 8-bit blockwise quantizer's code choice (bitsandbytes dQuantize, not stochastic)
/// for a value already scaled by 1/absmax, over a sorted 256-entry map. A seven-step binary
/// search from pivot 127, then the nearer of the pivot and the last bound passed on the side of
/// x, by the fp32 midpoint; a tie goes to the pivot. NaN takes code 0.
ORDO_HOST_DEVICE constexpr std::uint8_t quantize_code8(const float* map, float x) {
  int pivot = 127;
  int upper_pivot = 255;
  int lower_pivot = 0;
  float lower = -1.0f;
  float upper = 1.0f;
  float value = map[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > value) {
      lower_pivot = pivot;
      lower = value;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = value;
      pivot -= step;
    }
    value = map[pivot];
  }
  if (upper_pivot == 255) upper = map[upper_pivot];
  if (lower_pivot == 0) lower = map[lower_pivot];
  if (x > value) {
    const float mid = (upper + value) * 0.5f;
    return static_cast<std::uint8_t>(x > mid ? upper_pivot : pivot);
  }
  const float mid = (lower + value) * 0.5f;
  return static_cast<std::uint8_t>(x < mid ? lower_pivot : pivot);
}

/// Elements per chunk in the offset's summation order (see absmax_offset).
inline constexpr std::size_t offset_chunk = 1024;

/// The double-quantization offset: mean(absmax) in fp32. Summed in double in a fixed order
/// (each chunk of `offset_chunk` values left to right, then the chunk sums left to right),
/// divided in double, rounded once to fp32; the CPU path and the CUDA kernels both follow this
/// order, so they agree bit for bit. bitsandbytes uses torch's float32 mean, whose reduction
/// order differs between devices; the two can differ in the last bit (docs/nf4.md).
constexpr double offset_chunk_sum(const float* absmax, std::size_t begin, std::size_t end) {
  double sum = 0.0;
  for (std::size_t i = begin; i < end; ++i) sum += static_cast<double>(absmax[i]);
  return sum;
}
constexpr float absmax_offset(const float* absmax, std::size_t n) {
  if (n == 0) return 0.0f;
  double total = 0.0;
  for (std::size_t begin = 0; begin < n; begin += offset_chunk)
    total += offset_chunk_sum(absmax, begin, begin + offset_chunk < n ? begin + offset_chunk : n);
  return static_cast<float>(total / static_cast<double>(n));
}

}  // namespace ordo::quant::nf4
