// ordo/train/schedule.hpp — learning rate per optimizer step: linear warmup, then cosine,
// linear or no decay. Torch-free.
//
//   step s < warmup:   peak * (s + 1) / warmup         (the first step already moves)
//   step s >= warmup:  peak * (f + (1 - f) * d(p)),  p = (s - warmup) / (total - warmup)
//                      d = (1 + cos(pi p)) / 2 (cosine), 1 - p (linear), 1 (constant);
//                      f = final_ratio (the last steps approach peak * f)
#pragma once

#include <algorithm>  // std::max
#include <cmath>      // std::cos
#include <cstdint>    // std::int64_t
#include <numbers>    // std::numbers::pi
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

namespace ordo::train {

enum class Decay { cosine, linear, constant };

struct Schedule {
  double peak = 5e-5;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  Decay decay = Decay::cosine;
  double final_ratio = 0.0;

  /// The learning rate of optimizer step `step` (counted from 0).
  double at(std::int64_t step) const {
    if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    const auto span = std::max<std::int64_t>(1, total_steps - warmup_steps);
    const double p = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
    double d = 1.0;
    if (decay == Decay::cosine) d = 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    if (decay == Decay::linear) d = 1.0 - p;
    return peak * (final_ratio + (1.0 - final_ratio) * d);
  }
};

inline Decay decay_from_name(const std::string& name) {
  if (name == "cosine") return Decay::cosine;
  if (name == "linear") return Decay::linear;
  if (name == "constant") return Decay::constant;
  throw std::invalid_argument("ordo::train: unknown learning-rate decay '" + name + "' (cosine, linear, constant)");
}

inline const char* decay_name(Decay d) {
  return d == Decay::cosine ? "cosine" : d == Decay::linear ? "linear" : "constant";
}

}  // namespace ordo::train
