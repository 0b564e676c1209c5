// ordo/data/example.hpp — ordo::Example, one training or evaluation sequence, what every layer
// from data/ up passes around.
#pragma once

#include <cstdint>  // std::int64_t
#include <vector>   // std::vector

namespace ordo {

/// One training or evaluation sequence: token ids, and the targets to score (-100: not scored,
/// e.g. padding, or the user's turns when training on assistant turns only).
struct Example {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> labels;  // same length as ids; labels[t] is the target at t
};

}  // namespace ordo
