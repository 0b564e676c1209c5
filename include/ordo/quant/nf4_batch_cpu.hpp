// ordo/quant/nf4_batch_cpu.hpp — a few x rows against packed NF4 weights on the CPU, without
// LibTorch: Y = X W^T where W [rows, cols] is NF4 (blocks along its rows), for the 2-8 rows of
// batched decoding (a few sequences, one token each).
//
//   ordo::quant::nf4::gemv_batch(q.packed.data(), scales.data(), rows, cols, xs.data(), n, cols,
//                                ys.data(), rows, {.blocksize = q.blocksize});
//
// Each weight row is dequantized once into a buffer of `cols` floats that stays in the core's
// L1/L2 cache and multiplied with every x row there, summed exactly as f32::gemv_batch sums it
// (f32_cpu.hpp): y equals f32::gemv_batch on nf4::dequantize_blocks' values bit for bit. The
// dequantize-a-tile-then-multiply it replaces wrote 4 bytes per weight to memory and read them
// back; this reads the half byte per weight of the packed row and nothing else.
// (nf4::gemv, one x row, sums per block and scales each block's sum: other floats, faster.)
#pragma once

#include <cstddef>    // std::size_t
#include <cstdint>    // std::uint8_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string
#include <vector>     // std::vector

#include <ordo/quant/cpu_features.hpp>         // Isa, ORDO_NF4_HAVE_X86, ORDO_NF4_AVX2, gemv_prefetch*
#include <ordo/quant/detail/nf4_avx2.hpp>      // dequantize_block_avx2
#include <ordo/quant/detail/nf4_avx512.hpp>    // dequantize_block_avx512
#include <ordo/quant/detail/nf4_portable.hpp>  // dequantize_block_portable
#include <ordo/quant/f32_cpu.hpp>              // f32::detail::row_dots_batch_avx2, gemv_rows_portable, split_gemv_rows
#include <ordo/quant/nf4_cpu.hpp>              // Options, check_blocksize

namespace ordo::quant::nf4 {

namespace detail {

#if ORDO_NF4_HAVE_X86
/// Weight rows [r0, r1) of packed NF4 W (cols a multiple of bs) against n x rows:
/// y[j * ldy + r] = dequantized W[r] . x_j, with `row` (cols floats) holding the dequantized row
/// (dequantize_block: one block on any path, AVX2's or AVX-512's: they give the same values).
/// Each packed line is also asked for a whole number of rows ahead (the dequantize reads the row
/// from memory once; the multiplies then run from the cache).
using dequantize_block_fn = void (*)(const std::uint8_t* packed, std::size_t len, float absmax, float* out);
ORDO_NF4_AVX2 inline void gemv_batch_rows_avx2(const std::uint8_t* packed, const float* absmax, std::size_t cols,
                                               std::size_t bs, const float* x, std::size_t n, std::size_t ldx,
                                               float* y, std::size_t ldy, std::size_t r0, std::size_t r1,
                                               float* row, dequantize_block_fn dequantize_block) {
  const std::size_t blocks = cols / bs, row_bytes = cols / 2;
  const std::size_t ahead = gemv_prefetch_distance(row_bytes);
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* p = packed + r * row_bytes;
    gemv_prefetch_lines(p, 0, row_bytes, ahead);
    for (std::size_t b = 0; b < blocks; ++b)
      dequantize_block(p + b * bs / 2, bs, absmax[r * blocks + b], row + b * bs);
    f32::detail::row_dots_batch_avx2(row, x, n, ldx, cols, y + r, ldy);
  }
}
#endif

/// gemv_batch_rows_avx2's rows on any CPU: each column added in order (f32's portable sums).
inline void gemv_batch_rows_portable(const std::uint8_t* packed, const float* absmax, std::size_t cols,
                                     std::size_t bs, const float* x, std::size_t n, std::size_t ldx, float* y,
                                     std::size_t ldy, std::size_t r0, std::size_t r1, float* row) {
  const std::size_t blocks = cols / bs, row_bytes = cols / 2;
  for (std::size_t r = r0; r < r1; ++r) {
    for (std::size_t b = 0; b < blocks; ++b)
      dequantize_block_portable(packed + r * row_bytes + b * bs / 2, bs, absmax[r * blocks + b], row + b * bs);
    for (std::size_t j = 0; j < n; ++j)
      f32::detail::gemv_rows_portable(row, cols, cols, x + j * ldx, y + j * ldy + r, 0, 1);
  }
}

}  // namespace detail

/// Y = X W^T for a few x rows: y[j * ldy + r] = W[r] . x_j, W [rows, cols] NF4 in blocks of
/// opt.blocksize (packed row-major, `absmax` its block_count(rows * cols) scales; cols a multiple
/// of the blocksize, so that no block spans two rows), n rows x_j at x + j * ldx, fp32. The floats
/// are f32::gemv_batch's on the dequantized W (a row of a batch gets the floats it would get in
/// any other batch, on any thread count). Rows are split over threads (opt.threads, opt.runner);
/// y must not overlap x. opt.gemv does not apply (the arithmetic is fixed).
inline void gemv_batch(const std::uint8_t* packed, const float* absmax, std::size_t rows, std::size_t cols,
                       const float* x, std::size_t n, std::size_t ldx, float* y, std::size_t ldy,
                       const Options& opt = {}) {
  detail::check_blocksize(opt.blocksize, "ordo::quant::nf4::gemv_batch");
  const std::size_t bs = opt.blocksize;
  if (cols % bs != 0)
    throw std::invalid_argument("ordo::quant::nf4::gemv_batch: rows of " + std::to_string(cols) +
                                " columns are not whole blocks of " + std::to_string(bs));
  f32::detail::check_batch_strides("ordo::quant::nf4::gemv_batch", rows, cols, n, ldx, ldy);
  if (n == 0 || rows == 0) return;
  const f32::Options o{.threads = opt.threads, .isa = opt.isa, .runner = opt.runner};
  // The sums run on AVX2 (f32's kernels: AVX-512 CPUs take them too); the dequantize on the
  // widest path, AVX-512 looking 16 codes up per instruction where AVX2 needs two for 8.
#if ORDO_NF4_HAVE_X86
  const detail::dequantize_block_fn dequantize_block = resolve_isa(opt.isa) == Isa::avx512
                                                           ? &detail::dequantize_block_avx512<false, float>
                                                           : &detail::dequantize_block_avx2<false, float>;
#endif
  f32::detail::split_gemv_rows(rows, cols * n, o, [&]([[maybe_unused]] Isa isa, std::size_t r0, std::size_t r1) {
    std::vector<float> row(cols);  // per range: the threads' rows never share it
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx2)
      return detail::gemv_batch_rows_avx2(packed, absmax, cols, bs, x, n, ldx, y, ldy, r0, r1, row.data(),
                                          dequantize_block);
#endif
    detail::gemv_batch_rows_portable(packed, absmax, cols, bs, x, n, ldx, y, ldy, r0, r1, row.data());
  });
}

}  // namespace ordo::quant::nf4
