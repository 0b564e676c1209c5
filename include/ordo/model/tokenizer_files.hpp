// ordo/model/tokenizer_files.hpp — a GGUF file's tokenizer as the files a Hugging Face model
// directory carries: tokenizer.json and tokenizer_config.json (Tokenizer::hf_tokenizer_json /
// hf_tokenizer_config: the same ids for every text as ordo's tokenizer of the GGUF) and
// chat_template.jinja. Torch-free: save_hf / save_nf4 write them beside a model that came from
// GGUF, and `ordo-tokenize --save-tokenizer DIR` for a GGUF on its own.
#pragma once

#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <optional>    // std::optional
#include <string>      // std::string

#include <ordo/io/atomic_directory.hpp>  // write_text
#include <ordo/io/gguf.hpp>              // gguf::File
#include <ordo/text/tokenizer.hpp>       // Tokenizer::vocabulary_of, hf_tokenizer_json, hf_tokenizer_config

namespace ordo::model {

/// The context length a GGUF file states (`<general.architecture>.context_length`), if any.
inline std::optional<std::int64_t> gguf_context_length(const io::gguf::File& file) {
  const auto* arch = file.find("general.architecture");
  if (!arch) return std::nullopt;
  const auto* n = file.find(std::string(arch->as_string()) + ".context_length");
  if (!n) return std::nullopt;
  return static_cast<std::int64_t>(n->as_uint());
}

/// Writes tokenizer.json, tokenizer_config.json and (when the GGUF has one) chat_template.jinja
/// of the GGUF file `gguf` into the existing directory `out`, each file atomically.
/// `model_max_length` goes into tokenizer_config.json (default: the GGUF's context length).
/// Throws TokenizerError or io errors naming the GGUF file.
inline void write_gguf_tokenizer_files(const std::filesystem::path& gguf, const std::filesystem::path& out,
                                       std::optional<std::int64_t> model_max_length = std::nullopt) {
  const io::gguf::File file(gguf);
  const auto meta = file.tokenizer();
  const auto vocabulary = Tokenizer::vocabulary_of(meta);
  const auto max_length = model_max_length ? *model_max_length : gguf_context_length(file).value_or(2048);
  io::write_text(out / "tokenizer.json", Tokenizer::hf_tokenizer_json(vocabulary, gguf.string()).dump(1) + "\n");
  io::write_text(out / "tokenizer_config.json",
                 Tokenizer::hf_tokenizer_config(vocabulary, {}, max_length).dump(2) + "\n");
  if (!meta.chat_template.empty()) io::write_text(out / "chat_template.jinja", std::string(meta.chat_template));
}

}  // namespace ordo::model
