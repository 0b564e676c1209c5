// ordo/text/detail/tokenizer_load.hpp — the loading steps Tokenizer's two sources share (a
// tokenizer.json and a GGUF vocabulary): the token table, the merges, the post-processor
// template, compiled patterns, and the tables derived once the vocabulary is complete.
#pragma once

#include <cstddef>      // std::size_t
#include <cstdint>      // std::int32_t
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <utility>      // std::pair
#include <vector>       // std::vector

#include <ordo/text/detail/decode_steps.hpp>  // piece_bytes
#include <ordo/text/detail/pcre2_regex.hpp>   // Pcre2Regex
#include <ordo/text/tokenizer.hpp>            // Tokenizer (which includes this header at its end)
#include <ordo/text/utf8.hpp>                 // utf8::first_invalid, byte_level

namespace ordo {

inline void Tokenizer::check_utf8(std::string_view s, const std::string& where) const {
  if (detail::utf8::first_invalid(s)) fail(where + " is not valid UTF-8");
}

inline void Tokenizer::put_token(TokenId id, const std::string& spelling, const std::string& where) {
  const auto i = static_cast<std::size_t>(id);
  if (i >= tokens_.size()) {
    tokens_.resize(i + 1);
    present_.resize(i + 1, false);
    special_.resize(i + 1, false);
  }
  if (present_[i] && tokens_[i] != spelling) {
    fail(where + ": id " + std::to_string(id) + " is given to both \"" + tokens_[i] + "\" and \"" + spelling + "\"");
  }
  tokens_[i] = spelling;
  present_[i] = true;
}

inline void Tokenizer::build_merges(const std::vector<std::pair<std::string, std::string>>& pairs) {
  merges_.reserve(pairs.size());
  for (std::size_t rank = 0; rank < pairs.size(); ++rank) {
    const auto& [a, b] = pairs[rank];
    const auto ia = model_vocab_.find(a);
    const auto ib = model_vocab_.find(b);
    const auto im = model_vocab_.find(a + b);
    const std::string where = "merge " + std::to_string(rank) + " (\"" + a + "\" + \"" + b + "\")";
    if (ia == model_vocab_.end()) fail(where + ": \"" + a + "\" is not in the vocabulary");
    if (ib == model_vocab_.end()) fail(where + ": \"" + b + "\" is not in the vocabulary");
    if (im == model_vocab_.end()) fail(where + ": the merged token \"" + a + b + "\" is not in the vocabulary");
    merges_.add(ia->second, ib->second, static_cast<std::int32_t>(rank), im->second);
  }
}

inline void Tokenizer::add_template(const std::vector<TokenId>& prefix, const std::vector<TokenId>& suffix) {
  if (has_template_) fail("post_processor has two templates; ordo supports one");
  has_template_ = true;
  prefix_ids_ = prefix;
  suffix_ids_ = suffix;
}

inline detail::Pcre2Regex Tokenizer::compile(std::string_view pattern, const std::string& where) const {
  try {
    return detail::Pcre2Regex(pattern);
  } catch (const std::invalid_argument& e) {
    fail(where + ": " + e.what());
  }
}

inline void Tokenizer::finish() {
  bytes_.resize(tokens_.size());
  for (std::size_t i = 0; i < tokens_.size(); ++i)
    if (present_[i])
      bytes_[i] = byte_level_ ? detail::byte_level::decode(tokens_[i])
                              : detail::piece_bytes(decoders_, byte_fallback_, tokens_[i]);
  static const char* hex = "0123456789ABCDEF";
  for (std::size_t i = 0; i < 256; ++i) {
    const std::string key =
        byte_level_ ? detail::byte_level::alphabet()[i] : std::string("<0x") + hex[i >> 4] + hex[i & 15] + ">";
    const auto it = model_vocab_.find(key);
    byte_ids_[i] = it == model_vocab_.end() ? -1 : it->second;
  }
  for (std::size_t k = 0; k < added_.size(); ++k) {
    const auto& a = added_[k];
    special_[static_cast<std::size_t>(a.id)] = a.special;
    (a.normalized ? normalized_matcher_ : raw_matcher_).add(a.content, k);
  }
  for (const auto id : prefix_ids_)
    if (!contains(id)) fail("post_processor adds id " + std::to_string(id) + ", which is not in the vocabulary");
  for (const auto id : suffix_ids_)
    if (!contains(id)) fail("post_processor adds id " + std::to_string(id) + ", which is not in the vocabulary");
  for (const auto& a : added_) added_lookup_[a.content] = a.id;
  word_ = detail::Pcre2Regex(R"(\w)");
  space_ = detail::Pcre2Regex(R"(\s)");
}

}  // namespace ordo
