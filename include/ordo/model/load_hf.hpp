// ordo/model/load_hf.hpp — a Hugging Face checkpoint directory (config.json + safetensors, one
// file or sharded) as a CausalLM.
//
//   read_tensor(checkpoint, name)  one stored tensor as a torch tensor
//   load_hf(dir, where)            the whole model; every parameter present, every tensor used
#pragma once

#include <algorithm>   // std::find
#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <sstream>     // std::ostringstream
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/io/safetensors.hpp>  // safetensors::Checkpoint
#include <ordo/model/config.hpp>    // decoder_config
#include <ordo/model/decoder.hpp>   // CausalLM
#include <ordo/model/dtype.hpp>     // torch_dtype

namespace ordo::model {

/// A tensor of a safetensors checkpoint as a torch tensor that views the mapped file (valid
/// while `checkpoint` lives; read-only: copy it before changing it).
inline torch::Tensor view_tensor(const io::safetensors::Checkpoint& checkpoint, const std::string& name) {
  const auto& where = checkpoint.at(name);
  std::vector<std::int64_t> shape(where.info->shape.begin(), where.info->shape.end());
  auto dtype = torch_dtype(where.info->dtype, where.file->path() + ": tensor '" + name + "'");
  auto bytes = where.data();
  return torch::from_blob(const_cast<std::byte*>(bytes.data()), shape, dtype);
}

/// Throws unless every value of the floating-point tensor `t` is finite: "<file>: tensor
/// '<name>' holds a non-finite value (NaN or Inf) at element i: the file is corrupt". A weight
/// that is not finite makes every output NaN; loading is where it can still be named. One pass
/// over the values, cheap next to reading them.
inline void require_finite(const torch::Tensor& t, const std::string& file, const std::string& name) {
  if (!t.is_floating_point() || t.numel() == 0) return;
  const auto bad = torch::isfinite(t).logical_not().flatten();
  if (!bad.any().item<bool>()) return;
  const auto at = bad.nonzero()[0].item<std::int64_t>();
  throw std::invalid_argument(file + ": tensor '" + name + "' holds a non-finite value (NaN or Inf) at element " +
                              std::to_string(at) + ": the file is corrupt");
}

/// A tensor of a safetensors checkpoint as a torch tensor (copied out of the mapping).
inline torch::Tensor read_tensor(const io::safetensors::Checkpoint& checkpoint, const std::string& name) {
  return view_tensor(checkpoint, name).clone();
}

/// Loads a Hugging Face checkpoint directory (config.json + model.safetensors or a sharded
/// index) into a CausalLM whose parameters are made on `where.device` in `where.dtype` and
/// copied there straight from the mapped file, one tensor at a time. Every parameter must be
/// present with its shape and finite, and every tensor of the checkpoint must be used: a mismatch
/// is an error naming the file and the tensor (nothing is silently re-initialised).
inline CausalLM load_hf(const std::filesystem::path& dir, const placement& where = {}) {
  auto config = decoder_config::load(dir);
  io::safetensors::Checkpoint checkpoint(dir);
  for (const auto& name : checkpoint.names())
    if (name.ends_with(".quant_state.bitsandbytes__nf4"))
      throw std::invalid_argument(
          dir.string() + ": the weights are NF4 (tensor '" + name +
          "') but config.json has no quantization_config; restore it (an NF4 directory ordo or transformers saved "
          "has {\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, \"bnb_4bit_quant_type\": \"nf4\", ...})");
  CausalLM lm(config, build_options(where, /*draw=*/false));
  torch::NoGradGuard no_grad;
  std::vector<std::string> used;
  for (auto& p : lm->named_parameters()) {
    const std::string& name = p.key();
    const auto* where = checkpoint.find(name);
    if (!where) throw std::invalid_argument(dir.string() + ": tensor '" + name + "' is missing from the checkpoint");
    auto t = view_tensor(checkpoint, name);
    if (t.sizes() != p.value().sizes()) {
      std::ostringstream msg;
      msg << where->file->path() << ": tensor '" << name << "' has shape " << t.sizes() << " but the config implies "
          << p.value().sizes();
      throw std::invalid_argument(msg.str());
    }
    require_finite(t, where->file->path(), name);
    p.value().copy_(t);
    used.push_back(name);
  }
  for (const auto& name : checkpoint.names()) {
    if (std::find(used.begin(), used.end(), name) == used.end() &&
        !(config.tie_word_embeddings && name == "lm_head.weight") &&
        name.find("rotary_emb.inv_freq") == std::string::npos) {
      throw std::invalid_argument(dir.string() + ": tensor '" + name + "' of the checkpoint is not a parameter of a " +
                                  config.model_type + " decoder with this config");
    }
  }
  lm->eval();
  return lm;
}

}  // namespace ordo::model
