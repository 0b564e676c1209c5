// ordo/model/load_for_inference.hpp — any model ordo reads or writes, for inference: a .gguf
// file, a Hugging Face directory, or an NF4 directory in bitsandbytes' format (what a chain
// ending in Q saves). For a directory without tokenizer.json (saved by ordo before it wrote
// one for GGUF sources, or a bare checkpoint), `tokenizer_from` names the model to take it from. The model is made on `where.device` in
// `where.dtype` (NF4 weights keep their packed bytes on the host).
#pragma once

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <ordo/model/decoder.hpp>         // CausalLM
#include <ordo/model/language_model.hpp>  // LanguageModel, load_language_model
#include <ordo/model/load_hf.hpp>         // load_hf
#include <ordo/model/nf4_checkpoint.hpp>  // load_nf4

namespace ordo::model {

inline LanguageModel load_for_inference(const std::filesystem::path& path,
                                        const std::filesystem::path& tokenizer_from = {}, const placement& where = {}) {
  namespace fs = std::filesystem;
  const bool dir = !path.empty() && fs::is_directory(path);
  if (dir) require_model_directory(path);
  const bool has_tokenizer = dir && fs::exists(path / "tokenizer.json");
  bool quantized = false;
  if (dir && fs::exists(path / "config.json")) {
    std::ifstream in(path / "config.json");
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    quantized = j.is_object() && j.contains("quantization_config");
  }
  if (!quantized && (!dir || has_tokenizer) && tokenizer_from.empty())
    return ordo::model::load_language_model(path, where);

  // The tokenizer (and chat template) from the model itself or from `tokenizer_from`.
  if (!has_tokenizer && tokenizer_from.empty())
    throw std::runtime_error(path.string() + " has no tokenizer.json; pass --tokenizer with the model it was " +
                             "compressed from (e.g. the embedded default's .gguf)");
  // Only the donor's tokenizer and chat template are read, never its weights.
  auto donor =
      ordo::model::load_text_interface(has_tokenizer ? path : ordo::model::existing_model_path(tokenizer_from));
  ordo::model::CausalLM lm = quantized ? ordo::model::load_nf4(path, where).lm() : ordo::model::load_hf(path, where);
  return ordo::model::LanguageModel{lm, std::move(donor.tokenizer), std::move(donor.chat), path};
}

}  // namespace ordo::model
