// ordo/text/detail/tokenizer_json.hpp — Tokenizer's reader of Hugging Face tokenizer.json: the
// BPE model, added tokens, normalizer, pre-tokenizer, decoder and post-processor, each checked,
// with TokenizerError naming the JSON path of what is wrong.
#pragma once

#include <algorithm>  // std::min
#include <cstddef>    // std::size_t
#include <cstdint>    // std::int64_t, std::uint64_t
#include <string>     // std::string, std::to_string
#include <utility>    // std::move, std::pair
#include <vector>     // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/text/detail/decode_steps.hpp>  // DecodeStep
#include <ordo/text/detail/pre_tokenize.hpp>  // PreTokenizeStep, NormalizeStep, gpt2_pattern, escape_literal
#include <ordo/text/token.hpp>                // TokenId, AddedToken
#include <ordo/text/tokenizer.hpp>            // Tokenizer (which includes this header at its end)
#include <ordo/text/utf8.hpp>                 // utf8::first_invalid, utf8::sequence_length

namespace ordo {

inline std::string Tokenizer::type_name(const nlohmann::json& j) { return j.type_name(); }

inline const nlohmann::json& Tokenizer::member(const nlohmann::json& j, const char* key,
                                               const std::string& where) const {
  if (!j.is_object()) fail(where + " must be an object, found " + type_name(j));
  const auto it = j.find(key);
  if (it == j.end()) fail(where + " has no \"" + key + "\"");
  return *it;
}

inline std::string Tokenizer::string_member(const nlohmann::json& j, const char* key, const std::string& where) const {
  const auto& v = member(j, key, where);
  if (!v.is_string()) fail(where + "." + key + " must be a string, found " + type_name(v));
  return v.get<std::string>();
}

inline bool Tokenizer::bool_member(const nlohmann::json& j, const char* key, const std::string& where,
                                   bool fallback) const {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where + "." + key + " must be true or false, found " + type_name(*it));
  return it->get<bool>();
}

inline TokenId Tokenizer::id_value(const nlohmann::json& v, const std::string& where) const {
  if (!v.is_number_integer()) fail(where + " must be an integer id, found " + type_name(v));
  const auto id = v.get<std::int64_t>();
  if (id < 0 || id >= max_id) {
    fail(where + " = " + std::to_string(id) + " is outside [0, " + std::to_string(max_id) + ")");
  }
  return static_cast<TokenId>(id);
}

inline void Tokenizer::load_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("the top level must be a JSON object, found " + type_name(j));
  const auto& model = member(j, "model", "the tokenizer");
  if (!model.is_object()) fail("\"model\" must be an object, found " + type_name(model));
  if (const auto it = model.find("type"); it != model.end() && !(it->is_string() && *it == "BPE")) {
    fail("model.type is " + it->dump() + "; ordo supports byte-level \"BPE\" tokenizers only");
  }
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
    fail("model.dropout is set; BPE dropout is for training and ordo does not support it");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const auto it = model.find(key); it != model.end() && !it->is_null() && *it != "") {
      fail(std::string("model.") + key + " is set; byte-level BPE tokenizers do not use it");
    }
  }
  byte_fallback_ = bool_member(model, "byte_fallback", "model", false);
  ignore_merges_ = bool_member(model, "ignore_merges", "model", false);
  fuse_unk_ = bool_member(model, "fuse_unk", "model", false);

  // Vocabulary.
  const auto& vocab = member(model, "vocab", "model");
  if (!vocab.is_object()) fail("model.vocab must be an object of token -> id, found " + type_name(vocab));
  for (const auto& [token, id_json] : vocab.items()) {
    const std::string where = "model.vocab[\"" + token + "\"]";
    check_utf8(token, where);
    const TokenId id = id_value(id_json, where);
    put_token(id, token, "model.vocab");
    model_vocab_.emplace(token, id);
  }
  if (model_vocab_.empty()) fail("model.vocab is empty");

  // Merges: "left right" strings or [left, right] arrays.
  const auto& merges = member(model, "merges", "model");
  if (!merges.is_array()) fail("model.merges must be an array, found " + type_name(merges));
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const auto s = m.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
          s.find(' ', space + 1) != std::string::npos) {
        fail(where + " = \"" + s + "\" is not of the form \"left right\"");
      }
      pairs.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(where + " must be \"left right\" or [\"left\", \"right\"], found " + m.dump());
    }
  }
  build_merges(pairs);

  if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    if (!it->is_string()) fail("model.unk_token must be a string or null");
    const auto u = model_vocab_.find(it->get<std::string>());
    if (u == model_vocab_.end()) fail("model.unk_token \"" + it->get<std::string>() + "\" is not in model.vocab");
    unk_id_ = u->second;
  }

  // Added tokens.
  if (const auto it = j.find("added_tokens"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail("added_tokens must be an array, found " + type_name(*it));
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& a = (*it)[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      t.id = id_value(member(a, "id", where), where + ".id");
      t.content = string_member(a, "content", where);
      check_utf8(t.content, where + ".content");
      if (t.content.empty()) fail(where + ".content is empty");
      t.special = bool_member(a, "special", where, false);
      t.lstrip = bool_member(a, "lstrip", where, false);
      t.rstrip = bool_member(a, "rstrip", where, false);
      t.single_word = bool_member(a, "single_word", where, false);
      t.normalized = bool_member(a, "normalized", where, !t.special);
      put_token(t.id, t.content, "added_tokens");
      added_.push_back(std::move(t));
    }
  }

  // Normalizer: Qwen2's NFC leaves NFC text as it is (ordo does not compose decomposed text,
  // see docs/tokenizer.md); SentencePiece-style tokenizers prepend and replace.
  if (const auto it = j.find("normalizer"); it != j.end() && !it->is_null()) {
    load_normalizer(*it, "normalizer");
  }

  // Pre-tokenizer.
  bool byte_level = false;
  if (const auto it = j.find("pre_tokenizer"); it != j.end() && !it->is_null()) {
    load_pre_tokenizer(*it, "pre_tokenizer", byte_level);
  }
  byte_level_ = byte_level;
  if (!byte_level && !byte_fallback_) {
    fail(
        "the pre_tokenizer has no ByteLevel step and model.byte_fallback is false; ordo supports "
        "byte-level BPE and SentencePiece-style BPE with byte fallback");
  }
  if (byte_level && byte_fallback_) fail("model.byte_fallback is true in a byte-level tokenizer");

  // Decoder: ByteLevel for byte-level BPE; a chain (Replace, ByteFallback, Fuse, Strip, Metaspace)
  // for SentencePiece-style BPE.
  if (const auto it = j.find("decoder"); it != j.end() && !it->is_null()) {
    load_decoder(*it, "decoder");
  } else {
    fail("there is no decoder");
  }
  if (byte_level != byte_level_decoder_ || (byte_level && !decoders_.empty())) {
    fail(byte_level ? "a byte-level tokenizer needs the ByteLevel decoder alone"
                    : "a ByteLevel decoder needs a ByteLevel pre_tokenizer");
  }

  if (const auto it = j.find("post_processor"); it != j.end() && !it->is_null()) {
    load_post_processor(*it, "post_processor");
  }
  finish();
}

inline void Tokenizer::load_normalizer(const nlohmann::json& n, const std::string& where) {
  const auto type = string_member(n, "type", where);
  if (type == "Sequence") {
    const auto& list = member(n, "normalizers", where);
    if (!list.is_array()) fail(where + ".normalizers must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
  } else if (type == "NFC") {
    // Accepted: see above.
  } else if (type == "Prepend") {
    normalizers_.push_back({detail::NormalizeStep::Kind::prepend, string_member(n, "prepend", where), {}});
  } else if (type == "Replace") {
    normalizers_.push_back(
        {detail::NormalizeStep::Kind::replace, literal_pattern(n, where), string_member(n, "content", where)});
  } else {
    fail(where + ".type \"" + type + "\" is not supported (ordo supports NFC, Prepend, Replace, Sequence)");
  }
}

inline void Tokenizer::load_pre_tokenizer(const nlohmann::json& p, const std::string& where, bool& byte_level) {
  using Step = detail::PreTokenizeStep;
  const auto type = string_member(p, "type", where);
  if (type == "Sequence") {
    const auto& list = member(p, "pretokenizers", where);
    if (!list.is_array()) fail(where + ".pretokenizers must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
    Step s;
    s.kind = Step::Kind::byte_level;
    s.add_prefix_space = bool_member(p, "add_prefix_space", where, true);
    if (bool_member(p, "use_regex", where, true)) s.regex = compile(detail::gpt2_pattern, where);
    steps_.push_back(std::move(s));
  } else if (type == "Split") {
    Step s;
    const auto& pattern = member(p, "pattern", where);
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      s.regex = compile(pattern["Regex"].get<std::string>(), where + ".pattern.Regex");
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      const auto literal = pattern["String"].get<std::string>();
      if (literal.empty()) fail(where + ".pattern.String is empty");
      s.regex = compile(detail::escape_literal(literal), where + ".pattern.String");
    } else {
      fail(where + ".pattern must be {\"Regex\": \"...\"} or {\"String\": \"...\"}, found " + pattern.dump());
    }
    s.behavior = behavior(string_member(p, "behavior", where), where + ".behavior");
    s.invert = bool_member(p, "invert", where, false);
    steps_.push_back(std::move(s));
  } else if (type == "Metaspace") {
    Step s;
    s.kind = Step::Kind::metaspace;
    s.replacement = string_member(p, "replacement", where);
    if (detail::utf8::first_invalid(s.replacement) || s.replacement.empty())
      fail(where + ".replacement is not one character");
    const auto scheme = p.contains("prepend_scheme")                      ? string_member(p, "prepend_scheme", where)
                        : bool_member(p, "add_prefix_space", where, true) ? "always"
                                                                          : "never";
    if (scheme == "always")
      s.prepend = Step::Prepend::always;
    else if (scheme == "first")
      s.prepend = Step::Prepend::first;
    else if (scheme == "never")
      s.prepend = Step::Prepend::never;
    else
      fail(where + ".prepend_scheme \"" + scheme + "\" is not always, first or never");
    if (bool_member(p, "split", where, true)) s.regex = compile(detail::escape_literal(s.replacement), where);
    steps_.push_back(std::move(s));
  } else if (type == "Digits") {
    Step s;
    // Digits uses char::is_numeric, the Unicode N categories; runs or single digits, isolated.
    s.regex = compile(bool_member(p, "individual_digits", where, false) ? R"(\p{N})" : R"(\p{N}+)", where);
    steps_.push_back(std::move(s));
  } else {
    fail(where + ".type \"" + type +
         "\" is not supported (ordo supports ByteLevel, Split, Digits, Metaspace, Sequence)");
  }
}

inline void Tokenizer::load_decoder(const nlohmann::json& d, const std::string& where) {
  using D = detail::DecodeStep;
  const auto type = string_member(d, "type", where);
  if (type == "Sequence") {
    const auto& list = member(d, "decoders", where);
    if (!list.is_array() || list.empty()) fail(where + ".decoders must be a non-empty array");
    for (std::size_t i = 0; i < list.size(); ++i) load_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    byte_level_decoder_ = true;
  } else if (type == "Replace") {
    decoders_.push_back({D::Kind::replace, literal_pattern(d, where), string_member(d, "content", where)});
  } else if (type == "ByteFallback") {
    decoders_.push_back({D::Kind::byte_fallback, {}, {}});
  } else if (type == "Fuse") {
    decoders_.push_back({D::Kind::fuse, {}, {}});
  } else if (type == "Strip") {
    D s{D::Kind::strip, string_member(d, "content", where), {}};
    if (detail::utf8::first_invalid(s.from) || s.from.empty() ||
        detail::utf8::sequence_length(s.from, 0) != s.from.size()) {
      fail(where + ".content must be one character");
    }
    const auto count = [&](const char* key) {
      const auto& v = member(d, key, where);
      if (!v.is_number_unsigned()) fail(where + "." + key + " must be a count");
      return static_cast<std::size_t>(std::min<std::uint64_t>(v.get<std::uint64_t>(), 1u << 20));
    };
    s.start = count("start");
    s.stop = count("stop");
    decoders_.push_back(std::move(s));
  } else if (type == "Metaspace") {
    D s{D::Kind::metaspace, string_member(d, "replacement", where), {}};
    const auto scheme = d.contains("prepend_scheme")                      ? string_member(d, "prepend_scheme", where)
                        : bool_member(d, "add_prefix_space", where, true) ? "always"
                                                                          : "never";
    s.start = scheme == "never" ? 0 : 1;
    decoders_.push_back(std::move(s));
  } else {
    fail(where + ".type \"" + type +
         "\" is not supported (ordo supports ByteLevel, Replace, ByteFallback, Fuse, "
         "Strip, Metaspace, Sequence)");
  }
}

// The literal of a Replace step ({"pattern": {"String": ...}}).
inline std::string Tokenizer::literal_pattern(const nlohmann::json& j, const std::string& where) const {
  const auto& pattern = member(j, "pattern", where);
  if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
      pattern["String"].get<std::string>().empty()) {
    fail(where + ".pattern must be {\"String\": \"...\"} (regex replacements are not supported)");
  }
  return pattern["String"].get<std::string>();
}

inline void Tokenizer::load_post_processor(const nlohmann::json& p, const std::string& where) {
  const auto type = string_member(p, "type", where);
  if (type == "Sequence") {
    const auto& list = member(p, "processors", where);
    if (!list.is_array()) fail(where + ".processors must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    // Adjusts offsets only; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    const auto& single = member(p, "single", where);
    if (!single.is_array()) fail(where + ".single must be an array");
    const auto& specials = member(p, "special_tokens", where);
    bool seen_sequence = false;
    std::vector<TokenId> prefix, suffix;
    for (std::size_t i = 0; i < single.size(); ++i) {
      const auto& piece = single[i];
      const std::string w = where + ".single[" + std::to_string(i) + "]";
      if (piece.is_object() && piece.contains("Sequence")) {
        if (seen_sequence) fail(w + ": a second $A in the single template");
        seen_sequence = true;
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        const auto name = string_member(piece["SpecialToken"], "id", w + ".SpecialToken");
        const auto& entry = member(specials, name.c_str(), where + ".special_tokens");
        const auto& ids = member(entry, "ids", where + ".special_tokens[\"" + name + "\"]");
        if (!ids.is_array()) fail(where + ".special_tokens[\"" + name + "\"].ids must be an array");
        for (const auto& id : ids) (seen_sequence ? suffix : prefix).push_back(id_value(id, w));
      } else {
        fail(w + " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}, found " + piece.dump());
      }
    }
    if (!seen_sequence) fail(where + ".single has no {\"Sequence\": {\"id\": \"A\"}}");
    add_template(prefix, suffix);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto& cls = member(p, "cls", where);
    const auto& sep = member(p, "sep", where);
    if (!cls.is_array() || cls.size() != 2 || !sep.is_array() || sep.size() != 2) {
      fail(where + ".cls and .sep must be [token, id]");
    }
    add_template({id_value(cls[1], where + ".cls")}, {id_value(sep[1], where + ".sep")});
  } else {
    fail(where + ".type \"" + type + "\" is not supported");
  }
}

inline detail::PreTokenizeStep::Behavior Tokenizer::behavior(const std::string& name, const std::string& where) const {
  using B = detail::PreTokenizeStep::Behavior;
  if (name == "Isolated") return B::isolated;
  if (name == "Removed") return B::removed;
  if (name == "MergedWithPrevious") return B::merged_with_previous;
  if (name == "MergedWithNext") return B::merged_with_next;
  if (name == "Contiguous") return B::contiguous;
  fail(where + " \"" + name + "\" is not a split behavior");
}

}  // namespace ordo
