// ordo/model/config.hpp — the shape of a Llama/Qwen2-family decoder, read from and written to a
// Hugging Face config.json (both the transformers 4 keys `rope_theta`/`rope_scaling` and the
// transformers 5 key `rope_parameters`). Torch-free.
#pragma once

#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem::path
#include <fstream>     // std::ifstream
#include <optional>    // std::optional
#include <sstream>     // std::ostringstream
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string
#include <vector>      // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

namespace ordo::model {

/// RoPE frequency scaling. "default": none; "llama3": Llama 3.1's wavelength-dependent scaling;
/// "linear": positions divided by `factor`.
struct rope_scaling {
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
};

struct decoder_config {
  std::string model_type = "llama";  // "llama" or "qwen2"
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  /// FFN width of each layer (equal for an unpruned model; pruning may change it per layer).
  std::vector<std::int64_t> intermediate_sizes;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  rope_scaling rope;
  bool attention_bias = false;  // q/k/v biases (Qwen2: true)
  bool tie_word_embeddings = false;
  std::int64_t max_position_embeddings = 2048;
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;
  nlohmann::json original;  // the config.json it came from (kept when saving)

  /// Checks the invariants; throws std::invalid_argument naming `source` and the field.
  void validate(const std::string& source) const {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(source + ": invalid decoder config: " + what);
    };
    if (model_type != "llama" && model_type != "qwen2")
      fail("model_type '" + model_type + "' is not supported (llama, qwen2)");
    if (vocab_size <= 0) fail("vocab_size must be positive");
    if (hidden_size <= 0) fail("hidden_size must be positive");
    if (num_layers <= 0) fail("num_hidden_layers must be positive");
    if (num_heads <= 0 || num_kv_heads <= 0) fail("head counts must be positive");
    if (num_heads % num_kv_heads != 0)
      fail("num_attention_heads (" + std::to_string(num_heads) +
           ") must be a multiple of num_key_value_heads (" + std::to_string(num_kv_heads) + ")");
    if (head_dim <= 0 || head_dim % 2 != 0) fail("head_dim must be positive and even");
    if (static_cast<std::int64_t>(intermediate_sizes.size()) != num_layers)
      fail("intermediate sizes for " + std::to_string(intermediate_sizes.size()) +
           " layers, but num_hidden_layers is " + std::to_string(num_layers));
    for (auto s : intermediate_sizes)
      if (s <= 0) fail("intermediate sizes must be positive");
    if (!(rms_norm_eps > 0)) fail("rms_norm_eps must be positive");
    if (!(rope_theta > 0)) fail("rope_theta must be positive");
    if (rope.type != "default" && rope.type != "llama3" && rope.type != "linear")
      fail("rope scaling type '" + rope.type + "' is not supported (default, llama3, linear)");
    if (!(rope.factor > 0)) fail("rope scaling factor must be positive");
  }

  /// From a parsed config.json; `source` names it in errors.
  static decoder_config from_json(const nlohmann::json& j, const std::string& source) {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(source + ": invalid decoder config: " + what);
    };
    if (!j.is_object()) fail("the top level is not a JSON object");
    auto need_int = [&](const char* key) -> std::int64_t {
      if (!j.contains(key) || !j[key].is_number_integer()) fail(std::string("missing integer '") + key + "'");
      return j[key].get<std::int64_t>();
    };
    auto opt_num = [&](const nlohmann::json& o, const char* key, double fallback) {
      if (!o.contains(key) || o[key].is_null()) return fallback;
      if (!o[key].is_number()) fail(std::string("'") + key + "' is not a number");
      return o[key].get<double>();
    };
    decoder_config c;
    c.original = j;
    c.model_type = j.value("model_type", std::string("llama"));
    c.vocab_size = need_int("vocab_size");
    c.hidden_size = need_int("hidden_size");
    c.num_layers = need_int("num_hidden_layers");
    c.num_heads = need_int("num_attention_heads");
    c.num_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                         ? need_int("num_key_value_heads")
                         : c.num_heads;
    c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null()
                     ? need_int("head_dim")
                     : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    if (!j.contains("intermediate_size")) fail("missing 'intermediate_size'");
    const auto& inter = j["intermediate_size"];
    if (inter.is_number_integer()) {
      c.intermediate_sizes.assign(static_cast<std::size_t>(std::max<std::int64_t>(c.num_layers, 0)),
                                  inter.get<std::int64_t>());
    } else if (inter.is_array()) {  // per-layer widths of a non-uniformly pruned model
      for (const auto& v : inter) {
        if (!v.is_number_integer()) fail("'intermediate_size' holds a non-integer");
        c.intermediate_sizes.push_back(v.get<std::int64_t>());
      }
    } else {
      fail("'intermediate_size' is neither an integer nor a list of integers");
    }
    c.rms_norm_eps = opt_num(j, "rms_norm_eps", 1e-6);
    c.max_position_embeddings = j.value("max_position_embeddings", std::int64_t{2048});
    c.attention_bias = c.model_type == "qwen2" ? true : j.value("attention_bias", false);
    if (j.value("mlp_bias", false)) fail("mlp_bias = true is not supported");
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    // RoPE: transformers 5 writes "rope_parameters"; 4.x wrote "rope_theta" + "rope_scaling".
    nlohmann::json rope = nlohmann::json::object();
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) rope = j["rope_parameters"];
    else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rope = j["rope_scaling"];
    c.rope_theta = opt_num(rope, "rope_theta", opt_num(j, "rope_theta", 10000.0));
    c.rope.type = rope.value("rope_type", rope.value("type", std::string("default")));
    c.rope.factor = opt_num(rope, "factor", 1.0);
    c.rope.low_freq_factor = opt_num(rope, "low_freq_factor", 1.0);
    c.rope.high_freq_factor = opt_num(rope, "high_freq_factor", 4.0);
    c.rope.original_max_position_embeddings = static_cast<std::int64_t>(
        opt_num(rope, "original_max_position_embeddings", 8192));
    auto opt_id = [&](const char* key) -> std::optional<std::int64_t> {
      if (j.contains(key) && j[key].is_number_integer()) return j[key].get<std::int64_t>();
      return std::nullopt;
    };
    c.bos_token_id = opt_id("bos_token_id");
    c.eos_token_id = opt_id("eos_token_id");
    c.validate(source);
    return c;
  }

  /// From `dir/config.json` (or a path to the file itself).
  static decoder_config load(const std::filesystem::path& path) {
    std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
    std::ifstream in(file);
    if (!in) throw std::runtime_error(file.string() + ": cannot open the model config");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw std::invalid_argument(file.string() + ": not valid JSON: " + e.what());
    }
    return from_json(j, file.string());
  }

  bool uniform_intermediate() const {
    for (auto s : intermediate_sizes)
      if (s != intermediate_sizes.front()) return false;
    return true;
  }

  /// A config.json for transformers: the original keys, with the shape fields as they are now.
  nlohmann::json to_json() const {
    nlohmann::json j = original.is_object() ? original : nlohmann::json::object();
    j["model_type"] = model_type;
    if (!j.contains("architectures"))
      j["architectures"] = {model_type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
    j["vocab_size"] = vocab_size;
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = num_layers;
    j["num_attention_heads"] = num_heads;
    j["num_key_value_heads"] = num_kv_heads;
    j["head_dim"] = head_dim;
    if (uniform_intermediate()) j["intermediate_size"] = intermediate_sizes.front();
    else j["intermediate_size"] = intermediate_sizes;
    j["rms_norm_eps"] = rms_norm_eps;
    j["max_position_embeddings"] = max_position_embeddings;
    j["tie_word_embeddings"] = tie_word_embeddings;
    if (model_type == "llama") j["attention_bias"] = attention_bias;
    return j;
  }
};

}  // namespace ordo::model
