// ordo/quant/detail/parallel.hpp — parallel_for: a count of items split into contiguous ranges
// on std::threads, as the NF4 CPU kernels (nf4_cpu.hpp) run their blocks and rows.
#pragma once

#include <algorithm>  // std::min, std::max
#include <cstddef>    // std::size_t
#include <thread>     // std::thread
#include <vector>     // std::vector

namespace ordo::quant::nf4::detail {

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

}  // namespace ordo::quant::nf4::detail
