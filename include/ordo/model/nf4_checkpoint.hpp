// ordo/model/nf4_checkpoint.hpp — NF4 models in bitsandbytes' serialization, both ways:
//
//   save_nf4(const QuantizedModel&, dir)  as transformers + bitsandbytes save them, with
//                                         `quantization_config` in config.json
//   load_nf4(dir) -> QuantizedModel       reads that format back (ordo's or transformers')
//   nf4_tensor_bytes(model)               the exact tensor bytes save_nf4 writes
//
// The format, what was checked against bitsandbytes / transformers and how: docs/checkpoints.md.
// Example: tests/model/checkpoint_test.cpp.
#pragma once

#include <cmath>       // std::isfinite
#include <cstdint>     // std::uint8_t, std::uint64_t
#include <cstring>     // std::memcpy
#include <filesystem>  // std::filesystem
#include <memory>      // std::shared_ptr
#include <optional>    // std::optional
#include <set>         // std::set
#include <sstream>     // std::ostringstream
#include <string>      // std::string
#include <vector>      // std::vector

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/io/atomic_directory.hpp>    // write_directory_atomically
#include <ordo/io/error.hpp>               // format_error
#include <ordo/io/hf_directory.hpp>        // checkpoint_size, python_float_repr
#include <ordo/io/safetensors.hpp>         // safetensors::Checkpoint, write
#include <ordo/model/config.hpp>           // decoder_config
#include <ordo/model/decoder.hpp>          // CausalLM, nf4_weight
#include <ordo/model/dtype.hpp>            // torch_dtype_name, torch_dtype_from_name
#include <ordo/model/load_hf.hpp>          // read_tensor
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/model/save_hf.hpp>          // SavedCheckpoint, detail::save
#include <ordo/model/transform.hpp>        // for_each_decoder_linear
#include <ordo/quant/nf4_codebook.hpp>     // codebook, dynamic_map, absmax_blocksize
#include <ordo/quant/nf4_cpu.hpp>          // block_scales
#include <ordo/text/chat_template.hpp>     // read_chat_template, ChatTemplate
#include <ordo/text/tokenizer.hpp>         // Tokenizer

namespace ordo::model {

namespace detail::nf4_checkpoint {

using io::safetensors::Dtype;

using json = nlohmann::json;

inline std::string tensor_object(const std::string& name) { return "tensor '" + name + "'"; }

inline const std::vector<float>& nf4_quant_map() {
  static const std::vector<float> m(quant::nf4::codebook.begin(), quant::nf4::codebook.end());
  return m;
}
inline const std::vector<float>& nested_quant_map() {
  static const std::vector<float> m(quant::nf4::dynamic_map.begin(), quant::nf4::dynamic_map.end());
  return m;
}

}  // namespace detail::nf4_checkpoint

/// The quant_state JSON bitsandbytes packs into `<weight>.quant_state.bitsandbytes__nf4`,
/// byte for byte as its `json.dumps(...)` writes it (keys in QuantState.as_dict's order).
inline std::string nf4_quant_state_json(const nf4_weight& w) {
  const auto& q = w.q;
  std::string s = "{\"quant_type\": \"nf4\", \"blocksize\": " + std::to_string(q.blocksize) + ", \"dtype\": \"" +
                  torch_dtype_name(w.compute_dtype) + "\", \"shape\": [" + std::to_string(w.out_features) + ", " +
                  std::to_string(w.in_features) + "]";
  if (q.nested)
    s += ", \"nested_blocksize\": " + std::to_string(quant::nf4::absmax_blocksize) +
         ", \"nested_dtype\": \"float32\", \"nested_offset\": " + io::python_float_repr(static_cast<double>(q.offset));
  return s + "}";
}

/// The bytes save_nf4 writes as tensor data for this model, computed from the model: its dense
/// parameters, and per NF4 weight the packed weights, absmax (codes or fp32), the 16-value
/// quant_map, and when nested the second-level absmax, the 256-value nested_quant_map and the
/// quant_state JSON. (memory_bytes() counts the same minus the two maps and the JSON, plus
/// 4 bytes per nested weight for the offset, which the file keeps in the JSON.)
inline std::uint64_t nf4_tensor_bytes(const QuantizedModel& m) {
  auto& lm = const_cast<CausalLM&>(m.lm());
  std::uint64_t bytes = 0;
  for (const auto& p : lm->parameters()) bytes += static_cast<std::uint64_t>(p.nbytes());
  for_each_decoder_linear(lm, [&](const std::string&, Linear& l) {
    if (!l->quantized()) return;
    const auto& q = l->nf4->q;
    bytes += q.packed.size() + q.absmax.size() * 4 + q.absmax_codes.size() + q.absmax2.size() * 4 + 16 * 4;
    if (q.nested) bytes += 256 * 4;
    bytes += nf4_quant_state_json(*l->nf4).size();
  });
  return bytes;
}

/// transformers' `quantization_config` for bitsandbytes NF4 (BitsAndBytesConfig.to_dict()).
inline nlohmann::json bnb_quantization_config(bool double_quant, torch::ScalarType compute_dtype) {
  return {{"_load_in_4bit", true},
          {"_load_in_8bit", false},
          {"bnb_4bit_compute_dtype", torch_dtype_name(compute_dtype)},
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
  namespace ck = detail::save;
  namespace nf = detail::nf4_checkpoint;
  using io::safetensors::Dtype;
  SavedCheckpoint out;
  auto& lm = const_cast<CausalLM&>(m.lm());
  out.dir = io::write_directory_atomically(
      dir,
      [&](const std::filesystem::path& tmp) {
        ck::Entries e;
        for (const auto& p : lm->named_parameters()) e.add_tensor(p.key(), p.value());
        std::optional<torch::ScalarType> compute;
        bool nested = m.double_quantization;
        bool any = false;
        for_each_decoder_linear(lm, [&](const std::string& name, Linear& l) {
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
            e.add_raw(base + ".nested_quant_map", Dtype::F32, {256}, nf::nested_quant_map());
          } else {
            e.add_raw(base + ".absmax", Dtype::F32, {q.absmax.size()}, q.absmax);
          }
          e.add_raw(base + ".quant_map", Dtype::F32, {16}, nf::nf4_quant_map());
          const std::string js = nf4_quant_state_json(w);
          e.add_owned(base + ".quant_state.bitsandbytes__nf4", Dtype::U8, {js.size()},
                      std::vector<std::uint8_t>(js.begin(), js.end()));
        });
        io::safetensors::write(tmp / "model.safetensors", e.entries, ck::pt_metadata);
        auto config = ck::base_config(lm, ck::parameter_dtype(lm));
        config["quantization_config"] = bnb_quantization_config(nested, compute.value_or(torch::kFloat32));
        ck::write_config(tmp / "config.json", config, m.shared_tokenizer().get());
        out.not_written = ck::write_tokenizer(m.source(), m.shared_tokenizer().get(),
                                              lm->config().max_position_embeddings, tmp);
      },
      io::is_checkpoint_file);
  out.size = io::checkpoint_size(out.dir);
  out.memory_bytes = m.memory_bytes();
  return out;
}

namespace detail::nf4_checkpoint {

inline std::string shape_text(const io::safetensors::TensorInfo& t) {
  return io::safetensors::detail::shape_string(t.shape) + " x " + std::string(io::safetensors::dtype_name(t.dtype));
}

/// Reads one bitsandbytes NF4 weight `<name>.weight*` for a linear [out, in]; marks the tensors
/// it reads as used. Every inconsistency is a format_error naming the file and the tensor.
inline std::shared_ptr<const nf4_weight> read_nf4_weight(const io::safetensors::Checkpoint& ck, const std::string& name,
                                                         std::int64_t out_features, std::int64_t in_features,
                                                         std::set<std::string>& used) {
  const std::string base = name + ".weight";
  auto need = [&](const std::string& key) -> const io::safetensors::Checkpoint::Location& {
    const auto* loc = ck.find(key);
    if (!loc) {
      const auto& state = ck.at(base + ".quant_state.bitsandbytes__nf4");
      throw io::format_error(state.file->path(), tensor_object(key), "missing: the NF4 weight " + base + " needs it");
    }
    used.insert(key);
    return *loc;
  };
  auto expect = [&](const io::safetensors::Checkpoint::Location& loc, Dtype dtype, std::vector<std::uint64_t> shape,
                    const std::string& why) {
    if (loc.info->dtype != dtype || loc.info->shape != shape)
      throw io::format_error(loc.file->path(), tensor_object(loc.info->name),
                             "is " + shape_text(*loc.info) + " but " + why + " needs " +
                                 io::safetensors::detail::shape_string(shape) + " x " +
                                 std::string(io::safetensors::dtype_name(dtype)));
  };
  auto floats = [](const io::safetensors::Checkpoint::Location& loc) {
    std::vector<float> v(loc.info->nbytes() / 4);
    std::memcpy(v.data(), loc.data().data(), v.size() * 4);
    return v;
  };
  auto bytes = [](const io::safetensors::Checkpoint::Location& loc) {
    const auto d = loc.data();
    return std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(d.data()),
                                     reinterpret_cast<const std::uint8_t*>(d.data()) + d.size());
  };

  const auto& state_loc = need(base + ".quant_state.bitsandbytes__nf4");
  const std::string file = state_loc.file->path();
  const std::string state_obj = tensor_object(state_loc.info->name);
  if (state_loc.info->dtype != Dtype::U8 || state_loc.info->shape.size() != 1)
    throw io::format_error(file, state_obj, "is " + shape_text(*state_loc.info) + ", not a U8 vector of JSON text");
  const auto state_data = state_loc.data();
  json st;
  try {
    st = json::parse(reinterpret_cast<const char*>(state_data.data()),
                     reinterpret_cast<const char*>(state_data.data()) + state_data.size());
  } catch (const json::exception& ex) {
    throw io::format_error(file, state_obj, std::string("the quant_state is not valid JSON: ") + ex.what());
  }
  if (!st.is_object()) throw io::format_error(file, state_obj, "the quant_state is not a JSON object");
  auto field = [&](const char* key) -> const json& {
    if (!st.contains(key)) throw io::format_error(file, state_obj, std::string("the quant_state has no '") + key + "'");
    return st[key];
  };
  if (field("quant_type") != "nf4")
    throw io::format_error(file, state_obj, "quant_type is " + field("quant_type").dump() + "; ordo reads NF4 only");
  const json& bs = field("blocksize");
  if (!bs.is_number_unsigned() || !quant::nf4::is_valid_blocksize(bs.get<std::size_t>()))
    throw io::format_error(file, state_obj, "blocksize " + bs.dump() + " is not one of 32, 64, ..., 4096");
  const json& dt = field("dtype");
  const auto dtype = dt.is_string() ? torch_dtype_from_name(dt.get<std::string>()) : std::nullopt;
  if (!dtype) throw io::format_error(file, state_obj, "dtype " + dt.dump() + " is not float32, bfloat16 or float16");
  const json expected_shape = {out_features, in_features};
  if (field("shape") != expected_shape)
    throw io::format_error(
        file, state_obj,
        "shape " + field("shape").dump() + " but the config makes " + name + " " + expected_shape.dump());

  auto w = std::make_shared<nf4_weight>();
  auto& q = w->q;
  q.numel = static_cast<std::size_t>(out_features * in_features);
  q.blocksize = bs.get<std::size_t>();
  w->out_features = out_features;
  w->in_features = in_features;
  w->compute_dtype = *dtype;
  const std::size_t blocks = q.blocks();

  const auto& packed = need(base);
  const std::uint64_t nbytes = quant::nf4::packed_bytes(q.numel);
  if (packed.info->dtype != Dtype::U8 || !(packed.info->shape == std::vector<std::uint64_t>{nbytes, 1} ||
                                           packed.info->shape == std::vector<std::uint64_t>{nbytes}))
    throw io::format_error(file, tensor_object(base),
                           "is " + shape_text(*packed.info) + " but " + std::to_string(q.numel) + " NF4 values need [" +
                               std::to_string(nbytes) + ", 1] x U8");
  q.packed = bytes(packed);

  const auto& qmap = need(base + ".quant_map");
  expect(qmap, Dtype::F32, {16}, "an NF4 quant_map");
  if (floats(qmap) != nf4_quant_map())
    throw io::format_error(file, tensor_object(base + ".quant_map"),
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
      throw io::format_error(file, tensor_object(base + ".nested_quant_map"),
                             "is not bitsandbytes' signed dynamic map (create_dynamic_map(True, 7, 8))");
    if (field("nested_blocksize") != quant::nf4::absmax_blocksize)
      throw io::format_error(file, state_obj, "nested_blocksize " + field("nested_blocksize").dump() + " is not 256");
    if (field("nested_dtype") != "float32")
      throw io::format_error(file, state_obj, "nested_dtype " + field("nested_dtype").dump() + " is not float32");
    const json& off = field("nested_offset");
    if (!off.is_number()) throw io::format_error(file, state_obj, "nested_offset " + off.dump() + " is not a number");
    q.offset = static_cast<float>(off.get<double>());  // written as the double of an fp32 value
  }
  // A NaN or Inf scale makes its whole block NaN: named here instead of in the model's output.
  const auto finite_or_throw = [&](const std::vector<float>& v, const std::string& tensor) {
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i]))
        throw io::format_error(file, tensor_object(tensor),
                               "holds a non-finite value (NaN or Inf) at element " + std::to_string(i) +
                                   ": the checkpoint is corrupt");
  };
  finite_or_throw(q.absmax, base + ".absmax");
  finite_or_throw(q.absmax2, base + ".nested_absmax");
  if (!std::isfinite(q.offset))
    throw io::format_error(file, state_obj, "nested_offset is not finite: the checkpoint is corrupt");
  w->scales = quant::nf4::block_scales(q);
  return w;
}

}  // namespace detail::nf4_checkpoint

/// Loads an NF4 checkpoint in bitsandbytes' serialization (saved by save_nf4, or by
/// transformers + bitsandbytes with quant type nf4, with or without double quantization).
/// config.json must carry a bitsandbytes 4-bit nf4 `quantization_config`. Every decoder linear
/// with a `.weight.quant_state.bitsandbytes__nf4` becomes an NF4 linear; one stored dense (a
/// module transformers skipped) stays dense; dense tensors are made on `where.device` in
/// `where.dtype` (the NF4 bytes stay on the host). Every
/// tensor must be used and every parameter present: a mismatch or a corrupt tensor is an
/// error naming the file and the tensor. The tokenizer is loaded when the directory has a
/// tokenizer.json (else the model's tokenizer is null).
inline QuantizedModel load_nf4(const std::filesystem::path& dir, const placement& where = {}) {
  namespace nf = detail::nf4_checkpoint;
  const std::string config_path = (dir / "config.json").string();
  auto config = decoder_config::load(dir);
  const auto& raw = config.original;
  const std::string qc_obj = "key 'quantization_config'";
  if (!raw.contains("quantization_config"))
    throw io::format_error(config_path, qc_obj, "missing: not a quantized checkpoint (load_hf reads dense ones)");
  if (!raw["quantization_config"].is_object())
    throw io::format_error(config_path, qc_obj,
                           "is " + raw["quantization_config"].dump() +
                               ", not an object such as {\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, "
                               "\"bnb_4bit_quant_type\": \"nf4\", ...}");
  const auto& qc = raw["quantization_config"];
  // Compared as JSON values, so that a key of an unexpected type is a mismatch, not a throw.
  auto get = [&](const char* key, const nlohmann::json& fallback) { return qc.contains(key) ? qc[key] : fallback; };
  if (get("quant_method", nullptr) != "bitsandbytes")
    throw io::format_error(config_path, qc_obj,
                           "quant_method is " + get("quant_method", nullptr).dump() + ", not \"bitsandbytes\"");
  if (get("load_in_4bit", false) != true && get("_load_in_4bit", false) != true)
    throw io::format_error(config_path, qc_obj, "load_in_4bit is not true (8-bit checkpoints are not NF4)");
  if (get("bnb_4bit_quant_type", "fp4") != "nf4")
    throw io::format_error(
        config_path, qc_obj,
        "bnb_4bit_quant_type is " + get("bnb_4bit_quant_type", "fp4").dump() + "; ordo reads nf4 only");
  if (get("bnb_4bit_quant_storage", "uint8") != "uint8")
    throw io::format_error(
        config_path, qc_obj,
        "bnb_4bit_quant_storage is " + qc["bnb_4bit_quant_storage"].dump() + "; ordo reads uint8 storage only");

  io::safetensors::Checkpoint checkpoint(dir);
  CausalLM lm(config, build_options(where, /*draw=*/false));
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  std::size_t blocksize = 64;
  bool nested = get("bnb_4bit_use_double_quant", false) == true;
  bool first = true;
  for_each_decoder_linear(lm, [&](const std::string& name, Linear& l) {
    const std::string base = name + ".weight";
    for (const char* other : {".quant_state.bitsandbytes__fp4"})
      if (const auto* loc = checkpoint.find(base + other))
        throw io::format_error(loc->file->path(), nf::tensor_object(base + other), "FP4 weights; ordo reads NF4 only");
    if (!checkpoint.find(base + ".quant_state.bitsandbytes__nf4")) return;  // stored dense
    auto w = nf::read_nf4_weight(checkpoint, name, l->out_features, l->in_features, used);
    if (first) {
      blocksize = w->q.blocksize;
      nested = w->q.nested;
      first = false;
    }
    l = Linear(std::move(w), l->bias);
  });
  for (auto& p : lm->named_parameters()) {
    const std::string& name = p.key();
    const auto* where = checkpoint.find(name);
    if (!where)
      throw io::format_error(checkpoint.files().front()->path(), nf::tensor_object(name),
                             "missing from the checkpoint");
    auto t = view_tensor(checkpoint, name);
    if (t.sizes() != p.value().sizes() || !t.is_floating_point()) {
      std::ostringstream msg;
      msg << "is " << nf::shape_text(*where->info) << " but the config implies " << p.value().sizes()
          << " (floating point)";
      throw io::format_error(where->file->path(), nf::tensor_object(name), msg.str());
    }
    require_finite(t, where->file->path(), name);
    p.value().copy_(t);
    used.insert(name);
  }
  for (const auto& name : checkpoint.names()) {
    if (used.contains(name) || (config.tie_word_embeddings && name == "lm_head.weight") ||
        name.find("rotary_emb.inv_freq") != std::string::npos)
      continue;
    throw io::format_error(
        checkpoint.at(name).file->path(), nf::tensor_object(name),
        "is not part of a " + config.model_type + " decoder with this config (or of its NF4 weights)");
  }
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

}  // namespace ordo::model
