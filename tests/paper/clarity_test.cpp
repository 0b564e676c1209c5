// The study's answer-quality metrics (paper/clarity.hpp) on the embedded default model: answers
// generated in one batch equal each prompt generated alone, each metric lies in its range and
// equals its definition, and the prompts file is validated. The model part (suite "model")
// skips when the default model is not installed; coherence is checked when MiniLM is installed.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // error_of, skip_unless_installed

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ordo/model/language_model.hpp>
#include <ordo/paper/clarity.hpp>

namespace fs = std::filesystem;

namespace {
fs::path write(const std::string& name, const std::string& text) {
  const auto p = fs::temp_directory_path() / ("ordo_test_clarity_" + name);
  std::ofstream(p) << text;
  return p;
}
}  // namespace

TEST_CASE("the prompts file: JSONL objects with a prompt and an optional reference; errors name file and line") {
  const auto ok = write("ok.jsonl", "{\"prompt\": \"Hi?\", \"reference\": \"Hello.\"}\n\n{\"prompt\": \"Why?\"}\n");
  const auto p = ordo::study::read_clarity_prompts(ok);
  REQUIRE(p.size() == 2);
  CHECK(p[0].reference == "Hello.");
  CHECK(p[1].reference.empty());
  const auto shipped = ordo::study::read_clarity_prompts(ordo::study::default_clarity_prompts());
  CHECK(shipped.size() >= 16);
  for (const auto& q : shipped) CHECK_FALSE(q.reference.empty());
  const auto bad = write("bad.jsonl", "{\"prompt\": \"a\"}\n[1, 2]\n");
  CHECK(error_of([&] { ordo::study::read_clarity_prompts(bad); }) == bad.string() + ":2: not a JSON object");
  const auto empty_prompt = write("empty.jsonl", "{\"prompt\": \"\"}\n");
  CHECK(error_of([&] { ordo::study::read_clarity_prompts(empty_prompt); }) ==
        empty_prompt.string() + ":1: \"prompt\" must be a non-empty string");
  const auto bad_ref = write("ref.jsonl", "{\"prompt\": \"a\", \"reference\": 3}\n");
  CHECK(error_of([&] { ordo::study::read_clarity_prompts(bad_ref); }).find(":1: \"reference\" must be a string") !=
        std::string::npos);
  CHECK(error_of([&] { ordo::study::read_clarity_prompts(write("none.jsonl", "\n")); }).find(": no prompts") !=
        std::string::npos);
  CHECK(error_of([&] { ordo::study::read_clarity_prompts("/nonexistent/p.jsonl"); }) ==
        "/nonexistent/p.jsonl: cannot open the prompts file");
}

// The suite "model" (ctest paper.clarity.model) needs the default model.
TEST_CASE("clarity on the default model: batch answers, metric ranges and definitions" * doctest::test_suite("model")) {
  const auto path = ordo::model::default_model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  at::set_num_threads(2);
  const auto base = ordo::DenseModel::load(path);
  auto prompts = ordo::study::read_clarity_prompts(ordo::study::default_clarity_prompts());
  std::optional<ordo::eval::SentenceEncoder> encoder;
  try {
    encoder = ordo::eval::SentenceEncoder::load();
  } catch (const std::exception& e) {
    MESSAGE("MiniLM not installed, coherence not checked: " << e.what());
  }
  ordo::study::clarity_evaluator eval(base, prompts, {.prompts = 3, .max_new_tokens = 24},
                                      encoder ? &*encoder : nullptr);
  CHECK(eval.prompt_count() == 3);
  const auto f = eval.evaluate(base);
  REQUIRE(f.answers.size() == 3);
  CHECK(f.answers[0].answer.find("Paris") != std::string::npos);  // "What is the capital of France?"

  // Batch answers equal each prompt generated alone (greedy).
  auto lm = const_cast<ordo::DenseModel&>(base).lm();
  ordo::model::generation_options g;
  g.greedy = true;
  g.max_new_tokens = 24;
  g.stop_ids = {*base.tokenizer().token_id("<|im_end|>")};
  if (auto eos = base.tokenizer().eos_id()) g.stop_ids.push_back(*eos);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    const auto& s = f.answers[i];
    const auto ids = base.tokenizer().encode(base.chat_template()->render({{"user", prompts[i].prompt}}, true),
                                             {.add_special_tokens = false, .parse_special = true});
    auto alone = ordo::model::generate(lm, std::vector<std::int64_t>(ids.begin(), ids.end()), g);
    if (alone.stopped) alone.tokens.pop_back();
    CHECK(s.answer ==
          base.tokenizer().decode(std::vector<ordo::TokenId>(alone.tokens.begin(), alone.tokens.end()), true));
    CHECK(s.tokens == static_cast<std::int64_t>(alone.tokens.size()));

    // Each part is its definition.
    CHECK(s.flesch == doctest::Approx(ordo::eval::flesch_reading_ease(s.answer)));
    CHECK(s.readability == doctest::Approx(std::clamp(s.flesch, 0.0, 100.0) / 100.0));
    ordo::model::LanguageModel scorer{lm, base.tokenizer(), base.chat_template(), base.source()};
    const auto fl = ordo::eval::fluency(scorer, s.prompt, s.answer);
    CHECK(s.perplexity == doctest::Approx(fl.ppl));
    CHECK(s.fluency == doctest::Approx(1.0 / (1.0 + std::log2(fl.ppl))));
    CHECK(s.fluency_eq3 == doctest::Approx(1.0 - s.fluency));
    if (encoder) {
      CHECK(s.coherence_cosine == doctest::Approx(encoder->coherence(s.prompt, s.answer)));
      CHECK(s.clarity == doctest::Approx((s.readability + s.fluency + s.coherence) / 3));
    } else {
      CHECK(s.clarity == doctest::Approx((s.readability + s.fluency) / 2));
    }
    for (double v : {s.readability, s.fluency, s.coherence, s.clarity}) {
      CHECK(v >= 0.0);
      CHECK(v <= 1.0);
    }
  }
  CHECK(f.clarity == doctest::Approx((f.answers[0].clarity + f.answers[1].clarity + f.answers[2].clarity) / 3));
  MESSAGE("clarity " << f.clarity << " fluency " << f.fluency << " coherence " << f.coherence << " readability "
                     << f.readability << " in " << f.seconds << " s; answer 0: " << f.answers[0].answer);
  const auto j = f.to_json();
  CHECK(j["answers"].size() == 3);
  CHECK(j.contains("fluency_eq3"));
  CHECK_FALSE(j.contains("geval_correctness"));

  // No prompts: nothing generated, no metrics.
  ordo::study::clarity_evaluator none(base, prompts, {.prompts = 0});
  CHECK_FALSE(none.enabled());
  CHECK(none.evaluate(base).answers.empty());
  CHECK_THROWS_AS(ordo::study::clarity_evaluator(base, prompts, {.prompts = 2, .max_new_tokens = 0}),
                  std::invalid_argument);
}
