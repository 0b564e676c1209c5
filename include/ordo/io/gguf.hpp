// ordo/io/gguf.hpp — GGUF files (versions 2 and 3), torch-free: a memory-mapped, validated
// File with its metadata, tensors, dequantization to float32, and the tokenizer metadata.
//
// The format and its validating parser: ordo/io/gguf_header.hpp; the tokenizer metadata:
// ordo/io/gguf_tokenizer.hpp (both included here). Violations throw ordo::io::format_error
// naming the file, the key or tensor, and the rule. Example: tests/io/gguf_test.cpp.
#pragma once

#include <cstddef>        // std::byte, std::size_t
#include <cstdint>        // std::uint32_t
#include <filesystem>     // std::filesystem::path
#include <span>           // std::span
#include <string>         // std::string, std::to_string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector

#include <ordo/io/error.hpp>            // ordo::io::format_error
#include <ordo/io/ggml_dequantize.hpp>  // dequantize, can_dequantize
#include <ordo/io/ggml_types.hpp>       // TensorType, type_name
#include <ordo/io/gguf_header.hpp>      // Header, Value, TensorInfo, parse
#include <ordo/io/gguf_tokenizer.hpp>   // TokenizerMetadata, tokenizer_metadata
#include <ordo/io/mapped_file.hpp>      // ordo::io::MappedFile

namespace ordo::io::gguf {

/// A GGUF file, memory-mapped and validated.
class File {
 public:
  explicit File(const std::filesystem::path& path) : map_(path), header_(parse(map_.bytes(), map_.path())) {
    for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
  }

  const std::string& path() const noexcept { return map_.path(); }
  const Header& header() const noexcept { return header_; }
  std::uint32_t version() const noexcept { return header_.version; }
  std::span<const Value> metadata() const noexcept { return header_.metadata; }
  std::span<const TensorInfo> tensors() const noexcept { return header_.tensors; }

  const Value* find(std::string_view key) const { return header_.find(key); }
  const Value& at(std::string_view key) const {
    if (const Value* v = find(key)) return *v;
    throw format_error(path(), detail::key_object(key), "not in the metadata");
  }
  const TensorInfo* find_tensor(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
  }
  const TensorInfo& tensor(std::string_view name) const {
    if (const TensorInfo* t = find_tensor(name)) return *t;
    throw format_error(path(), detail::tensor_object(name), "not in the file");
  }

  /// The tensor's bytes as stored.
  std::span<const std::byte> data(const TensorInfo& t) const noexcept {
    return map_.bytes().subspan(static_cast<std::size_t>(header_.data_offset + t.offset),
                                static_cast<std::size_t>(t.nbytes));
  }
  /// The tensor as float32, in GGUF element order (row-major for `shape()`).
  std::vector<float> dequantize(const TensorInfo& t) const {
    if (!can_dequantize(t.type))
      throw format_error(path(), detail::tensor_object(t.name),
                         "dequantization of " + std::string(type_name(t.type)) + " is not supported");
    std::vector<float> out(static_cast<std::size_t>(t.numel));
    gguf::dequantize(t.type, data(t), out);
    return out;
  }
  void dequantize(const TensorInfo& t, std::span<float> out) const {
    if (out.size() != t.numel)
      throw format_error(path(), detail::tensor_object(t.name),
                         std::to_string(t.numel) + " elements do not fit an output of " + std::to_string(out.size()));
    if (!can_dequantize(t.type))
      throw format_error(path(), detail::tensor_object(t.name),
                         "dequantization of " + std::string(type_name(t.type)) + " is not supported");
    gguf::dequantize(t.type, data(t), out);
  }

  /// The tokenizer metadata (see `tokenizer_metadata`).
  TokenizerMetadata tokenizer() const { return tokenizer_metadata(header_, path()); }

 private:
  MappedFile map_;
  Header header_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace ordo::io::gguf
