// ordo/model/save_hf.hpp — saving a DenseModel as a Hugging Face checkpoint directory that
// `transformers` loads: config.json, model.safetensors and the source's tokenizer files.
//
//   save_hf(const DenseModel&, dir) -> SavedCheckpoint
//
// The directory is written atomically (io::write_directory_atomically): an existing `dir` is
// replaced only when it holds nothing but checkpoint files, so a wrong path cannot wipe
// unrelated data. The format and how it was checked against transformers: docs/checkpoints.md.
#pragma once

#include <cstdint>     // std::uint8_t, std::uint64_t
#include <filesystem>  // std::filesystem
#include <map>         // std::map
#include <memory>      // std::shared_ptr
#include <span>        // std::span
#include <string>      // std::string
#include <vector>      // std::vector

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/io/atomic_directory.hpp>  // write_directory_atomically, write_text
#include <ordo/io/hf_directory.hpp>      // checkpoint_size, is_checkpoint_file, tokenizer_files
#include <ordo/io/safetensors.hpp>       // safetensors::write
#include <ordo/model/decoder.hpp>        // CausalLM
#include <ordo/model/dense_model.hpp>    // DenseModel
#include <ordo/model/dtype.hpp>          // safetensors_dtype, torch_dtype_name
#include <ordo/model/tokenizer_files.hpp>  // write_gguf_tokenizer_files (GGUF sources)
#include <ordo/text/tokenizer.hpp>        // Tokenizer

namespace ordo::model {

/// What a save wrote.
struct SavedCheckpoint {
  std::filesystem::path dir;
  io::CheckpointSize size;               ///< of the directory as written
  std::uint64_t memory_bytes = 0;        ///< the model's tensors in memory (model_base::memory_bytes)
  std::vector<std::string> not_written;  ///< files a full HF directory has that could not be made, and why
};

namespace detail::save {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Bytes of one tensor to write, and what keeps them alive.
struct Entries {
  std::vector<io::safetensors::TensorEntry> entries;
  std::vector<torch::Tensor> keep;
  std::vector<std::shared_ptr<const std::vector<std::uint8_t>>> keep_bytes;

  void add_tensor(const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    keep.push_back(c);
    std::vector<std::uint64_t> shape(c.sizes().begin(), c.sizes().end());
    entries.push_back({name, safetensors_dtype(c.scalar_type()), std::move(shape),
                       std::span<const std::byte>(static_cast<const std::byte*>(c.data_ptr()),
                                                  static_cast<std::size_t>(c.nbytes()))});
  }
  template <class T>
  void add_raw(const std::string& name, io::safetensors::Dtype dtype, std::vector<std::uint64_t> shape,
               const std::vector<T>& data) {
    entries.push_back({name, dtype, std::move(shape), std::as_bytes(std::span<const T>(data))});
  }
  void add_owned(const std::string& name, io::safetensors::Dtype dtype, std::vector<std::uint64_t> shape,
                 std::vector<std::uint8_t> data) {
    auto p = std::make_shared<const std::vector<std::uint8_t>>(std::move(data));
    keep_bytes.push_back(p);
    add_raw(name, dtype, std::move(shape), *p);
  }
};

inline json base_config(const CausalLM& lm, torch::ScalarType dtype) {
  json j = lm->config().to_json();
  j.erase("quantization_config");
  // transformers 5 reads and writes "dtype"; 4.x reads "torch_dtype" (5 accepts it silently).
  j["dtype"] = torch_dtype_name(dtype);
  j["torch_dtype"] = torch_dtype_name(dtype);
  return j;
}

/// The dtype of the model's floating-point parameters (the first one's).
inline torch::ScalarType parameter_dtype(const CausalLM& lm) {
  for (const auto& p : const_cast<CausalLM&>(lm)->parameters()) return p.scalar_type();
  return torch::kFloat32;
}

/// The tokenizer files beside the weights of a model from `src` with `tokenizer` (may be null):
/// copied from a Hugging Face source directory that has a tokenizer.json; else, when the
/// tokenizer came from a GGUF file (the model's own, or the one `--tokenizer` named), written
/// from its metadata: tokenizer.json and tokenizer_config.json, which encode every text as ordo
/// does from that GGUF, and chat_template.jinja. Returns what a
/// full directory would hold but this one does not.
inline std::vector<std::string> write_tokenizer(const fs::path& src, const Tokenizer* tokenizer,
                                                std::int64_t model_max_length, const fs::path& out) {
  if (!src.empty() && fs::is_directory(src) && fs::is_regular_file(src / "tokenizer.json")) {
    for (const char* f : io::tokenizer_files)
      if (fs::is_regular_file(src / f)) fs::copy_file(src / f, out / f);
    return {};
  }
  const fs::path gguf = tokenizer ? fs::path(tokenizer->source()) : fs::path();
  if (gguf.extension() == ".gguf" && fs::is_regular_file(gguf)) {
    write_gguf_tokenizer_files(gguf, out, model_max_length);
    return {};
  }
  return {"tokenizer.json: " + (src.empty() ? std::string("the model has no source to take it from")
                                            : src.string() + " has none, and the tokenizer did not come from a GGUF file")};
}

/// Writes config.json; BOS/EOS/PAD ids the config lacks (a GGUF source keeps them in its
/// tokenizer metadata) are taken from `tokenizer`, so transformers' generate stops at EOS.
inline void write_config(const fs::path& path, json j, const Tokenizer* tokenizer) {
  if (tokenizer) {
    const auto fill = [&](const char* key, std::optional<TokenId> id) {
      if (id && (!j.contains(key) || j[key].is_null())) j[key] = *id;
    };
    fill("bos_token_id", tokenizer->bos_id());
    fill("eos_token_id", tokenizer->eos_id());
    fill("pad_token_id", tokenizer->pad_id());
  }
  io::write_text(path, j.dump(2) + "\n");
}

inline const std::map<std::string, std::string> pt_metadata = {{"format", "pt"}};

}  // namespace detail::save

/// Saves a dense model as a Hugging Face directory: config.json (decoder_config::to_json with
/// "dtype" and "torch_dtype" of the parameters), model.safetensors (every parameter by transformers' name in its
/// dtype; a tied lm_head is not stored, as transformers does not store it), and the tokenizer
/// files of the source directory (for a GGUF source: written from its metadata; see
/// SavedCheckpoint::not_written). load_hf(dir) gives the same model back.
inline SavedCheckpoint save_hf(const DenseModel& m, const std::filesystem::path& dir) {
  namespace ck = detail::save;
  SavedCheckpoint out;
  auto& lm = const_cast<model::CausalLM&>(m.lm());
  out.dir = io::write_directory_atomically(
      dir,
      [&](const std::filesystem::path& tmp) {
        ck::Entries e;
        for (const auto& p : lm->named_parameters()) e.add_tensor(p.key(), p.value());
        io::safetensors::write(tmp / "model.safetensors", e.entries, ck::pt_metadata);
        ck::write_config(tmp / "config.json", ck::base_config(lm, ck::parameter_dtype(lm)), m.shared_tokenizer().get());
        out.not_written = ck::write_tokenizer(m.source(), m.shared_tokenizer().get(),
                                              lm->config().max_position_embeddings, tmp);
      },
      io::is_checkpoint_file);
  out.size = io::checkpoint_size(out.dir);
  out.memory_bytes = m.memory_bytes();
  return out;
}

}  // namespace ordo::model
