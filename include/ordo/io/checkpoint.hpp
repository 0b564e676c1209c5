// ordo/io/checkpoint.hpp — saving models as Hugging Face checkpoint directories that
// `transformers` loads, and NF4 models in bitsandbytes' serialization (both ways).
//
//   save_hf(const DenseModel&, dir)       config.json + model.safetensors (+ tokenizer files)
//   save_nf4(const QuantizedModel&, dir)  the same with NF4 linears as transformers +
//                                         bitsandbytes save them, and `quantization_config`
//   load_nf4(dir) -> QuantizedModel       reads that format back (ordo's or transformers')
//   checkpoint_size(dir), nf4_tensor_bytes(model)   exact size accounting
//
// The format, what was checked against bitsandbytes / transformers and how: docs/checkpoints.md.
// A directory is written atomically: every file goes into a temporary directory beside `dir`,
// which then replaces `dir` in one rename (an existing `dir` is swapped out with
// renameat2(RENAME_EXCHANGE) and removed). An existing `dir` is only replaced when it holds
// nothing but checkpoint files (config.json, *.safetensors, tokenizer files ...), so a wrong
// path cannot wipe unrelated data.
//
// Example: tests/checkpoint/test_checkpoint.cpp.
#pragma once

#include <algorithm>     // std::remove
#include <charconv>      // std::to_chars (Python's float repr)
#include <cmath>         // std::isnan, std::isinf, std::signbit
#include <cerrno>        // errno
#include <cstdint>       // std::uint8_t, std::uint64_t
#include <cstdio>        // renameat2, std::rename
#include <cstdlib>       // mkdtemp
#include <cstring>       // std::memcmp, std::memcpy
#include <filesystem>    // std::filesystem
#include <fstream>       // std::ifstream
#include <map>           // std::map
#include <memory>        // std::shared_ptr
#include <optional>      // std::optional
#include <set>           // std::set
#include <sstream>       // std::ostringstream
#include <stdexcept>     // std::invalid_argument
#include <string>        // std::string
#include <system_error>  // std::system_error
#include <vector>        // std::vector

#include <fcntl.h>   // open, AT_FDCWD
#include <unistd.h>  // fsync, close

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/io/atomic_write.hpp>       // write_file_atomically
#include <ordo/io/error.hpp>              // format_error
#include <ordo/io/gguf.hpp>               // gguf::File (chat template of a GGUF source)
#include <ordo/io/safetensors.hpp>        // safetensors::write, Checkpoint, File
#include <ordo/model/chat_template.hpp>   // read_chat_template
#include <ordo/model/decoder.hpp>         // CausalLM, nf4_weight, read_tensor
#include <ordo/model/tokenizer.hpp>       // Tokenizer
#include <ordo/model/transform.hpp>       // for_each_decoder_linear, model_bytes
#include <ordo/quant/nf4_codebook.hpp>    // codebook, dynamic_map, absmax_blocksize
#include <ordo/quant/nf4_cpu.hpp>         // Quantized, block_scales
#include <ordo/stages/models.hpp>         // DenseModel, QuantizedModel

namespace ordo::io {

/// Sizes of a checkpoint directory, in bytes, counted exactly.
struct CheckpointSize {
  std::map<std::string, std::uint64_t> files;  ///< file name -> size on disk (regular files)
  std::uint64_t file_bytes = 0;    ///< sum of `files`
  std::uint64_t tensor_bytes = 0;  ///< data sections of the *.safetensors files (the tensors)
  std::uint64_t header_bytes = 0;  ///< their 8-byte lengths and JSON headers
};

/// What a save wrote.
struct SavedCheckpoint {
  std::filesystem::path dir;
  CheckpointSize size;              ///< of the directory as written
  std::uint64_t memory_bytes = 0;   ///< the model's tensors in memory (model_base::memory_bytes)
  std::vector<std::string> not_written;  ///< files a full HF directory has that could not be made, and why
};

namespace detail::checkpoint {

namespace fs = std::filesystem;
using safetensors::Dtype;
using json = nlohmann::json;

inline std::string tensor_object(const std::string& name) { return "tensor '" + name + "'"; }

/// Python's repr() of a float (what json.dumps writes): the shortest digits that round-trip,
/// positional for 1e-4 <= |v| < 1e16, else d.ddde+XX.
inline std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string s(buf, res.ptr);
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  const auto e_pos = s.find('e');
  std::string digits = s.substr(0, e_pos);
  const int exp10 = std::stoi(s.substr(e_pos + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int decpt = exp10 + 1;  // value = 0.digits x 10^decpt
  const int n = static_cast<int>(digits.size());
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    const int e = decpt - 1;
    std::string ed = std::to_string(e < 0 ? -e : e);
    if (ed.size() < 2) ed = "0" + ed;
    out += std::string("e") + (e < 0 ? "-" : "+") + ed;
  } else if (decpt <= 0) {
    out = "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
  } else if (decpt < n) {
    out = digits.substr(0, static_cast<std::size_t>(decpt)) + "." + digits.substr(static_cast<std::size_t>(decpt));
  } else {
    out = digits + std::string(static_cast<std::size_t>(decpt - n), '0') + ".0";
  }
  return sign + out;
}

inline std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: throw std::invalid_argument(std::string("ordo::io: tensors of dtype ") + c10::toString(t) +
                                         " cannot be saved in a checkpoint");
  }
}

inline std::optional<torch::ScalarType> torch_dtype_from_name(const std::string& s) {
  if (s == "float32") return torch::kFloat32;
  if (s == "bfloat16") return torch::kBFloat16;
  if (s == "float16") return torch::kFloat16;
  return std::nullopt;
}

inline Dtype safetensors_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return Dtype::F32;
    case torch::kBFloat16: return Dtype::BF16;
    case torch::kFloat16: return Dtype::F16;
    default: throw std::invalid_argument(std::string("ordo::io: tensors of dtype ") + c10::toString(t) +
                                         " cannot be saved in a checkpoint");
  }
}

/// Bytes of one tensor to write, and what keeps them alive.
struct Entries {
  std::vector<safetensors::TensorEntry> entries;
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
  void add_raw(const std::string& name, Dtype dtype, std::vector<std::uint64_t> shape, const std::vector<T>& data) {
    entries.push_back({name, dtype, std::move(shape), std::as_bytes(std::span<const T>(data))});
  }
  void add_owned(const std::string& name, Dtype dtype, std::vector<std::uint64_t> shape, std::vector<std::uint8_t> data) {
    auto p = std::make_shared<const std::vector<std::uint8_t>>(std::move(data));
    keep_bytes.push_back(p);
    add_raw(name, dtype, std::move(shape), *p);
  }
};

inline const std::vector<float>& nf4_quant_map() {
  static const std::vector<float> m(quant::nf4::codebook.begin(), quant::nf4::codebook.end());
  return m;
}
inline const std::vector<float>& nested_quant_map() {
  static const std::vector<float> m(quant::nf4::dynamic_map.begin(), quant::nf4::dynamic_map.end());
  return m;
}

/// The files a checkpoint directory holds; only a directory of such files is replaced.
inline bool is_checkpoint_file(const std::string& name) {
  static const std::set<std::string> known = {
      "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
      "vocab.json", "merges.txt", "added_tokens.json"};
  if (known.contains(name)) return true;
  return name.starts_with("model-") && name.ends_with(".safetensors");
}

/// Tokenizer and generation files copied from a Hugging Face source directory.
inline constexpr const char* tokenizer_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "generation_config.json", "vocab.json", "merges.txt", "added_tokens.json"};

inline void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](AtomicSink& sink) { sink.write(std::as_bytes(std::span(text))); });
}

inline void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Fills a fresh temporary directory beside `target` with `produce(tmp)`, then puts it in
/// place of `target` (see the header comment). Returns the normalized target path.
template <class Produce>
fs::path write_directory_atomically(const fs::path& target_in, Produce&& produce) {
  fs::path target = fs::absolute(target_in).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  const fs::path parent = target.parent_path();
  if (!fs::is_directory(parent))
    throw std::system_error(ENOENT, std::generic_category(),
                            target.string() + ": the parent directory does not exist");
  if (fs::exists(target)) {
    if (!fs::is_directory(target))
      throw std::invalid_argument(target.string() + ": exists and is not a directory; not replacing it");
    for (const auto& e : fs::directory_iterator(target))
      if (!e.is_regular_file() || !is_checkpoint_file(e.path().filename().string()))
        throw std::invalid_argument(target.string() + ": exists and holds '" + e.path().filename().string() +
                                    "', which is not a checkpoint file; not replacing the directory");
  }
  std::string tmpl = (parent / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  if (!::mkdtemp(tmpl.data()))
    throw std::system_error(errno, std::generic_category(), target.string() + ": cannot create a temporary directory beside it");
  const fs::path tmp = tmpl;
  try {
    fs::permissions(tmp, fs::perms(0755));  // mkdtemp makes it 0700; a checkpoint is for sharing
    produce(tmp);
    fsync_dir(tmp);
    if (!fs::exists(target)) {
      if (std::rename(tmp.c_str(), target.c_str()) != 0)
        throw std::system_error(errno, std::generic_category(), target.string() + ": cannot rename the new checkpoint into place");
    } else if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp);  // now the old directory
    } else {  // file systems without RENAME_EXCHANGE: move the old one aside first
      const fs::path old = tmp.string() + ".old";
      fs::rename(target, old);
      fs::rename(tmp, target);
      fs::remove_all(old);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fsync_dir(parent);
  return target;
}

inline json base_config(const model::CausalLM& lm, torch::ScalarType dtype) {
  json j = lm->config().to_json();
  j.erase("quantization_config");
  // transformers 5 reads and writes "dtype"; 4.x reads "torch_dtype" (5 accepts it silently).
  j["dtype"] = torch_dtype_name(dtype);
  j["torch_dtype"] = torch_dtype_name(dtype);
  return j;
}

/// The dtype of the model's floating-point parameters (the first one's).
inline torch::ScalarType parameter_dtype(const model::CausalLM& lm) {
  for (const auto& p : const_cast<model::CausalLM&>(lm)->parameters()) return p.scalar_type();
  return torch::kFloat32;
}

/// Copies the tokenizer files of a Hugging Face source directory, or, for a GGUF source, writes
/// its chat template. Returns what a full directory would hold but this one does not.
template <class Model>
std::vector<std::string> write_tokenizer(const Model& m, const fs::path& out) {
  std::vector<std::string> missing;
  const fs::path& src = m.source();
  if (!src.empty() && fs::is_directory(src)) {
    for (const char* f : tokenizer_files)
      if (fs::is_regular_file(src / f)) fs::copy_file(src / f, out / f);
    if (!fs::exists(out / "tokenizer.json"))
      missing.push_back("tokenizer.json: the source directory " + src.string() + " has none");
  } else if (!src.empty() && fs::is_regular_file(src) && src.extension() == ".gguf") {
    gguf::File file(src);
    const auto meta = file.tokenizer();
    if (!meta.chat_template.empty()) write_text(out / "chat_template.jinja", std::string(meta.chat_template));
    missing.push_back("tokenizer.json: the model came from the GGUF file " + src.string() +
                      ", whose vocabulary ordo does not write as tokenizer.json (transformers can "
                      "convert it: AutoTokenizer.from_pretrained(dir, gguf_file=...))");
  } else {
    missing.push_back("tokenizer.json: the model has no source directory to copy it from");
  }
  return missing;
}

inline void write_config(const fs::path& path, const json& j) { write_text(path, j.dump(2) + "\n"); }

inline const std::map<std::string, std::string> pt_metadata = {{"format", "pt"}};

}  // namespace detail::checkpoint

/// Exact sizes of the files in `dir` (regular files, not recursing) and of the safetensors
/// files' tensor data and headers.
inline CheckpointSize checkpoint_size(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  CheckpointSize s;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const std::uint64_t bytes = e.file_size();
    s.files[name] = bytes;
    s.file_bytes += bytes;
    if (name.ends_with(".safetensors")) {
      safetensors::File f(e.path());
      s.header_bytes += f.header().data_offset();
      for (const auto& t : f.tensors()) s.tensor_bytes += t.nbytes();
    }
  }
  return s;
}

/// The quant_state JSON bitsandbytes packs into `<weight>.quant_state.bitsandbytes__nf4`,
/// byte for byte as its `json.dumps(...)` writes it (keys in QuantState.as_dict's order).
inline std::string nf4_quant_state_json(const model::nf4_weight& w) {
  const auto& q = w.q;
  std::string s = "{\"quant_type\": \"nf4\", \"blocksize\": " + std::to_string(q.blocksize) + ", \"dtype\": \"" +
                  detail::checkpoint::torch_dtype_name(w.compute_dtype) + "\", \"shape\": [" +
                  std::to_string(w.out_features) + ", " + std::to_string(w.in_features) + "]";
  if (q.nested)
    s += ", \"nested_blocksize\": " + std::to_string(quant::nf4::absmax_blocksize) +
         ", \"nested_dtype\": \"float32\", \"nested_offset\": " +
         detail::checkpoint::python_float_repr(static_cast<double>(q.offset));
  return s + "}";
}

/// The bytes save_nf4 writes as tensor data for this model, computed from the model: its dense
/// parameters, and per NF4 weight the packed weights, absmax (codes or fp32), the 16-value
/// quant_map, and when nested the second-level absmax, the 256-value nested_quant_map and the
/// quant_state JSON. (memory_bytes() counts the same minus the two maps and the JSON, plus
/// 4 bytes per nested weight for the offset, which the file keeps in the JSON.)
inline std::uint64_t nf4_tensor_bytes(const QuantizedModel& m) {
  auto& lm = const_cast<model::CausalLM&>(m.lm());
  std::uint64_t bytes = 0;
  for (const auto& p : lm->parameters()) bytes += static_cast<std::uint64_t>(p.nbytes());
  model::for_each_decoder_linear(lm, [&](const std::string&, model::Linear& l) {
    if (!l->quantized()) return;
    const auto& q = l->nf4->q;
    bytes += q.packed.size() + q.absmax.size() * 4 + q.absmax_codes.size() + q.absmax2.size() * 4 + 16 * 4;
    if (q.nested) bytes += 256 * 4;
    bytes += nf4_quant_state_json(*l->nf4).size();
  });
  return bytes;
}

/// Saves a dense model as a Hugging Face directory: config.json (decoder_config::to_json with
/// "dtype" and "torch_dtype" of the parameters), model.safetensors (every parameter by transformers' name in its
/// dtype; a tied lm_head is not stored, as transformers does not store it), and the tokenizer
/// files of the source directory (for a GGUF source: chat_template.jinja only; see
/// SavedCheckpoint::not_written). load_hf(dir) gives the same model back.
inline SavedCheckpoint save_hf(const DenseModel& m, const std::filesystem::path& dir) {
  namespace ck = detail::checkpoint;
  SavedCheckpoint out;
  auto& lm = const_cast<model::CausalLM&>(m.lm());
  out.dir = ck::write_directory_atomically(dir, [&](const std::filesystem::path& tmp) {
    ck::Entries e;
    for (const auto& p : lm->named_parameters()) e.add_tensor(p.key(), p.value());
    safetensors::write(tmp / "model.safetensors", e.entries, ck::pt_metadata);
    ck::write_config(tmp / "config.json", ck::base_config(lm, ck::parameter_dtype(lm)));
    out.not_written = ck::write_tokenizer(m, tmp);
  });
  out.size = checkpoint_size(out.dir);
  out.memory_bytes = m.memory_bytes();
  return out;
}

/// transformers' `quantization_config` for bitsandbytes NF4 (BitsAndBytesConfig.to_dict()).
inline nlohmann::json bnb_quantization_config(bool double_quant, torch::ScalarType compute_dtype) {
  return {{"_load_in_4bit", true},
          {"_load_in_8bit", false},
          {"bnb_4bit_compute_dtype", detail::checkpoint::torch_dtype_name(compute_dtype)},
          {"bnb_4bit_quant_storage", "uint8"},
          {"bnb_4bit_quant_type", "nf4"},
          {"bnb_4bit_use_double_quant", double_quant},
          {"llm_int8_enable_fp32_cpu_offload", false},
          {"llm_int8_has_fp16_weight", false},
          {"llm_int8_skip_modules", nullptr},
          {"llm_int8_threshold", 6.0},
          {"load_in_4bit", true},
          {"load_in_8bit", false},
          {"quant_method", "bitsandbytes"}};
}

/// Saves an NF4 model as transformers + bitsandbytes save one: per NF4 linear `<name>.weight`
/// (U8 packed, shape [(n+1)/2, 1]), `.weight.absmax` (U8 codes when double-quantized, else F32),
/// `.weight.quant_map` (F32 [16], the NF4 values), and when double-quantized
/// `.weight.nested_absmax` (F32) and `.weight.nested_quant_map` (F32 [256], the dynamic map);
/// `.weight.quant_state.bitsandbytes__nf4` (the quant_state JSON as U8); dense tensors as
/// save_hf; config.json with `quantization_config` (bnb_quantization_config, compute dtype
/// that of the first NF4 weight).
inline SavedCheckpoint save_nf4(const QuantizedModel& m, const std::filesystem::path& dir) {
  namespace ck = detail::checkpoint;
  using safetensors::Dtype;
  SavedCheckpoint out;
  auto& lm = const_cast<model::CausalLM&>(m.lm());
  out.dir = ck::write_directory_atomically(dir, [&](const std::filesystem::path& tmp) {
    ck::Entries e;
    for (const auto& p : lm->named_parameters()) e.add_tensor(p.key(), p.value());
    std::optional<torch::ScalarType> compute;
    bool nested = m.double_quantization;
    bool any = false;
    model::for_each_decoder_linear(lm, [&](const std::string& name, model::Linear& l) {
      if (!l->quantized()) return;
      const auto& w = *l->nf4;
      const auto& q = w.q;
      if (!compute) compute = w.compute_dtype;
      if (!any) nested = q.nested;
      any = true;
      const std::string base = name + ".weight";
      e.add_raw(base, Dtype::U8, {q.packed.size(), 1}, q.packed);
      if (q.nested) {
        e.add_raw(base + ".absmax", Dtype::U8, {q.absmax_codes.size()}, q.absmax_codes);
        e.add_raw(base + ".nested_absmax", Dtype::F32, {q.absmax2.size()}, q.absmax2);
        e.add_raw(base + ".nested_quant_map", Dtype::F32, {256}, ck::nested_quant_map());
      } else {
        e.add_raw(base + ".absmax", Dtype::F32, {q.absmax.size()}, q.absmax);
      }
      e.add_raw(base + ".quant_map", Dtype::F32, {16}, ck::nf4_quant_map());
      const std::string js = nf4_quant_state_json(w);
      e.add_owned(base + ".quant_state.bitsandbytes__nf4", Dtype::U8, {js.size()},
                  std::vector<std::uint8_t>(js.begin(), js.end()));
    });
    safetensors::write(tmp / "model.safetensors", e.entries, ck::pt_metadata);
    auto config = ck::base_config(lm, ck::parameter_dtype(lm));
    config["quantization_config"] = bnb_quantization_config(nested, compute.value_or(torch::kFloat32));
    ck::write_config(tmp / "config.json", config);
    out.not_written = ck::write_tokenizer(m, tmp);
  });
  out.size = checkpoint_size(out.dir);
  out.memory_bytes = m.memory_bytes();
  return out;
}

namespace detail::checkpoint {

inline std::string shape_text(const safetensors::TensorInfo& t) {
  return safetensors::detail::shape_string(t.shape) + " x " + std::string(safetensors::dtype_name(t.dtype));
}

/// Reads one bitsandbytes NF4 weight `<name>.weight*` for a linear [out, in]; marks the tensors
/// it reads as used. Every inconsistency is a format_error naming the file and the tensor.
inline std::shared_ptr<const model::nf4_weight> read_nf4_weight(const safetensors::Checkpoint& ck,
                                                               const std::string& name, std::int64_t out_features,
                                                               std::int64_t in_features,
                                                               std::set<std::string>& used) {
  const std::string base = name + ".weight";
  auto need = [&](const std::string& key) -> const safetensors::Checkpoint::Location& {
    const auto* loc = ck.find(key);
    if (!loc) {
      const auto& state = ck.at(base + ".quant_state.bitsandbytes__nf4");
      throw format_error(state.file->path(), tensor_object(key),
                         "missing: the NF4 weight " + base + " needs it");
    }
    used.insert(key);
    return *loc;
  };
  auto expect = [&](const safetensors::Checkpoint::Location& loc, Dtype dtype, std::vector<std::uint64_t> shape,
                    const std::string& why) {
    if (loc.info->dtype != dtype || loc.info->shape != shape)
      throw format_error(loc.file->path(), tensor_object(loc.info->name),
                         "is " + shape_text(*loc.info) + " but " + why + " needs " +
                             safetensors::detail::shape_string(shape) + " x " + std::string(safetensors::dtype_name(dtype)));
  };
  auto floats = [](const safetensors::Checkpoint::Location& loc) {
    std::vector<float> v(loc.info->nbytes() / 4);
    std::memcpy(v.data(), loc.data().data(), v.size() * 4);
    return v;
  };
  auto bytes = [](const safetensors::Checkpoint::Location& loc) {
    const auto d = loc.data();
    return std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(d.data()),
                                     reinterpret_cast<const std::uint8_t*>(d.data()) + d.size());
  };

  const auto& state_loc = need(base + ".quant_state.bitsandbytes__nf4");
  const std::string file = state_loc.file->path();
  const std::string state_obj = tensor_object(state_loc.info->name);
  if (state_loc.info->dtype != Dtype::U8 || state_loc.info->shape.size() != 1)
    throw format_error(file, state_obj, "is " + shape_text(*state_loc.info) + ", not a U8 vector of JSON text");
  const auto state_data = state_loc.data();
  json st;
  try {
    st = json::parse(reinterpret_cast<const char*>(state_data.data()),
                     reinterpret_cast<const char*>(state_data.data()) + state_data.size());
  } catch (const json::exception& ex) {
    throw format_error(file, state_obj, std::string("the quant_state is not valid JSON: ") + ex.what());
  }
  if (!st.is_object()) throw format_error(file, state_obj, "the quant_state is not a JSON object");
  auto field = [&](const char* key) -> const json& {
    if (!st.contains(key)) throw format_error(file, state_obj, std::string("the quant_state has no '") + key + "'");
    return st[key];
  };
  if (field("quant_type") != "nf4")
    throw format_error(file, state_obj, "quant_type is " + field("quant_type").dump() + "; ordo reads NF4 only");
  const json& bs = field("blocksize");
  if (!bs.is_number_unsigned() || !quant::nf4::is_valid_blocksize(bs.get<std::size_t>()))
    throw format_error(file, state_obj, "blocksize " + bs.dump() + " is not one of 32, 64, ..., 4096");
  const json& dt = field("dtype");
  const auto dtype = dt.is_string() ? torch_dtype_from_name(dt.get<std::string>()) : std::nullopt;
  if (!dtype) throw format_error(file, state_obj, "dtype " + dt.dump() + " is not float32, bfloat16 or float16");
  const json expected_shape = {out_features, in_features};
  if (field("shape") != expected_shape)
    throw format_error(file, state_obj, "shape " + field("shape").dump() + " but the config makes " + name +
                                            " " + expected_shape.dump());

  auto w = std::make_shared<model::nf4_weight>();
  auto& q = w->q;
  q.numel = static_cast<std::size_t>(out_features * in_features);
  q.blocksize = bs.get<std::size_t>();
  w->out_features = out_features;
  w->in_features = in_features;
  w->compute_dtype = *dtype;
  const std::size_t blocks = q.blocks();

  const auto& packed = need(base);
  const std::uint64_t nbytes = quant::nf4::packed_bytes(q.numel);
  if (packed.info->dtype != Dtype::U8 ||
      !(packed.info->shape == std::vector<std::uint64_t>{nbytes, 1} || packed.info->shape == std::vector<std::uint64_t>{nbytes}))
    throw format_error(file, tensor_object(base), "is " + shape_text(*packed.info) + " but " + std::to_string(q.numel) +
                                                      " NF4 values need [" + std::to_string(nbytes) + ", 1] x U8");
  q.packed = bytes(packed);

  const auto& qmap = need(base + ".quant_map");
  expect(qmap, Dtype::F32, {16}, "an NF4 quant_map");
  if (floats(qmap) != nf4_quant_map())
    throw format_error(file, tensor_object(base + ".quant_map"),
                       "is not the NF4 codebook (another 4-bit data type?); ordo reads NF4 only");

  q.nested = st.contains("nested_offset") || ck.find(base + ".nested_absmax");
  const auto& absmax = need(base + ".absmax");
  if (!q.nested) {
    expect(absmax, Dtype::F32, {blocks}, std::to_string(blocks) + " blocks of " + std::to_string(q.blocksize));
    q.absmax = floats(absmax);
  } else {
    const std::size_t blocks2 = quant::nf4::absmax2_count(blocks);
    expect(absmax, Dtype::U8, {blocks}, "double quantization of " + std::to_string(blocks) + " blocks");
    q.absmax_codes = bytes(absmax);
    const auto& a2 = need(base + ".nested_absmax");
    expect(a2, Dtype::F32, {blocks2}, std::to_string(blocks) + " blocks in groups of 256");
    q.absmax2 = floats(a2);
    const auto& nmap = need(base + ".nested_quant_map");
    expect(nmap, Dtype::F32, {256}, "the 8-bit map of double quantization");
    if (floats(nmap) != nested_quant_map())
      throw format_error(file, tensor_object(base + ".nested_quant_map"),
                         "is not bitsandbytes' signed dynamic map (create_dynamic_map(True, 7, 8))");
    if (field("nested_blocksize") != quant::nf4::absmax_blocksize)
      throw format_error(file, state_obj, "nested_blocksize " + field("nested_blocksize").dump() + " is not 256");
    if (field("nested_dtype") != "float32")
      throw format_error(file, state_obj, "nested_dtype " + field("nested_dtype").dump() + " is not float32");
    const json& off = field("nested_offset");
    if (!off.is_number()) throw format_error(file, state_obj, "nested_offset " + off.dump() + " is not a number");
    q.offset = static_cast<float>(off.get<double>());  // written as the double of an fp32 value
  }
  w->scales = quant::nf4::block_scales(q);
  return w;
}

}  // namespace detail::checkpoint

/// Loads an NF4 checkpoint in bitsandbytes' serialization (saved by save_nf4, or by
/// transformers + bitsandbytes with quant type nf4, with or without double quantization).
/// config.json must carry a bitsandbytes 4-bit nf4 `quantization_config`. Every decoder linear
/// with a `.weight.quant_state.bitsandbytes__nf4` becomes an NF4 linear; one stored dense (a
/// module transformers skipped) stays dense; dense tensors are converted to `dtype`. Every
/// tensor must be used and every parameter present: a mismatch or a corrupt tensor is an
/// error naming the file and the tensor. The tokenizer is loaded when the directory has a
/// tokenizer.json (else the model's tokenizer is null).
inline QuantizedModel load_nf4(const std::filesystem::path& dir, torch::ScalarType dtype = torch::kFloat32) {
  namespace ck = detail::checkpoint;
  const std::string config_path = (dir / "config.json").string();
  auto config = model::decoder_config::load(dir);
  const auto& raw = config.original;
  const std::string qc_obj = "key 'quantization_config'";
  if (!raw.contains("quantization_config") || !raw["quantization_config"].is_object())
    throw format_error(config_path, qc_obj, "missing: not a quantized checkpoint (load_hf reads dense ones)");
  const auto& qc = raw["quantization_config"];
  // Compared as JSON values, so that a key of an unexpected type is a mismatch, not a throw.
  auto get = [&](const char* key, const nlohmann::json& fallback) {
    return qc.contains(key) ? qc[key] : fallback;
  };
  if (get("quant_method", nullptr) != "bitsandbytes")
    throw format_error(config_path, qc_obj, "quant_method is " + get("quant_method", nullptr).dump() +
                                                ", not \"bitsandbytes\"");
  if (get("load_in_4bit", false) != true && get("_load_in_4bit", false) != true)
    throw format_error(config_path, qc_obj, "load_in_4bit is not true (8-bit checkpoints are not NF4)");
  if (get("bnb_4bit_quant_type", "fp4") != "nf4")
    throw format_error(config_path, qc_obj, "bnb_4bit_quant_type is " + get("bnb_4bit_quant_type", "fp4").dump() +
                                                "; ordo reads nf4 only");
  if (get("bnb_4bit_quant_storage", "uint8") != "uint8")
    throw format_error(config_path, qc_obj, "bnb_4bit_quant_storage is " + qc["bnb_4bit_quant_storage"].dump() +
                                                "; ordo reads uint8 storage only");

  safetensors::Checkpoint checkpoint(dir);
  model::CausalLM lm(config);
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  std::size_t blocksize = 64;
  bool nested = get("bnb_4bit_use_double_quant", false) == true;
  bool first = true;
  model::for_each_decoder_linear(lm, [&](const std::string& name, model::Linear& l) {
    const std::string base = name + ".weight";
    for (const char* other : {".quant_state.bitsandbytes__fp4"})
      if (const auto* loc = checkpoint.find(base + other))
        throw format_error(loc->file->path(), ck::tensor_object(base + other), "FP4 weights; ordo reads NF4 only");
    if (!checkpoint.find(base + ".quant_state.bitsandbytes__nf4")) return;  // stored dense
    auto w = ck::read_nf4_weight(checkpoint, name, l->out_features, l->in_features, used);
    if (first) {
      blocksize = w->q.blocksize;
      nested = w->q.nested;
      first = false;
    }
    l = model::Linear(std::move(w), l->bias);
  });
  for (auto& p : lm->named_parameters()) {
    const std::string& name = p.key();
    const auto* where = checkpoint.find(name);
    if (!where) throw format_error(checkpoint.files().front()->path(), ck::tensor_object(name), "missing from the checkpoint");
    auto t = model::read_tensor(checkpoint, name);
    if (t.sizes() != p.value().sizes() || !t.is_floating_point()) {
      std::ostringstream msg;
      msg << "is " << ck::shape_text(*where->info) << " but the config implies " << p.value().sizes()
          << " (floating point)";
      throw format_error(where->file->path(), ck::tensor_object(name), msg.str());
    }
    p.value().copy_(t);
    used.insert(name);
  }
  for (const auto& name : checkpoint.names()) {
    if (used.contains(name) || (config.tie_word_embeddings && name == "lm_head.weight") ||
        name.find("rotary_emb.inv_freq") != std::string::npos)
      continue;
    throw format_error(checkpoint.at(name).file->path(), ck::tensor_object(name),
                       "is not part of a " + config.model_type + " decoder with this config (or of its NF4 weights)");
  }
  lm->to(dtype);
  for (auto& p : lm->parameters()) p.set_requires_grad(false);
  lm->eval();
  std::shared_ptr<const Tokenizer> tokenizer;
  if (std::filesystem::exists(dir / "tokenizer.json"))
    tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_directory(dir));
  auto jinja = read_chat_template(dir);
  QuantizedModel out(lm, tokenizer, jinja ? std::optional(ChatTemplate::from_jinja(*jinja)) : std::nullopt, dir);
  out.blocksize = blocksize;
  out.double_quantization = nested;
  return out;
}

}  // namespace ordo::io
