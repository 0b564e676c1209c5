// Perplexity of examples (ordo/eval/perplexity.hpp): only the labelled tokens count, each example
// its own context, the same figure whatever the batching; checked against a hand computation from
// one unpadded forward pass per example, and against the sliding protocol on a single text.
#include "../torch_doctest.hpp"
#include "../tiny_decoder.hpp"  // tiny_decoder

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ordo/eval/perplexity.hpp>

#include "../test_support.hpp"

namespace {

ordo::model::CausalLM tiny_model(std::int64_t vocab) {
  return tiny_decoder(tiny_config(vocab, 48), 11, 0.5);
}

// Examples of unequal lengths (5..19 tokens); in each, a random half of the targets labelled.
std::vector<ordo::Example> examples(std::int64_t vocab, int n) {
  torch::manual_seed(5);
  std::vector<ordo::Example> out;
  for (int i = 0; i < n; ++i) {
    const auto len = 5 + (7 * i) % 15;
    const auto ids = torch::randint(1, vocab, {len}, torch::kLong);
    const auto keep = torch::rand({len}) < 0.5;
    ordo::Example e;
    for (std::int64_t t = 0; t < len; ++t) {
      e.ids.push_back(ids[t].item<std::int64_t>());
      e.labels.push_back(t > 0 && keep[t].item<bool>() ? e.ids.back() : ordo::data::ignore_index);
    }
    e.labels[1] = e.ids[1];  // each example scores at least one token
    out.push_back(std::move(e));
  }
  return out;
}

// Sum of -log p(label[t] | ids[<t]) and the count, from one unpadded forward pass per example,
// in fp64, over at most `budget` targets in order (0: all).
std::pair<double, std::int64_t> by_hand(ordo::model::CausalLM& lm, const std::vector<ordo::Example>& xs,
                                        std::int64_t budget = 0) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  std::int64_t n = 0;
  for (const auto& e : xs) {
    const auto logp = torch::log_softmax(
        lm->forward(torch::tensor(e.ids, torch::kLong).unsqueeze(0))[0].to(torch::kFloat64), -1);
    for (std::size_t t = 1; t < e.ids.size(); ++t) {
      if (e.labels[t] == ordo::data::ignore_index) continue;
      if (budget > 0 && n >= budget) return {sum, n};
      sum -= logp[static_cast<std::int64_t>(t) - 1][e.labels[t]].item<double>();
      ++n;
    }
  }
  return {sum, n};
}

// On a 90-token text (the windows: context 24, stride 10, 70 tokens scored), for the sliding
// and the halves protocol: check(default figures, figures with `change` applied to the options).
template <class Change, class Check>
void for_both_protocols(const Change& change, const Check& check) {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < 90; ++i) ids.push_back((i * 17 + 3) % vocab);
  for (const auto protocol : {ordo::eval::perplexity_protocol::sliding, ordo::eval::perplexity_protocol::halves}) {
    CAPTURE(static_cast<int>(protocol));
    ordo::eval::perplexity_options o{.context = 24, .stride = 10, .protocol = protocol, .max_tokens = 70};
    const auto before = ordo::eval::perplexity(lm, ids, o);
    change(o);
    check(before, ordo::eval::perplexity(lm, ids, o));
  }
}

}  // namespace

TEST_CASE("only labelled tokens count, each example its own context, whatever the batching") {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  const auto xs = examples(vocab, 9);
  const auto [sum, n] = by_hand(lm, xs);
  REQUIRE(n > 9);
  for (std::int64_t batch : {1, 2, 4, 9, 16}) {
    CAPTURE(batch);
    const auto r = ordo::eval::perplexity(lm, xs, {.batch_size = batch});
    CHECK(r.tokens == n);
    CHECK(r.nll == doctest::Approx(sum / static_cast<double>(n)).epsilon(1e-5));
    CHECK(r.ppl == doctest::Approx(std::exp(sum / static_cast<double>(n))).epsilon(1e-5));
  }
  // A label at the first position is never scored (nothing predicts it).
  auto first = xs;
  for (auto& e : first) e.labels[0] = e.ids[0];
  CHECK(ordo::eval::perplexity(lm, first, {.batch_size = 3}).tokens == n);
}

TEST_CASE("max_tokens takes the examples in order and cuts the last one short") {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  const auto xs = examples(vocab, 9);
  for (std::int64_t budget : {1, 7, 20}) {
    CAPTURE(budget);
    const auto [sum, n] = by_hand(lm, xs, budget);
    REQUIRE(n == budget);
    std::vector<std::int64_t> done;
    const auto r = ordo::eval::perplexity(lm, xs, {.batch_size = 4, .max_tokens = budget},
                                          [&](std::int64_t d, std::int64_t total) {
                                            CHECK(total == budget);
                                            done.push_back(d);
                                          });
    CHECK(r.tokens == budget);
    CHECK(r.nll == doctest::Approx(sum / static_cast<double>(n)).epsilon(1e-5));
    REQUIRE(!done.empty());
    CHECK(done.back() == budget);
  }
}

TEST_CASE("one fully labelled example: the sliding protocol's figure") {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  auto xs = examples(vocab, 1);
  xs[0].ids.resize(19, 3);
  xs[0].labels = xs[0].ids;
  const auto sliding = ordo::eval::perplexity(lm, xs[0].ids, {.context = 64, .stride = 64});
  const auto r = ordo::eval::perplexity(lm, xs, {});
  CHECK(r.tokens == 18);
  CHECK(sliding.tokens == 18);
  CHECK(r.nll == doctest::Approx(sliding.nll).epsilon(1e-6));
}

TEST_CASE("decode: scoring token by token through the KV cache gives the windows' figures") {
  for_both_protocols([](ordo::eval::perplexity_options& o) { o.decode = true; },
                     [](const ordo::eval::perplexity_result& windows, const ordo::eval::perplexity_result& decoded) {
                       CHECK(decoded.tokens == windows.tokens);
                       CHECK(decoded.nll == doctest::Approx(windows.nll).epsilon(1e-5));
                       CHECK(decoded.nll != windows.nll);  // it ran another way (fp32 sums in another order)
                     });
}

TEST_CASE("scored_logits_only: the LM head on the scored positions only gives the same figures") {
  for_both_protocols([](ordo::eval::perplexity_options& o) { o.scored_logits_only = true; },
                     [](const ordo::eval::perplexity_result& all, const ordo::eval::perplexity_result& scored) {
                       CHECK(scored.tokens == all.tokens);
                       CHECK(scored.nll == doctest::Approx(all.nll).epsilon(1e-6));
                     });
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  const auto xs = examples(vocab, 9);
  const auto [sum, n] = by_hand(lm, xs);
  for (std::int64_t batch : {1, 4, 9}) {
    CAPTURE(batch);
    const auto r = ordo::eval::perplexity(lm, xs, {.batch_size = batch, .scored_logits_only = true});
    CHECK(r.tokens == n);
    CHECK(r.nll == doctest::Approx(sum / static_cast<double>(n)).epsilon(1e-5));
  }
}

TEST_CASE("bad arguments are errors") {
  const std::int64_t vocab = 53;
  auto lm = tiny_model(vocab);
  auto xs = examples(vocab, 2);
  CHECK(error_of([&] { ordo::eval::perplexity(lm, xs, {.batch_size = 0}); }).find("batch_size") != std::string::npos);
  CHECK(error_of([&] { ordo::eval::perplexity(lm, xs, {.max_tokens = -1}); }).find("max_tokens") != std::string::npos);
  for (auto& e : xs) e.labels.assign(e.ids.size(), ordo::data::ignore_index);
  CHECK(error_of([&] { ordo::eval::perplexity(lm, xs, {}); }) == "ordo::eval::perplexity: the examples score no token");
  CHECK(error_of([&] { ordo::eval::perplexity(lm, std::vector<ordo::Example>{}, {}); }).find("score no token") !=
        std::string::npos);
  xs = examples(vocab, 2);
  xs[0].labels.pop_back();  // data::collate's check
  CHECK(error_of([&] { ordo::eval::perplexity(lm, xs, {}); }).find("labels") != std::string::npos);
  // A NaN weight: an error on both protocols, never a perplexity of NaN.
  xs = examples(vocab, 2);
  {
    torch::NoGradGuard no_grad;
    lm->named_parameters()["model.norm.weight"][0] = std::numeric_limits<float>::quiet_NaN();
  }
  CHECK(error_of([&] { ordo::eval::perplexity(lm, xs, {}); }).find("not a finite perplexity") != std::string::npos);
  std::vector<std::int64_t> ids(40);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i % vocab);
  CHECK(error_of([&] { ordo::eval::perplexity(lm, ids, {.context = 16, .stride = 8}); })
            .find("not a finite perplexity") != std::string::npos);
}
