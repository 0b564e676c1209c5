// ordo/paper/clarity.hpp — the paper's answer-quality metrics for one configuration of the
// study: generate answers to a fixed set of prompts, then score them.
//
//   ordo::study::clarity_evaluator eval(base, prompts, {.prompts = 8, .max_new_tokens = 48},
//                                       &encoder /* or nullptr */, judge /* or nullptr */);
//   auto figures = eval.evaluate(model);   // any DenseModel or QuantizedModel
//
// Answers: each prompt is rendered with the model's chat template (a user turn and the
// assistant header), all prompts are generated at once (greedy, left-padded batch), and each
// answer ends at the model's first end-of-turn or EOS token or after max_new_tokens.
//
// Per answer (docs/metrics.md):
//   readability  reading ease (Flesch) mapped to [0, 1] as clamp(FRE, 0, 100) / 100
//   fluency      1 / (1 + log2 PPL), PPL the scorer's perplexity of the answer tokens after the
//                prompt; the scorer is the uncompressed base model (the same for every
//                configuration). The paper's eq. 3 as printed, 1 - 1 / (1 + log2 PPL), grows with
//                perplexity, which contradicts its own "higher values indicate greater
//                fluency"; ordo reports the decreasing form as `fluency` and the printed form as
//                `fluency_eq3`, so either can be used.
//   coherence    cosine similarity of the all-MiniLM-L6-v2 embeddings of prompt and answer,
//                clamped to [0, 1] for the composite (the raw mean is kept too)
//   clarity      the mean of readability, fluency and coherence (the paper's equal weights)
// An empty answer scores 0 on every part. With a judge (an OpenAI-compatible endpoint),
// G-Eval-style correctness (against the prompt's reference answer) and prompt alignment in
// [0, 1] are added.
#pragma once

#include <algorithm>   // std::clamp
#include <cmath>       // std::log2
#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <fstream>     // std::ifstream
#include <limits>      // std::numeric_limits
#include <optional>    // std::optional
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string
#include <vector>      // std::vector

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/eval/fluency.hpp>             // fluency
#include <ordo/eval/judge.hpp>               // JudgeClient
#include <ordo/eval/readability.hpp>         // count_text, flesch_reading_ease
#include <ordo/eval/sentence_embedding.hpp>  // SentenceEncoder
#include <ordo/eval/shard.hpp>               // shard
#include <ordo/model/generate.hpp>           // generate_batch
#include <ordo/model/dense_model.hpp>        // DenseModel
#include <ordo/model/quantized_model.hpp>    // QuantizedModel

namespace ordo::study {

struct clarity_prompt {
  std::string prompt;     ///< the user's message
  std::string reference;  ///< a short correct answer (for the judge's correctness); may be empty
};

/// The prompts of a JSONL file: one object per line with "prompt" and optionally "reference".
/// Blank lines are skipped; anything else that is not such an object is an error naming the
/// file and the line.
inline std::vector<clarity_prompt> read_clarity_prompts(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open the prompts file");
  std::vector<clarity_prompt> out;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto where = path.string() + ":" + std::to_string(n);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw std::runtime_error(where + ": not a JSON object");
    if (!j.contains("prompt") || !j["prompt"].is_string() || j["prompt"].get<std::string>().empty())
      throw std::runtime_error(where + ": \"prompt\" must be a non-empty string");
    if (j.contains("reference") && !j["reference"].is_string())
      throw std::runtime_error(where + ": \"reference\" must be a string");
    out.push_back({j["prompt"].get<std::string>(), j.value("reference", std::string())});
  }
  if (out.empty()) throw std::runtime_error(path.string() + ": no prompts");
  return out;
}

/// The file ordo ships: resources/study_prompts.jsonl of the source tree ordo was built from
/// (relative to the working directory when ORDO_SOURCE_DIR is not defined).
inline std::filesystem::path default_clarity_prompts() {
#ifdef ORDO_SOURCE_DIR
  return std::filesystem::path(ORDO_SOURCE_DIR) / "resources" / "study_prompts.jsonl";
#else
  return std::filesystem::path("resources") / "study_prompts.jsonl";
#endif
}

struct clarity_options {
  std::int64_t prompts = 8;          ///< the first so many prompts of the file (0: none, no metrics)
  std::int64_t max_new_tokens = 48;  ///< answer length limit
};

/// One answer and its scores.
struct answer_scores {
  std::string prompt, answer;
  std::int64_t tokens = 0;      ///< generated tokens (the stop token not counted)
  double flesch = 0;            ///< reading ease, raw (NaN for an answer without words)
  double readability = 0;       ///< [0, 1]
  double perplexity = 0;        ///< the scorer's, of the answer (NaN when empty)
  double fluency = 0;           ///< 1 / (1 + log2 PPL)
  double fluency_eq3 = 0;       ///< 1 - 1 / (1 + log2 PPL), the paper's eq. 3 as printed
  double coherence_cosine = 0;  ///< raw cosine (NaN without an encoder)
  double coherence = 0;         ///< clamped to [0, 1]
  double clarity = 0;
  std::optional<double> correctness, prompt_alignment;  ///< with a judge
};

namespace detail {

// Every field of an answer's scores, exactly (finite doubles round-trip through nlohmann's
// shortest representation; NaN travels as null): how ranks hand their answers to each other.
inline nlohmann::json exact_json(const answer_scores& s) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json j = {{"prompt", s.prompt},           {"answer", s.answer},
                      {"tokens", s.tokens},           {"flesch", num(s.flesch)},
                      {"readability", num(s.readability)}, {"perplexity", num(s.perplexity)},
                      {"fluency", num(s.fluency)},    {"fluency_eq3", num(s.fluency_eq3)},
                      {"coherence_cosine", num(s.coherence_cosine)}, {"coherence", num(s.coherence)},
                      {"clarity", num(s.clarity)}};
  if (s.correctness) j["correctness"] = *s.correctness;
  if (s.prompt_alignment) j["prompt_alignment"] = *s.prompt_alignment;
  return j;
}

inline answer_scores answer_from_exact_json(const nlohmann::json& j) {
  auto num = [&](const char* k) {
    return j.at(k).is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at(k).get<double>();
  };
  answer_scores s;
  s.prompt = j.at("prompt").get<std::string>();
  s.answer = j.at("answer").get<std::string>();
  s.tokens = j.at("tokens").get<std::int64_t>();
  s.flesch = num("flesch");
  s.readability = num("readability");
  s.perplexity = num("perplexity");
  s.fluency = num("fluency");
  s.fluency_eq3 = num("fluency_eq3");
  s.coherence_cosine = num("coherence_cosine");
  s.coherence = num("coherence");
  s.clarity = num("clarity");
  if (j.contains("correctness")) s.correctness = j["correctness"].get<double>();
  if (j.contains("prompt_alignment")) s.prompt_alignment = j["prompt_alignment"].get<double>();
  return s;
}

}  // namespace detail

/// Means over the answers.
struct clarity_figures {
  std::vector<answer_scores> answers;
  double readability = 0, flesch = 0, fluency = 0, fluency_eq3 = 0, coherence = 0, coherence_cosine = 0, clarity = 0;
  double answer_tokens = 0;  ///< mean generated tokens per answer
  std::optional<double> correctness, prompt_alignment;
  double seconds = 0;

  nlohmann::json to_json(bool with_answers = true) const {
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    nlohmann::json j = {{"clarity", num(clarity)},
                        {"fluency", num(fluency)},
                        {"fluency_eq3", num(fluency_eq3)},
                        {"coherence", num(coherence)},
                        {"coherence_cosine", num(coherence_cosine)},
                        {"readability", num(readability)},
                        {"flesch_reading_ease", num(flesch)},
                        {"answer_tokens", answer_tokens},
                        {"clarity_seconds", seconds}};
    if (correctness) j["geval_correctness"] = *correctness;
    if (prompt_alignment) j["prompt_alignment"] = *prompt_alignment;
    if (with_answers) {
      auto a = nlohmann::json::array();
      for (const auto& s : answers) {
        nlohmann::json e = {{"prompt", s.prompt},
                            {"answer", s.answer},
                            {"tokens", s.tokens},
                            {"flesch", num(s.flesch)},
                            {"perplexity", num(s.perplexity)},
                            {"fluency", num(s.fluency)},
                            {"coherence_cosine", num(s.coherence_cosine)},
                            {"clarity", num(s.clarity)}};
        if (s.correctness) e["geval_correctness"] = *s.correctness;
        if (s.prompt_alignment) e["prompt_alignment"] = *s.prompt_alignment;
        a.push_back(std::move(e));
      }
      j["answers"] = std::move(a);
    }
    return j;
  }
};

class clarity_evaluator {
 public:
  /// `scorer`: the model that scores fluency (the study passes the base model; it is copied by
  /// handle, not by value). `encoder` and `judge` may be null: no coherence (0, and the
  /// composite averages the two other parts), no judge metrics.
  clarity_evaluator(const DenseModel& scorer, std::vector<clarity_prompt> prompts, clarity_options options,
                    const eval::SentenceEncoder* encoder = nullptr, const eval::JudgeClient* judge = nullptr)
      : options_(options),
        scorer_{const_cast<DenseModel&>(scorer).lm(), scorer.tokenizer(), scorer.chat_template(), scorer.source()},
        encoder_(encoder),
        judge_(judge) {
    if (options.prompts < 0) throw std::invalid_argument("ordo::study::clarity: the prompt count must be >= 0");
    if (options.max_new_tokens < 1) throw std::invalid_argument("ordo::study::clarity: max_new_tokens must be >= 1");
    if (static_cast<std::size_t>(options.prompts) < prompts.size())
      prompts.resize(static_cast<std::size_t>(options.prompts));
    prompts_ = std::move(prompts);
  }

  bool enabled() const { return !prompts_.empty(); }
  std::size_t prompt_count() const { return prompts_.size(); }

  /// Generates the answers of `model` and scores them. With a shard of N ranks, each rank
  /// answers and scores its block of the prompts (left-padded to the longest of all, so that
  /// its rows compute what the whole batch would) and every rank returns the figures of all.
  template <class Model>
  clarity_figures evaluate(const Model& model, const eval::shard& among = {}) {
    const auto start = std::chrono::steady_clock::now();
    clarity_figures f;
    if (prompts_.empty()) return f;
    auto lm = const_cast<Model&>(model).lm();
    const Tokenizer& tok = model.tokenizer();
    std::vector<std::vector<std::int64_t>> inputs;
    for (const auto& p : prompts_) {
      std::vector<TokenId> ids;
      if (model.chat_template()) {
        ids = tok.encode(model.chat_template()->render({{"user", p.prompt}}, /*add_generation_prompt=*/true),
                         {.add_special_tokens = false, .parse_special = true});
      } else {
        ids = tok.encode(p.prompt, {.add_special_tokens = true, .parse_special = true});
      }
      inputs.emplace_back(ids.begin(), ids.end());
    }
    std::size_t longest = 0;
    for (const auto& in : inputs) longest = std::max(longest, in.size());
    const auto [first, last] = among.block(inputs.size());
    inputs = std::vector<std::vector<std::int64_t>>(inputs.begin() + static_cast<std::ptrdiff_t>(first),
                                                    inputs.begin() + static_cast<std::ptrdiff_t>(last));
    model::generation_options g;
    g.greedy = true;
    g.max_new_tokens = options_.max_new_tokens;
    g.pad_to = static_cast<std::int64_t>(longest);
    std::vector<TokenId> stops;
    if (auto eos = tok.eos_id()) stops.push_back(*eos);
    for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>"})
      if (auto id = tok.token_id(t)) stops.push_back(*id);
    g.stop_ids.assign(stops.begin(), stops.end());
    const auto pad = stops.empty() ? std::int64_t{0} : static_cast<std::int64_t>(stops.front());
    const auto generated = model::generate_batch(lm, inputs, g, pad);

    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::size_t i = first; i < last; ++i) {
      answer_scores s;
      s.prompt = prompts_[i].prompt;
      const auto& made = generated[i - first];
      std::vector<TokenId> ids(made.tokens.begin(), made.tokens.end());
      if (made.stopped && !ids.empty()) ids.pop_back();  // the stop token
      s.tokens = static_cast<std::int64_t>(ids.size());
      s.answer = tok.decode(ids, /*skip_special=*/true);
      const auto counts = eval::count_text(s.answer);
      s.flesch = s.perplexity = s.coherence_cosine = nan;
      if (counts.words > 0) {
        s.flesch = eval::flesch_reading_ease(counts);
        s.readability = std::clamp(s.flesch, 0.0, 100.0) / 100.0;
        const auto answer_ids = eval::fluency_answer_ids(scorer_, s.answer);
        const auto prompt_ids = eval::fluency_prompt_ids(scorer_, s.prompt);
        if (!answer_ids.empty() && !prompt_ids.empty()) {
          const auto fl = eval::fluency(scorer_.lm, prompt_ids, answer_ids);
          s.perplexity = fl.ppl;
          s.fluency = 1.0 / (1.0 + std::log2(std::max(fl.ppl, 1.0)));
          s.fluency_eq3 = fl.value;
        }
        if (encoder_) {
          s.coherence_cosine = encoder_->coherence(s.prompt, s.answer);
          s.coherence = std::clamp(s.coherence_cosine, 0.0, 1.0);
        }
      }
      s.clarity = encoder_ ? (s.readability + s.fluency + s.coherence) / 3.0 : (s.readability + s.fluency) / 2.0;
      if (judge_) {
        const auto& ref = prompts_[i].reference;
        const auto j =
            judge_->score(s.prompt, s.answer, ref.empty() ? std::nullopt : std::optional<std::string_view>(ref));
        s.correctness = j.correctness.value;
        s.prompt_alignment = j.prompt_alignment.value;
      }
      f.answers.push_back(std::move(s));
    }
    if (among.size > 1) {  // every rank's block, in rank order: the answers in prompt order
      auto mine = nlohmann::json::array();
      for (const auto& a : f.answers) mine.push_back(detail::exact_json(a));
      f.answers.clear();
      for (const auto& block : among.all(mine.dump()))
        for (const auto& a : nlohmann::json::parse(block)) f.answers.push_back(detail::answer_from_exact_json(a));
      if (f.answers.size() != prompts_.size())
        throw std::logic_error("ordo::study::clarity: the ranks returned " + std::to_string(f.answers.size()) +
                               " answers for " + std::to_string(prompts_.size()) + " prompts");
    }
    auto mean = [&](auto member, bool skip_nan) {
      double sum = 0;
      std::size_t n = 0;
      for (const auto& s : f.answers) {
        const double v = member(s);
        if (skip_nan && !std::isfinite(v)) continue;
        sum += v;
        ++n;
      }
      return n ? sum / static_cast<double>(n) : nan;
    };
    f.readability = mean([](const answer_scores& s) { return s.readability; }, false);
    f.flesch = mean([](const answer_scores& s) { return s.flesch; }, true);
    f.fluency = mean([](const answer_scores& s) { return s.fluency; }, false);
    f.fluency_eq3 = mean([](const answer_scores& s) { return s.fluency_eq3; }, false);
    f.coherence = encoder_ ? mean([](const answer_scores& s) { return s.coherence; }, false) : nan;
    f.coherence_cosine = mean([](const answer_scores& s) { return s.coherence_cosine; }, true);
    f.clarity = mean([](const answer_scores& s) { return s.clarity; }, false);
    f.answer_tokens = mean([](const answer_scores& s) { return static_cast<double>(s.tokens); }, false);
    if (judge_) {
      f.correctness = mean([](const answer_scores& s) { return *s.correctness; }, false);
      f.prompt_alignment = mean([](const answer_scores& s) { return *s.prompt_alignment; }, false);
    }
    f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return f;
  }

 private:
  clarity_options options_;
  model::LanguageModel scorer_;
  std::vector<clarity_prompt> prompts_;
  const eval::SentenceEncoder* encoder_;
  const eval::JudgeClient* judge_;
};

}  // namespace ordo::study
