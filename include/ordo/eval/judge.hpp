// ordo/eval/judge.hpp — LLM-as-judge scores (G-Eval style) from an OpenAI-compatible
// chat-completions server, over plain HTTP/1.1. Torch-free; POSIX sockets and nlohmann-json.
//
// The paper scores answers with a judge model: G-Eval (Liu et al., 2023) for correctness, and a
// prompt-alignment metric. ordo asks the judge, for one criterion at a time, a rubric prompt
// (task, criterion, evaluation steps, then the prompt, the optional reference answer and the
// answer) that ends by asking for a last line "Score: N" with N an integer from 1 to `scale`.
// It samples the judge `samples` times (temperature `temperature`), parses the score of each
// reply, and reports the mean of the parsed scores mapped to [0, 1] as (mean - 1) / (scale - 1).
//
//   auto judge = ordo::eval::JudgeClient::from_url("http://127.0.0.1:8081/v1", {.model = "judge"});
//   auto s = judge.score(prompt, answer, reference);   // s.correctness.value, s.prompt_alignment.value
//
// Off by default: JudgeClient::from_env() gives a client only when ORDO_JUDGE_URL is set (with
// ORDO_JUDGE_MODEL, optional). The API key, when the server wants one, is read from
// ORDO_JUDGE_API_KEY and sent as "Authorization: Bearer <key>".
//
// Transport: http:// URLs only (host, optional port, default 80, path; IPv6 literals in
// brackets); the endpoint is the URL's path + "/chat/completions" (a URL that already ends in
// /chat/completions is used as it is). HTTPS is not supported (no TLS library): a https:// URL is
// an error that says so. One connection per request ("Connection: close"); responses with
// Content-Length, chunked transfer encoding, or neither (read to the end) are accepted. The
// timeout covers a whole request, from connecting to the last byte. Errors are JudgeError and
// name the URL, and the HTTP status and an excerpt of the body where there is one. The HTTP
// client itself is http_client.hpp.
//
// Score parsing (parse_judge_score), in this order: a JSON object's "score"; the last "score"
// (or "rating") followed by a number ("Score: 8", "**Rating**: 7/10"); "N/scale" or "N out of
// scale"; a reply that is only a number. Other numbers are not taken for a score, and a number
// outside 1..scale is none. Replies without a score are counted (`unparsed`) and left out
// of the mean; a criterion with no score in any reply is an error that quotes the last reply.
#pragma once

#include <cctype>       // std::isalnum, std::isalpha
#include <chrono>       // std::chrono::milliseconds
#include <cmath>        // std::isfinite
#include <cstddef>      // std::size_t
#include <cstdlib>      // std::getenv, std::strtod
#include <optional>     // std::optional
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair, std::move
#include <vector>       // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/eval/http_client.hpp>  // http::Url, parse_url, request, detail::lower, detail::trim
#include <ordo/eval/judge_error.hpp>  // JudgeError

namespace ordo::eval {

/// One evaluation criterion: its name, what it means, and how to judge it (G-Eval's "criteria"
/// and "evaluation steps").
struct JudgeCriterion {
  std::string name;
  std::string definition;
  std::vector<std::string> steps;

  /// Factual accuracy of the answer (G-Eval correctness, as the paper uses it).
  static JudgeCriterion correctness() {
    return {"Correctness",
            "the answer is factually accurate: what it states is true and answers the question; where a "
            "reference answer is given, the answer agrees with it (other wording is fine, contradicting it or "
            "missing its key facts is not).",
            {"Read the prompt and, if given, the reference answer; note the facts a correct answer must contain.",
             "Check each claim of the answer against the reference answer and well-established knowledge.",
             "Lower the score for every wrong, contradicting or invented claim, and for missing key facts.",
             "Give 1 to an answer that is wrong or says nothing relevant, and the highest score only to an answer "
             "that is fully correct."}};
  }
  /// Whether the answer is about what was asked (the paper's second G-Eval criterion).
  static JudgeCriterion relevance() {
    return {
        "Relevance",
        "the answer addresses the question that was asked and stays on topic, without padding or "
        "unrelated material.",
        {"Read the prompt and identify what it asks for.", "Check whether each part of the answer serves that request.",
         "Lower the score for off-topic, repeated or filler content, and for ignoring parts of the question."}};
  }
  /// How well the answer follows the instructions of the prompt (prompt alignment).
  static JudgeCriterion prompt_alignment() {
    return {"Prompt alignment",
            "the answer follows every instruction in the prompt: it does the task that was asked, in the "
            "requested form (format, length, language, style), and respects any constraint the prompt sets.",
            {"List the instructions and constraints the prompt gives, explicit or clearly implied.",
             "Check for each one whether the answer follows it.",
             "Give the highest score only when all are followed, and 1 when the answer ignores the prompt."}};
  }
};

/// Settings of a JudgeClient.
struct JudgeOptions {
  std::string model;                          ///< the "model" field of each request ("" sends "judge")
  std::string api_key;                        ///< "" reads ORDO_JUDGE_API_KEY; no header when both are empty
  double temperature = 1.0;                   ///< G-Eval samples the judge at temperature 1
  int samples = 5;                            ///< replies per criterion, averaged
  int scale = 10;                             ///< scores are integers 1..scale
  int max_tokens = 512;                       ///< the judge's reply budget
  std::chrono::milliseconds timeout{120000};  ///< per request
  std::string system_prompt =
      "You are a careful, impartial evaluator of answers written by AI assistants. You follow the rubric "
      "exactly and end your reply with the score line it asks for.";
};

/// The score of one criterion.
struct CriterionScore {
  double value = 0;            ///< (mean - 1) / (scale - 1), in [0, 1]
  double mean = 0;             ///< mean of the parsed scores, in [1, scale]
  std::vector<double> scores;  ///< the parsed scores
  int unparsed = 0;            ///< replies without a score
};

/// The paper's two judge metrics for one answer.
struct JudgeScores {
  CriterionScore correctness;
  CriterionScore prompt_alignment;
};

namespace judge_detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// Numbers in `s`: (position, end, value); a number is digits with an optional fraction, not
/// part of a word ("GPT4", "v2").
inline std::vector<std::pair<std::size_t, double>> numbers(std::string_view s,
                                                           std::vector<std::size_t>* ends = nullptr) {
  std::vector<std::pair<std::size_t, double>> out;
  for (std::size_t i = 0; i < s.size();) {
    if (!is_digit(s[i]) || (i > 0 && (std::isalnum(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '.'))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
      ++j;
      while (j < s.size() && is_digit(s[j])) ++j;
    }
    if (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) {  // "3rd", "10x"
      i = j;
      continue;
    }
    out.emplace_back(i, std::strtod(std::string(s.substr(i, j - i)).c_str(), nullptr));
    if (ends) ends->push_back(j);
    i = j;
  }
  return out;
}

inline std::string lower(std::string_view s) { return http::detail::lower(s); }

}  // namespace judge_detail

/// The score in a judge's reply (see the header comment), or nullopt. Fractional scores
/// ("8.5") are accepted.
inline std::optional<double> parse_judge_score(std::string_view reply, int scale = 10) {
  using namespace judge_detail;
  const auto valid = [&](double v) -> std::optional<double> {
    if (!std::isfinite(v) || v < 1 || v > scale) return std::nullopt;
    return v;
  };
  std::string text = lower(reply);
  // The scale itself ("(1-10)", "1 to 10") is not a score.
  const std::string n = std::to_string(scale);
  for (const std::string& range :
       {"(1-" + n + ")", "(1 - " + n + ")", "(1 to " + n + ")", "1-" + n, "1 - " + n, "1 to " + n}) {
    for (auto at = text.find(range); at != std::string::npos; at = text.find(range, at))
      text.replace(at, range.size(), " ");
  }
  // A JSON object with a "score".
  for (auto open = text.find('{'); open != std::string::npos; open = text.find('{', open + 1)) {
    const auto close = text.find('}', open);
    if (close == std::string::npos) break;
    const auto j = nlohmann::json::parse(text.substr(open, close - open + 1), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("score")) {
      const auto& s = j["score"];
      if (s.is_number()) return valid(s.get<double>());
      if (s.is_string()) {
        const auto n = numbers(s.get<std::string>());
        if (n.size() == 1) return valid(n[0].second);
      }
    }
  }
  std::vector<std::size_t> ends;
  const auto nums = numbers(text, &ends);
  // The last "score" / "rating" label followed (after ':', '*', '=', spaces, "is") by a number.
  std::optional<std::size_t> label_end;
  for (const std::string_view label : {"score", "rating"}) {
    for (auto at = text.find(label); at != std::string::npos; at = text.find(label, at + 1)) {
      if (at > 0 && std::isalpha(static_cast<unsigned char>(text[at - 1]))) continue;  // "generating"
      if (!label_end || at + label.size() > *label_end) label_end = at + label.size();
    }
  }
  if (label_end) {
    for (const auto& [pos, value] : nums) {
      if (pos < *label_end) continue;
      std::string_view between(text.data() + *label_end, pos - *label_end);
      bool plain = between.size() <= 24;
      std::string rest(between);
      for (const std::string_view filler : {"is", "of", "final", "overall"}) {
        for (auto at = rest.find(filler); at != std::string::npos; at = rest.find(filler))
          rest.erase(at, filler.size());
      }
      for (const char c : rest)
        if (!(c == ' ' || c == ':' || c == '*' || c == '=' || c == '#' || c == '\t' || c == '\n' || c == '(' ||
              c == '[' || c == '"' || c == '-' || c == '_'))
          plain = false;
      if (plain) return valid(value);
      break;
    }
  }
  // "N/scale", "N out of scale".
  for (std::size_t k = 0; k + 1 < nums.size(); ++k) {
    const auto [pos, value] = nums[k];
    std::string_view between(text.data() + ends[k], nums[k + 1].first - ends[k]);
    const auto t = http::detail::trim(between);
    if ((t == "/" || t == "out of") && nums[k + 1].second == scale) return valid(value);
  }
  // A reply that is only a number. Any other number ("all 10 criteria") is not taken as a score.
  if (nums.size() == 1 && http::detail::trim(text).size() <= 8) return valid(nums[0].second);
  return std::nullopt;
}

/// A message of a chat request.
struct JudgeMessage {
  std::string role;
  std::string content;
};

/// Client of an OpenAI-compatible chat-completions endpoint, used as a judge.
class JudgeClient {
 public:
  /// `base_url`: e.g. "http://127.0.0.1:8081/v1" (requests go to <base>/chat/completions).
  static JudgeClient from_url(std::string_view base_url, JudgeOptions options = {}) {
    JudgeClient c;
    auto url = http::parse_url(base_url);
    std::string path = url.path;
    const auto query = path.find('?');
    std::string tail = query == std::string::npos ? "" : path.substr(query);
    if (query != std::string::npos) path.resize(query);
    const std::string endpoint = "/chat/completions";
    if (!(path.size() >= endpoint.size() &&
          path.compare(path.size() - endpoint.size(), endpoint.size(), endpoint) == 0)) {
      while (!path.empty() && path.back() == '/') path.pop_back();
      path += endpoint;
    }
    url.path = path + tail;
    url.text = "http://" + (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) + ":" +
               std::to_string(url.port) + url.path;
    if (options.samples < 1) throw JudgeError("ordo::eval::JudgeClient: samples must be at least 1");
    if (options.scale < 2) throw JudgeError("ordo::eval::JudgeClient: scale must be at least 2");
    if (options.api_key.empty())
      if (const char* key = std::getenv("ORDO_JUDGE_API_KEY"); key && *key) options.api_key = key;
    c.url_ = std::move(url);
    c.options_ = std::move(options);
    return c;
  }

  /// A client from ORDO_JUDGE_URL (and ORDO_JUDGE_MODEL), or nullopt when ORDO_JUDGE_URL is not
  /// set: the judge metrics are off by default.
  static std::optional<JudgeClient> from_env(JudgeOptions options = {}) {
    const char* url = std::getenv("ORDO_JUDGE_URL");
    if (!url || !*url) return std::nullopt;
    if (const char* model = std::getenv("ORDO_JUDGE_MODEL"); model && *model && options.model.empty())
      options.model = model;
    return from_url(url, std::move(options));
  }

  const http::Url& endpoint() const { return url_; }
  const JudgeOptions& options() const { return options_; }

  /// The request body for `messages`.
  nlohmann::json request_body(std::span<const JudgeMessage> messages) const {
    nlohmann::json m = nlohmann::json::array();
    for (const auto& x : messages) m.push_back({{"role", x.role}, {"content", x.content}});
    return {{"model", options_.model.empty() ? "judge" : options_.model},
            {"messages", std::move(m)},
            {"temperature", options_.temperature},
            {"max_tokens", options_.max_tokens},
            {"stream", false}};
  }

  /// One chat completion: the content of the first choice's message.
  std::string complete(std::span<const JudgeMessage> messages) const {
    std::vector<std::pair<std::string, std::string>> headers{
        {"Content-Type", "application/json"}, {"Accept", "application/json"}, {"User-Agent", "ordo-judge"}};
    if (!options_.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + options_.api_key);
    const std::string body = request_body(messages).dump();
    const auto r = http::request(url_, "POST", headers, body, options_.timeout);
    const std::string where = "POST " + url_.text;
    const auto excerpt = [](const std::string& s) {
      std::string e = s.substr(0, 300);
      for (auto& ch : e)
        if (ch == '\n' || ch == '\r') ch = ' ';
      return e + (s.size() > 300 ? "..." : "");
    };
    if (r.status < 200 || r.status > 299) {
      std::string msg = where + ": HTTP " + std::to_string(r.status) + (r.reason.empty() ? "" : " " + r.reason);
      if (r.status == 401 || r.status == 403)
        msg += options_.api_key.empty() ? " (no API key sent: set ORDO_JUDGE_API_KEY)" : " (check ORDO_JUDGE_API_KEY)";
      if (!r.body.empty()) msg += ": " + excerpt(r.body);
      throw JudgeError(msg);
    }
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) throw JudgeError(where + ": the response is not valid JSON: " + excerpt(r.body));
    if (j.is_object() && j.contains("error"))
      throw JudgeError(where + ": the server reports an error: " + excerpt(j["error"].dump()));
    const nlohmann::json* content = nullptr;
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
      const auto& choice = j["choices"][0];
      if (choice.is_object() && choice.contains("message") && choice["message"].is_object() &&
          choice["message"].contains("content"))
        content = &choice["message"]["content"];
    }
    if (!content || !content->is_string())
      throw JudgeError(where + ": the response has no choices[0].message.content string: " + excerpt(r.body));
    return content->get<std::string>();
  }

  /// The rubric prompt for one criterion (the user message; the system message is
  /// options().system_prompt).
  std::string rubric(const JudgeCriterion& c, std::string_view prompt, std::string_view answer,
                     std::optional<std::string_view> reference = std::nullopt) const {
    const std::string n = std::to_string(options_.scale);
    std::string s;
    s += "You will be given a prompt that was sent to an AI assistant";
    s += reference ? ", a reference answer," : "";
    s += " and the assistant's answer. Rate the answer on one criterion.\n\n";
    s += "Evaluation criterion:\n" + c.name + " (1-" + n + "): " + c.definition + "\n\nEvaluation steps:\n";
    for (std::size_t k = 0; k < c.steps.size(); ++k) s += std::to_string(k + 1) + ". " + c.steps[k] + "\n";
    s += std::to_string(c.steps.size() + 1) + ". Assign a score from 1 (worst) to " + n + " (best).\n\n";
    s += "Prompt:\n" + std::string(prompt) + "\n\n";
    if (reference) s += "Reference answer:\n" + std::string(*reference) + "\n\n";
    s += "Answer:\n" + std::string(answer) + "\n\n";
    s += "Explain your judgement in at most three sentences, then end with a line of the form \"Score: N\", where "
         "N is an integer from 1 to " +
         n + ".";
    return s;
  }

  /// One criterion, sampled options().samples times.
  CriterionScore score(const JudgeCriterion& c, std::string_view prompt, std::string_view answer,
                       std::optional<std::string_view> reference = std::nullopt) const {
    const std::vector<JudgeMessage> messages{{"system", options_.system_prompt},
                                             {"user", rubric(c, prompt, answer, reference)}};
    CriterionScore out;
    std::string last_reply;
    for (int k = 0; k < options_.samples; ++k) {
      last_reply = complete(messages);
      if (const auto s = parse_judge_score(last_reply, options_.scale))
        out.scores.push_back(*s);
      else
        ++out.unparsed;
    }
    if (out.scores.empty()) {
      std::string quoted = last_reply.substr(0, 300);
      throw JudgeError("POST " + url_.text + ": no " + c.name + " score (1-" + std::to_string(options_.scale) +
                       ") in any of the " + std::to_string(options_.samples) + " replies; the last one: \"" + quoted +
                       (last_reply.size() > 300 ? "...\"" : "\""));
    }
    double sum = 0;
    for (const int s : out.scores) sum += s;
    out.mean = sum / static_cast<double>(out.scores.size());
    out.value = (out.mean - 1) / static_cast<double>(options_.scale - 1);
    return out;
  }

  /// Correctness and prompt alignment of `answer` to `prompt` (and `reference`, when given).
  JudgeScores score(std::string_view prompt, std::string_view answer,
                    std::optional<std::string_view> reference = std::nullopt) const {
    return {score(JudgeCriterion::correctness(), prompt, answer, reference),
            score(JudgeCriterion::prompt_alignment(), prompt, answer, reference)};
  }

 private:
  JudgeClient() = default;
  http::Url url_;
  JudgeOptions options_;
};

}  // namespace ordo::eval
