// ordo/model/generate.hpp — text generation with a KV cache: greedy, or sampling with
// temperature and nucleus (top-p) filtering from a seeded generator; stops at stop tokens.
#pragma once

#include <cstdint>     // std::int64_t, std::uint64_t
#include <functional>  // std::function
#include <stdexcept>   // std::invalid_argument
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>  // CausalLM, kv_cache

namespace ordo::model {

struct generation_options {
  std::int64_t max_new_tokens = 128;
  bool greedy = false;
  double temperature = 0.7;
  double top_p = 0.9;
  std::uint64_t seed = 0;
  std::vector<std::int64_t> stop_ids;  // generation ends after producing one of these
};

/// What generation produced: the new token ids (a final stop id included) and why it ended.
struct generation_result {
  std::vector<std::int64_t> tokens;
  bool stopped = false;  // true: a stop id; false: max_new_tokens reached
  std::int64_t prompt_tokens = 0;
};

/// The id to emit from the last position's logits [vocab] (fp32).
inline std::int64_t choose_token(const torch::Tensor& logits, const generation_options& o,
                                 torch::Generator& generator) {
  if (o.greedy) return logits.argmax().item<std::int64_t>();
  auto probs = torch::softmax(logits / o.temperature, -1);
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
inline generation_result generate(CausalLM& lm, const std::vector<std::int64_t>& prompt,
                                  const generation_options& o,
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
  kv_cache cache;
  auto input = torch::tensor(prompt, torch::kLong).unsqueeze(0);
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    auto logits = lm->forward(input, {}, &cache);
    const auto id = choose_token(logits[0][-1], o, generator);
    result.tokens.push_back(id);
    if (on_token) on_token(id);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) {
      result.stopped = true;
      break;
    }
    input = torch::tensor({id}, torch::kLong).unsqueeze(0);
  }
  return result;
}

}  // namespace ordo::model
