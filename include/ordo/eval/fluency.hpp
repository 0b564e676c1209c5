// ordo/eval/fluency.hpp — the paper's fluency score of a generated answer (its eq. 3):
//
//   fluency = 1 - 1 / (1 + log2(PPL))
//
// where PPL is a scorer model's perplexity of the answer. The paper scores the response alone
// with DistilGPT2; ordo scores it with any CausalLM (by default the study's base model), and
// conditions it on the prompt as the model saw it:
//   - prompt ids: the chat template's rendering of the user prompt with the assistant header
//     (add_generation_prompt), encoded with special tokens parsed and no BOS added (the rendered
//     text carries its own); a model without a chat template gets the raw prompt text, encoded
//     with its special tokens (BOS where the tokenizer adds one);
//   - answer ids: the answer text, encoded without special tokens (a "<|im_end|>" written in the
//     answer is text), and without the end-of-turn token;
//   - only the answer tokens are scored: PPL = exp(mean negative log-likelihood of each answer
//     token given everything before it). With an empty prompt the first answer token is not
//     scored (nothing predicts it).
// Sequences longer than `context` tokens (default: the model's max_position_embeddings) are
// scored in chunks of context / 2 answer tokens, each predicted from the context tokens that
// end at its chunk's end.
//
// As written, eq. 3 grows with perplexity: PPL = 1 (every token certain) gives 0, PPL = 2 gives
// 0.5, PPL = 1024 gives 0.91, so an answer the scorer finds less predictable scores higher.
// ordo implements the equation as the paper states it; 1 - fluency = 1 / (1 + log2 PPL) is the
// decreasing form, and fluency_result keeps the perplexity, for whoever wants to report that.
//
//   auto lm = ordo::model::load_language_model();
//   auto f = ordo::eval::fluency(lm, "What is the capital of France?", "Paris.");  // f.value, f.ppl
#pragma once

#include <algorithm>    // std::max, std::min
#include <cmath>        // std::exp, std::log2, std::isfinite
#include <cstdint>      // std::int64_t
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <torch/torch.h>

#include <ordo/text/chat_template.hpp>    // ChatMessage
#include <ordo/model/decoder.hpp>         // CausalLM
#include <ordo/model/language_model.hpp>  // LanguageModel
#include <ordo/text/tokenizer.hpp>        // Tokenizer, EncodeOptions

namespace ordo::eval {

/// Eq. 3 of the paper: 1 - 1 / (1 + log2(ppl)); 0 at ppl = 1, increasing, below 1. Throws
/// std::invalid_argument for ppl < 1 or NaN (a perplexity is at least 1).
inline double fluency_from_perplexity(double ppl) {
  if (!(ppl >= 1.0))
    throw std::invalid_argument("ordo::eval::fluency_from_perplexity: a perplexity must be at least 1, got " +
                                std::to_string(ppl));
  if (!std::isfinite(ppl)) return 1.0;
  return 1.0 - 1.0 / (1.0 + std::log2(ppl));
}

struct fluency_options {
  std::int64_t context = 0;  ///< longest window fed to the model; 0: max_position_embeddings
};

struct fluency_result {
  std::int64_t tokens = 0;  ///< answer tokens scored
  double nll = 0;           ///< mean negative log-likelihood per scored token (nats)
  double ppl = 0;           ///< exp(nll)
  double value = 0;         ///< fluency_from_perplexity(ppl)
};

/// Fluency of `answer_ids` after `prompt_ids` (see the header comment).
inline fluency_result fluency(model::CausalLM& lm, const std::vector<std::int64_t>& prompt_ids,
                              const std::vector<std::int64_t>& answer_ids, const fluency_options& o = {}) {
  const std::int64_t context = o.context > 0 ? o.context : lm->config().max_position_embeddings;
  if (context < 2) throw std::invalid_argument("ordo::eval::fluency: context must be at least 2");
  if (answer_ids.empty()) throw std::invalid_argument("ordo::eval::fluency: the answer has no tokens");
  std::vector<std::int64_t> ids(prompt_ids);
  ids.insert(ids.end(), answer_ids.begin(), answer_ids.end());
  const auto n = static_cast<std::int64_t>(ids.size());
  const std::int64_t first = std::max<std::int64_t>(static_cast<std::int64_t>(prompt_ids.size()), 1);
  if (first >= n)
    throw std::invalid_argument("ordo::eval::fluency: nothing to score (a one-token answer needs a prompt before it)");
  const auto vocab = lm->config().vocab_size;
  for (const auto id : ids)
    if (id < 0 || id >= vocab)
      throw std::invalid_argument("ordo::eval::fluency: token id " + std::to_string(id) +
                                  " is outside the vocabulary (" + std::to_string(vocab) + ")");

  torch::NoGradGuard no_grad;
  const auto all = torch::tensor(ids, torch::kLong).to(lm->device());
  double nll_sum = 0;
  // Targets [t0, t1) predicted from the window [begin, t1): target t from logits at t - 1.
  const auto score = [&](std::int64_t t0, std::int64_t t1) {
    const std::int64_t begin = std::max<std::int64_t>(0, t1 - context);
    auto logits = lm->forward(all.slice(0, begin, t1).unsqueeze(0))[0];  // [t1 - begin, vocab]
    auto logp = torch::log_softmax(logits.slice(0, t0 - 1 - begin, t1 - 1 - begin).to(torch::kFloat64), -1);
    nll_sum -= logp.gather(1, all.slice(0, t0, t1).unsqueeze(1)).sum().item<double>();
  };
  if (n <= context) {
    score(first, n);
  } else {
    const std::int64_t chunk = std::max<std::int64_t>(context / 2, 1);
    for (std::int64_t t0 = first; t0 < n; t0 += chunk) score(t0, std::min(n, t0 + chunk));
  }
  fluency_result r;
  r.tokens = n - first;
  r.nll = nll_sum / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.nll);
  r.value = fluency_from_perplexity(std::max(r.ppl, 1.0));  // rounding may leave exp(0) just under 1
  return r;
}

/// The prompt ids fluency() conditions on: the chat rendering of `prompt` (see the header).
inline std::vector<std::int64_t> fluency_prompt_ids(const model::LanguageModel& m, std::string_view prompt) {
  std::vector<TokenId> ids;
  if (m.chat) {
    const std::vector<ChatMessage> messages{{"user", std::string(prompt)}};
    ids = m.tokenizer.encode(m.chat->render(messages, /*add_generation_prompt=*/true),
                             {.add_special_tokens = false, .parse_special = true});
  } else {
    ids = m.tokenizer.encode(prompt, {.add_special_tokens = true, .parse_special = true});
  }
  return {ids.begin(), ids.end()};
}

/// The answer ids fluency() scores: the answer as text, no special tokens.
inline std::vector<std::int64_t> fluency_answer_ids(const model::LanguageModel& m, std::string_view answer) {
  const auto ids = m.tokenizer.encode(answer, {.add_special_tokens = false, .parse_special = false});
  return {ids.begin(), ids.end()};
}

/// Fluency of `answer` as the reply to `prompt`, scored by `m`.
inline fluency_result fluency(model::LanguageModel& m, std::string_view prompt, std::string_view answer,
                              const fluency_options& o = {}) {
  return fluency(m.lm, fluency_prompt_ids(m, prompt), fluency_answer_ids(m, answer), o);
}

}  // namespace ordo::eval
