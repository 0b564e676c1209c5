// ordo/quant/f32_cpu.hpp — the batch-1 GEMV of dense fp32 weights on the CPU, without LibTorch:
// y = W x for W [rows, cols] row-major (rows `ld` floats apart), fp32 products and sums, rows
// split over threads like the NF4 and Q8_0 GEMVs (nf4_cpu.hpp, q8_cpu.hpp).
//
//   ordo::quant::f32::gemv(w.data(), rows, cols, cols, x.data(), y.data());   // y = W x
//   ordo::quant::f32::gemv_batch(w.data(), rows, cols, cols, xs.data(), n, cols, ys.data(), rows);
//                                  // n rows at once (batched decoding): y_j = W x_j, W read once
//
// Why ordo has its own: a BLAS's matrix-vector product is not always threaded. MKL (PyPI's
// LibTorch 2.x) ran `mv` on one thread on an AMD EPYC (the same time with 1 and 2 threads, ~12 GB/s
// on SmolLM2's 49152 x 576 head, measured 2026-12-05), so a batch-1 decoding step took ~1.7x as
// long as with OpenBLAS's threaded one (Debian's LibTorch 1.13). This one reads each weight once
// at memory bandwidth on every LibTorch build, and each y[r] is summed in the same order whatever
// the thread count (a row's sum never crosses threads), so results do not depend on --threads.
//
// Sums (AVX2, FMA): each row in two 8-float accumulators over 16 columns at a time, added and
// then across lanes, the columns past the last multiple of 8 one by one; four rows are read at
// once, and a row's sum is the same whichever rows it is read with. gemv_batch sums every
// product in that same order (y_j equals gemv's y for x_j, bit for bit). The portable path (and
// CPUs without AVX2) adds each column in order.
#pragma once

#include <algorithm>  // std::max
#include <cstddef>    // std::size_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

#include <ordo/quant/cpu_features.hpp>     // Isa, resolve_isa, ORDO_NF4_HAVE_X86, ORDO_NF4_AVX2
#include <ordo/quant/detail/parallel.hpp>  // elements_per_thread
#include <ordo/quant/nf4_cpu.hpp>          // range_runner, parallel_for on a runner or threads, hsum

namespace ordo::quant::f32 {

using nf4::Isa;
using nf4::range_runner;

/// How a GEMV splits its rows (also the Q8_0 GEMV's options, q8_cpu.hpp).
struct Options {
  unsigned threads = 0;  ///< 0: std::thread::hardware_concurrency()
  Isa isa = Isa::automatic;
  /// When set, the GEMV splits its rows through it instead of starting std::threads per call.
  range_runner runner = nullptr;
};

namespace detail {

inline void gemv_rows_portable(const float* w, std::size_t ld, std::size_t cols, const float* x, float* y,
                               std::size_t r0, std::size_t r1) {
  for (std::size_t r = r0; r < r1; ++r) {
    const float* row = w + r * ld;
    float s = 0.0f;
    for (std::size_t i = 0; i < cols; ++i) s += row[i] * x[i];
    y[r] = s;
  }
}

#if ORDO_NF4_HAVE_X86
/// G (1 to 4) x rows against one weight row, out[k] = row . x_k (x_k at x + k * ldx), the weight
/// chunk loaded once for the G rows; with `ahead`, each 64-byte line is also asked for `ahead`
/// bytes early (gemv_prefetch: a hint, no load). Each sum: 16 columns at a time into two 8-float
/// accumulators (a: the first 8, b: the next 8), then 8 more into a while they last, a + b added
/// across lanes, the rest one by one. gemv_rows_avx2 sums every row in exactly this order too.
template <int G>
ORDO_NF4_AVX2 inline void row_dots_avx2(const float* row, const float* x, std::size_t ldx, std::size_t cols,
                                        float* out, std::size_t ahead = 0) {
  __m256 a[G], b[G];
#pragma GCC unroll 4
  for (int k = 0; k < G; ++k) a[k] = b[k] = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    if (ahead) nf4::gemv_prefetch(row + i, ahead);
    const __m256 w0 = _mm256_loadu_ps(row + i), w1 = _mm256_loadu_ps(row + i + 8);
#pragma GCC unroll 4
    for (int k = 0; k < G; ++k) {
      a[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + k * ldx + i), a[k]);
      b[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + k * ldx + i + 8), b[k]);
    }
  }
  const bool eight = i + 8 <= cols;
#pragma GCC unroll 4
  for (int k = 0; k < G; ++k) {
    const float* xk = x + k * ldx;
    if (eight) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(xk + i), a[k]);
    float s = nf4::detail::hsum(_mm256_add_ps(a[k], b[k]));
    for (std::size_t j = eight ? i + 8 : i; j < cols; ++j) s += row[j] * xk[j];
    out[k] = s;
  }
}

/// Rows [r0, r1) four at a time (four streams of weights in flight, each x chunk loaded once for
/// them), the last few one at a time; every row summed as row_dots_avx2 sums it.
ORDO_NF4_AVX2 inline void gemv_rows_avx2(const float* w, std::size_t ld, std::size_t cols, const float* x, float* y,
                                         std::size_t r0, std::size_t r1) {
  std::size_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const float* p[4] = {w + r * ld, w + (r + 1) * ld, w + (r + 2) * ld, w + (r + 3) * ld};
    __m256 a[4], b[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) a[k] = b[k] = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= cols; i += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
#pragma GCC unroll 4  // the accumulators stay in registers
      for (int k = 0; k < 4; ++k) {
        a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k] + i), x0, a[k]);
        b[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k] + i + 8), x1, b[k]);
      }
    }
    const bool eight = i + 8 <= cols;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (eight) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k] + i), _mm256_loadu_ps(x + i), a[k]);
      float s = nf4::detail::hsum(_mm256_add_ps(a[k], b[k]));
      for (std::size_t j = eight ? i + 8 : i; j < cols; ++j) s += p[k][j] * x[j];
      y[r + k] = s;
    }
  }
  for (; r < r1; ++r) row_dots_avx2<1>(w + r * ld, x, 0, cols, y + r);
}

/// One weight row against n x rows, y[j * ldy] = row . x_j: four x rows at a time (each weight
/// chunk loaded once for them; they stay in cache), the rest together; the first group also
/// prefetches `ahead` bytes early (row_dots_avx2). Every sum is row_dots_avx2's.
ORDO_NF4_AVX2 inline void row_dots_batch_avx2(const float* row, const float* x, std::size_t n, std::size_t ldx,
                                              std::size_t cols, float* y, std::size_t ldy, std::size_t ahead = 0) {
  float out[4];
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4, ahead = 0) {
    row_dots_avx2<4>(row, x + j * ldx, ldx, cols, out, ahead);
    for (std::size_t k = 0; k < 4; ++k) y[(j + k) * ldy] = out[k];
  }
  switch (n - j) {
    case 3: row_dots_avx2<3>(row, x + j * ldx, ldx, cols, out, ahead); break;
    case 2: row_dots_avx2<2>(row, x + j * ldx, ldx, cols, out, ahead); break;
    case 1: row_dots_avx2<1>(row, x + j * ldx, ldx, cols, out, ahead); break;
    default: return;
  }
  for (std::size_t k = 0; j + k < n; ++k) y[(j + k) * ldy] = out[k];
}

/// Weight rows [r0, r1) against n x rows: each weight row is read from memory once and
/// multiplied with the x rows (row_dots_batch_avx2), y[j * ldy + r] = W[r] . x_j.
/// The first group of x rows also prefetches the weight rows a whole number of rows (>= 2 KiB)
/// ahead: a row takes n times a GEMV row's work, and the hardware prefetchers fell behind the
/// rows it starts (generate_batch of the study's 8 answers on the default model: 2.24-2.57 s
/// against 2.39-2.82 s without, five alternated pairs; the same floats).
ORDO_NF4_AVX2 inline void gemv_batch_rows_avx2(const float* w, std::size_t ld, std::size_t cols, const float* x,
                                               std::size_t n, std::size_t ldx, float* y, std::size_t ldy,
                                               std::size_t r0, std::size_t r1) {
  const std::size_t ahead = nf4::gemv_prefetch_distance(ld * sizeof(float));
  for (std::size_t r = r0; r < r1; ++r) row_dots_batch_avx2(w + r * ld, x, n, ldx, cols, y + r, ldy, ahead);
}
#endif

/// A batched GEMV's row strides (`who` names it): with more than one row, x rows `ldx` floats
/// apart must hold `cols` columns and y rows `ldy` floats apart `rows` outputs.
inline void check_batch_strides(const char* who, std::size_t rows, std::size_t cols, std::size_t n, std::size_t ldx,
                                std::size_t ldy) {
  if (n > 1 && ldx < cols)
    throw std::invalid_argument(std::string(who) + ": x rows " + std::to_string(ldx) + " floats apart hold " +
                                std::to_string(cols) + " columns");
  if (n > 1 && ldy < rows)
    throw std::invalid_argument(std::string(who) + ": y rows " + std::to_string(ldy) + " floats apart hold " +
                                std::to_string(rows) + " outputs");
}

/// How a bandwidth-bound batch-1 GEMV runs its rows (the dense one here and the Q8_0 one,
/// q8_cpu.hpp): on opt.isa resolved for this CPU, AVX-512 CPUs taking the AVX2 kernel (reading
/// memory, the wider vectors buy nothing), rows over threads with at least
/// elements_per_thread weights per range. rows_of(isa, r0, r1) computes rows [r0, r1).
template <class RowsOf>
void split_gemv_rows(std::size_t rows, std::size_t cols, const Options& opt, const RowsOf& rows_of) {
  Isa isa = nf4::resolve_isa(opt.isa);
  if (isa == Isa::avx512) isa = Isa::avx2;
  const std::size_t grain = std::max<std::size_t>(1, nf4::detail::elements_per_thread / std::max<std::size_t>(cols, 1));
  nf4::detail::parallel_for(rows, grain, opt, [&](std::size_t r0, std::size_t r1) { rows_of(isa, r0, r1); });
}

}  // namespace detail

/// y [rows] = W x for W [rows, cols] (row r at w + r * ld, ld >= cols) and x [cols], fp32. Rows
/// are split over threads (opt); y must not overlap W or x.
inline void gemv(const float* w, std::size_t rows, std::size_t cols, std::size_t ld, const float* x, float* y,
                 const Options& opt = {}) {
  if (ld < cols)
    throw std::invalid_argument("ordo::quant::f32::gemv: rows " + std::to_string(ld) + " floats apart hold " +
                                std::to_string(cols) + " columns");
  detail::split_gemv_rows(rows, cols, opt, [&]([[maybe_unused]] Isa isa, std::size_t r0, std::size_t r1) {
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx2) return detail::gemv_rows_avx2(w, ld, cols, x, y, r0, r1);
#endif
    detail::gemv_rows_portable(w, ld, cols, x, y, r0, r1);
  });
}

/// Y = X W^T for a few x rows: y[j * ldy + r] = W[r] . x_j for W [rows, cols] (row r at
/// w + r * ld) and n rows x_j at x + j * ldx, fp32. Each product is summed exactly as gemv()
/// sums it for x_j alone, so a row of a batch gets the floats it would get on its own, on any
/// thread count. For the small row counts of batched decoding (a few sequences, one token each),
/// where a BLAS's GEMM copies ("packs") the whole weight matrix on every call: here each weight
/// row is read once for all x rows (one x row is gemv's: four weight rows in flight). Rows are
/// split over threads (opt); y must not overlap W or x.
inline void gemv_batch(const float* w, std::size_t rows, std::size_t cols, std::size_t ld, const float* x,
                       std::size_t n, std::size_t ldx, float* y, std::size_t ldy, const Options& opt = {}) {
  if (ld < cols)
    throw std::invalid_argument("ordo::quant::f32::gemv_batch: rows " + std::to_string(ld) + " floats apart hold " +
                                std::to_string(cols) + " columns");
  detail::check_batch_strides("ordo::quant::f32::gemv_batch", rows, cols, n, ldx, ldy);
  if (n == 1) return gemv(w, rows, cols, ld, x, y, opt);
  detail::split_gemv_rows(rows, cols * std::max<std::size_t>(n, 1), opt,
                          [&]([[maybe_unused]] Isa isa, std::size_t r0, std::size_t r1) {
#if ORDO_NF4_HAVE_X86
                            if (isa == Isa::avx2) return detail::gemv_batch_rows_avx2(w, ld, cols, x, n, ldx, y, ldy, r0, r1);
#endif
                            for (std::size_t j = 0; j < n; ++j)
                              detail::gemv_rows_portable(w, ld, cols, x + j * ldx, y + j * ldy, r0, r1);
                          });
}

}  // namespace ordo::quant::f32
