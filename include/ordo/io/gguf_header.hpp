// ordo/io/gguf_header.hpp — the GGUF header (versions 2 and 3), torch-free: metadata values of
// every type, nested arrays, tensor infos, alignment, and the validating parser of them.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count; the
// metadata as (string key, u32 value type, value); the tensor infos as (string name, u32 n_dims,
// u64 dims[n_dims], u32 type, u64 offset); padding to `general.alignment` (default 32); the
// data section, where each tensor starts at its offset (a multiple of the alignment). A string
// is a u64 length and that many bytes; an array a u32 element type, a u64 count and the elements.
//
// Every count and length is checked against the bytes that remain before anything is
// allocated, every size computation against overflow, and every tensor's bytes against the data
// section and the other tensors. Violations throw ordo::io::format_error naming the file, the
// key or tensor, and the rule. The memory-mapped file: ordo/io/gguf.hpp; example:
// tests/io/gguf_test.cpp.
#pragma once

#include <algorithm>      // std::sort, std::min
#include <cstddef>        // std::byte, std::size_t
#include <cstdint>        // std::uint64_t, INT64_MAX ...
#include <memory>         // std::shared_ptr, std::make_shared
#include <optional>       // std::optional
#include <span>           // std::span
#include <string>         // std::string, std::to_string
#include <string_view>    // std::string_view
#include <type_traits>    // std::is_same_v
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move, std::pair
#include <vector>         // std::vector

#include <ordo/io/detail/gguf_cursor.hpp>  // detail::Cursor, load_le, checked_mul, key_object
#include <ordo/io/error.hpp>               // ordo::io::format_error
#include <ordo/io/ggml_types.hpp>          // TensorType, type_traits, type_name

namespace ordo::io::gguf {

inline constexpr std::uint32_t default_alignment = 32;
inline constexpr std::uint32_t max_dims = 4;  ///< ggml's GGML_MAX_DIMS
inline constexpr int max_array_depth = 8;     ///< arrays of arrays of ... (real files: 1)

enum class ValueType : std::uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

constexpr std::string_view value_type_name(ValueType t) noexcept {
  switch (t) {
    case ValueType::UINT8:
      return "uint8";
    case ValueType::INT8:
      return "int8";
    case ValueType::UINT16:
      return "uint16";
    case ValueType::INT16:
      return "int16";
    case ValueType::UINT32:
      return "uint32";
    case ValueType::INT32:
      return "int32";
    case ValueType::FLOAT32:
      return "float32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::UINT64:
      return "uint64";
    case ValueType::INT64:
      return "int64";
    case ValueType::FLOAT64:
      return "float64";
  }
  return "?";
}

/// Bytes of a value of a fixed-size type; 0 for STRING and ARRAY.
constexpr std::size_t value_size(ValueType t) noexcept {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
      return 8;
    default:
      return 0;
  }
}

/// The value type a C++ type stands for (for `Value::get<T>` and `Value::array<T>`).
template <class T>
constexpr ValueType value_type_of() noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return ValueType::UINT8;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return ValueType::INT8;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return ValueType::UINT16;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return ValueType::INT16;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return ValueType::UINT32;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return ValueType::INT32;
  else if constexpr (std::is_same_v<T, float>)
    return ValueType::FLOAT32;
  else if constexpr (std::is_same_v<T, bool>)
    return ValueType::BOOL;
  else if constexpr (std::is_same_v<T, std::string_view>)
    return ValueType::STRING;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return ValueType::UINT64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return ValueType::INT64;
  else if constexpr (std::is_same_v<T, double>)
    return ValueType::FLOAT64;
  else
    static_assert(sizeof(T) == 0,
                  "gguf::Value: T must be a GGUF scalar type "
                  "(u)int8..64_t, float, double, bool or std::string_view");
}

/// A metadata value. Strings and array payloads are views into the file's bytes: a Value is
/// valid while the File (or the span given to `parse`) it came from lives.
class Value {
 public:
  ValueType type() const noexcept { return type_; }
  const std::string& key() const noexcept { return key_; }

  /// The value as T, which must be exactly its type (uint32_t for UINT32, std::string_view for
  /// STRING ...); throws format_error naming the key otherwise.
  template <class T>
  T get() const {
    expect(value_type_of<T>());
    if constexpr (std::is_same_v<T, std::string_view>)
      return str_;
    else if constexpr (std::is_same_v<T, bool>)
      return raw_[0] != std::byte{0};
    else
      return detail::load_le<T>(raw_.data());
  }
  std::string_view as_string() const { return get<std::string_view>(); }
  bool as_bool() const { return get<bool>(); }

  /// Any integer type, converted; throws when negative.
  std::uint64_t as_uint() const {
    const auto v = integer();
    if (v.second)
      throw error(std::string("holds the negative value ") + std::to_string(static_cast<std::int64_t>(v.first)) +
                  ", not a count or id");
    return v.first;
  }
  /// Any integer type, converted; throws when a uint64 does not fit.
  std::int64_t as_int() const {
    const auto v = integer();
    if (!v.second && v.first > static_cast<std::uint64_t>(INT64_MAX))
      throw error("holds " + std::to_string(v.first) + ", beyond int64");
    return static_cast<std::int64_t>(v.first);
  }
  /// Any numeric type, converted.
  double as_double() const {
    if (type_ == ValueType::FLOAT32) return detail::load_le<float>(raw_.data());
    if (type_ == ValueType::FLOAT64) return detail::load_le<double>(raw_.data());
    const auto v = integer();
    return v.second ? static_cast<double>(static_cast<std::int64_t>(v.first)) : static_cast<double>(v.first);
  }

  // ---- arrays ----
  bool is_array() const noexcept { return type_ == ValueType::ARRAY; }
  ValueType element_type() const {
    expect(ValueType::ARRAY);
    return elem_;
  }
  std::uint64_t size() const {
    expect(ValueType::ARRAY);
    return count_;
  }

  /// The elements of an array whose element type is exactly T (a fixed-size type).
  template <class T>
  std::vector<T> array() const {
    expect_elements(value_type_of<T>());
    std::vector<T> out(static_cast<std::size_t>(count_));
    for (std::size_t i = 0; i < out.size(); ++i) {
      if constexpr (std::is_same_v<T, bool>)
        out[i] = raw_[i] != std::byte{0};
      else
        out[i] = detail::load_le<T>(raw_.data() + i * sizeof(T));
    }
    return out;
  }
  /// The elements of an array of strings.
  std::vector<std::string_view> strings() const {
    expect_elements(ValueType::STRING);
    std::vector<std::string_view> out;
    out.reserve(static_cast<std::size_t>(count_));
    std::size_t p = 0;
    for (std::uint64_t i = 0; i < count_; ++i) {  // validated by the parser
      const auto len = detail::load_le<std::uint64_t>(raw_.data() + p);
      out.emplace_back(reinterpret_cast<const char*>(raw_.data() + p + 8), static_cast<std::size_t>(len));
      p += 8 + static_cast<std::size_t>(len);
    }
    return out;
  }
  /// The elements of any array, as Values (keyed "key[i]"). Each element becomes a Value of
  /// about 100 bytes: for long arrays of numbers or strings use `array<T>()` or `strings()`.
  std::vector<Value> elements() const;

 private:
  friend struct Parser;
  Value() = default;  // only the parser makes Values, always complete

  format_error error(const std::string& what) const {
    return format_error(file_ ? *file_ : std::string("<gguf>"), detail::key_object(key_), what);
  }
  void expect(ValueType t) const {
    if (type_ != t) throw error("holds " + describe() + ", not " + std::string(value_type_name(t)));
  }
  void expect_elements(ValueType t) const {
    if (type_ != ValueType::ARRAY || elem_ != t)
      throw error("holds " + describe() + ", not an array of " + std::string(value_type_name(t)));
  }
  std::string describe() const {
    if (type_ != ValueType::ARRAY) return std::string(value_type_name(type_));
    return "an array of " + std::to_string(count_) + " " + std::string(value_type_name(elem_));
  }
  /// (bits, negative) of an integer value.
  std::pair<std::uint64_t, bool> integer() const {
    const std::byte* p = raw_.data();
    switch (type_) {
      case ValueType::UINT8:
        return {detail::load_le<std::uint8_t>(p), false};
      case ValueType::UINT16:
        return {detail::load_le<std::uint16_t>(p), false};
      case ValueType::UINT32:
        return {detail::load_le<std::uint32_t>(p), false};
      case ValueType::UINT64:
        return {detail::load_le<std::uint64_t>(p), false};
      case ValueType::INT8: {
        const std::int64_t v = detail::load_le<std::int8_t>(p);
        return {static_cast<std::uint64_t>(v), v < 0};
      }
      case ValueType::INT16: {
        const std::int64_t v = detail::load_le<std::int16_t>(p);
        return {static_cast<std::uint64_t>(v), v < 0};
      }
      case ValueType::INT32: {
        const std::int64_t v = detail::load_le<std::int32_t>(p);
        return {static_cast<std::uint64_t>(v), v < 0};
      }
      case ValueType::INT64: {
        const std::int64_t v = detail::load_le<std::int64_t>(p);
        return {static_cast<std::uint64_t>(v), v < 0};
      }
      default:
        throw error("holds " + describe() + ", not an integer");
    }
  }

  ValueType type_ = ValueType::UINT8;
  ValueType elem_ = ValueType::UINT8;
  std::uint64_t count_ = 0;
  std::string_view str_;            // STRING
  std::span<const std::byte> raw_;  // scalar bytes, or the array's encoded elements
  std::string key_;
  std::shared_ptr<const std::string> file_;
};

/// One tensor's description. `dims` are in GGUF order (dims[0] varies fastest);
/// `shape()` gives them reversed, the row-major order of torch and safetensors.
struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<std::uint64_t> dims;
  std::uint64_t offset = 0;  ///< from the start of the data section
  std::uint64_t numel = 0;
  std::uint64_t nbytes = 0;

  std::vector<std::uint64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

/// A parsed, validated GGUF header.
struct Header {
  std::uint32_t version = 0;
  std::uint32_t alignment = default_alignment;
  std::uint64_t data_offset = 0;    ///< from the start of the file
  std::vector<Value> metadata;      ///< in file order
  std::vector<TensorInfo> tensors;  ///< in file order

  const Value* find(std::string_view key) const {
    for (const Value& v : metadata)
      if (v.key() == key) return &v;
    return nullptr;
  }
};

struct Parser {
  const std::string& file;
  std::shared_ptr<const std::string> file_ptr;
  detail::Cursor cur;

  /// Reads a value of type `t` for `key`; arrays nest at most max_array_depth deep.
  Value value(ValueType t, const std::string& key, int depth) {
    const std::string obj = detail::key_object(key);
    Value v;
    v.type_ = t;
    v.key_ = key;
    v.file_ = file_ptr;
    if (const std::size_t sz = value_size(t)) {
      v.raw_ = cur.take(sz, obj, "a " + std::string(value_type_name(t)) + " value");
      if (t == ValueType::BOOL && v.raw_[0] != std::byte{0} && v.raw_[0] != std::byte{1})
        throw format_error(file, obj,
                           "bool value " + std::to_string(static_cast<int>(v.raw_[0])) + " is neither 0 nor 1");
      return v;
    }
    if (t == ValueType::STRING) {
      v.str_ = cur.string(obj, "string value");
      return v;
    }
    // ARRAY
    if (depth >= max_array_depth)
      throw format_error(file, obj, "arrays nest more than " + std::to_string(max_array_depth) + " deep");
    const auto et = cur.read<std::uint32_t>(obj, "the array element type");
    if (et > static_cast<std::uint32_t>(ValueType::FLOAT64))
      throw format_error(file, obj, "unknown array element type " + std::to_string(et));
    v.elem_ = static_cast<ValueType>(et);
    v.count_ = cur.read<std::uint64_t>(obj, "the array length");
    const std::size_t start = cur.pos();
    if (const std::size_t esz = value_size(v.elem_)) {
      const auto bytes = detail::checked_mul(v.count_, esz);
      if (!bytes || *bytes > cur.remaining())
        throw format_error(file, obj,
                           "array of " + std::to_string(v.count_) + " " + std::string(value_type_name(v.elem_)) +
                               " runs past the end of the file (" + std::to_string(cur.remaining()) + " bytes left)");
      if (v.elem_ == ValueType::BOOL) {
        for (std::uint64_t i = 0; i < v.count_; ++i) {
          const auto b = cur.bytes()[start + i];
          if (b != std::byte{0} && b != std::byte{1})
            throw format_error(file, obj,
                               "bool element " + std::to_string(i) + " is " + std::to_string(static_cast<int>(b)) +
                                   ", neither 0 nor 1");
        }
      }
      v.raw_ = cur.take(*bytes, obj, "the array");
      return v;
    }
    // strings need 8 bytes each at least, arrays 12: a bound before walking them
    const std::uint64_t min_elem = v.elem_ == ValueType::STRING ? 8 : 12;
    if (v.count_ > cur.remaining() / min_elem)
      throw format_error(file, obj,
                         "array of " + std::to_string(v.count_) + " " + std::string(value_type_name(v.elem_)) +
                             " cannot fit in the " + std::to_string(cur.remaining()) + " bytes left");
    for (std::uint64_t i = 0; i < v.count_; ++i) {
      if (v.elem_ == ValueType::STRING)
        cur.string(obj, "string element " + std::to_string(i));
      else
        value(ValueType::ARRAY, key + "[" + std::to_string(i) + "]", depth + 1);
    }
    v.raw_ = cur.bytes().subspan(start, cur.pos() - start);
    return v;
  }

  Header header() {
    Header h;
    const std::string file_obj;
    if (cur.remaining() < 4 || std::string_view(reinterpret_cast<const char*>(cur.bytes().data()), 4) != "GGUF")
      throw format_error(file, "", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    cur.take(4, file_obj, "the magic");
    h.version = cur.read<std::uint32_t>(file_obj, "the version");
    if (h.version == 1) throw format_error(file, "", "GGUF version 1 is not supported (only 2 and 3)");
    if (h.version != 2 && h.version != 3) {
      if ((h.version & 0xFFFF) == 0 && h.version != 0)
        throw format_error(
            file, "",
            "version " + std::to_string(h.version) + " looks byte-swapped: big-endian GGUF files are not supported");
      throw format_error(file, "", "unknown GGUF version " + std::to_string(h.version) + " (only 2 and 3)");
    }
    const auto n_tensors = cur.read<std::uint64_t>(file_obj, "the tensor count");
    const auto n_kv = cur.read<std::uint64_t>(file_obj, "the metadata count");
    // each key-value pair takes at least 8 + 4 + 1 bytes, each tensor info 8 + 4 + 4 + 8
    if (n_kv > cur.remaining() / 13)
      throw format_error(file, "",
                         "metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                             std::to_string(cur.remaining()) + " bytes left");
    if (n_tensors > cur.remaining() / 24)
      throw format_error(file, "",
                         "tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                             std::to_string(cur.remaining()) + " bytes left");

    std::unordered_map<std::string_view, std::size_t> keys;
    h.metadata.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n_kv, 1024)));  // grows as pairs parse
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::string what = "metadata pair " + std::to_string(i);
      const std::string_view key = cur.string(what, "the key");
      if (key.empty()) throw format_error(file, what, "empty key");
      const std::string obj = detail::key_object(key);
      if (keys.contains(key)) throw format_error(file, obj, "appears twice");
      const auto t = cur.read<std::uint32_t>(obj, "the value type");
      if (t > static_cast<std::uint32_t>(ValueType::FLOAT64))
        throw format_error(file, obj, "unknown value type " + std::to_string(t));
      h.metadata.push_back(value(static_cast<ValueType>(t), std::string(key), 0));
      keys.emplace(key, i);
    }
    if (const Value* a = h.find("general.alignment")) {
      if (a->type() != ValueType::UINT32)
        throw format_error(file, detail::key_object("general.alignment"),
                           "holds " + std::string(value_type_name(a->type())) + ", not uint32");
      const auto al = a->get<std::uint32_t>();
      if (al == 0 || (al & (al - 1)) != 0)
        throw format_error(file, detail::key_object("general.alignment"),
                           std::to_string(al) + " is not a power of two");
      h.alignment = al;
    }

    std::unordered_map<std::string_view, std::size_t> names;
    h.tensors.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n_tensors, 4096)));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      const std::string what = "tensor info " + std::to_string(i);
      const std::string_view name = cur.string(what, "the tensor name");
      if (name.empty()) throw format_error(file, what, "empty tensor name");
      const std::string obj = detail::tensor_object(name);
      if (names.contains(name)) throw format_error(file, obj, "appears twice");
      names.emplace(name, i);
      TensorInfo t;
      t.name = std::string(name);
      const auto n_dims = cur.read<std::uint32_t>(obj, "the number of dimensions");
      if (n_dims > max_dims)
        throw format_error(file, obj, std::to_string(n_dims) + " dimensions, more than " + std::to_string(max_dims));
      std::optional<std::uint64_t> numel = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto dim = cur.read<std::uint64_t>(obj, "the dimensions");
        if (dim > static_cast<std::uint64_t>(INT64_MAX))
          throw format_error(file, obj,
                             "dimension " + std::to_string(d) + " is " + std::to_string(dim) + ", beyond int64");
        t.dims.push_back(dim);
        numel = detail::checked_mul(*numel, dim);
        if (!numel || *numel > static_cast<std::uint64_t>(INT64_MAX))
          throw format_error(file, obj, "element count overflows int64");
      }
      t.numel = *numel;
      const auto type_id = cur.read<std::uint32_t>(obj, "the tensor type");
      const auto tr = type_traits(type_id);
      if (!tr) throw format_error(file, obj, "unknown tensor type " + std::to_string(type_id));
      t.type = static_cast<TensorType>(type_id);
      const std::uint64_t row = t.dims.empty() ? 1 : t.dims[0];
      if (row % tr->block_size != 0)
        throw format_error(file, obj,
                           "row length " + std::to_string(row) + " is not a multiple of " + std::string(tr->name) +
                               "'s block size " + std::to_string(tr->block_size));
      const auto bytes = detail::checked_mul(t.numel / tr->block_size, tr->block_bytes);
      if (!bytes) throw format_error(file, obj, "byte size overflows 64 bits");
      t.nbytes = *bytes;
      t.offset = cur.read<std::uint64_t>(obj, "the data offset");
      if (t.offset % h.alignment != 0)
        throw format_error(file, obj,
                           "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                               std::to_string(h.alignment));
      h.tensors.push_back(std::move(t));
    }

    const std::uint64_t pos = cur.pos();
    const std::uint64_t size = cur.bytes().size();
    h.data_offset = pos + (h.alignment - pos % h.alignment) % h.alignment;
    if (h.tensors.empty()) return h;
    if (h.data_offset > size)
      throw format_error(file, "",
                         "data section would start at byte " + std::to_string(h.data_offset) + " (after alignment to " +
                             std::to_string(h.alignment) + ") but the file has " + std::to_string(size) + " bytes");
    const std::uint64_t data_size = size - h.data_offset;
    std::vector<const TensorInfo*> order;
    for (const TensorInfo& t : h.tensors) {
      const auto end = detail::checked_add(t.offset, t.nbytes);
      if (!end || *end > data_size)
        throw format_error(file, detail::tensor_object(t.name),
                           std::string(type_name(t.type)) + " data of " + std::to_string(t.nbytes) +
                               " bytes at offset " + std::to_string(t.offset) + " run past the data section of " +
                               std::to_string(data_size) + " bytes");
      order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
    });
    for (std::size_t i = 1; i < order.size(); ++i) {
      const TensorInfo& a = *order[i - 1];
      const TensorInfo& b = *order[i];
      if (b.offset < a.offset + a.nbytes)
        throw format_error(file, detail::tensor_object(b.name),
                           "data [" + std::to_string(b.offset) + ", " + std::to_string(b.offset + b.nbytes) +
                               ") overlap " + detail::tensor_object(a.name) + " [" + std::to_string(a.offset) + ", " +
                               std::to_string(a.offset + a.nbytes) + ")");
    }
    return h;
  }
};

inline std::vector<Value> Value::elements() const {
  expect(ValueType::ARRAY);
  // Re-read the validated payload with a parser over just these bytes.
  Parser p{*file_, file_, detail::Cursor(raw_, *file_)};
  std::vector<Value> out;
  out.reserve(static_cast<std::size_t>(count_));
  for (std::uint64_t i = 0; i < count_; ++i) out.push_back(p.value(elem_, key_ + "[" + std::to_string(i) + "]", 1));
  return out;
}

/// Parses and validates a whole GGUF file given as bytes; `file_name` labels the errors.
/// Values and tensor data refer to `bytes`, which must outlive the result.
inline Header parse(std::span<const std::byte> bytes, std::string_view file_name) {
  auto name = std::make_shared<const std::string>(file_name);
  Parser p{*name, name, detail::Cursor(bytes, *name)};
  return p.header();
}

}  // namespace ordo::io::gguf
