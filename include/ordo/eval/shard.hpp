// ordo/eval/shard.hpp — an evaluation split among the ranks of a data-parallel run.
//
//   ordo::eval::shard s = group->shard();    // train/distributed.hpp makes one from a group
//   perplexity(lm, ids, options, {}, s);     // each rank scores its windows; every rank gets the total
//
// A shard is this rank's number, the rank count and two collectives, as plain functions so that
// evaluation does not depend on the process-group layer: `sum` adds vectors of doubles element
// by element over the ranks (every rank gets the result), `gather` collects one string per rank
// (every rank gets them all, by rank). A default shard is one process: everything is its own,
// and the collectives are the identity.
//
// Results equal one process's to the last bit when each item (a perplexity window, a batch of
// examples, an answer) is computed the same way wherever it runs: every rank fills the slots of
// its items in a vector of zeros, `sum` adds the vectors (x + 0 is exact), and the totals are
// then added up in item order, as one process adds them.
#pragma once

#include <cstddef>     // std::size_t
#include <functional>  // std::function
#include <string>      // std::string
#include <utility>     // std::pair
#include <vector>      // std::vector

namespace ordo::eval {

struct shard {
  int rank = 0;
  int size = 1;
  std::function<void(std::vector<double>&)> sum;                         ///< in place, over the ranks
  std::function<std::vector<std::string>(const std::string&)> gather;  ///< every rank's string, by rank

  /// Whether item `i` (of items dealt out round-robin) is this rank's.
  bool mine(std::size_t i) const { return size <= 1 || static_cast<int>(i % static_cast<std::size_t>(size)) == rank; }
  /// The first and one-past-last of `n` items in this rank's contiguous block (blocks differ in
  /// length by one at most, the first ranks taking the longer ones).
  std::pair<std::size_t, std::size_t> block(std::size_t n) const {
    if (size <= 1) return {0, n};
    const auto r = static_cast<std::size_t>(rank), k = static_cast<std::size_t>(size);
    const std::size_t base = n / k, extra = n % k;
    const std::size_t begin = r * base + (r < extra ? r : extra);
    return {begin, begin + base + (r < extra ? 1 : 0)};
  }
  /// Adds `values` over the ranks (nothing to do for one process).
  void reduce(std::vector<double>& values) const {
    if (size > 1) sum(values);
  }
  /// Every rank's `mine`, by rank (just `mine` for one process).
  std::vector<std::string> all(const std::string& mine) const {
    if (size > 1) return gather(mine);
    return {mine};
  }
};

}  // namespace ordo::eval
