// The paper's fluency score (ordo/eval/fluency.hpp): eq. 3, and the perplexity of the answer
// tokens after the prompt, against a hand computation from a tiny random model's logits. The
// suite "model" scores answers with the default model and is skipped without it.
#include "../torch_doctest.hpp"
#include "../tiny_decoder.hpp"  // tiny_decoder

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <ordo/eval/fluency.hpp>
#include <ordo/model/language_model.hpp>

#include "../test_support.hpp"

using ordo::eval::fluency;
using ordo::eval::fluency_from_perplexity;

namespace {

ordo::model::CausalLM tiny_model(std::int64_t vocab, std::uint64_t seed, std::int64_t max_positions = 2048) {
  // larger random weights than the initializer's, so the model is far from uniform
  auto c = tiny_config(vocab, 48);
  c.max_position_embeddings = max_positions;
  return tiny_decoder(c, seed, 0.5);
}

std::vector<std::int64_t> random_ids(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  torch::manual_seed(seed);
  const auto t = torch::randint(vocab, {n}, torch::kLong);
  return {t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + n};
}

/// -log p(ids[t] | ids[begin..t)) from one forward pass over ids[begin..t).
double token_nll(ordo::model::CausalLM& lm, const std::vector<std::int64_t>& ids, std::int64_t begin, std::int64_t t) {
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> window(ids.begin() + begin, ids.begin() + t);
  const auto logits = lm->forward(torch::tensor(window, torch::kLong).unsqueeze(0))[0][-1].to(torch::kFloat64);
  const auto accessor = logits.accessor<double, 1>();
  double max = -INFINITY;
  for (std::int64_t v = 0; v < logits.size(0); ++v) max = std::max(max, accessor[v]);
  double sum = 0;
  for (std::int64_t v = 0; v < logits.size(0); ++v) sum += std::exp(accessor[v] - max);
  return -(accessor[ids[static_cast<std::size_t>(t)]] - max - std::log(sum));
}

}  // namespace

TEST_CASE("eq. 3: 0 at PPL 1, increasing, below 1") {
  CHECK(fluency_from_perplexity(1.0) == 0.0);
  CHECK(fluency_from_perplexity(2.0) == doctest::Approx(0.5));
  CHECK(fluency_from_perplexity(4.0) == doctest::Approx(2.0 / 3.0));
  CHECK(fluency_from_perplexity(1024.0) == doctest::Approx(10.0 / 11.0));
  CHECK(fluency_from_perplexity(INFINITY) == 1.0);
  double previous = -1;
  for (double ppl = 1.0; ppl < 1e6; ppl *= 1.37) {
    const double f = fluency_from_perplexity(ppl);
    CHECK(f > previous);
    CHECK((f >= 0 && f < 1));
    previous = f;
  }
  CHECK(error_of([] { fluency_from_perplexity(0.99); }) ==
        "ordo::eval::fluency_from_perplexity: a perplexity must be at least 1, got 0.990000");
  CHECK(error_of([] { fluency_from_perplexity(NAN); }).find("at least 1") != std::string::npos);
}

TEST_CASE("the answer tokens' perplexity after the prompt, by hand from the logits") {
  const std::int64_t vocab = 61;
  auto lm = tiny_model(vocab, 7);
  const auto prompt = random_ids(9, vocab, 1);
  const auto answer = random_ids(6, vocab, 2);
  std::vector<std::int64_t> all(prompt);
  all.insert(all.end(), answer.begin(), answer.end());

  double nll = 0;
  for (std::size_t t = prompt.size(); t < all.size(); ++t) nll += token_nll(lm, all, 0, static_cast<std::int64_t>(t));
  nll /= static_cast<double>(answer.size());
  const auto r = fluency(lm, prompt, answer);
  CHECK(r.tokens == 6);
  CHECK(r.nll == doctest::Approx(nll).epsilon(1e-5));
  CHECK(r.ppl == doctest::Approx(std::exp(nll)).epsilon(1e-5));
  CHECK(r.value == doctest::Approx(1.0 - 1.0 / (1.0 + std::log2(std::exp(nll)))).epsilon(1e-5));
  CHECK(r.ppl > 1.0);
  MESSAGE("tiny random model: answer NLL " << r.nll << ", PPL " << r.ppl << ", fluency " << r.value);

  // The prompt conditions the answer: other prompts give other scores.
  const auto other = fluency(lm, random_ids(9, vocab, 3), answer);
  CHECK(other.nll != doctest::Approx(r.nll).epsilon(1e-6));

  // Without a prompt the first answer token is not scored.
  double nll0 = 0;
  for (std::size_t t = 1; t < answer.size(); ++t) nll0 += token_nll(lm, answer, 0, static_cast<std::int64_t>(t));
  const auto alone = fluency(lm, {}, answer);
  CHECK(alone.tokens == 5);
  CHECK(alone.nll == doctest::Approx(nll0 / 5).epsilon(1e-5));
}

TEST_CASE("longer than the context: chunks of context / 2 answer tokens") {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab, 11);
  const auto prompt = random_ids(5, vocab, 4);
  const auto answer = random_ids(17, vocab, 5);
  std::vector<std::int64_t> all(prompt);
  all.insert(all.end(), answer.begin(), answer.end());
  const std::int64_t context = 8, n = static_cast<std::int64_t>(all.size());
  // Chunks of 4 targets from t0 = 5; each target t of chunk [t0, t1) sees ids[max(0, t1 - 8) .. t).
  double nll = 0;
  for (std::int64_t t0 = 5; t0 < n; t0 += 4) {
    const std::int64_t t1 = std::min(n, t0 + 4);
    for (std::int64_t t = t0; t < t1; ++t) nll += token_nll(lm, all, std::max<std::int64_t>(0, t1 - context), t);
  }
  const auto r = fluency(lm, prompt, answer, {.context = context});
  CHECK(r.tokens == 17);
  CHECK(r.nll == doctest::Approx(nll / 17).epsilon(1e-5));
  // With the context from the model's config (2048) everything is one window, and differs.
  CHECK(fluency(lm, prompt, answer).nll != doctest::Approx(r.nll).epsilon(1e-6));
  auto short_model = tiny_model(vocab, 11, /*max_positions=*/8);
  CHECK(fluency(short_model, prompt, answer).nll == doctest::Approx(r.nll).epsilon(1e-9));
}

TEST_CASE("a uniform model scores PPL = vocabulary size; a certain one PPL 1, fluency 0") {
  const std::int64_t vocab = 17;
  auto lm = tiny_model(vocab, 3);
  const std::vector<std::int64_t> answer(8, 5);
  {
    // Layers that add nothing (all their weights zero), so the final hidden state is the token's
    // embedding; every embedding is e0, and the LM head is zero: every logit is 0.
    torch::NoGradGuard no_grad;
    for (auto& item : lm->named_parameters())
      if (item.key().rfind("model.layers.", 0) == 0) item.value().zero_();
    lm->model->embed_tokens->weight.zero_();
    lm->model->embed_tokens->weight.select(1, 0).fill_(1.0);
    lm->model->norm->weight.fill_(1.0);
    REQUIRE(lm->lm_head);
    lm->lm_head->weight.zero_();
  }
  const auto uniform = fluency(lm, {1, 2, 3}, answer);
  CHECK(uniform.ppl == doctest::Approx(17.0).epsilon(1e-9));
  CHECK(uniform.value == doctest::Approx(1.0 - 1.0 / (1.0 + std::log2(17.0))).epsilon(1e-9));
  {
    // Now the head's row for token 5 reads e0 (the normalized state is sqrt(32) e0) with weight
    // 100: token 5's logit is about 566, the others 0, so p(5) = 1 to double precision.
    torch::NoGradGuard no_grad;
    lm->lm_head->weight[5][0] = 100.0;
  }
  const auto certain = fluency(lm, {1, 2, 3}, answer);
  CHECK(certain.nll == doctest::Approx(0.0));
  CHECK(certain.ppl == doctest::Approx(1.0));
  CHECK(certain.value == doctest::Approx(0.0));
  CHECK(certain.value < uniform.value);  // eq. 3 grows with perplexity
}

TEST_CASE("errors") {
  auto lm = tiny_model(31, 5);
  CHECK(error_of([&] { fluency(lm, {1, 2}, {}); }) == "ordo::eval::fluency: the answer has no tokens");
  CHECK(error_of([&] { fluency(lm, {}, {4}); }) ==
        "ordo::eval::fluency: nothing to score (a one-token answer needs a prompt before it)");
  CHECK(error_of([&] { fluency(lm, {1}, {31}); }) == "ordo::eval::fluency: token id 31 is outside the vocabulary (31)");
  CHECK(error_of([&] { fluency(lm, {1}, {2}, {.context = 1}); }) == "ordo::eval::fluency: context must be at least 2");
}

// The default model scores a fitting answer and the same words shuffled: the fitting one has
// the lower perplexity, and so, by eq. 3 as written, the lower fluency.
TEST_CASE("default model" * doctest::test_suite("model")) {
  const auto path = ordo::model::default_model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  auto m = ordo::model::load_language_model(path);
  REQUIRE(m.chat.has_value());
  const std::string prompt = "What is the capital of France?";
  const auto good = fluency(m, prompt, "The capital of France is Paris.");
  const auto shuffled = fluency(m, prompt, "France Paris of is capital the.");
  MESSAGE("SmolLM2-135M: \"The capital of France is Paris.\" PPL "
          << good.ppl << " fluency " << good.value << " (" << good.tokens << " tokens); shuffled PPL " << shuffled.ppl
          << " fluency " << shuffled.value);
  CHECK(good.ppl < shuffled.ppl);
  CHECK(good.value < shuffled.value);
  // The prompt ids are the chat rendering with the assistant header, without a second BOS.
  const auto ids = ordo::eval::fluency_prompt_ids(m, prompt);
  const auto text = m.chat->render({{"user", prompt}}, true);
  const auto expected = m.tokenizer.encode(text, {.add_special_tokens = false, .parse_special = true});
  CHECK(ids == std::vector<std::int64_t>(expected.begin(), expected.end()));
  CHECK(text.substr(text.size() - 22) == "<|im_start|>assistant\n");
  CHECK(ordo::eval::fluency_answer_ids(m, "<|im_end|>").size() > 1);  // written, not the special token
}
