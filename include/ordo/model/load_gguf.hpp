// ordo/model/load_gguf.hpp — a GGUF file (llama.cpp's format) as an ordo::model::CausalLM.
//
// Reads the architecture from the metadata (`general.architecture` = llama or qwen2), maps
// llama.cpp's tensor names to transformers' (blk.N.attn_q -> model.layers.N.self_attn.q_proj),
// dequantizes every tensor to fp32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1, k-quants: see
// ordo/io/ggml_dequantize.hpp) and undoes the row permutation llama.cpp's converter applies to
// the q and k projections of llama models (it interleaves the two RoPE halves per head).
#pragma once

#include <algorithm>   // std::find_if
#include <cmath>       // std::isfinite
#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <map>         // std::map
#include <optional>    // std::optional
#include <set>         // std::set
#include <string>      // std::string
#include <utility>     // std::pair

#include <torch/torch.h>

#include <ordo/io/gguf.hpp>        // gguf::File
#include <ordo/model/config.hpp>   // decoder_config
#include <ordo/model/decoder.hpp>  // CausalLM

namespace ordo::model {

namespace detail {

// The HF name of a GGUF tensor, or "" when ordo does not use it.
// GGUF (llama.cpp) tensor names and transformers' names: the model's own, and those of each block.
inline const std::map<std::string, std::string>& gguf_top_names() {
  static const std::map<std::string, std::string> top{{"token_embd.weight", "model.embed_tokens.weight"},
                                                      {"output_norm.weight", "model.norm.weight"},
                                                      {"output.weight", "lm_head.weight"}};
  return top;
}
inline const std::map<std::string, std::string>& gguf_block_names() {
  static const std::map<std::string, std::string> block{
      {"attn_norm.weight", "input_layernorm.weight"},    {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},          {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},           {"ffn_down.weight", "mlp.down_proj.weight"},
      {"ffn_gate.bias", "mlp.gate_proj.bias"},           {"ffn_up.bias", "mlp.up_proj.bias"},
      {"ffn_down.bias", "mlp.down_proj.bias"}};
  return block;
}

inline std::string hf_name(const std::string& gguf) {
  const auto& top = gguf_top_names();
  if (auto it = top.find(gguf); it != top.end()) return it->second;
  const auto& block = gguf_block_names();
  if (gguf.rfind("blk.", 0) != 0) return "";
  const auto dot = gguf.find('.', 4);
  if (dot == std::string::npos) return "";
  const std::string layer = gguf.substr(4, dot - 4), rest = gguf.substr(dot + 1);
  if (layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos) return "";
  if (auto it = block.find(rest); it != block.end()) return "model.layers." + layer + "." + it->second;
  return "";
}

// The GGUF name of a transformers parameter name ("" when GGUF has none).
inline std::string gguf_name(const std::string& hf) {
  for (const auto& [g, h] : gguf_top_names())
    if (h == hf) return g;
  const std::string prefix = "model.layers.";
  if (hf.rfind(prefix, 0) != 0) return "";
  const auto dot = hf.find('.', prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size()), rest = hf.substr(dot + 1);
  for (const auto& [g, h] : gguf_block_names())
    if (h == rest) return "blk." + layer + "." + g;
  return "";
}

// llama.cpp's converter stores q/k rows of each head as (pairs, 2) instead of (2, pairs).
inline torch::Tensor permute_rope_rows(const torch::Tensor& w, std::int64_t heads) {
  const auto rows = w.size(0);
  auto shape = w.sizes().vec();
  std::vector<std::int64_t> split{heads, 2, rows / heads / 2};
  for (std::size_t i = 1; i < shape.size(); ++i) split.push_back(shape[i]);
  return w.reshape(split).transpose(1, 2).reshape(shape).contiguous();
}

// llama.cpp stores q/k rows of each head as (pairs, 2) instead of (2, pairs); swap back.
inline torch::Tensor unpermute_rope_rows(const torch::Tensor& w, std::int64_t heads) {
  const auto rows = w.size(0);
  auto shape = w.sizes().vec();
  std::vector<std::int64_t> split{heads, rows / heads / 2, 2};
  for (std::size_t i = 1; i < shape.size(); ++i) split.push_back(shape[i]);
  return w.reshape(split).transpose(1, 2).reshape(shape).contiguous();
}

// llama.cpp keeps Llama 3's RoPE scaling as the tensor rope_freqs.weight: per frequency, the
// divisor of the unscaled inverse frequency. These are the divisors of `c`'s scaling.
inline std::vector<float> rope_frequency_factors(const decoder_config& c) {
  decoder_config plain = c;
  plain.rope = rope_scaling{};
  const auto base = rope_inverse_frequencies(plain).to(torch::kFloat64);
  const auto scaled = rope_inverse_frequencies(c).to(torch::kFloat64);
  const auto f = (base / scaled).to(torch::kFloat32).contiguous();
  return {f.data_ptr<float>(), f.data_ptr<float>() + f.numel()};
}

// The Llama 3 scaling whose divisors are `stored` (rope_freqs.weight): searched among the
// published settings (Llama 3.1: factor 8, 3.2: 32; low 1, high 4, 8192 original positions) and
// their neighbours; the default scaling when every divisor is 1; nullopt when nothing fits.
inline std::optional<rope_scaling> rope_scaling_from_factors(const decoder_config& c, const std::vector<float>& stored) {
  if (std::all_of(stored.begin(), stored.end(), [](float f) { return std::fabs(f - 1.0f) < 1e-6f; }))
    return rope_scaling{};
  std::vector<double> factors = {8, 32, 16, 4, 2, 64, 40};
  factors.insert(factors.begin(), *std::max_element(stored.begin(), stored.end()));
  auto matches = [&](const rope_scaling& r) {
    decoder_config t = c;
    t.rope = r;
    const auto f = rope_frequency_factors(t);
    if (f.size() != stored.size()) return false;
    for (std::size_t i = 0; i < f.size(); ++i)
      if (std::fabs(f[i] - stored[i]) > 1e-5f * std::max(1.0f, std::fabs(stored[i]))) return false;
    return true;
  };
  for (double factor : factors)
    for (std::int64_t old : {8192, 4096, 2048, 16384, 32768, 65536, 131072})
      for (double low : {1.0, 2.0, 0.5})
        for (double high : {4.0, 2.0, 8.0}) {
          if (!(high > low)) continue;
          rope_scaling r;
          r.type = "llama3";
          r.factor = factor;
          r.low_freq_factor = low;
          r.high_freq_factor = high;
          r.original_max_position_embeddings = old;
          if (matches(r)) return r;
        }
  return std::nullopt;
}

}  // namespace detail

/// The decoder config a GGUF file describes. Every count and size is range-checked before
/// anything is sized from it (the bounds of decoder_config::validate), and the shapes of the
/// embedding and of each block's q, k and gate tensors must agree with the metadata, so a
/// corrupt header cannot make the model larger than its tensors. Errors name the file and the
/// metadata key (or tensor).
inline decoder_config gguf_config(const io::gguf::File& file) {
  const std::string arch(file.at("general.architecture").get<std::string_view>());
  auto fail = [&](const std::string& what) { throw std::invalid_argument(file.path() + ": " + what); };
  if (arch != "llama" && arch != "qwen2") fail("general.architecture '" + arch + "' is not supported (llama, qwen2)");
  const std::string p = arch + ".";
  auto quoted = [](const std::string& key) { return "'" + key + "'"; };
  // An integer in [1, limit]; a negative or non-integer value throws a format_error naming the key.
  auto in_range = [&](const io::gguf::Value& v, const std::string& key, std::int64_t limit) {
    const std::uint64_t n = v.as_uint();
    if (n == 0 || n > static_cast<std::uint64_t>(limit))
      fail("metadata key " + quoted(key) + " (" + std::to_string(n) + ") must be within [1, " + std::to_string(limit) +
           "]");
    return static_cast<std::int64_t>(n);
  };
  auto count = [&](const std::string& key, std::int64_t limit) { return in_range(file.at(key), key, limit); };
  auto opt_count = [&](const std::string& key, std::int64_t limit, std::int64_t fallback) {
    const auto* v = file.find(key);
    return v ? in_range(*v, key, limit) : fallback;
  };
  auto positive = [&](const std::string& key, double fallback) {
    const auto* v = file.find(key);
    if (!v) return fallback;
    const double x = v->as_double();
    if (!(x > 0) || !std::isfinite(x))
      fail("metadata key " + quoted(key) + " (" + std::to_string(x) + ") must be positive and finite");
    return x;
  };
  constexpr auto max_dim = decoder_config::max_dimension;
  decoder_config c;
  c.model_type = arch;
  c.num_layers = count(p + "block_count", decoder_config::max_layers);
  c.hidden_size = count(p + "embedding_length", max_dim);
  c.num_heads = count(p + "attention.head_count", max_dim);
  c.num_kv_heads = opt_count(p + "attention.head_count_kv", max_dim, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("metadata key " + quoted(p + "attention.head_count") + " (" + std::to_string(c.num_heads) +
         ") must be a multiple of " + quoted(p + "attention.head_count_kv") + " (" + std::to_string(c.num_kv_heads) +
         ")");
  // Head width: attention.key_length when given, else embedding_length / head_count (llama.cpp's
  // rule); RoPE must rotate all of it (rope.dimension_count), as ordo has no partial rotary.
  std::string head_key = p + "attention.key_length";
  if (file.find(head_key)) {
    c.head_dim = count(head_key, max_dim);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail("metadata key " + quoted(p + "embedding_length") + " (" + std::to_string(c.hidden_size) +
           ") is not a multiple of " + quoted(p + "attention.head_count") + " (" + std::to_string(c.num_heads) +
           ") and " + quoted(head_key) + " is absent");
    c.head_dim = c.hidden_size / c.num_heads;
    head_key = p + "embedding_length";
  }
  if (const auto* v = file.find(p + "attention.value_length"); v && in_range(*v, v->key(), max_dim) != c.head_dim)
    fail("metadata key " + quoted(v->key()) + " (" + std::to_string(v->as_uint()) + ") differs from the head width " +
         std::to_string(c.head_dim) + " (" + quoted(head_key) + ")");
  if (const auto* v = file.find(p + "rope.dimension_count"); v && in_range(*v, v->key(), max_dim) != c.head_dim)
    fail("metadata key " + quoted(v->key()) + " (" + std::to_string(v->as_uint()) + ") differs from the head width " +
         std::to_string(c.head_dim) + " (" + quoted(head_key) + "): partial rotary embeddings are not supported");
  if (c.head_dim % 2 != 0)
    fail("the head width " + std::to_string(c.head_dim) + " (" + quoted(head_key) + ") must be even");
  if (c.num_heads * c.head_dim > max_dim)
    fail("metadata key " + quoted(p + "attention.head_count") + " times the head width (" +
         std::to_string(c.num_heads * c.head_dim) + ") is beyond " + std::to_string(max_dim));
  // FFN width: one for every block, or a list of one per block (a non-uniformly pruned model).
  const std::string ffn_key = p + "feed_forward_length";
  const auto& ffn = file.at(ffn_key);
  if (ffn.is_array()) {
    if (ffn.size() != static_cast<std::uint64_t>(c.num_layers))
      fail("metadata key " + quoted(ffn_key) + " lists " + std::to_string(ffn.size()) + " widths, but " +
           quoted(p + "block_count") + " is " + std::to_string(c.num_layers));
    for (const auto& v : ffn.elements()) c.intermediate_sizes.push_back(in_range(v, v.key(), max_dim));
  } else {
    c.intermediate_sizes.assign(static_cast<std::size_t>(c.num_layers), in_range(ffn, ffn_key, max_dim));
  }
  c.rms_norm_eps = positive(p + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = positive(p + "rope.freq_base", 10000.0);
  c.max_position_embeddings = opt_count(p + "context_length", std::int64_t{1} << 40, 2048);

  // The tensors must have the shapes the metadata implies (checked here, before a model of that
  // size is allocated; load_gguf checks every tensor again against the built model).
  auto shape_of = [&](const std::string& name) {
    const auto& t = file.tensor(name);
    const auto s = t.shape();
    if (s.size() != 2) fail("tensor '" + name + "' has " + std::to_string(s.size()) + " dimensions, not 2");
    return std::pair<std::uint64_t, std::uint64_t>{s[0], s[1]};
  };
  // [rows, embedding_length], rows as `rows_from` (metadata keys) gives them
  auto expect = [&](const std::string& name, std::int64_t rows, const std::string& rows_from) {
    const auto [r, k] = shape_of(name);
    if (r != static_cast<std::uint64_t>(rows) || k != static_cast<std::uint64_t>(c.hidden_size))
      fail("tensor '" + name + "' has shape [" + std::to_string(r) + ", " + std::to_string(k) +
           "], but the metadata gives [" + std::to_string(rows) + ", " + std::to_string(c.hidden_size) + "] (" +
           rows_from + ", " + quoted(p + "embedding_length") + ")");
  };
  const auto vocab = shape_of("token_embd.weight").first;
  if (vocab == 0 || vocab > static_cast<std::uint64_t>(max_dim))
    fail("tensor 'token_embd.weight' has " + std::to_string(vocab) + " rows (the vocabulary), not within [1, " +
         std::to_string(max_dim) + "]");
  c.vocab_size = static_cast<std::int64_t>(vocab);
  expect("token_embd.weight", c.vocab_size, "its vocabulary");
  const std::string heads_from = quoted(p + "attention.head_count") + " x the head width";
  const std::string kv_from = quoted(p + "attention.head_count_kv") + " x the head width";
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    if (!file.find_tensor(blk + "attn_q.weight"))
      fail("no tensor '" + blk + "attn_q.weight', but " + quoted(p + "block_count") + " is " +
           std::to_string(c.num_layers));
    expect(blk + "attn_q.weight", c.num_heads * c.head_dim, heads_from);
    expect(blk + "attn_k.weight", c.num_kv_heads * c.head_dim, kv_from);
    const auto width = c.intermediate_sizes[static_cast<std::size_t>(i)];
    expect(blk + "ffn_gate.weight", width, quoted(ffn_key));
  }
  c.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.mlp_bias = file.find_tensor("blk.0.ffn_down.bias") != nullptr;  // e.g. FLAP's bias compensation
  if (c.mlp_bias && arch != "llama") fail("tensor 'blk.0.ffn_down.bias': MLP biases are read for llama only");
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  // RoPE scaling: linear in the metadata, Llama 3's as rope_freqs.weight (llama.cpp's converter).
  if (const auto* type = file.find(p + "rope.scaling.type")) {
    const std::string t(type->get<std::string_view>());
    if (t == "linear") {
      c.rope.type = "linear";
      c.rope.factor = positive(p + "rope.scaling.factor", 1.0);
    } else if (t != "none") {
      fail("metadata key " + quoted(p + "rope.scaling.type") + " is '" + t + "': only linear RoPE scaling is read");
    }
  } else if (file.find(p + "rope.scale_linear")) {
    c.rope.type = "linear";
    c.rope.factor = positive(p + "rope.scale_linear", 1.0);
  }
  if (const auto* t = file.find_tensor("rope_freqs.weight")) {
    if (c.rope.type != "default") fail("tensor 'rope_freqs.weight' and linear RoPE scaling at once");
    const auto stored = file.dequantize(*t);
    if (static_cast<std::int64_t>(stored.size()) != c.head_dim / 2)
      fail("tensor 'rope_freqs.weight' has " + std::to_string(stored.size()) + " values, not head width / 2 = " +
           std::to_string(c.head_dim / 2));
    for (float f : stored)
      if (!(f > 0) || !std::isfinite(f)) fail("tensor 'rope_freqs.weight' holds a value that is not positive and finite");
    const auto r = detail::rope_scaling_from_factors(c, stored);
    if (!r) fail("tensor 'rope_freqs.weight' matches no Llama 3 RoPE scaling ordo knows");
    c.rope = *r;
  }
  auto token_id = [&](const std::string& key) -> std::optional<std::int64_t> {
    const auto* v = file.find(key);
    if (!v) return std::nullopt;
    const auto id = v->as_uint();
    if (id >= static_cast<std::uint64_t>(c.vocab_size))
      fail("metadata key " + quoted(key) + " (" + std::to_string(id) + ") is outside the vocabulary of " +
           std::to_string(c.vocab_size) + " ('token_embd.weight')");
    return static_cast<std::int64_t>(id);
  };
  c.bos_token_id = token_id("tokenizer.ggml.bos_token_id");
  c.eos_token_id = token_id("tokenizer.ggml.eos_token_id");
  nlohmann::json hf = {{"model_type", arch}, {"rope_theta", c.rope_theta}};
  if (c.rope.type == "linear") hf["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope.factor}};
  if (c.rope.type == "llama3")
    hf["rope_scaling"] = {{"rope_type", "llama3"},
                          {"factor", c.rope.factor},
                          {"low_freq_factor", c.rope.low_freq_factor},
                          {"high_freq_factor", c.rope.high_freq_factor},
                          {"original_max_position_embeddings", c.rope.original_max_position_embeddings}};
  c.original = hf;
  c.validate(file.path());
  return c;
}

/// Loads a GGUF file into a CausalLM whose parameters are made on `where.device` in
/// `where.dtype` and filled one tensor at a time (each dequantized through fp32 on the host).
inline CausalLM load_gguf(const std::filesystem::path& path, const placement& where = {}) {
  io::gguf::File file(path);
  auto config = gguf_config(file);
  CausalLM lm(config, build_options(where, /*draw=*/false));
  auto params = lm->named_parameters();
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const auto& t : file.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // the RoPE scaling, read into the config
    const std::string name = detail::hf_name(t.name);
    if (name.empty())
      throw std::invalid_argument(file.path() + ": tensor '" + t.name + "' is not part of a " + config.model_type +
                                  " decoder");
    auto* p = params.find(name);
    if (!p)
      throw std::invalid_argument(file.path() + ": tensor '" + t.name + "' (" + name + ") does not fit this config");
    std::vector<float> values = file.dequantize(t);
    // A corrupt block (a NaN scale, random bytes) makes every output NaN: named here instead.
    if (const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
        bad != values.end())
      throw std::invalid_argument(file.path() + ": tensor '" + t.name +
                                  "' holds a non-finite value (NaN or Inf) at element " +
                                  std::to_string(bad - values.begin()) + ": the file is corrupt");
    std::vector<std::int64_t> shape;
    for (auto s : t.shape()) shape.push_back(static_cast<std::int64_t>(s));
    auto w = torch::from_blob(values.data(), shape, torch::kFloat32);
    if (config.model_type == "llama") {
      if (t.name.find(".attn_q.") != std::string::npos) w = detail::unpermute_rope_rows(w, config.num_heads);
      if (t.name.find(".attn_k.") != std::string::npos) w = detail::unpermute_rope_rows(w, config.num_kv_heads);
    }
    if (w.sizes() != p->sizes()) {
      std::ostringstream msg;
      msg << file.path() << ": tensor '" << t.name << "' has shape " << w.sizes() << " but the config implies "
          << p->sizes();
      throw std::invalid_argument(msg.str());
    }
    p->copy_(w);
    loaded.insert(name);
  }
  for (const auto& p : params)
    if (!loaded.count(p.key()))
      throw std::invalid_argument(file.path() + ": no tensor for parameter '" + p.key() + "'");
  lm->eval();
  return lm;
}

}  // namespace ordo::model
