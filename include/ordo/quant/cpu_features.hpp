// ordo/quant/cpu_features.hpp — which CPU code path the NF4 CPU kernels (nf4_cpu.hpp) take:
// run-time detection of AVX2 (with FMA and F16C) and AVX-512F, the Isa choice and its
// resolution. On x86 with GCC or Clang it also defines the target attributes ORDO_NF4_AVX2 and
// ORDO_NF4_AVX512 and includes the intrinsics the kernels use (ORDO_NF4_HAVE_X86 is 1 there,
// 0 elsewhere).
#pragma once

#include <cstddef>    // std::size_t
#include <cstdint>    // std::uintptr_t
#include <cstdio>     // std::fopen, std::fscanf: the cache size from sysfs
#include <stdexcept>  // std::runtime_error
#include <string>     // std::to_string
#include <vector>     // std::vector

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#include <cpuid.h>      // __get_cpuid: the F16C bit (not every compiler's __builtin_cpu_supports knows it)
#include <immintrin.h>  // AVX2, FMA, F16C intrinsics (used only behind a run-time CPU check)
#define ORDO_NF4_HAVE_X86 1
#define ORDO_NF4_AVX2 __attribute__((target("avx2,fma,f16c")))
#define ORDO_NF4_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#else
#define ORDO_NF4_HAVE_X86 0
#endif

namespace ordo::quant::nf4 {

/// Which CPU code path runs. `automatic` picks AVX-512 (AVX-512F) when the CPU has it, else AVX2
/// when the CPU has AVX2, FMA and F16C, else the portable path. All give the same bytes.
enum class Isa { automatic, portable, avx2, avx512 };

/// True when this CPU can run the AVX2 path (AVX2, FMA and F16C).
inline bool cpu_has_avx2() noexcept {
#if ORDO_NF4_HAVE_X86
  // Asked once: CPUID is slow (in a virtual machine it traps to the hypervisor), and the kernels
  // ask on every call.
  static const bool has = [] {
    __builtin_cpu_init();
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  }();
  return has;
#else
  return false;
#endif
}

/// True when this CPU can run the AVX-512 path (AVX-512F, and everything the AVX2 path needs).
inline bool cpu_has_avx512() noexcept {
#if ORDO_NF4_HAVE_X86
  static const bool has = cpu_has_avx2() && __builtin_cpu_supports("avx512f");
  return has;
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

/// Every path this CPU can run, portable first (what a test or a benchmark compares).
inline std::vector<Isa> runnable_isas() {
  std::vector<Isa> v{Isa::portable};
  if (cpu_has_avx2()) v.push_back(Isa::avx2);
  if (cpu_has_avx512()) v.push_back(Isa::avx512);
  return v;
}

// ---- prefetching for the batch-1 GEMVs ---------------------------------------------------------
// A GEMV streams its matrix once, a few rows at a time, each row from its own place in memory;
// the hardware prefetchers follow such streams late (measured on a Zen 4, 2 threads, 4096 x 4096
// and 11008 x 4096 NF4 matrices read from DRAM: 12-13 GB/s of packed weights without software
// prefetches, 16-21 GB/s with them). The row kernels ask for each 64-byte line of the rows they
// read `gemv_prefetch_distance` bytes early: a whole number of row groups ahead, so that each
// row's prefetch lands in the row the same stream will read, at least `at_least` bytes ahead.

/// Bytes ahead to prefetch when a kernel reads `group_bytes` contiguous bytes per step (its rows
/// side by side: two NF4 rows are `cols` bytes).
inline constexpr std::size_t gemv_prefetch_distance(std::size_t group_bytes, std::size_t at_least = 2048) noexcept {
  return group_bytes == 0 ? at_least : (at_least + group_bytes - 1) / group_bytes * group_bytes;
}

/// A hint to bring the line at p + ahead into the cache; no access happens (an address past the
/// matrix is harmless), so the sum is taken on the integer address.
inline void gemv_prefetch(const void* p, std::size_t ahead) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + ahead), 0, 3);
#else
  (void)p;
  (void)ahead;
#endif
}

/// gemv_prefetch for each 64-byte step of bytes [from, to) of a row (every line those bytes touch
/// when the row starts on a line; one line early or late at most otherwise).
inline void gemv_prefetch_lines(const void* row, std::size_t from, std::size_t to, std::size_t ahead) noexcept {
  for (std::size_t o = (from + 63) / 64 * 64; o < to; o += 64) gemv_prefetch(static_cast<const unsigned char*>(row) + o, ahead);
}

/// Outputs at least this large are written with non-temporal stores by the kernels that fill a
/// whole buffer once (nf4::dequantize_blocks with Stores::automatic): the size of the largest
/// cache that CPU 0 shares (Linux's /sys/devices/system/cpu/cpu0/cache; glibc's sysconf reported
/// 320 MiB for a 32 MiB L3 in a virtual machine), else 32 MiB. A smaller output stays in the cache
/// for the code that reads it next; a larger one cannot, and a regular store would read every
/// line before writing it.
inline std::size_t streaming_store_bytes() noexcept {
  static const std::size_t bytes = [] {
    std::size_t largest = 0;
    for (int index = 0; index < 8; ++index) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
      std::FILE* f = std::fopen((dir + "/size").c_str(), "r");
      if (!f) break;
      unsigned long long size = 0;
      char unit = 0;
      const int got = std::fscanf(f, "%llu%c", &size, &unit);
      std::fclose(f);
      if (got < 1) continue;
      if (got == 2 && (unit == 'K' || unit == 'k')) size <<= 10;
      else if (got == 2 && (unit == 'M' || unit == 'm')) size <<= 20;
      if (size > largest) largest = static_cast<std::size_t>(size);
    }
    return largest >= (std::size_t{1} << 20) ? largest : std::size_t{32} << 20;
  }();
  return bytes;
}

}  // namespace ordo::quant::nf4
