// A small decoder with random weights, for tests that need a model but no files.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>

/// CausalLM(c) built under torch::manual_seed(seed); when redraw_std > 0, every parameter is then
/// redrawn from N(0, redraw_std), a model further from uniform than LibTorch's initializer gives.
inline ordo::model::CausalLM tiny_decoder(const ordo::model::decoder_config& c, std::uint64_t seed,
                                          double redraw_std = 0.0) {
  torch::manual_seed(seed);
  ordo::model::CausalLM lm(c);
  if (redraw_std > 0.0) {
    torch::NoGradGuard no_grad;
    for (auto& p : lm->parameters()) p.normal_(0.0, redraw_std);
  }
  return lm;
}
