// What the data-parallel test and its worker share: the run both make, in one process or in
// several (tests/train/distributed_test.cpp, distributed_worker.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <ordo/data/example.hpp>
#include <ordo/eval/perplexity.hpp>
#include <ordo/eval/shard.hpp>
#include <ordo/train/trainer.hpp>

#include "../tiny_decoder.hpp"

namespace dist_test {

// Counting sequences of varied lengths (so batches pad differently on each rank); `shift`
// changes the data (a rank started with other data).
inline std::vector<ordo::Example> data(int shift = 0) {
  std::vector<ordo::Example> out;
  for (int i = 0; i < 14; ++i) {
    ordo::Example e;
    const int len = 5 + (i * 7) % 6;
    for (int t = 0; t < len; ++t) e.ids.push_back((i * 5 + t + shift) % 48);
    e.labels = e.ids;
    e.labels[0] = -100;
    out.push_back(e);
  }
  return out;
}

inline ordo::model::CausalLM model() { return tiny_decoder(tiny_config(48, 40), 5); }

// Global batches of 4 (2 examples per rank with 2 ranks), two micro-batches a step, 2 epochs:
// 14 examples make micro-batches of 4, 4, 4, 2, so steps of 8 and 6 examples.
inline ordo::train::TrainOptions options() {
  ordo::train::TrainOptions o;
  o.epochs = 2;
  o.batch_size = 4;
  o.grad_accumulation = 2;
  o.learning_rate = 3e-3;
  o.warmup_steps = 1;
  o.seed = 11;
  o.label = "dp";
  return o;
}

// Perplexities of the untrained model, of a text (sliding windows) and of the examples (in
// batches of 3), as exact bit patterns ("%a"), sharded among `among`'s ranks.
inline std::string sharded_figures(const ordo::eval::shard& among) {
  auto lm = model();
  lm->eval();
  std::vector<std::int64_t> text;
  for (int t = 0; t < 203; ++t) text.push_back((t * 7 + t / 5) % 48);
  ordo::eval::perplexity_options po;
  po.context = 24;
  po.stride = 10;
  const auto a = ordo::eval::perplexity(lm, text, po, {}, among);
  const auto examples = data();
  const auto b = ordo::eval::perplexity(lm, examples, ordo::eval::example_perplexity_options{.batch_size = 3}, {}, among);
  char buf[160];
  std::snprintf(buf, sizeof buf, "%a %lld %a %lld", a.nll, static_cast<long long>(a.tokens), b.nll,
                static_cast<long long>(b.tokens));
  return buf;
}

}  // namespace dist_test
