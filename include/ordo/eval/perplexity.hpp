// ordo/eval/perplexity.hpp — perplexity of a causal LM on a token sequence.
//
// Protocols (both token-weighted: every scored token counts once):
//   sliding  windows of `context` tokens advancing by `stride`; each window scores only the
//            tokens no earlier window scored, with everything before them in the window as
//            context (transformers' documented strided protocol). stride == context gives
//            disjoint windows; smaller strides give each token more context.
//   halves   disjoint chunks of `context` tokens, scoring the second half of each chunk only
//            (llama.cpp's `perplexity` tool), so that its figures can be compared.
// The first token of the text is never scored (nothing predicts it).
#pragma once

#include <cmath>       // std::exp
#include <cstdint>     // std::int64_t
#include <functional>  // std::function
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>  // CausalLM

namespace ordo::eval {

enum class perplexity_protocol { sliding, halves };

struct perplexity_options {
  std::int64_t context = 512;
  std::int64_t stride = 256;  // sliding only
  perplexity_protocol protocol = perplexity_protocol::sliding;
  std::int64_t max_tokens = 0;  // score at most this many tokens (0: all)
};

struct perplexity_result {
  std::int64_t tokens = 0;  // tokens scored
  double nll = 0;           // mean negative log-likelihood per scored token (nats)
  double ppl = 0;           // exp(nll)
};

/// `progress(done, total)` is called after each window with scored-token counts.
inline perplexity_result perplexity(model::CausalLM& lm, const std::vector<std::int64_t>& ids,
                                    const perplexity_options& o,
                                    const std::function<void(std::int64_t, std::int64_t)>& progress = {}) {
  if (o.context < 2) throw std::invalid_argument("ordo::eval::perplexity: context must be at least 2");
  if (o.protocol == perplexity_protocol::sliding && (o.stride < 1 || o.stride > o.context))
    throw std::invalid_argument("ordo::eval::perplexity: stride must be within [1, context]");
  if (ids.size() < 2) throw std::invalid_argument("ordo::eval::perplexity: the text has fewer than 2 tokens");
  torch::NoGradGuard no_grad;
  const auto all = torch::tensor(ids, torch::kLong).to(lm->device());
  const auto n = static_cast<std::int64_t>(ids.size());
  double nll_sum = 0;
  std::int64_t scored = 0;
  const std::int64_t budget = o.max_tokens > 0 ? o.max_tokens : n;
  const std::int64_t total = std::min<std::int64_t>(budget, o.protocol == perplexity_protocol::sliding ? n - 1 : n);

  // Scores targets [from, to) of the window [begin, end): token t is predicted at t - 1.
  auto score = [&](std::int64_t begin, std::int64_t end, std::int64_t from, std::int64_t to) {
    to = std::min(to, from + (budget - scored));
    if (to <= from) return;
    auto logits = lm->forward(all.slice(0, begin, end).unsqueeze(0))[0];  // [len, vocab]
    auto logp = torch::log_softmax(logits.slice(0, from - 1 - begin, to - 1 - begin), -1);
    auto targets = all.slice(0, from, to);
    nll_sum -= logp.gather(1, targets.unsqueeze(1)).sum().item<double>();
    scored += to - from;
    if (progress) progress(scored, total);
  };

  if (o.protocol == perplexity_protocol::sliding) {
    std::int64_t done = 1;  // targets [1, done) are scored
    for (std::int64_t begin = 0; done < n && scored < budget; begin += o.stride) {
      const std::int64_t end = std::min(begin + o.context, n);
      score(begin, end, std::max(done, begin + 1), end);
      done = end;
    }
  } else {
    for (std::int64_t begin = 0; begin + o.context <= n && scored < budget; begin += o.context)
      score(begin, begin + o.context, begin + o.context / 2, begin + o.context);
    if (scored == 0) throw std::invalid_argument("ordo::eval::perplexity: the text is shorter than one context");
  }
  perplexity_result r;
  r.tokens = scored;
  r.nll = nll_sum / static_cast<double>(scored);
  r.ppl = std::exp(r.nll);
  return r;
}

}  // namespace ordo::eval
