// ordo/io/gguf_tokenizer.hpp — the tokenizer metadata of a GGUF file (`tokenizer.ggml.*`,
// `tokenizer.chat_template`), read from a parsed header and checked for consistency; torch-free.
// ordo::Tokenizer::from_gguf_metadata (ordo/text/tokenizer.hpp) builds a tokenizer from it.
#pragma once

#include <cstdint>      // std::int32_t, std::uint32_t, std::uint64_t
#include <optional>     // std::optional
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <ordo/io/error.hpp>        // ordo::io::format_error
#include <ordo/io/gguf_header.hpp>  // Header, Value, detail::key_object

namespace ordo::io::gguf {

/// Tokenizer data from a GGUF file's `tokenizer.*` metadata. Views refer to the file.
struct TokenizerMetadata {
  std::string_view model;  ///< tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama" ...
  std::string_view pre;    ///< tokenizer.ggml.pre, "" when absent
  std::vector<std::string_view> tokens;
  std::vector<std::int32_t> token_types;  ///< empty when absent; else one per token
  std::vector<float> scores;              ///< empty when absent; else one per token
  std::vector<std::string_view> merges;   ///< "left right", in priority order
  std::optional<std::uint32_t> bos_id, eos_id, unknown_id, padding_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string_view chat_template;  ///< tokenizer.chat_template, "" when absent
};

/// The tokenizer metadata of a parsed file, checked for consistency (one type and score per
/// token, special ids within the vocabulary). Throws format_error, naming `file_name` and the
/// key, when tokenizer.ggml.model or tokenizer.ggml.tokens is missing or a value is wrong.
inline TokenizerMetadata tokenizer_metadata(const Header& h, std::string_view file_name) {
  const std::string path(file_name);
  auto find = [&](std::string_view key) { return h.find(key); };
  auto at = [&](std::string_view key) -> const Value& {
    if (const Value* v = h.find(key)) return *v;
    throw format_error(path, detail::key_object(key), "not in the metadata");
  };
  TokenizerMetadata tk;
  tk.model = at("tokenizer.ggml.model").as_string();
  if (const Value* v = find("tokenizer.ggml.pre")) tk.pre = v->as_string();
  tk.tokens = at("tokenizer.ggml.tokens").strings();
  const std::uint64_t n = tk.tokens.size();
  if (const Value* v = find("tokenizer.ggml.token_type")) {
    tk.token_types = v->array<std::int32_t>();
    if (tk.token_types.size() != n)
      throw format_error(path, detail::key_object(v->key()),
                         std::to_string(tk.token_types.size()) + " token types for " + std::to_string(n) + " tokens");
  }
  if (const Value* v = find("tokenizer.ggml.scores")) {
    tk.scores = v->array<float>();
    if (tk.scores.size() != n)
      throw format_error(path, detail::key_object(v->key()),
                         std::to_string(tk.scores.size()) + " scores for " + std::to_string(n) + " tokens");
  }
  if (const Value* v = find("tokenizer.ggml.merges")) tk.merges = v->strings();
  auto id = [&](std::string_view key, std::optional<std::uint32_t>& out) {
    if (const Value* v = find(key)) {
      const auto x = v->as_uint();
      if (x >= n)
        throw format_error(path, detail::key_object(key),
                           "token id " + std::to_string(x) + " is outside the vocabulary of " + std::to_string(n));
      out = static_cast<std::uint32_t>(x);
    }
  };
  id("tokenizer.ggml.bos_token_id", tk.bos_id);
  id("tokenizer.ggml.eos_token_id", tk.eos_id);
  id("tokenizer.ggml.unknown_token_id", tk.unknown_id);
  id("tokenizer.ggml.padding_token_id", tk.padding_id);
  auto flag = [&](std::string_view key, std::optional<bool>& out) {
    if (const Value* v = find(key)) out = v->as_bool();
  };
  flag("tokenizer.ggml.add_bos_token", tk.add_bos);
  flag("tokenizer.ggml.add_eos_token", tk.add_eos);
  flag("tokenizer.ggml.add_space_prefix", tk.add_space_prefix);
  if (const Value* v = find("tokenizer.chat_template")) tk.chat_template = v->as_string();
  return tk;
}

}  // namespace ordo::io::gguf
