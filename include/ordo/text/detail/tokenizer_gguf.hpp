// ordo/text/detail/tokenizer_gguf.hpp — Tokenizer from a GGUF vocabulary (BpeVocabulary): the
// pre-tokenizer families llama.cpp names (tokenizer.ggml.pre), byte-level BPE ("gpt2") and
// SentencePiece-style BPE ("llama"), whose merges may have to be derived from the scores; and
// the Hugging Face tokenizer.json / tokenizer_config.json of such a vocabulary (what a model
// loaded from GGUF saves beside its weights).
#pragma once

#include <algorithm>         // std::sort, std::stable_sort
#include <cstddef>           // std::size_t
#include <cstdint>           // std::int64_t
#include <initializer_list>  // std::initializer_list (the lists of names)
#include <limits>            // std::numeric_limits
#include <optional>          // std::optional
#include <string>            // std::string, std::to_string
#include <string_view>       // std::string_view
#include <tuple>             // std::tuple
#include <unordered_map>     // std::unordered_map
#include <utility>           // std::move, std::pair
#include <vector>            // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/text/bpe_vocabulary.hpp>       // BpeVocabulary
#include <ordo/text/detail/decode_steps.hpp>  // DecodeStep
#include <ordo/text/detail/pre_tokenize.hpp>  // PreTokenizeStep, NormalizeStep, the families' patterns
#include <ordo/text/token.hpp>                // TokenId, AddedToken
#include <ordo/text/tokenizer.hpp>            // Tokenizer (which includes this header at its end)
#include <ordo/text/utf8.hpp>                 // utf8::lead_length

namespace ordo {

namespace detail {

// GGUF pre-tokenizer names (llama.cpp's tokenizer.ggml.pre) and what they stand for.
struct PreFamily {
  std::vector<std::string_view> patterns;
  bool ignore_merges = false;
  bool add_bos = false;
};

/// The family a tokenizer.ggml.pre name stands for; nothing for names ordo does not know.
inline std::optional<PreFamily> pre_family(std::string_view pre) {
  using namespace std::string_view_literals;
  for (const auto name : {"gpt2"sv, "gpt-2"sv, "phi-2"sv, "mpt"sv, "olmo"sv})
    if (pre == name) return PreFamily{{detail::gpt2_pattern}, false, false};
  for (const auto name : {"smollm"sv, "starcoder"sv, "refact"sv, "codeshell"sv})
    if (pre == name) return PreFamily{{R"(\p{N})", detail::gpt2_pattern}, false, false};
  for (const auto name : {"llama-bpe"sv, "llama3"sv, "llama-v3"sv, "falcon3"sv})
    if (pre == name) return PreFamily{{detail::llama3_pattern}, true, true};
  for (const auto name : {"qwen2"sv, "deepseek-r1-qwen"sv, "stablelm2"sv})
    if (pre == name) return PreFamily{{detail::qwen2_pattern}, false, false};
  return std::nullopt;
}

}  // namespace detail

inline void Tokenizer::load_vocabulary(const BpeVocabulary& v) {
  const bool spm = v.model == "llama";
  if (!spm && v.model != "gpt2") {
    fail("tokenizer.ggml.model is \"" + v.model +
         "\"; ordo supports \"gpt2\" (byte-level BPE) and \"llama\" "
         "(SentencePiece-style BPE)");
  }
  const auto family =
      spm ? std::optional<detail::PreFamily>(detail::PreFamily{{}, false, true}) : detail::pre_family(v.pre);
  if (!family) {
    fail("tokenizer.ggml.pre \"" + v.pre +
         "\" is not a pre-tokenizer ordo knows; known: " + std::string(known_pre_names));
  }
  if (v.tokens.empty()) fail("tokenizer.ggml.tokens is empty");
  if (static_cast<std::int64_t>(v.tokens.size()) > max_id) fail("tokenizer.ggml.tokens has too many entries");
  if (!v.token_types.empty() && v.token_types.size() != v.tokens.size()) {
    fail("tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) + " entries for " +
         std::to_string(v.tokens.size()) + " tokens");
  }
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string where = "tokenizer.ggml.tokens[" + std::to_string(i) + "]";
    check_utf8(v.tokens[i], where);
    const auto id = static_cast<TokenId>(i);
    put_token(id, v.tokens[i], "tokenizer.ggml.tokens");
    const int type = v.token_types.empty() ? 1 : v.token_types[i];
    if (type == 2 || type == 3 || type == 4) {  // unknown, control, user-defined: matched in the raw text
      if (v.tokens[i].empty()) fail(where + " is an empty control token");
      AddedToken a;
      a.id = id;
      a.content = v.tokens[i];
      a.special = type != 4;
      added_.push_back(std::move(a));
    }
    // As Hugging Face keeps one id per spelling, the first one wins for lookups.
    model_vocab_.emplace(v.tokens[i], id);
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(v.merges.size());
  for (std::size_t i = 0; i < v.merges.size(); ++i) {
    const auto& s = v.merges[i];
    const auto space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
        s.find(' ', space + 1) != std::string::npos) {
      fail("tokenizer.ggml.merges[" + std::to_string(i) + "] = \"" + s + "\" is not of the form \"left right\"");
    }
    pairs.emplace_back(s.substr(0, space), s.substr(space + 1));
  }
  if (spm && pairs.empty()) pairs = merges_from_scores(v);
  build_merges(pairs);

  if (spm) {
    // Llama 2's tokenizer.json (and llama.cpp): "\u2581" before every piece of text, spaces as
    // "\u2581", characters outside the vocabulary as bytes; decoding undoes it.
    const std::string space = "\xE2\x96\x81";
    const bool prefix = v.add_space_prefix.value_or(true);
    if (prefix) normalizers_.push_back({detail::NormalizeStep::Kind::prepend, space, {}});
    normalizers_.push_back({detail::NormalizeStep::Kind::replace, " ", space});
    byte_level_ = false;
    byte_fallback_ = true;
    fuse_unk_ = true;
    decoders_.push_back({detail::DecodeStep::Kind::replace, space, " "});
    decoders_.push_back({detail::DecodeStep::Kind::byte_fallback, {}, {}});
    decoders_.push_back({detail::DecodeStep::Kind::fuse, {}, {}});
    if (prefix) decoders_.push_back({detail::DecodeStep::Kind::strip, " ", {}, 1, 0});
  } else {
    for (const auto pattern : family->patterns) {
      detail::PreTokenizeStep s;
      s.regex = compile(pattern, "tokenizer.ggml.pre");
      steps_.push_back(std::move(s));
    }
    detail::PreTokenizeStep byte_step;
    byte_step.kind = detail::PreTokenizeStep::Kind::byte_level;
    steps_.push_back(std::move(byte_step));
    ignore_merges_ = family->ignore_merges;
  }

  const auto check = [&](const std::optional<TokenId>& id, const char* what) {
    if (id && !contains(*id)) fail(std::string(what) + " = " + std::to_string(*id) + " is not a token id");
  };
  check(v.bos_id, "tokenizer.ggml.bos_token_id");
  check(v.eos_id, "tokenizer.ggml.eos_token_id");
  check(v.unk_id, "tokenizer.ggml.unknown_token_id");
  check(v.pad_id, "tokenizer.ggml.padding_token_id");
  bos_id_ = v.bos_id;
  eos_id_ = v.eos_id;
  pad_id_ = v.pad_id;
  unk_id_ = v.unk_id;
  std::vector<TokenId> prefix, suffix;
  if (v.add_bos.value_or(family->add_bos) && v.bos_id) prefix.push_back(*v.bos_id);
  if (v.add_eos.value_or(false) && v.eos_id) suffix.push_back(*v.eos_id);
  add_template(prefix, suffix);
  finish();
}

// Merges implied by a SentencePiece vocabulary's scores, as transformers derives them
// (generate_merges): every split of a token into two tokens, ordered by the token's score
// (highest first), then the longer left part, then the longer right part, then token order.
inline std::vector<std::pair<std::string, std::string>> Tokenizer::merges_from_scores(const BpeVocabulary& v) const {
  if (v.scores.size() != v.tokens.size()) {
    fail("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
         std::to_string(v.tokens.size()) + " tokens, and there are no merges");
  }
  std::unordered_map<std::string_view, std::size_t> index;  // the last id of each spelling
  std::unordered_map<std::string_view, float> score;
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    index[v.tokens[i]] = i;
    const float x = v.scores[i];
    score[v.tokens[i]] = x == x ? x : -std::numeric_limits<float>::infinity();  // NaN sorts last
  }
  struct Merge {
    std::string_view left, right;
    float score;
    std::size_t left_chars, right_chars;
  };
  std::vector<Merge> merges;
  std::unordered_map<std::string_view, bool> seen;
  for (const auto& token : v.tokens) {
    if (!seen.emplace(token, true).second) continue;
    const std::string_view t = token;
    std::vector<Merge> local;
    std::size_t chars = 0, total = 0;
    for (std::size_t i = 0; i < t.size(); i += detail::utf8::lead_length(static_cast<unsigned char>(t[i]))) ++total;
    for (std::size_t at = 0; at < t.size();) {
      at += detail::utf8::lead_length(static_cast<unsigned char>(t[at]));
      ++chars;
      if (at >= t.size()) break;
      const auto l = t.substr(0, at), r = t.substr(at);
      if (index.count(l) && index.count(r)) local.push_back({l, r, score[t], chars, total - chars});
    }
    std::sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
      return std::pair(index[a.left], index[a.right]) < std::pair(index[b.left], index[b.right]);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tuple(a.score, a.left_chars, a.right_chars) > std::tuple(b.score, b.left_chars, b.right_chars);
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const auto& m : merges) out.emplace_back(m.left, m.right);
  return out;
}

// The tokenizer.json of a GGUF vocabulary, written as tokenizer.json states what load_vocabulary
// builds: every token in model.vocab (the first id of a spelling, as lookups do), control and
// user-defined tokens as added tokens matched in the raw text, the merges in rank order (derived
// from the scores for SentencePiece vocabularies without merges), the family's regexes as Split
// steps before a regex-free ByteLevel step (or Llama 2's normalizer and decoder chain), and BOS /
// EOS as a TemplateProcessing post-processor when the vocabulary adds them.
inline nlohmann::json Tokenizer::hf_tokenizer_json(const BpeVocabulary& v, const std::string& source) {
  using json = nlohmann::json;
  const Tokenizer t = from_vocabulary(v, source);  // checks the vocabulary, as loading it would
  const bool spm = !t.byte_level_;
  json added = json::array();
  for (const auto& a : t.added_) {
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", a.single_word},
                     {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip},
                     {"normalized", a.normalized},
                     {"special", a.special}});
  }
  json vocab = json::object();
  for (std::size_t i = 0; i < v.tokens.size(); ++i)
    if (!vocab.contains(v.tokens[i])) vocab[v.tokens[i]] = static_cast<TokenId>(i);
  json merges = json::array();
  if (spm && v.merges.empty()) {
    for (auto& [l, r] : t.merges_from_scores(v)) merges.push_back({std::move(l), std::move(r)});
  } else {
    for (const auto& m : v.merges) {
      const auto space = m.find(' ');
      merges.push_back({m.substr(0, space), m.substr(space + 1)});
    }
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", t.unk_id_ ? json(v.tokens[static_cast<std::size_t>(*t.unk_id_)]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", t.fuse_unk_},
                {"byte_fallback", t.byte_fallback_},
                {"ignore_merges", t.ignore_merges_},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}};

  json normalizer = nullptr, pre_tokenizer = nullptr, decoder;
  if (spm) {
    json steps = json::array();
    for (const auto& n : t.normalizers_) {
      if (n.kind == detail::NormalizeStep::Kind::prepend)
        steps.push_back({{"type", "Prepend"}, {"prepend", n.text}});
      else
        steps.push_back({{"type", "Replace"}, {"pattern", {{"String", n.text}}}, {"content", n.replacement}});
    }
    normalizer = {{"type", "Sequence"}, {"normalizers", std::move(steps)}};
    json chain = json::array();
    for (const auto& d : t.decoders_) {
      using K = detail::DecodeStep::Kind;
      if (d.kind == K::replace)
        chain.push_back({{"type", "Replace"}, {"pattern", {{"String", d.from}}}, {"content", d.to}});
      else if (d.kind == K::byte_fallback)
        chain.push_back({{"type", "ByteFallback"}});
      else if (d.kind == K::fuse)
        chain.push_back({{"type", "Fuse"}});
      else if (d.kind == K::strip)
        chain.push_back({{"type", "Strip"}, {"content", d.from}, {"start", d.start}, {"stop", d.stop}});
      else
        t.fail("internal: a GGUF vocabulary with a decoding step tokenizer.json cannot state");
    }
    decoder = {{"type", "Sequence"}, {"decoders", std::move(chain)}};
  } else {
    json steps = json::array();
    const auto family = detail::pre_family(v.pre);  // known: from_vocabulary accepted it
    for (const auto pattern : family->patterns) {
      steps.push_back({{"type", "Split"},
                       {"pattern", {{"Regex", std::string(pattern)}}},
                       {"behavior", "Isolated"},
                       {"invert", false}});
    }
    steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
    pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
    decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  }

  json post = nullptr;
  if (!t.prefix_ids_.empty() || !t.suffix_ids_.empty()) {
    json specials = json::object();
    const auto piece = [&](TokenId id, int type_id) {
      const auto& name = v.tokens[static_cast<std::size_t>(id)];
      specials[name] = {{"id", name}, {"ids", json::array({id})}, {"tokens", json::array({name})}};
      return json{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
    };
    const auto sequence = [&](int type_id) {
      json out = json::array();
      for (const auto id : t.prefix_ids_) out.push_back(piece(id, type_id));
      out.push_back({{"Sequence", {{"id", type_id == 0 ? "A" : "B"}, {"type_id", type_id}}}});
      for (const auto id : t.suffix_ids_) out.push_back(piece(id, type_id));
      return out;
    };
    json pair = sequence(0);
    for (auto& x : sequence(1)) pair.push_back(std::move(x));
    post = {{"type", "TemplateProcessing"}, {"single", sequence(0)}, {"pair", std::move(pair)}, {"special_tokens", specials}};
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", std::move(added)},
          {"normalizer", std::move(normalizer)},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", std::move(post)},
          {"decoder", std::move(decoder)},
          {"model", std::move(model)}};
}

inline nlohmann::json Tokenizer::hf_tokenizer_config(const BpeVocabulary& v, std::string_view chat_template,
                                                     std::int64_t model_max_length) {
  using json = nlohmann::json;
  const Tokenizer t = from_vocabulary(v, "GGUF tokenizer metadata");
  const auto spelling = [&](const std::optional<TokenId>& id) {
    return id ? json(v.tokens[static_cast<std::size_t>(*id)]) : json(nullptr);
  };
  json decoder = json::object();
  for (const auto& a : t.added_) {
    decoder[std::to_string(a.id)] = {{"content", a.content},
                                     {"lstrip", a.lstrip},
                                     {"normalized", a.normalized},
                                     {"rstrip", a.rstrip},
                                     {"single_word", a.single_word},
                                     {"special", a.special}};
  }
  json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
            {"add_bos_token", !t.prefix_ids_.empty()},
            {"add_eos_token", !t.suffix_ids_.empty()},
            {"bos_token", spelling(t.bos_id_)},
            {"eos_token", spelling(t.eos_id_)},
            {"pad_token", spelling(t.pad_id_)},
            {"unk_token", spelling(t.unk_id_)},
            {"clean_up_tokenization_spaces", false},
            {"model_max_length", model_max_length},
            {"added_tokens_decoder", std::move(decoder)}};
  if (!chat_template.empty()) j["chat_template"] = std::string(chat_template);
  return j;
}


namespace detail {

// Texts on which a GGUF vocabulary's pre-tokenizer must give the ids of the tokenizer it was made
// from: where the pre-tokenizer families differ (digit runs, contractions, case, whitespace runs
// and newlines, punctuation, code, scripts without spaces, emoji).
inline const std::vector<std::string_view>& pre_tokenizer_probes() {
  static const std::vector<std::string_view> probes = {
      "Hello, world! It's 2024: 12345 apples cost $3.14159, or 1,000,000 in all.",
      "I'm sure you'll see we'd THEY'RE it's IT'S don't Don't",
      "  leading spaces\n\n\ttabs\t\tand   runs   of    spaces   \n  \n",
      "def f(x):\n    return x**2 + 0x1F  # comment\n\nif __name__ == \"__main__\":\n\tprint(f(3))",
      "Gr\xC3\xBC\xC3\x9F" "e aus M\xC3\xBCnchen, \xC3\xA7" "a va? \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xE4\xB8\x96\xE7\x95\x8C\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82\xE6\x9D\xB1\xE4\xBA\xAC 2023\xE5\xB9\xB4",
      "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 and symbols \xE2\x80\x94 \xE2\x80\xA6 \xC2\xA9 \xE2\x82\xAC" "5 100%!!! ???",
      "a1b22c333d4444 7x 12:30 3/4 v2.0.1 x=-5 #hash @user https://example.com/a?b=c&d=e",
      "\n", " ", "   ", "a", "A  B", "end with space ", "'s 's 'S", "line\r\nbreak"};
  return probes;
}

}  // namespace detail

inline BpeVocabulary Tokenizer::gguf_vocabulary() const {
  if (!byte_level_)
    fail("GGUF export writes byte-level BPE vocabularies (\"gpt2\"); this tokenizer is not byte-level (a "
         "SentencePiece-style one would need llama.cpp's scores)");
  BpeVocabulary v;
  v.model = "gpt2";
  v.tokens.reserve(tokens_.size());
  v.token_types.assign(tokens_.size(), 1);
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    if (present_[i]) {
      v.tokens.push_back(tokens_[i]);
    } else {  // an id without a token: a placeholder of type unused, as llama.cpp's converter writes
      v.tokens.push_back("[PAD" + std::to_string(i) + "]");
      v.token_types[i] = 5;
    }
  }
  for (const auto& a : added_) v.token_types[static_cast<std::size_t>(a.id)] = a.special ? 3 : 4;
  const auto merges = merges_.ranked();
  v.merges.reserve(merges.size());
  for (const auto& [left, right] : merges)
    v.merges.push_back(tokens_[static_cast<std::size_t>(left)] + " " + tokens_[static_cast<std::size_t>(right)]);
  v.bos_id = bos_id_;
  v.eos_id = eos_id_;
  v.unk_id = unk_id_;
  v.pad_id = pad_id_;
  // The post-processor: at most BOS before and EOS after, as GGUF's flags express (a
  // tokenizer.json alone names no BOS: the token its post-processor puts first is it).
  if (!v.bos_id && prefix_ids_.size() == 1) v.bos_id = prefix_ids_[0];
  if (!v.eos_id && suffix_ids_.size() == 1) v.eos_id = suffix_ids_[0];
  const bool bos_prefix = prefix_ids_.size() == 1 && prefix_ids_[0] == *v.bos_id;
  const bool eos_suffix = suffix_ids_.size() == 1 && suffix_ids_[0] == *v.eos_id;
  if ((!prefix_ids_.empty() && !bos_prefix) || (!suffix_ids_.empty() && !eos_suffix))
    fail("the post-processor adds tokens other than BOS before and EOS after the text; GGUF cannot say so");
  v.add_bos = bos_prefix;
  v.add_eos = eos_suffix;

  // The pre-tokenizer: the first family that gives the same ids on every probe.
  std::string tried;
  for (const std::string_view pre : {"smollm", "llama-bpe", "qwen2", "gpt2"}) {
    v.pre = std::string(pre);
    tried += (tried.empty() ? "" : ", ") + v.pre;
    std::optional<Tokenizer> candidate;
    try {
      candidate = from_vocabulary(v, source_ + " as GGUF (pre " + v.pre + ")");
    } catch (const TokenizerError&) {
      continue;
    }
    if (candidate->ignore_merges_ != ignore_merges_) continue;
    bool same = true;
    for (const auto text : detail::pre_tokenizer_probes()) {
      if (candidate->encode(text) != encode(text)) {
        same = false;
        break;
      }
    }
    std::string specials;
    for (const auto& a : added_) specials += a.content + " x" + a.content;
    if (same && !specials.empty() && candidate->encode(specials) != encode(specials)) same = false;
    if (same) return v;
  }
  fail("no GGUF pre-tokenizer name gives this tokenizer's ids (tried " + tried +
       "); GGUF export needs one llama.cpp knows");
}

}  // namespace ordo
