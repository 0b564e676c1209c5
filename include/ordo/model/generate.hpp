// ordo/model/generate.hpp — text generation with a KV cache: greedy, or sampling with
// temperature and nucleus (top-p) filtering from a seeded generator; stops at stop tokens.
// generate() runs one prompt; generate_batch() runs several at once, left-padded. On the CPU a
// step of up to 8 rows reads each dense weight once for all of them (the decoder's batched
// GEMV and the fused step): eight answers take about 2.3x the time of one, not 8x.
#pragma once

#include <algorithm>   // std::find, std::max
#include <cstdint>     // std::int64_t, std::uint64_t
#include <functional>  // std::function
#include <optional>    // std::optional
#include <stdexcept>   // std::invalid_argument
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>        // CausalLM, kv_cache
#include <ordo/model/static_decode.hpp>  // static_decoder

namespace ordo::model {

struct generation_options {
  std::int64_t max_new_tokens = 128;
  bool greedy = false;
  double temperature = 0.7;
  double top_p = 0.9;
  std::uint64_t seed = 0;
  std::vector<std::int64_t> stop_ids;  // generation ends after producing one of these
  /// generate_batch: left-pad the prompts to at least this many tokens, so that a part of a
  /// batch computes what the whole batch would (a data-parallel share of prompts).
  std::int64_t pad_to = 0;
  /// generate: decode with a KV cache of fixed capacity (prompt + max_new_tokens) and a step of
  /// fixed shapes, which on a CUDA device is captured once into a CUDA graph and replayed for
  /// every token (ordo/model/static_decode.hpp). The tokens agree with the default path up to
  /// fp32 rounding; on the CPU it is slower than the default (its fused one-token step).
  bool static_cache = false;
};

/// What generation produced: the new token ids (a final stop id included) and why it ended.
struct generation_result {
  std::vector<std::int64_t> tokens;
  bool stopped = false;  // true: a stop id; false: max_new_tokens reached
  std::int64_t prompt_tokens = 0;
};

/// The id to emit from the last position's logits [vocab] (fp32, on any device). Sampling runs
/// on the host with a CPU generator, so that a seed gives the same tokens on every device.
inline std::int64_t choose_token(const torch::Tensor& logits, const generation_options& o,
                                 torch::Generator& generator) {
  if (o.greedy) return logits.argmax().item<std::int64_t>();
  auto probs = torch::softmax(logits.to(torch::kCPU) / o.temperature, -1);
  if (o.top_p < 1.0) {
    // Keep the smallest set of most likely tokens whose probability reaches top_p.
    auto sorted = probs.sort(/*dim=*/-1, /*descending=*/true);
    auto values = std::get<0>(sorted), order = std::get<1>(sorted);
    auto before = values.cumsum(-1) - values;  // mass of the strictly more likely tokens
    values = values.masked_fill(before >= o.top_p, 0.0);
    probs = torch::zeros_like(probs).scatter(-1, order, values);
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, generator).item<std::int64_t>();
}

/// Continues `prompt` (token ids). `on_token(id)` is called for each new token as it comes.
inline generation_result generate(CausalLM& lm, const std::vector<std::int64_t>& prompt, const generation_options& o,
                                  const std::function<void(std::int64_t)>& on_token = {}) {
  if (prompt.empty()) throw std::invalid_argument("ordo::model::generate: the prompt is empty");
  if (o.max_new_tokens < 0) throw std::invalid_argument("ordo::model::generate: max_new_tokens < 0");
  if (!o.greedy && !(o.temperature > 0))
    throw std::invalid_argument("ordo::model::generate: temperature must be positive (or use greedy)");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("ordo::model::generate: top_p must be in (0, 1]");
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(o.seed);
  generation_result result;
  result.prompt_tokens = static_cast<std::int64_t>(prompt.size());
  if (o.max_new_tokens == 0) return result;
  const auto prompt_ids = torch::tensor(prompt, torch::kLong).unsqueeze(0);
  kv_cache cache;
  cache.reserve = result.prompt_tokens + o.max_new_tokens;  // the stores are made once
  std::optional<static_decoder> fixed;
  if (o.static_cache) fixed.emplace(lm, result.prompt_tokens + o.max_new_tokens);
  // The logits [1, vocab] of the last of `ids`, the head on that position only (the prompt's
  // other logits are never read).
  const auto last_logits = [&](const torch::Tensor& ids) { return lm->head(lm->hidden(ids, {}, &cache).select(1, -1)); };
  auto logits = fixed ? fixed->prefill(prompt_ids) : last_logits(prompt_ids);
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto id = choose_token(logits[0], o, generator);  // logits [1, vocab]
    result.tokens.push_back(id);
    if (on_token) on_token(id);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) {
      result.stopped = true;
      break;
    }
    if (step + 1 == o.max_new_tokens) break;  // the last token needs no logits
    const auto input = torch::tensor({id}, torch::kLong).unsqueeze(0);
    logits = fixed ? fixed->step(input) : last_logits(input);
  }
  return result;
}

/// Generates for every prompt at once: the prompts are left-padded to the longest (with
/// `pad_id`, masked out), each row stops on its own at a stop id, and the batch ends when every
/// row has stopped or after max_new_tokens. Row b samples from a generator seeded with
/// o.seed + b, so a row's result does not depend on the other prompts; greedy rows equal
/// generate() on the prompt alone up to floating-point rounding (RoPE depends only on relative
/// positions, so the padding's offset does not matter).
inline std::vector<generation_result> generate_batch(CausalLM& lm,
                                                     const std::vector<std::vector<std::int64_t>>& prompts,
                                                     const generation_options& o, std::int64_t pad_id = 0) {
  if (o.max_new_tokens < 0) throw std::invalid_argument("ordo::model::generate_batch: max_new_tokens < 0");
  if (!o.greedy && !(o.temperature > 0))
    throw std::invalid_argument("ordo::model::generate_batch: temperature must be positive (or use greedy)");
  if (!(o.top_p > 0 && o.top_p <= 1))
    throw std::invalid_argument("ordo::model::generate_batch: top_p must be in (0, 1]");
  std::vector<generation_result> results(prompts.size());
  if (prompts.empty()) return results;
  std::size_t longest = 0;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty())
      throw std::invalid_argument("ordo::model::generate_batch: prompt " + std::to_string(b) + " is empty");
    longest = std::max(longest, prompts[b].size());
    results[b].prompt_tokens = static_cast<std::int64_t>(prompts[b].size());
  }
  const auto B = static_cast<std::int64_t>(prompts.size());
  const auto P = std::max(static_cast<std::int64_t>(longest), o.pad_to);
  auto ids = torch::full({B, P}, pad_id, torch::kLong);
  auto mask = torch::zeros({B, P}, torch::kLong);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    const auto offset = P - static_cast<std::int64_t>(p.size());
    ids[b].slice(0, offset) = torch::tensor(p, torch::kLong);
    mask[b].slice(0, offset) = 1;
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::Generator> generators;
  for (std::int64_t b = 0; b < B; ++b)
    generators.push_back(at::detail::createCPUGenerator(o.seed + static_cast<std::uint64_t>(b)));
  std::vector<bool> done(prompts.size(), false);
  std::size_t running = prompts.size();
  kv_cache cache;
  cache.reserve = P + o.max_new_tokens;  // the stores are made once
  auto input = ids;
  for (std::int64_t step = 0; step < o.max_new_tokens && running > 0; ++step) {
    // The head on each row's last position only (the prompt's other logits are never read).
    auto last = lm->head(lm->hidden(input, mask, &cache).select(1, -1));  // [B, vocab]
    std::vector<std::int64_t> next(prompts.size(), pad_id);
    for (std::int64_t b = 0; b < B; ++b) {
      const auto i = static_cast<std::size_t>(b);
      if (done[i]) continue;
      const auto id = choose_token(last[b], o, generators[i]);
      results[i].tokens.push_back(id);
      next[i] = id;
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) {
        results[i].stopped = true;
        done[i] = true;
        --running;
      }
    }
    input = torch::tensor(next, torch::kLong).unsqueeze(1);
    mask = torch::cat({mask, torch::ones({B, 1}, torch::kLong)}, 1);
  }
  return results;
}

}  // namespace ordo::model
