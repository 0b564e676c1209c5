// ordo/model/kernel_threads.hpp — ordo's CPU kernels (NF4, Q8_0, fp32 GEMVs of ordo/quant/) run
// on LibTorch's intra-op threads: the range_runner the model layer hands them, and that the
// kernel benchmark uses to time them as a decoding step runs them.
#pragma once

#include <cstddef>     // std::size_t
#include <cstdint>     // std::int64_t
#include <functional>  // std::function

#include <ATen/Parallel.h>  // at::parallel_for

#include <ordo/quant/nf4_cpu.hpp>  // quant::nf4::range_runner

// With an OpenMP LibTorch, at::parallel_for (inline) runs its ranges in parallel only in units
// compiled with OpenMP; without it every kernel below would quietly run on one thread.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "ordo/model/kernel_threads.hpp: this LibTorch parallelizes through OpenMP and this unit is compiled without it: link OpenMP::OpenMP_CXX (ordo::models does), or every kernel runs on one thread"
#endif

namespace ordo::model::detail {

/// Splits a kernel's rows over LibTorch's intra-op threads (at::parallel_for: at::get_num_threads()
/// of them, already running) rather than starting std::threads per call.
inline quant::nf4::range_runner torch_runner() {
  return [](std::size_t count, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f) {
    at::parallel_for(0, static_cast<std::int64_t>(count), static_cast<std::int64_t>(grain),
                     [&](std::int64_t b, std::int64_t e) { f(static_cast<std::size_t>(b), static_cast<std::size_t>(e)); });
  };
}

}  // namespace ordo::model::detail
