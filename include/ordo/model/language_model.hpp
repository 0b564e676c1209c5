// ordo/model/language_model.hpp — a causal LM with its tokenizer and chat template, loaded from
// a Hugging Face directory or a GGUF file, and where the embedded default model lives.
#pragma once

#include <filesystem>  // std::filesystem::path
#include <optional>    // std::optional
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string
#include <string_view> // std::string_view
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/io/gguf.hpp>             // gguf::File
#include <ordo/model/default_model.hpp>  // default_model_path, require_model_directory
#include <ordo/text/chat_template.hpp>  // ChatTemplate, read_chat_template
#include <ordo/model/decoder.hpp>       // CausalLM, load_hf
#include <ordo/model/load_hf.hpp>       // load_hf, read_tensor
#include <ordo/model/load_gguf.hpp>     // load_gguf
#include <ordo/text/tokenizer.hpp>      // Tokenizer

namespace ordo::model {

struct LanguageModel {
  CausalLM lm{nullptr};
  Tokenizer tokenizer;
  std::optional<ChatTemplate> chat;  // absent when the checkpoint carries no known template
  std::filesystem::path source;

  /// Token ids that end a reply: the EOS id and, for chat models, the end-of-turn token.
  std::vector<TokenId> stop_ids() const {
    std::vector<TokenId> ids;
    if (auto eos = tokenizer.eos_id()) ids.push_back(*eos);
    for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>"})
      if (auto id = tokenizer.token_id(t)) ids.push_back(*id);
    return ids;
  }
};

/// The tokenizer and chat template of the model at `path` (an HF directory with tokenizer.json,
/// or a .gguf file), without its weights. A directory must hold a model (require_model_directory).
struct TextInterface {
  Tokenizer tokenizer;
  std::optional<ChatTemplate> chat;  // absent when the checkpoint carries no known template
};

inline TextInterface load_text_interface(const std::filesystem::path& path) {
  // The chat template, when the checkpoint has one ordo can render (none: raw prompts only).
  auto chat_of = [](const Tokenizer& t, std::string_view jinja) -> std::optional<ChatTemplate> {
    if (jinja.empty()) return std::nullopt;
    const auto text = [&](std::optional<TokenId> id, const char* fallback) {
      return id ? t.token_text(*id) : std::string(fallback);
    };
    return ChatTemplate::try_from_jinja(jinja, text(t.bos_id(), "<|begin_of_text|>"), text(t.eos_id(), "</s>"));
  };
  if (std::filesystem::is_directory(path)) {
    require_model_directory(path);
    auto tokenizer = Tokenizer::from_directory(path);
    auto jinja = read_chat_template(path);
    auto chat = chat_of(tokenizer, jinja ? *jinja : std::string());
    return {std::move(tokenizer), std::move(chat)};
  }
  io::gguf::File file(path);
  const auto meta = file.tokenizer();
  auto tokenizer = Tokenizer::from_gguf_metadata(meta, path.string());
  auto chat = chat_of(tokenizer, meta.chat_template);
  return {std::move(tokenizer), std::move(chat)};
}

/// The model at `path` (a .gguf file or an HF directory), or the default model when `path` is
/// empty. A missing default model is an error that says how to install it.
/// Parameters are made on `where.device` in `where.dtype` (float32 on the CPU by default).
inline LanguageModel load_language_model(std::filesystem::path path = {}, const placement& where = {}) {
  path = existing_model_path(std::move(path));
  auto text = load_text_interface(path);
  auto lm = std::filesystem::is_directory(path) ? load_hf(path, where) : load_gguf(path, where);
  return LanguageModel{lm, std::move(text.tokenizer), std::move(text.chat), path};
}

}  // namespace ordo::model
