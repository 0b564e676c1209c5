// ordo/io/detail/gguf_cursor.hpp — the GGUF parser's bounds-checked reader and the names its
// errors give to keys and tensors (internals of ordo/io/gguf_header.hpp).
#pragma once

#include <cstddef>      // std::byte, std::size_t
#include <cstdint>      // std::uint64_t
#include <span>         // std::span
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view

#include <ordo/io/detail/bytes.hpp>  // load_le, checked_add, checked_mul, quote_name
#include <ordo/io/error.hpp>         // ordo::io::format_error

namespace ordo::io::gguf::detail {

using ordo::io::detail::checked_add;
using ordo::io::detail::checked_mul;
using ordo::io::detail::load_le;
using ordo::io::detail::quote_name;

inline std::string key_object(std::string_view key) { return "key " + quote_name(key); }
inline std::string tensor_object(std::string_view name) { return "tensor " + quote_name(name); }

/// Reads the file front to back; every read is checked against the end.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

  void need(std::uint64_t n, const std::string& object, std::string_view what) const {
    if (n > remaining())
      throw format_error(file_, object,
                         "file ends inside " + std::string(what) + ": " + std::to_string(n) +
                             " bytes needed at offset " + std::to_string(pos_) + ", " + std::to_string(remaining()) +
                             " left");
  }
  template <class T>
  T read(const std::string& object, std::string_view what) {
    need(sizeof(T), object, what);
    const T v = load_le<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::span<const std::byte> take(std::uint64_t n, const std::string& object, std::string_view what) {
    need(n, object, what);
    auto s = bytes_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::string_view string(const std::string& object, std::string_view what) {
    const auto len = read<std::uint64_t>(object, what);
    if (len > remaining())
      throw format_error(file_, object,
                         std::string(what) + " length " + std::to_string(len) + " at offset " +
                             std::to_string(pos_ - 8) + " runs past the end of the file (" +
                             std::to_string(remaining()) + " bytes left)");
    auto s = take(len, object, what);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& file_;
  std::size_t pos_ = 0;
};

}  // namespace ordo::io::gguf::detail
