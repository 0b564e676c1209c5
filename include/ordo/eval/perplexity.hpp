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
//
// Of examples (`perplexity(lm, examples, o)`): each ordo::Example is its own context (a
// conversation, say), and only its labelled tokens count (labels[t] != -100, t > 0: the
// assistant's replies of a chat encoded with data::Scoring::assistant), token-weighted over all
// the examples.
//
// Data-parallel (eval/shard.hpp): given a shard, each rank scores its share of the windows (or
// batches), dealt out round-robin, and every rank returns the figures of the whole text, equal
// to one process's to the last bit (each window is one forward pass wherever it runs, and the
// windows' sums are added in window order).
#pragma once

#include <cmath>       // std::exp
#include <cstdint>     // std::int64_t
#include <functional>  // std::function
#include <span>        // std::span
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/data/batch.hpp>     // batches, ignore_index
#include <ordo/data/example.hpp>   // Example
#include <ordo/eval/shard.hpp>    // shard
#include <ordo/model/decoder.hpp>  // CausalLM

namespace ordo::eval {

enum class perplexity_protocol { sliding, halves };

struct perplexity_options {
  std::int64_t context = 512;
  std::int64_t stride = 256;  // sliding only
  perplexity_protocol protocol = perplexity_protocol::sliding;
  std::int64_t max_tokens = 0;  // score at most this many tokens (0: all)
  /// Score each window as batch-1 generation runs: the context before its first target as one
  /// prefill, then one token at a time through the KV cache (on the CPU in fp32 the one-token
  /// path, where a compact head and the NF4 GEMV's arithmetic act on every scored token). The
  /// same windows and targets; about a token's decode time per scored token.
  bool decode = false;
  /// The LM head only on the positions that predict a scored token (not on a window's context):
  /// with context = 2 x stride 10-25 % less time on SmolLM2-135M (measured), whose head is a fifth
  /// of its FLOPs. Opt-in: the head's matrix product then has fewer rows, and BLAS sums depend on
  /// the number of rows (OpenBLAS), so the figures differ in the last digits (~1e-7 relative).
  bool scored_logits_only = false;
};

struct perplexity_result {
  std::int64_t tokens = 0;  // tokens scored
  double nll = 0;           // mean negative log-likelihood per scored token (nats)
  double ppl = 0;           // exp(nll)
};

/// `progress(done, total)` is called after each window with scored-token counts.
namespace detail {

// The result of `scored` targets whose negative log-likelihoods sum to `nll_sum`. A non-finite
// value means NaN or Inf logits (a corrupt or diverged model): an error, never a number.
inline perplexity_result perplexity_of(double nll_sum, std::int64_t scored) {
  perplexity_result r;
  r.tokens = scored;
  r.nll = nll_sum / static_cast<double>(scored);
  r.ppl = std::exp(r.nll);
  if (!std::isfinite(r.nll) || !std::isfinite(r.ppl))
    throw std::runtime_error("ordo::eval::perplexity: the mean negative log-likelihood over " + std::to_string(scored) +
                             " tokens is " + std::to_string(r.nll) +
                             ", not a finite perplexity: the model's logits are not finite (a corrupt or diverged "
                             "model)");
  return r;
}

}  // namespace detail

inline perplexity_result perplexity(model::CausalLM& lm, const std::vector<std::int64_t>& ids,
                                    const perplexity_options& o,
                                    const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                                    const shard& among = {}) {
  if (o.context < 2) throw std::invalid_argument("ordo::eval::perplexity: context must be at least 2");
  if (o.protocol == perplexity_protocol::sliding && (o.stride < 1 || o.stride > o.context))
    throw std::invalid_argument("ordo::eval::perplexity: stride must be within [1, context]");
  if (ids.size() < 2) throw std::invalid_argument("ordo::eval::perplexity: the text has fewer than 2 tokens");
  const auto n = static_cast<std::int64_t>(ids.size());
  const std::int64_t budget = o.max_tokens > 0 ? o.max_tokens : n;

  // The windows: score targets [from, to) of the tokens [begin, end); token t is predicted at t - 1.
  struct window {
    std::int64_t begin, end, from, to;
  };
  std::vector<window> windows;
  std::int64_t total = 0;
  auto add = [&](std::int64_t begin, std::int64_t end, std::int64_t from, std::int64_t to) {
    to = std::min(to, from + (budget - total));
    if (to <= from) return;
    windows.push_back({begin, end, from, to});
    total += to - from;
  };
  if (o.protocol == perplexity_protocol::sliding) {
    std::int64_t done = 1;  // targets [1, done) are scored
    for (std::int64_t begin = 0; done < n && total < budget; begin += o.stride) {
      const std::int64_t end = std::min(begin + o.context, n);
      add(begin, end, std::max(done, begin + 1), end);
      done = end;
    }
  } else {
    for (std::int64_t begin = 0; begin + o.context <= n && total < budget; begin += o.context)
      add(begin, begin + o.context, begin + o.context / 2, begin + o.context);
    if (windows.empty()) throw std::invalid_argument("ordo::eval::perplexity: the text is shorter than one context");
  }

  torch::NoGradGuard no_grad;
  const auto all = torch::tensor(ids, torch::kLong).to(lm->device());
  std::vector<double> nll(windows.size(), 0.0);  // per window: the sum of its targets' NLL
  std::int64_t scored = 0;                       // by this rank
  for (std::size_t i = 0; i < windows.size(); ++i) {
    if (!among.mine(i)) continue;
    const auto& w = windows[i];
    if (o.decode) {
      // logits at position t predict token t + 1: a prefill through from - 1, then the tokens
      // from .. to - 2 one at a time
      model::kv_cache cache;
      cache.reserve = w.to - 1 - w.begin;  // every position the window feeds
      auto logits = lm->forward(all.slice(0, w.begin, w.from).unsqueeze(0), {}, &cache)[0][-1];
      double sum = 0;
      for (std::int64_t t = w.from; t < w.to; ++t) {
        sum -= torch::log_softmax(logits, -1)[all[t].item<std::int64_t>()].item<double>();
        if (t + 1 < w.to) logits = lm->forward(all.slice(0, t, t + 1).unsqueeze(0), {}, &cache)[0][-1];
      }
      nll[i] = sum;
    } else {
      torch::Tensor logits;  // [to - from, vocab]: the rows that predict the window's targets
      if (o.scored_logits_only) {
        const auto h = lm->hidden(all.slice(0, w.begin, w.end).unsqueeze(0))[0];  // [len, hidden]
        logits = lm->head(h.slice(0, w.from - 1 - w.begin, w.to - 1 - w.begin));
      } else {
        logits = lm->forward(all.slice(0, w.begin, w.end).unsqueeze(0))[0].slice(0, w.from - 1 - w.begin,
                                                                                   w.to - 1 - w.begin);
      }
      auto logp = torch::log_softmax(logits, -1);
      nll[i] = -logp.gather(1, all.slice(0, w.from, w.to).unsqueeze(1)).sum().item<double>();
    }
    scored += w.to - w.from;
    if (progress) progress(scored * among.size, total);
  }
  among.reduce(nll);
  double nll_sum = 0;
  for (const double v : nll) nll_sum += v;
  return detail::perplexity_of(nll_sum, total);
}

struct example_perplexity_options {
  std::int64_t batch_size = 4;  // examples per forward pass (right-padded)
  std::int64_t max_tokens = 0;  // score at most this many tokens, in example order (0: all)
  /// The LM head only on the positions that predict a labelled token (as perplexity_options').
  bool scored_logits_only = false;
};

/// Perplexity over the labelled tokens of `examples`, each example its own context. With
/// `max_tokens`, the examples are taken in order until that many targets are scored (the last
/// one cut short). `progress(done, total)` is called after each batch with scored-token counts.
inline perplexity_result perplexity(model::CausalLM& lm, std::span<const Example> examples,
                                    const example_perplexity_options& o,
                                    const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                                    const shard& among = {}) {
  if (o.batch_size < 1) throw std::invalid_argument("ordo::eval::perplexity: batch_size must be at least 1");
  if (o.max_tokens < 0) throw std::invalid_argument("ordo::eval::perplexity: max_tokens must not be negative");
  // The examples that fit the budget, the last one's labels past the budget cleared.
  std::vector<Example> kept;
  std::int64_t total = 0;
  for (const auto& e : examples) {
    if (o.max_tokens > 0 && total >= o.max_tokens) break;
    Example cut = e;
    for (std::size_t t = 1; t < cut.labels.size(); ++t) {
      if (cut.labels[t] == data::ignore_index) continue;
      if (o.max_tokens > 0 && total >= o.max_tokens)
        cut.labels[t] = data::ignore_index;
      else
        ++total;
    }
    if (!cut.labels.empty()) cut.labels[0] = data::ignore_index;
    kept.push_back(std::move(cut));
  }
  if (total == 0) throw std::invalid_argument("ordo::eval::perplexity: the examples score no token");
  torch::NoGradGuard no_grad;
  const auto batches = data::batches(kept, o.batch_size);
  std::vector<double> nll(batches.size(), 0.0);  // per batch: the sum of its targets' NLL
  std::int64_t scored = 0, everyone = 0;         // by this rank, by all
  for (const auto& b : batches) everyone += b.scored_tokens;
  // Right padding needs no attention mask: causal attention never lets a real token see the
  // padding after it.
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto& b = batches[i];
    if (b.scored_tokens == 0 || !among.mine(i)) continue;
    const auto labels = b.labels.slice(1, 1).reshape({-1}).to(lm->device());
    const auto scored_at = labels != data::ignore_index;  // the rows that predict a target
    torch::Tensor logits;                                  // of those rows
    if (o.scored_logits_only) {
      const auto h = lm->hidden(b.ids);  // [B, T, hidden]
      logits = lm->head(h.slice(1, 0, h.size(1) - 1).reshape({-1, h.size(-1)}).index({scored_at}));
    } else {
      const auto all = lm->forward(b.ids);  // [B, T, vocab], fp32
      logits = all.slice(1, 0, all.size(1) - 1).reshape({-1, all.size(-1)}).index({scored_at});
    }
    const auto logp = torch::log_softmax(logits, -1);
    nll[i] = -logp.gather(1, labels.index({scored_at}).unsqueeze(1)).sum().item<double>();
    scored += b.scored_tokens;
    if (progress) progress(scored * among.size, total);
  }
  among.reduce(nll);
  double nll_sum = 0;
  for (const double v : nll) nll_sum += v;
  return detail::perplexity_of(nll_sum, everyone);
}

}  // namespace ordo::eval
