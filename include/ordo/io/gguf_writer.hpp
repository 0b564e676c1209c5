// ordo/io/gguf_writer.hpp — writing GGUF (version 3, little-endian, alignment 32): metadata of
// every value type ordo needs, and tensors in F32, F16, BF16 or Q8_0 encoded from fp32 values.
// Tensor data are produced one tensor at a time while the file is written, so a model never
// needs a second copy in memory; the file appears atomically (write_file_atomically). Torch-free.
//
//   ordo::io::gguf::Writer w;
//   w.set_string("general.architecture", "llama");
//   w.set_u32("llama.block_count", 30);
//   w.add_tensor("token_embd.weight", TensorType::F16, {49152, 576}, [&] { return values; });
//   w.write("model.gguf");
#pragma once

#include <cstddef>      // std::byte
#include <cstdint>      // std::uint32_t, std::uint64_t
#include <cstring>      // std::memcpy
#include <filesystem>   // std::filesystem::path
#include <functional>   // std::function
#include <span>         // std::span
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string
#include <utility>      // std::move, std::pair
#include <vector>       // std::vector

#include <ordo/io/atomic_write.hpp>   // write_file_atomically, AtomicSink
#include <ordo/io/ggml_types.hpp>     // TensorType, type_traits
#include <ordo/io/gguf.hpp>           // File (copy_tokenizer's source)
#include <ordo/io/gguf_header.hpp>    // ValueType
#include <ordo/quant/float_bits.hpp>  // to_f16, to_bf16 (round to nearest even, as ggml)
#include <ordo/quant/q8_rule.hpp>     // quantize_block (Q8_0)

namespace ordo::io::gguf {

/// The tensor types Writer encodes.
constexpr bool is_writable(TensorType t) noexcept {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 || t == TensorType::Q8_0;
}

/// `values` (fp32, row-major, rows of `row_length`) in GGUF type `type`: F32 as is; F16 and BF16
/// rounded to nearest even; Q8_0 in blocks of 32 along each row, each an fp16 scale
/// d = max|x| / 127 and 32 int8 round(x / d) (llama.cpp's reference quantize_row_q8_0).
/// Q8_0 needs a row length that is a multiple of 32.
inline std::vector<std::byte> encode(TensorType type, std::span<const float> values, std::uint64_t row_length) {
  std::vector<std::byte> out;
  auto put16 = [&](std::uint16_t bits, std::size_t at) { std::memcpy(out.data() + at, &bits, 2); };
  switch (type) {
    case TensorType::F32:
      out.resize(values.size() * 4);
      std::memcpy(out.data(), values.data(), out.size());
      return out;
    case TensorType::F16:
      out.resize(values.size() * 2);
      for (std::size_t i = 0; i < values.size(); ++i) put16(quant::to_f16(values[i]).bits, 2 * i);
      return out;
    case TensorType::BF16:
      out.resize(values.size() * 2);
      for (std::size_t i = 0; i < values.size(); ++i) put16(quant::to_bf16(values[i]).bits, 2 * i);
      return out;
    case TensorType::Q8_0: {
      if (row_length % 32 != 0)
        throw std::invalid_argument("gguf: Q8_0 needs rows whose length is a multiple of 32, not " +
                                    std::to_string(row_length));
      const std::size_t blocks = values.size() / 32;
      out.resize(blocks * 34);
      for (std::size_t b = 0; b < blocks; ++b) {
        std::int8_t q[32];
        put16(quant::q8::quantize_block(values.data() + 32 * b, q).bits, 34 * b);
        std::memcpy(out.data() + 34 * b + 2, q, 32);
      }
      return out;
    }
    default:
      throw std::invalid_argument("gguf: ordo writes F32, F16, BF16 and Q8_0 tensors only");
  }
}

/// A GGUF file being put together: metadata in the order set (a key set twice keeps its first
/// place and its last value), tensors in the order added.
class Writer {
 public:
  using Produce = std::function<std::vector<float>()>;

  void set_u32(const std::string& key, std::uint32_t v) { scalar(key, ValueType::UINT32, v); }
  void set_i32(const std::string& key, std::int32_t v) { scalar(key, ValueType::INT32, v); }
  void set_u64(const std::string& key, std::uint64_t v) { scalar(key, ValueType::UINT64, v); }
  void set_f32(const std::string& key, float v) { scalar(key, ValueType::FLOAT32, v); }
  void set_bool(const std::string& key, bool v) { scalar(key, ValueType::BOOL, static_cast<std::uint8_t>(v)); }
  void set_string(const std::string& key, const std::string& v) {
    std::string e;
    put<std::uint32_t>(e, static_cast<std::uint32_t>(ValueType::STRING));
    put_string(e, v);
    set(key, std::move(e));
  }
  void set_u32_array(const std::string& key, const std::vector<std::uint32_t>& v) { array(key, ValueType::UINT32, v); }
  void set_i32_array(const std::string& key, const std::vector<std::int32_t>& v) { array(key, ValueType::INT32, v); }
  void set_f32_array(const std::string& key, const std::vector<float>& v) { array(key, ValueType::FLOAT32, v); }
  void set_string_array(const std::string& key, const std::vector<std::string>& v) {
    std::string e;
    put<std::uint32_t>(e, static_cast<std::uint32_t>(ValueType::ARRAY));
    put<std::uint32_t>(e, static_cast<std::uint32_t>(ValueType::STRING));
    put<std::uint64_t>(e, v.size());
    for (const auto& s : v) put_string(e, s);
    set(key, std::move(e));
  }

  /// Removes a metadata key / a tensor (nothing when absent): a test's way to write a file that
  /// lacks something.
  void erase(const std::string& key) {
    std::erase_if(kv_, [&](const auto& kv) { return kv.first == key; });
  }
  void erase_tensor(const std::string& name) {
    std::erase_if(tensors_, [&](const Tensor& t) { return t.name == name; });
  }

  /// A tensor of `shape` (outermost first, as torch and transformers write shapes; GGUF stores
  /// the reverse) whose fp32 values `produce` gives when the file is written.
  void add_tensor(std::string name, TensorType type, std::vector<std::uint64_t> shape, Produce produce) {
    if (!is_writable(type)) throw std::invalid_argument("gguf: tensor '" + name + "': ordo writes F32, F16, BF16, Q8_0");
    if (shape.empty()) throw std::invalid_argument("gguf: tensor '" + name + "' has no dimensions");
    for (const auto& t : tensors_)
      if (t.name == name) throw std::invalid_argument("gguf: tensor '" + name + "' added twice");
    if (type == TensorType::Q8_0 && shape.back() % 32 != 0) type = TensorType::F16;  // Q8_0 needs rows of 32s
    tensors_.push_back({std::move(name), type, std::move(shape), std::move(produce)});
  }

  /// The type a tensor was given (Q8_0 becomes F16 for rows that are not a multiple of 32, as
  /// llama.cpp's converter falls back).
  TensorType type_of(const std::string& name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return t.type;
    throw std::invalid_argument("gguf: no tensor '" + name + "'");
  }

  /// Writes the file atomically: header, metadata, tensor infos, then each tensor's data (aligned
  /// to 32 bytes) as its `produce` gives it. A `produce` that returns the wrong number of values
  /// is an error naming the tensor, and nothing is left at `path`.
  void write(const std::filesystem::path& path) const {
    std::string head = "GGUF";
    put<std::uint32_t>(head, 3);
    put<std::uint64_t>(head, tensors_.size());
    put<std::uint64_t>(head, kv_.size());
    for (const auto& [k, v] : kv_) {
      put_string(head, k);
      head += v;
    }
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> sizes;
    for (const auto& t : tensors_) {
      put_string(head, t.name);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<std::uint64_t>(head, *d);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
      put<std::uint64_t>(head, offset);
      sizes.push_back(bytes_of(t));
      offset = aligned(offset + sizes.back());
    }
    head.resize(aligned(head.size()), '\0');
    write_file_atomically(path, [&](AtomicSink& sink) {
      sink.write(std::as_bytes(std::span(head)));
      std::uint64_t written = 0;
      for (std::size_t i = 0; i < tensors_.size(); ++i) {
        const auto& t = tensors_[i];
        const std::vector<float> values = t.produce();
        if (values.size() != numel(t))
          throw std::invalid_argument("gguf: tensor '" + t.name + "' produced " + std::to_string(values.size()) +
                                      " values for " + std::to_string(numel(t)));
        const auto data = encode(t.type, values, t.shape.back());
        sink.write(data);
        written += data.size();
        const std::vector<std::byte> pad(aligned(written) - written);
        sink.write(pad);
        written += pad.size();
      }
    });
  }

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<std::uint64_t> shape;
    Produce produce;
  };

  static std::uint64_t aligned(std::uint64_t n) { return (n + 31) / 32 * 32; }
  static std::uint64_t numel(const Tensor& t) {
    std::uint64_t n = 1;
    for (auto d : t.shape) n *= d;
    return n;
  }
  static std::uint64_t bytes_of(const Tensor& t) {
    const auto traits = *type_traits(static_cast<std::uint32_t>(t.type));
    return numel(t) / traits.block_size * traits.block_bytes;
  }
  template <class T>
  static void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // GGUF is little-endian, as every machine ordo builds for
    out.append(b, sizeof(T));
  }
  static void put_string(std::string& out, const std::string& s) {
    put<std::uint64_t>(out, s.size());
    out += s;
  }
  void set(const std::string& key, std::string encoded) {
    for (auto& [k, v] : kv_)
      if (k == key) {
        v = std::move(encoded);
        return;
      }
    kv_.emplace_back(key, std::move(encoded));
  }
  template <class T>
  void scalar(const std::string& key, ValueType type, T v) {
    std::string e;
    put<std::uint32_t>(e, static_cast<std::uint32_t>(type));
    put<T>(e, v);
    set(key, std::move(e));
  }
  template <class T>
  void array(const std::string& key, ValueType type, const std::vector<T>& v) {
    std::string e;
    put<std::uint32_t>(e, static_cast<std::uint32_t>(ValueType::ARRAY));
    put<std::uint32_t>(e, static_cast<std::uint32_t>(type));
    put<std::uint64_t>(e, v.size());
    for (const auto& x : v) put<T>(e, x);
    set(key, std::move(e));
  }

  std::vector<std::pair<std::string, std::string>> kv_;
  std::vector<Tensor> tensors_;
};

/// Copies the tokenizer metadata of `source` (vocabulary, merges or scores, special ids and
/// flags, chat template) into `w`, key by key.
inline void copy_tokenizer(const File& source, Writer& w) {
  const auto t = source.tokenizer();
  w.set_string("tokenizer.ggml.model", std::string(t.model));
  if (!t.pre.empty()) w.set_string("tokenizer.ggml.pre", std::string(t.pre));
  w.set_string_array("tokenizer.ggml.tokens", std::vector<std::string>(t.tokens.begin(), t.tokens.end()));
  if (!t.token_types.empty()) w.set_i32_array("tokenizer.ggml.token_type", t.token_types);
  if (!t.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", t.scores);
  if (!t.merges.empty())
    w.set_string_array("tokenizer.ggml.merges", std::vector<std::string>(t.merges.begin(), t.merges.end()));
  if (t.bos_id) w.set_u32("tokenizer.ggml.bos_token_id", *t.bos_id);
  if (t.eos_id) w.set_u32("tokenizer.ggml.eos_token_id", *t.eos_id);
  if (t.unknown_id) w.set_u32("tokenizer.ggml.unknown_token_id", *t.unknown_id);
  if (t.padding_id) w.set_u32("tokenizer.ggml.padding_token_id", *t.padding_id);
  if (t.add_bos) w.set_bool("tokenizer.ggml.add_bos_token", *t.add_bos);
  if (t.add_eos) w.set_bool("tokenizer.ggml.add_eos_token", *t.add_eos);
  if (t.add_space_prefix) w.set_bool("tokenizer.ggml.add_space_prefix", *t.add_space_prefix);
  if (!t.chat_template.empty()) w.set_string("tokenizer.chat_template", std::string(t.chat_template));
}

}  // namespace ordo::io::gguf
