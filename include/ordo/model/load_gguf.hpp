// ordo/model/load_gguf.hpp — a GGUF file (llama.cpp's format) as an ordo::model::CausalLM.
//
// Reads the architecture from the metadata (`general.architecture` = llama or qwen2), maps
// llama.cpp's tensor names to transformers' (blk.N.attn_q -> model.layers.N.self_attn.q_proj),
// dequantizes every tensor to fp32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1, k-quants: see
// ordo/io/ggml_dequantize.hpp) and undoes the row permutation llama.cpp's converter applies to
// the q and k projections of llama models (it interleaves the two RoPE halves per head).
#pragma once

#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <map>         // std::map
#include <set>         // std::set
#include <string>      // std::string

#include <torch/torch.h>

#include <ordo/io/gguf.hpp>          // gguf::File
#include <ordo/model/config.hpp>     // decoder_config
#include <ordo/model/decoder.hpp>    // CausalLM

namespace ordo::model {

namespace detail {

// The HF name of a GGUF tensor, or "" when ordo does not use it.
inline std::string hf_name(const std::string& gguf) {
  static const std::map<std::string, std::string> top{
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  if (auto it = top.find(gguf); it != top.end()) return it->second;
  static const std::map<std::string, std::string> block{
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"}};
  if (gguf.rfind("blk.", 0) != 0) return "";
  const auto dot = gguf.find('.', 4);
  if (dot == std::string::npos) return "";
  const std::string layer = gguf.substr(4, dot - 4), rest = gguf.substr(dot + 1);
  if (layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos) return "";
  if (auto it = block.find(rest); it != block.end()) return "model.layers." + layer + "." + it->second;
  return "";
}

// llama.cpp stores q/k rows of each head as (pairs, 2) instead of (2, pairs); swap back.
inline torch::Tensor unpermute_rope_rows(const torch::Tensor& w, std::int64_t heads) {
  const auto rows = w.size(0);
  auto shape = w.sizes().vec();
  std::vector<std::int64_t> split{heads, rows / heads / 2, 2};
  for (std::size_t i = 1; i < shape.size(); ++i) split.push_back(shape[i]);
  return w.reshape(split).transpose(1, 2).reshape(shape).contiguous();
}

}  // namespace detail

/// The decoder config a GGUF file describes; errors name the file and the key.
inline decoder_config gguf_config(const io::gguf::File& file) {
  const std::string arch(file.at("general.architecture").get<std::string_view>());
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(file.path() + ": " + what);
  };
  if (arch != "llama" && arch != "qwen2")
    fail("general.architecture '" + arch + "' is not supported (llama, qwen2)");
  auto u = [&](const std::string& key) { return static_cast<std::int64_t>(file.at(arch + "." + key).as_uint()); };
  auto d = [&](const std::string& key, double fallback) {
    const auto* v = file.find(arch + "." + key);
    return v ? v->as_double() : fallback;
  };
  decoder_config c;
  c.model_type = arch;
  c.num_layers = u("block_count");
  c.hidden_size = u("embedding_length");
  c.num_heads = u("attention.head_count");
  c.num_kv_heads = file.find(arch + ".attention.head_count_kv") ? u("attention.head_count_kv") : c.num_heads;
  c.head_dim = file.find(arch + ".rope.dimension_count") ? u("rope.dimension_count")
                                                          : c.hidden_size / c.num_heads;
  c.intermediate_sizes.assign(static_cast<std::size_t>(c.num_layers), u("feed_forward_length"));
  c.rms_norm_eps = d("attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = d("rope.freq_base", 10000.0);
  c.max_position_embeddings = file.find(arch + ".context_length") ? u("context_length") : 2048;
  const auto& embd = file.tensor("token_embd.weight");
  c.vocab_size = static_cast<std::int64_t>(embd.shape().at(0));
  c.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  if (file.find_tensor("rope_freqs.weight"))
    fail("tensor 'rope_freqs.weight' (Llama 3.1 RoPE scaling stored as factors) is not supported yet");
  if (const auto* v = file.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = static_cast<std::int64_t>(v->as_uint());
  if (const auto* v = file.find("tokenizer.ggml.eos_token_id")) c.eos_token_id = static_cast<std::int64_t>(v->as_uint());
  nlohmann::json hf = {{"model_type", arch}, {"rope_theta", c.rope_theta}};
  c.original = hf;
  c.validate(file.path());
  return c;
}

/// Loads a GGUF file into a CausalLM with parameters of `dtype` (dequantized through fp32).
inline CausalLM load_gguf(const std::filesystem::path& path, torch::ScalarType dtype = torch::kFloat32) {
  io::gguf::File file(path);
  auto config = gguf_config(file);
  CausalLM lm(config);
  auto params = lm->named_parameters();
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const auto& t : file.tensors()) {
    const std::string name = detail::hf_name(t.name);
    if (name.empty()) throw std::invalid_argument(file.path() + ": tensor '" + t.name + "' is not part of a " + config.model_type + " decoder");
    auto* p = params.find(name);
    if (!p) throw std::invalid_argument(file.path() + ": tensor '" + t.name + "' (" + name + ") does not fit this config");
    std::vector<float> values = file.dequantize(t);
    std::vector<std::int64_t> shape;
    for (auto s : t.shape()) shape.push_back(static_cast<std::int64_t>(s));
    auto w = torch::from_blob(values.data(), shape, torch::kFloat32);
    if (config.model_type == "llama") {
      if (t.name.find(".attn_q.") != std::string::npos) w = detail::unpermute_rope_rows(w, config.num_heads);
      if (t.name.find(".attn_k.") != std::string::npos) w = detail::unpermute_rope_rows(w, config.num_kv_heads);
    }
    if (w.sizes() != p->sizes()) {
      std::ostringstream msg;
      msg << file.path() << ": tensor '" << t.name << "' has shape " << w.sizes() << " but the config implies " << p->sizes();
      throw std::invalid_argument(msg.str());
    }
    p->copy_(w);
    loaded.insert(name);
  }
  for (const auto& p : params)
    if (!loaded.count(p.key())) throw std::invalid_argument(file.path() + ": no tensor for parameter '" + p.key() + "'");
  lm->to(dtype);
  lm->eval();
  return lm;
}

}  // namespace ordo::model
