// A small decoder with random weights, for tests that need a model but no files.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>

/// The tests' two-layer GQA shape (hidden 32, 4 query heads and 2 key/value heads of 8, both FFNs
/// `ffn` wide) over a vocabulary of `vocab` tokens.
inline ordo::model::decoder_config tiny_config(std::int64_t vocab, std::int64_t ffn) {
  ordo::model::decoder_config c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_sizes = {ffn, ffn};
  return c;
}

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
