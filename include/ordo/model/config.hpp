// ordo/model/config.hpp — the shape of a Llama/Qwen2-family decoder, read from and written to a
// Hugging Face config.json (both the transformers 4 keys `rope_theta`/`rope_scaling` and the
// transformers 5 key `rope_parameters`). Torch-free.
#pragma once

#include <algorithm>    // std::max
#include <cmath>        // std::isfinite, std::floor
#include <cstdint>      // std::int64_t, INT64_MAX
#include <filesystem>   // std::filesystem::path
#include <fstream>      // std::ifstream
#include <optional>     // std::optional
#include <sstream>      // std::ostringstream
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

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
  /// Biases on gate_proj, up_proj and down_proj (transformers' Llama `mlp_bias`): a model pruned
  /// with FLAP's bias compensation carries its removed neurons' mean output in down_proj's bias.
  /// transformers' Qwen2 has no such option, so only Llama models carry it.
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::int64_t max_position_embeddings = 2048;
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;
  nlohmann::json original;  // the config.json it came from (kept when saving)

  /// Bounds beyond which a field is taken as corrupt rather than as a model to build (the
  /// largest open models are far below them: hidden 16384, FFN 53248, 126 layers, 256k vocab).
  static constexpr std::int64_t max_dimension = std::int64_t{1} << 24;
  static constexpr std::int64_t max_layers = 4096;

  /// Checks the invariants; throws std::invalid_argument naming `source` and the field.
  void validate(const std::string& source) const {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(source + ": invalid decoder config: " + what);
    };
    auto in_range = [&](std::int64_t v, std::int64_t limit, const char* field) {
      if (v <= 0) fail(std::string(field) + " must be positive (is " + std::to_string(v) + ")");
      if (v > limit) fail(std::string(field) + " (" + std::to_string(v) + ") is beyond " + std::to_string(limit));
    };
    if (model_type != "llama" && model_type != "qwen2")
      fail("model_type '" + model_type + "' is not supported (llama, qwen2)");
    in_range(vocab_size, max_dimension, "vocab_size");
    in_range(hidden_size, max_dimension, "hidden_size");
    in_range(num_layers, max_layers, "num_hidden_layers");
    in_range(num_heads, max_dimension, "num_attention_heads");
    in_range(num_kv_heads, max_dimension, "num_key_value_heads");
    if (num_heads % num_kv_heads != 0)
      fail("num_attention_heads (" + std::to_string(num_heads) + ") must be a multiple of num_key_value_heads (" +
           std::to_string(num_kv_heads) + ")");
    in_range(head_dim, max_dimension, "head_dim");
    if (head_dim % 2 != 0) fail("head_dim (" + std::to_string(head_dim) + ") must be even");
    if (num_heads * head_dim > max_dimension)
      fail("num_attention_heads * head_dim (" + std::to_string(num_heads * head_dim) + ") is beyond " +
           std::to_string(max_dimension));
    if (static_cast<std::int64_t>(intermediate_sizes.size()) != num_layers)
      fail("intermediate_size gives " + std::to_string(intermediate_sizes.size()) +
           " layers, but num_hidden_layers is " + std::to_string(num_layers));
    for (auto s : intermediate_sizes) in_range(s, max_dimension, "intermediate_size");
    if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) fail("rms_norm_eps must be positive and finite");
    if (!(rope_theta > 0) || !std::isfinite(rope_theta)) fail("rope_theta must be positive and finite");
    in_range(max_position_embeddings, std::int64_t{1} << 40, "max_position_embeddings");
    if (rope.type != "default" && rope.type != "llama3" && rope.type != "linear")
      fail("rope scaling type '" + rope.type + "' is not supported (default, llama3, linear)");
    if (!(rope.factor > 0) || !std::isfinite(rope.factor)) fail("rope scaling factor must be positive and finite");
    if (rope.type == "llama3") {
      if (!(rope.low_freq_factor > 0) || !(rope.high_freq_factor > rope.low_freq_factor) ||
          !std::isfinite(rope.high_freq_factor))
        fail("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor (finite)");
      in_range(rope.original_max_position_embeddings, std::int64_t{1} << 40, "original_max_position_embeddings");
    }
  }

  /// From a parsed config.json; `source` names it in errors. A field of the wrong type or out
  /// of range is an std::invalid_argument naming `source` and the field.
  static decoder_config from_json(const nlohmann::json& j, const std::string& source) {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(source + ": invalid decoder config: " + what);
    };
    if (!j.is_object()) fail("the top level is not a JSON object");
    auto present = [](const nlohmann::json& o, const char* key) { return o.contains(key) && !o[key].is_null(); };
    // An integer that fits std::int64_t (a JSON number above 2^63 - 1 is parsed as unsigned).
    auto as_int = [&](const nlohmann::json& v, const std::string& field) -> std::int64_t {
      if (!v.is_number_integer()) fail("'" + field + "' is not an integer");
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail("'" + field + "' is out of range");
      return v.get<std::int64_t>();
    };
    auto need_int = [&](const char* key) -> std::int64_t {
      if (!present(j, key)) fail(std::string("missing integer '") + key + "'");
      return as_int(j[key], key);
    };
    auto opt_int = [&](const char* key, std::int64_t fallback) {
      return present(j, key) ? as_int(j[key], key) : fallback;
    };
    auto opt_num = [&](const nlohmann::json& o, const char* key, double fallback) {
      if (!present(o, key)) return fallback;
      if (!o[key].is_number()) fail(std::string("'") + key + "' is not a number");
      return o[key].get<double>();
    };
    auto opt_bool = [&](const char* key, bool fallback) {
      if (!present(j, key)) return fallback;
      if (!j[key].is_boolean()) fail(std::string("'") + key + "' is not true or false");
      return j[key].get<bool>();
    };
    auto opt_string = [&](const nlohmann::json& o, const char* key, const std::string& fallback) {
      if (!present(o, key)) return fallback;
      if (!o[key].is_string()) fail(std::string("'") + key + "' is not a string");
      return o[key].get<std::string>();
    };
    decoder_config c;
    c.original = j;
    c.model_type = opt_string(j, "model_type", "llama");
    c.vocab_size = need_int("vocab_size");
    c.hidden_size = need_int("hidden_size");
    c.num_layers = need_int("num_hidden_layers");
    c.num_heads = need_int("num_attention_heads");
    c.num_kv_heads = opt_int("num_key_value_heads", c.num_heads);
    c.head_dim = present(j, "head_dim") ? need_int("head_dim") : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    if (!present(j, "intermediate_size")) fail("missing 'intermediate_size'");
    const auto& inter = j["intermediate_size"];
    if (inter.is_number_integer()) {
      // one width for every layer; the layer count is checked before the list is made
      if (c.num_layers <= 0 || c.num_layers > max_layers)
        fail("num_hidden_layers (" + std::to_string(c.num_layers) + ") must be within [1, " +
             std::to_string(max_layers) + "]");
      c.intermediate_sizes.assign(static_cast<std::size_t>(c.num_layers), as_int(inter, "intermediate_size"));
    } else if (inter.is_array()) {  // per-layer widths of a non-uniformly pruned model
      for (const auto& v : inter) c.intermediate_sizes.push_back(as_int(v, "intermediate_size[]"));
    } else {
      fail("'intermediate_size' is neither an integer nor a list of integers");
    }
    c.rms_norm_eps = opt_num(j, "rms_norm_eps", 1e-6);
    c.max_position_embeddings = opt_int("max_position_embeddings", 2048);
    c.attention_bias = c.model_type == "qwen2" ? true : opt_bool("attention_bias", false);
    c.mlp_bias = opt_bool("mlp_bias", false);
    if (c.mlp_bias && c.model_type != "llama")
      fail("mlp_bias = true is supported for model_type llama only (transformers' " + c.model_type +
           " MLP has no biases)");
    c.tie_word_embeddings = opt_bool("tie_word_embeddings", false);
    // RoPE: transformers 5 writes "rope_parameters"; 4.x wrote "rope_theta" + "rope_scaling".
    for (const char* key : {"rope_parameters", "rope_scaling"})
      if (present(j, key) && !j[key].is_object()) fail(std::string("'") + key + "' is not an object");
    nlohmann::json rope = nlohmann::json::object();
    if (present(j, "rope_parameters"))
      rope = j["rope_parameters"];
    else if (present(j, "rope_scaling"))
      rope = j["rope_scaling"];
    c.rope_theta = opt_num(rope, "rope_theta", opt_num(j, "rope_theta", 10000.0));
    c.rope.type = opt_string(rope, "rope_type", opt_string(rope, "type", "default"));
    c.rope.factor = opt_num(rope, "factor", 1.0);
    c.rope.low_freq_factor = opt_num(rope, "low_freq_factor", 1.0);
    c.rope.high_freq_factor = opt_num(rope, "high_freq_factor", 4.0);
    if (present(rope, "original_max_position_embeddings")) {
      const auto& v = rope["original_max_position_embeddings"];
      // written as 8192 or 8192.0; anything else must be a whole number in range
      const double d = v.is_number() ? v.get<double>() : 0.0;
      if (!v.is_number() || !(d >= 1 && d <= 1e12) || d != std::floor(d))
        fail("'original_max_position_embeddings' is not a positive whole number");
      c.rope.original_max_position_embeddings =
          v.is_number_integer() ? as_int(v, "original_max_position_embeddings") : static_cast<std::int64_t>(d);
    }
    // Llama 3 lists several end ids ([128001, 128008, 128009]): only a single id is kept.
    auto opt_id = [&](const char* key) -> std::optional<std::int64_t> {
      if (present(j, key) && j[key].is_number_integer()) return as_int(j[key], key);
      return std::nullopt;
    };
    c.bos_token_id = opt_id("bos_token_id");
    c.eos_token_id = opt_id("eos_token_id");
    c.validate(source);
    return c;
  }

  /// From the text of a config.json; `source` names it in errors.
  static decoder_config parse(std::string_view text, const std::string& source) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(source + ": not valid JSON: " + e.what());
    }
    return from_json(j, source);
  }

  /// From `dir/config.json` (or a path to the file itself).
  static decoder_config load(const std::filesystem::path& path) {
    std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(file.string() + ": cannot open the model config");
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), file.string());
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
    if (uniform_intermediate())
      j["intermediate_size"] = intermediate_sizes.front();
    else
      j["intermediate_size"] = intermediate_sizes;
    j["rms_norm_eps"] = rms_norm_eps;
    j["max_position_embeddings"] = max_position_embeddings;
    j["tie_word_embeddings"] = tie_word_embeddings;
    if (model_type == "llama") j["attention_bias"] = attention_bias;
    if (model_type == "llama") j["mlp_bias"] = mlp_bias;
    if (mlp_bias && model_type != "llama")
      throw std::invalid_argument("a " + model_type +
                                  " model with MLP biases (FLAP's bias compensation) has no transformers class to "
                                  "load it; only Llama models carry mlp_bias");
    return j;
  }
};

}  // namespace ordo::model
