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
//   ordo::quant::nf4::gemv_shared(parts, cols, x.data());                 // y_i = W_i x, one loop
//
// The pieces: cpu_features.hpp (Isa, cpu_has_avx2, cpu_has_avx512, resolve_isa,
// streaming_store_bytes), detail/parallel.hpp (parallel_for), detail/nf4_portable.hpp,
// detail/nf4_avx2.hpp and detail/nf4_avx512.hpp (the block kernels of each path); this header
// is the API.
#pragma once

#include <algorithm>    // std::min, std::max
#include <cmath>        // std::fabs
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t, std::uintptr_t
#include <functional>   // std::function, std::cref
#include <span>         // std::span
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::is_same_v
#include <utility>      // std::move
#include <vector>       // std::vector

#include <ordo/quant/cpu_features.hpp>         // Isa, resolve_isa, cpu_has_*, streaming_store_bytes, ORDO_NF4_HAVE_X86
#include <ordo/quant/detail/nf4_avx2.hpp>      // *_avx2 block kernels, gemv_x_order_avx2, gemv_rows_avx2
#include <ordo/quant/detail/nf4_avx512.hpp>    // *_avx512 block kernels, gemv_x_order_avx512, gemv_rows_avx512
#include <ordo/quant/detail/nf4_int16.hpp>     // the opt-in int16 GEMV (Gemv::int16)
#include <ordo/quant/detail/nf4_portable.hpp>  // *_portable block kernels, absmax_start
#include <ordo/quant/detail/parallel.hpp>      // parallel_for, elements_per_thread
#include <ordo/quant/float_bits.hpp>           // bf16, f16
#include <ordo/quant/nf4_codebook.hpp>         // codebook, block_count, packed_bytes, dynamic_map, quantize_code8

namespace ordo::quant::nf4 {

using quant::bf16;
using quant::f16;

/// Runs f(begin, end) over [0, count) in contiguous ranges of at least `grain` items, on threads
/// of the caller's choosing (e.g. LibTorch's at::parallel_for, whose threads are already awake).
using range_runner = std::function<void(std::size_t count, std::size_t grain,
                                        const std::function<void(std::size_t, std::size_t)>& f)>;

/// The arithmetic of gemv. `exact`: fp32 products of the codebook values and x, fp32 sums (the
/// default). `int16`, opt-in: int16 weights (codebook x 8192, rounded) times x rounded to int16
/// per group of 32, exact int32 sums per group: about 1e-4 relative error, and on AVX2 about twice
/// the exact path's speed (detail/nf4_int16.hpp; docs/nf4.md gives its perplexity cost). It needs
/// rows whose length is a multiple of 32 and of the blocksize and finite x; otherwise gemv takes
/// the exact path.
enum class Gemv { exact, int16 };

/// How dequantize_blocks writes its output. `automatic`: non-temporal (streaming) stores when the
/// output is at least the last-level cache (streaming_store_bytes()) and 64-byte aligned, else
/// regular ones. A regular store first reads each line it writes (write-allocate), a third of
/// the memory traffic of a dequantize whose output does not fit the cache; an output that does
/// fit stays there for whoever reads it next (the row tiles of a matmul). `cached` and
/// `streaming` force one kind (streaming still needs the alignment). The values are the same.
enum class Stores { automatic, cached, streaming };

struct Options {
  std::size_t blocksize = 64;  ///< 32, 64, 128, 256, 512, 1024, 2048 or 4096
  ZeroBlocks zero_blocks = ZeroBlocks::zero_code;
  unsigned threads = 0;  ///< 0: std::thread::hardware_concurrency()
  Isa isa = Isa::automatic;
  /// When set, the kernels split their work through it instead of starting `threads` std::threads
  /// per call (which costs tens of microseconds: too much for the small GEMVs of batch-1 decoding).
  range_runner runner = nullptr;
  Gemv gemv = Gemv::exact;  ///< gemv's arithmetic
  Stores stores = Stores::automatic;  ///< dequantize_blocks' stores
};

namespace detail {

/// parallel_for on opt.runner when there is one, else on up to opt.threads std::threads (Opt:
/// Options, or any options with those two members, as q8::Options).
template <class Opt, class F>
  requires requires(const Opt& o) {
    o.runner;
    o.threads;
  }
void parallel_for(std::size_t count, std::size_t grain, const Opt& opt, const F& f) {
  if (opt.runner) {
    if (count != 0) opt.runner(count, grain, std::function<void(std::size_t, std::size_t)>(std::cref(f)));
    return;
  }
  parallel_for(count, grain, opt.threads, f);
}

inline void check_blocksize(std::size_t blocksize, const char* where) {
  if (!is_valid_blocksize(blocksize))
    throw std::invalid_argument(std::string(where) + ": blocksize " + std::to_string(blocksize) +
                                " is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096");
}

}  // namespace detail

// ---- 4-bit blockwise quantization -------------------------------------------------------------

/// Quantizes n values (fp32, or f16/bf16 bit patterns) in blocks of `opt.blocksize`:
/// absmax[b] = max |x| over block b (NaNs ignored), each value becomes
/// quantize_code(x * (1.0f / absmax[b])), two codes per byte. `packed` holds packed_bytes(n)
/// bytes and `absmax` block_count(n, blocksize) floats. See docs/nf4.md for zeros, NaN and Inf.
template <class T>
void quantize_blocks(const T* x, std::size_t n, std::uint8_t* packed, float* absmax, const Options& opt = {}) {
  static_assert(
      std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>,
      "ordo::quant::nf4::quantize_blocks takes float, ordo::quant::nf4::bf16 or ordo::quant::nf4::f16 values");
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::quantize_blocks");
  const std::size_t bs = opt.blocksize;
  const std::size_t blocks = block_count(n, bs);
  const Isa isa = resolve_isa(opt.isa);
  detail::parallel_for(
      blocks, std::max<std::size_t>(1, detail::elements_per_thread / bs), opt,
      [&](std::size_t b0, std::size_t b1) {
        for (std::size_t b = b0; b < b1; ++b) {
          const std::size_t begin = b * bs, len = std::min(bs, n - begin);
          const bool partial = len < bs;
#if ORDO_NF4_HAVE_X86
          if (isa == Isa::avx512) {
            detail::quantize_block_avx512(x + begin, len, partial, opt.zero_blocks, packed + begin / 2, absmax + b);
            continue;
          }
          if (isa == Isa::avx2) {
            detail::quantize_block_avx2(x + begin, len, partial, opt.zero_blocks, packed + begin / 2, absmax + b);
            continue;
          }
#endif
          (void)isa;
          detail::quantize_block_portable(x + begin, len, partial, opt.zero_blocks, packed + begin / 2, absmax + b);
        }
      });
}

/// Dequantizes n values: y[i] = code_value(code_i) * absmax[i / blocksize] in fp32, then
/// rounded to Out (float, f16 or bf16; round to nearest even).
template <class Out>
void dequantize_blocks(const std::uint8_t* packed, const float* absmax, std::size_t n, Out* y,
                       const Options& opt = {}) {
  static_assert(
      std::is_same_v<Out, float> || std::is_same_v<Out, bf16> || std::is_same_v<Out, f16>,
      "ordo::quant::nf4::dequantize_blocks writes float, ordo::quant::nf4::bf16 or ordo::quant::nf4::f16 values");
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::dequantize_blocks");
  const std::size_t bs = opt.blocksize;
  const Isa isa = resolve_isa(opt.isa);
  const bool aligned = reinterpret_cast<std::uintptr_t>(y) % 64 == 0;
  const bool stream = aligned && (opt.stores == Stores::streaming ||
                                  (opt.stores == Stores::automatic && n * sizeof(Out) >= streaming_store_bytes()));
  detail::parallel_for(block_count(n, bs), std::max<std::size_t>(1, detail::elements_per_thread / bs), opt,
                       [&](std::size_t b0, std::size_t b1) {
                         for (std::size_t b = b0; b < b1; ++b) {
                           const std::size_t begin = b * bs, len = std::min(bs, n - begin);
#if ORDO_NF4_HAVE_X86
                           if (isa == Isa::avx512) {
                             if (stream)
                               detail::dequantize_block_avx512<true>(packed + begin / 2, len, absmax[b], y + begin);
                             else
                               detail::dequantize_block_avx512<false>(packed + begin / 2, len, absmax[b], y + begin);
                             continue;
                           }
                           if (isa == Isa::avx2) {
                             if (stream)
                               detail::dequantize_block_avx2<true>(packed + begin / 2, len, absmax[b], y + begin);
                             else
                               detail::dequantize_block_avx2<false>(packed + begin / 2, len, absmax[b], y + begin);
                             continue;
                           }
#endif
                           (void)isa;
                           detail::dequantize_block_portable(packed + begin / 2, len, absmax[b], y + begin);
                         }
#if ORDO_NF4_HAVE_X86
                         if (stream) _mm_sfence();  // this thread's streaming stores before the join
#endif
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

/// One matrix of gemv_shared: W [rows, cols] packed row-major (flattened, blocks of the
/// blocksize) with its block scales, and y [rows], where its products go.
struct gemv_part {
  const std::uint8_t* w = nullptr;
  const float* absmax = nullptr;
  std::size_t rows = 0;
  float* y = nullptr;
};

/// y_i = W_i x for matrices that all multiply the same x (cols values): e.g. a layer's q, k and v
/// projections, or its gate and up projections, in a decoding step. One parallel loop over the
/// rows of all of them, x reordered (or rounded to int16) once: one wait for the threads instead
/// of one per matrix. Each y_i gets exactly what gemv gives (a row's sum does not depend on how
/// the rows are split). Accumulates in fp32: per block, sum_k code_value * x_k, times the
/// block's absmax. When cols is not a multiple of the blocksize, blocks straddle rows and a
/// scalar path runs. opt.gemv = Gemv::int16 chooses the integer arithmetic instead (see Gemv).
inline void gemv_shared(std::span<const gemv_part> parts, std::size_t cols, const float* x, const Options& opt = {}) {
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::gemv");
  const std::size_t bs = opt.blocksize;
  const Isa isa = resolve_isa(opt.isa);
  std::size_t total = 0;
  for (const auto& part : parts) total += part.rows;
  const std::size_t grain = std::max<std::size_t>(1, detail::elements_per_thread / std::max<std::size_t>(cols, 1));
  // Rows [r0, r1) of the parts laid end to end: rows(part, first, last) for each part they touch.
  const auto for_rows = [&](std::size_t r0, std::size_t r1, const auto& rows) {
    std::size_t base = 0;
    for (const auto& part : parts) {
      const std::size_t lo = std::max(r0, base), hi = std::min(r1, base + part.rows);
      if (lo < hi) rows(part, lo - base, hi - base);
      base += part.rows;
    }
  };
  if (cols % bs != 0) {
    detail::parallel_for(total, grain, opt, [&](std::size_t r0, std::size_t r1) {
      for_rows(r0, r1, [&](const gemv_part& p, std::size_t first, std::size_t last) {
        for (std::size_t r = first; r < last; ++r) {
          float acc = 0.0f;
          for (std::size_t k = 0; k < cols; ++k) {
            const std::size_t i = r * cols + k;
            const std::uint8_t b = p.w[i / 2];
            acc += codebook[(i % 2) ? low_code(b) : high_code(b)] * p.absmax[i / bs] * x[k];
          }
          p.y[r] = acc;
        }
      });
    });
    return;
  }
  if (opt.gemv == Gemv::int16 && cols % detail::int16_group == 0) {
    // Kept per calling thread: a decoding step calls this for every linear, and the buffers keep
    // their capacity from one call to the next (the caller waits for its rows, so none is shared).
    // The lambda below must see the caller's copy: a thread_local named inside it would be the
    // worker thread's own, hence the reference.
    thread_local detail::int16_activations buffers;
    detail::int16_activations& xa = buffers;
    const bool simd = ORDO_NF4_HAVE_X86 && isa != Isa::portable;  // AVX-512 CPUs run the AVX2 kernel
    if (detail::quantize_activations_int16(x, cols, simd, xa)) {
      detail::parallel_for(total, grain, opt, [&](std::size_t r0, std::size_t r1) {
        for_rows(r0, r1, [&](const gemv_part& p, std::size_t first, std::size_t last) {
#if ORDO_NF4_HAVE_X86
          if (simd) return detail::gemv_rows_int16_avx2(p.w, p.absmax, cols, bs, xa, p.y, first, last);
#endif
          detail::gemv_rows_int16_portable(p.w, p.absmax, cols, bs, xa, p.y, first, last);
        });
      });
      return;
    }
  }
#if ORDO_NF4_HAVE_X86
  const std::vector<float> x_order = isa == Isa::avx2     ? detail::gemv_x_order_avx2(x, cols)
                                     : isa == Isa::avx512 ? detail::gemv_x_order_avx512(x, cols)
                                                          : std::vector<float>();
#endif
  detail::parallel_for(total, grain, opt, [&](std::size_t r0, std::size_t r1) {
    for_rows(r0, r1, [&](const gemv_part& p, std::size_t first, std::size_t last) {
#if ORDO_NF4_HAVE_X86
      if (isa == Isa::avx512) return detail::gemv_rows_avx512(p.w, p.absmax, cols, bs, x_order.data(), p.y, first, last);
      if (isa == Isa::avx2) return detail::gemv_rows_avx2(p.w, p.absmax, cols, bs, x_order.data(), p.y, first, last);
#endif
      (void)isa;
      const std::size_t blocks_per_row = cols / bs;
      for (std::size_t r = first; r < last; ++r) {
        float acc = 0.0f;
        for (std::size_t b = 0; b < blocks_per_row; ++b)
          acc += p.absmax[r * blocks_per_row + b] *
                 detail::block_dot_portable(p.w + (r * cols + b * bs) / 2, bs, x + b * bs);
        p.y[r] = acc;
      }
    });
  });
}

/// y = W x for W [rows, cols] quantized row-major (flattened, blocks of opt.blocksize), fp32 x
/// and y: gemv_shared with one matrix.
inline void gemv(const std::uint8_t* w, const float* absmax, std::size_t rows, std::size_t cols, const float* x,
                 float* y, const Options& opt = {}) {
  const gemv_part part{w, absmax, rows, y};
  gemv_shared(std::span<const gemv_part>(&part, 1), cols, x, opt);
}

// ---- owning form --------------------------------------------------------------------------------

/// A quantized tensor as bitsandbytes' QuantState holds it (nf4, flattened).
struct Quantized {
  std::size_t numel = 0;
  std::size_t blocksize = 64;
  std::vector<std::uint8_t> packed;        ///< packed_bytes(numel)
  bool nested = false;                     ///< double quantization of absmax
  std::vector<float> absmax;               ///< not nested: block_count(numel, blocksize) scales
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
inline void gemv(const Quantized& q, std::size_t rows, std::size_t cols, const float* x, float* y, Options opt = {}) {
  if (rows * cols != q.numel)
    throw std::invalid_argument("ordo::quant::nf4::gemv: rows * cols (" + std::to_string(rows * cols) +
                                ") differs from the quantized tensor's size (" + std::to_string(q.numel) + ")");
  opt.blocksize = q.blocksize;
  const std::vector<float> scales = block_scales(q);
  gemv(q.packed.data(), scales.data(), rows, cols, x, y, opt);
}

}  // namespace ordo::quant::nf4
