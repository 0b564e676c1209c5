// ordo/model/save_gguf.hpp — a dense model as one GGUF file that llama.cpp and transformers load:
// llama.cpp's metadata keys for the llama / qwen2 architectures (per-layer FFN widths as an array
// when pruning left the layers unequal), its tensor names and q/k row order, the tokenizer and
// chat template of the GGUF the model's tokenizer came from, and the weights in F32, F16, BF16 or
// Q8_0 (norms and biases stay F32, as llama.cpp's converter keeps them). Tensors are converted
// and written one at a time; the file appears atomically. A QuantizedModel is exported through
// the Dequantize stage (its exact dequantized values, rounded to the chosen type).
#pragma once

#include <algorithm>   // std::max_element
#include <cstdint>     // std::int64_t, std::uint32_t, std::uint64_t
#include <filesystem>  // std::filesystem
#include <optional>    // std::optional
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/io/gguf.hpp>             // gguf::File (the tokenizer's source)
#include <ordo/io/gguf_writer.hpp>      // gguf::Writer, TensorType
#include <ordo/model/dense_model.hpp>   // DenseModel
#include <ordo/model/load_gguf.hpp>     // detail::gguf_name, detail::permute_rope_rows
#include <ordo/text/bpe_vocabulary.hpp>  // BpeVocabulary
#include <ordo/text/chat_template.hpp>   // read_chat_template

namespace ordo::model {

/// The GGUF types save_gguf writes, by the names the tools take: f32, f16, bf16, q8_0.
inline io::gguf::TensorType gguf_type_from_name(const std::string& name) {
  using T = io::gguf::TensorType;
  if (name == "f32") return T::F32;
  if (name == "f16") return T::F16;
  if (name == "bf16") return T::BF16;
  if (name == "q8_0") return T::Q8_0;
  throw std::invalid_argument("GGUF type \"" + name + "\": expected f32, f16, bf16 or q8_0");
}

/// What save_gguf wrote.
struct SavedGguf {
  std::filesystem::path file;
  std::uint64_t file_bytes = 0;
};

namespace detail::gguf_export {

// llama.cpp's general.file_type of a model whose 2-D weights are `type` (LLAMA_FTYPE_*).
inline std::uint32_t file_type(io::gguf::TensorType type) {
  using T = io::gguf::TensorType;
  switch (type) {
    case T::F32: return 0;
    case T::F16: return 1;
    case T::Q8_0: return 7;
    case T::BF16: return 32;
    default: return 0;
  }
}

// A GGUF vocabulary (Tokenizer::gguf_vocabulary) as tokenizer.ggml.* metadata.
inline void write_vocabulary(const BpeVocabulary& v, io::gguf::Writer& w) {
  w.set_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  if (!v.token_types.empty()) w.set_i32_array("tokenizer.ggml.token_type", v.token_types);
  if (!v.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", v.scores);
  if (!v.merges.empty()) w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.bos_id) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(*v.bos_id));
  if (v.eos_id) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(*v.eos_id));
  if (v.unk_id) w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<std::uint32_t>(*v.unk_id));
  if (v.pad_id) w.set_u32("tokenizer.ggml.padding_token_id", static_cast<std::uint32_t>(*v.pad_id));
  if (v.add_bos) w.set_bool("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) w.set_bool("tokenizer.ggml.add_eos_token", *v.add_eos);
}

}  // namespace detail::gguf_export

/// How save_gguf writes FFN widths that differ between layers (pruning with global allocation).
enum class gguf_ffn {
  /// Every layer zero-padded to the widest: neurons whose gate, up and down weights (and
  /// biases) are 0 add exactly nothing, and llama.cpp's llama architecture, which takes one
  /// width for all layers, loads the file. The file is as large as the widest layer implies.
  padded,
  /// One width per layer in `feed_forward_length` (an array): the smallest file; ordo reads
  /// it, llama.cpp's llama architecture does not.
  per_layer
};

/// Writes `m` as the GGUF file `file` with its 2-D weights in `type` (F32, F16, BF16 or Q8_0;
/// Q8_0 falls back to F16 for a weight whose rows are not a multiple of 32, as llama.cpp's
/// converter does). The tokenizer metadata comes from the GGUF file the model's tokenizer came
/// from (a model loaded from GGUF, or given one with --tokenizer), or, for a tokenizer.json,
/// from Tokenizer::gguf_vocabulary (byte-level BPE whose pre-tokenizer llama.cpp names; other
/// tokenizers are refused, saying why) with the chat template of the model's directory.
/// RoPE scaling: linear as metadata, Llama 3's as rope_freqs.weight. The parent directory must exist.
inline SavedGguf save_gguf(const DenseModel& m, const std::filesystem::path& file, io::gguf::TensorType type,
                           const std::string& name = {}, gguf_ffn ffn = gguf_ffn::padded) {
  namespace fs = std::filesystem;
  using T = io::gguf::TensorType;
  if (!io::gguf::is_writable(type)) throw std::invalid_argument("save_gguf: ordo writes F32, F16, BF16 and Q8_0");
  const auto& c = m.lm()->config();
  if (c.model_type != "llama" && c.model_type != "qwen2")
    throw std::invalid_argument("save_gguf: model_type \"" + c.model_type + "\" has no GGUF export (llama, qwen2)");
  const auto tokenizer = m.shared_tokenizer();
  if (!tokenizer) throw std::invalid_argument("save_gguf: the model has no tokenizer; a GGUF file carries one");
  const fs::path vocab_source = tokenizer->source();
  const bool from_gguf = vocab_source.extension() == ".gguf" && fs::is_regular_file(vocab_source);
  // A tokenizer.json tokenizer becomes GGUF metadata, checked to give the same ids (throws why not).
  const std::optional<BpeVocabulary> vocabulary =
      from_gguf ? std::nullopt : std::optional<BpeVocabulary>(tokenizer->gguf_vocabulary());

  io::gguf::Writer w;
  const std::string arch = c.model_type, p = arch + ".";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", name.empty() ? m.source().stem().string() : name);
  w.set_u32("general.file_type", detail::gguf_export::file_type(type));
  w.set_u32(p + "context_length", static_cast<std::uint32_t>(c.max_position_embeddings));
  w.set_u32(p + "embedding_length", static_cast<std::uint32_t>(c.hidden_size));
  w.set_u32(p + "block_count", static_cast<std::uint32_t>(c.num_layers));
  bool uniform = true;
  for (const auto width : c.intermediate_sizes) uniform = uniform && width == c.intermediate_sizes.front();
  const std::int64_t widest = *std::max_element(c.intermediate_sizes.begin(), c.intermediate_sizes.end());
  const bool pad = !uniform && ffn == gguf_ffn::padded;
  if (uniform || pad) {
    w.set_u32(p + "feed_forward_length", static_cast<std::uint32_t>(widest));
  } else {  // a pruned model whose layers differ: one width per block, as gguf arrays allow
    std::vector<std::uint32_t> widths(c.intermediate_sizes.begin(), c.intermediate_sizes.end());
    w.set_u32_array(p + "feed_forward_length", widths);
  }
  w.set_u32(p + "attention.head_count", static_cast<std::uint32_t>(c.num_heads));
  w.set_u32(p + "attention.head_count_kv", static_cast<std::uint32_t>(c.num_kv_heads));
  if (c.head_dim * c.num_heads != c.hidden_size) {
    w.set_u32(p + "attention.key_length", static_cast<std::uint32_t>(c.head_dim));
    w.set_u32(p + "attention.value_length", static_cast<std::uint32_t>(c.head_dim));
  }
  w.set_u32(p + "rope.dimension_count", static_cast<std::uint32_t>(c.head_dim));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_u32(p + "vocab_size", static_cast<std::uint32_t>(c.vocab_size));
  // RoPE scaling as llama.cpp's converter writes it: linear in the metadata, Llama 3's as the
  // per-frequency divisors in rope_freqs.weight.
  if (c.rope.type == "linear") {
    w.set_string(p + "rope.scaling.type", "linear");
    w.set_f32(p + "rope.scaling.factor", static_cast<float>(c.rope.factor));
  } else if (c.rope.type == "llama3") {
    const auto factors = detail::rope_frequency_factors(c);
    w.add_tensor("rope_freqs.weight", io::gguf::TensorType::F32, {factors.size()}, [factors] { return factors; });
  } else if (c.rope.type != "default") {
    throw std::invalid_argument("save_gguf: RoPE scaling \"" + c.rope.type + "\" has no GGUF form ordo writes");
  }
  if (from_gguf) {
    io::gguf::copy_tokenizer(io::gguf::File(vocab_source), w);
  } else {
    detail::gguf_export::write_vocabulary(*vocabulary, w);
    // The chat template of the directory the model came from (chat_template.jinja or
    // tokenizer_config.json), as llama.cpp reads it.
    if (fs::is_directory(m.source()))
      if (const auto chat = read_chat_template(m.source())) w.set_string("tokenizer.chat_template", *chat);
  }

  auto& lm = const_cast<CausalLM&>(m.lm());
  for (const auto& param : lm->named_parameters()) {
    const std::string hf = param.key();
    const std::string g = detail::gguf_name(hf);
    if (g.empty()) throw std::invalid_argument("save_gguf: parameter '" + hf + "' has no GGUF name");
    const torch::Tensor t = param.value();
    std::vector<std::uint64_t> shape(t.sizes().begin(), t.sizes().end());
    const bool rope_rows = arch == "llama" && (hf.ends_with("q_proj.weight") || hf.ends_with("k_proj.weight"));
    const std::int64_t heads = hf.ends_with("q_proj.weight") ? c.num_heads : c.num_kv_heads;
    // Padding: gate and up gain zero rows (and bias entries), down zero columns.
    const bool neuron_rows = hf.find("mlp.gate_proj.") != std::string::npos || hf.find("mlp.up_proj.") != std::string::npos;
    const bool neuron_cols = hf.ends_with("mlp.down_proj.weight");
    const std::int64_t pad_by = !pad ? 0 : neuron_rows ? widest - t.size(0) : neuron_cols ? widest - t.size(1) : 0;
    if (pad_by > 0) shape[neuron_rows ? 0 : 1] += static_cast<std::uint64_t>(pad_by);
    w.add_tensor(g, t.dim() == 1 ? T::F32 : type, shape, [t, rope_rows, heads, pad_by, neuron_rows] {
      torch::NoGradGuard no_grad;
      auto x = t.detach().to(torch::kCPU, torch::kFloat32);
      if (pad_by > 0) {  // F.pad's order: the last dimension first
        x = neuron_rows && x.dim() == 2 ? torch::constant_pad_nd(x, {0, 0, 0, pad_by})  // gate/up rows
                                        : torch::constant_pad_nd(x, {0, pad_by});       // biases, down columns
      }
      if (rope_rows) x = detail::permute_rope_rows(x, heads);
      x = x.contiguous();
      return std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    });
  }
  w.write(file);
  return {fs::absolute(file), fs::file_size(file)};
}

}  // namespace ordo::model
