// ordo/data/split.hpp — seeded shuffling and calibration / train / evaluation splits that
// never overlap.
//
// The permutation is ordo's own Fisher-Yates over std::mt19937_64 with rejection sampling, so
// the same seed gives the same order with every standard library (std::shuffle and the
// std:: distributions are implementation-defined).
#pragma once

#include <cstdint>        // std::uint64_t, std::int64_t
#include <numeric>        // std::iota
#include <random>         // std::mt19937_64
#include <string>         // std::string
#include <unordered_set>  // std::unordered_set
#include <vector>         // std::vector

#include <ordo/data/error.hpp>    // DataError
#include <ordo/data/example.hpp>  // Example

namespace ordo::data {

/// A uniform integer in [0, n), n > 0, the same on every platform.
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // accept [0, limit): no modulo bias
  std::uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

/// A permutation of 0 .. n-1 determined by `seed`.
inline std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  std::mt19937_64 rng(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(p[i - 1], p[uniform_below(rng, i)]);
  return p;
}

template <class T>
std::vector<T> shuffled(std::vector<T> items, std::uint64_t seed) {
  const auto p = permutation(items.size(), seed);
  std::vector<T> out;
  out.reserve(items.size());
  for (auto i : p) out.push_back(std::move(items[i]));
  return out;
}

struct SplitSizes {
  std::int64_t calibration = 0;
  std::int64_t train = 0;
  std::int64_t evaluation = 0;
};

struct Splits {
  std::vector<Example> calibration, train, evaluation;
};

namespace detail {
struct ids_hash {
  std::size_t operator()(const std::vector<std::int64_t>& v) const {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids
    for (auto x : v) h = (h ^ static_cast<std::uint64_t>(x)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};
}  // namespace detail

/// Drops repeated token sequences (first occurrence kept), so that no sequence can sit in two
/// splits: a chat corpus repeats short openings ("Hi", "Hello") many times.
inline std::vector<Example> unique_examples(std::vector<Example> examples) {
  std::unordered_set<std::vector<std::int64_t>, detail::ids_hash> seen;
  std::vector<Example> out;
  out.reserve(examples.size());
  for (auto& e : examples)
    if (seen.insert(e.ids).second) out.push_back(std::move(e));
  return out;
}

/// Removes repeats, shuffles with `seed` and deals out evaluation first, then calibration,
/// then train: disjoint sets of distinct sequences. The evaluation set depends only on the
/// data, the seed and its own size, so changing the training budget never moves an example
/// between evaluation and training. Not enough distinct examples is a DataError.
inline Splits split(std::vector<Example> examples, const SplitSizes& sizes, std::uint64_t seed,
                    const std::string& source = "the data") {
  if (sizes.calibration < 0 || sizes.train < 0 || sizes.evaluation < 0)
    throw std::invalid_argument("ordo::data::split: split sizes must not be negative");
  auto all = shuffled(unique_examples(std::move(examples)), seed);
  const auto need = sizes.calibration + sizes.train + sizes.evaluation;
  if (static_cast<std::int64_t>(all.size()) < need)
    throw DataError(source + ": " + std::to_string(all.size()) + " distinct examples, but the splits need " +
                    std::to_string(need) + " (calibration " + std::to_string(sizes.calibration) + ", train " +
                    std::to_string(sizes.train) + ", evaluation " + std::to_string(sizes.evaluation) + ")");
  Splits s;
  auto take = [&, at = std::size_t{0}](std::vector<Example>& into, std::int64_t n) mutable {
    for (std::int64_t i = 0; i < n; ++i) into.push_back(std::move(all[at++]));
  };
  take(s.evaluation, sizes.evaluation);
  take(s.calibration, sizes.calibration);
  take(s.train, sizes.train);
  return s;
}

}  // namespace ordo::data
