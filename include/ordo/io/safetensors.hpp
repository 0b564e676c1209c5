// ordo/io/safetensors.hpp — the safetensors format, torch-free: a validating header parser,
// a memory-mapped reader, an atomic writer, and sharded `model.safetensors.index.json` files.
//
// File layout: an 8-byte little-endian length N, N bytes of JSON (the header), then the data
// section. The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// (byte offsets into the data section) and may hold "__metadata__", a string-to-string map.
// The parser accepts a file only when the tensors tile the data section exactly: each one's
// byte span equals its shape times its dtype size, and the spans, sorted, start at 0, neither
// overlap nor leave holes, and end at the end of the file. Every violation throws
// ordo::io::format_error naming the file, the tensor and the rule.
//
// LibTorch tensors are built on top of this API elsewhere (a dtype, a shape, a byte span).
// Example: tests/io/safetensors_test.cpp.
#pragma once

#include <algorithm>      // std::sort, std::stable_sort
#include <cerrno>         // errno
#include <cstddef>        // std::byte, std::size_t
#include <cstdint>        // std::uint64_t
#include <filesystem>     // std::filesystem::path
#include <fstream>        // std::ifstream (index files)
#include <map>            // std::map
#include <memory>         // std::unique_ptr
#include <optional>       // std::optional
#include <set>            // std::set
#include <span>           // std::span
#include <sstream>        // std::ostringstream
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <system_error>   // std::system_error
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json (header parsing and writing)

#include <ordo/io/atomic_write.hpp>  // ordo::io::write_file_atomically
#include <ordo/io/detail/bytes.hpp>  // load_le, checked_mul, quote_name
#include <ordo/io/error.hpp>         // ordo::io::format_error
#include <ordo/io/mapped_file.hpp>   // ordo::io::MappedFile

namespace ordo::io::safetensors {

/// Element types of the format that ordo reads and writes (all whole-byte types).
enum class Dtype : std::uint8_t {
  BOOL,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  I64,
  U64,
  F64
};

inline constexpr Dtype all_dtypes[] = {
    Dtype::BOOL, Dtype::U8,   Dtype::I8,  Dtype::F8_E5M2, Dtype::F8_E4M3, Dtype::F8_E8M0, Dtype::I16, Dtype::U16,
    Dtype::F16,  Dtype::BF16, Dtype::I32, Dtype::U32,     Dtype::F32,     Dtype::I64,     Dtype::U64, Dtype::F64};

/// Bytes per element.
constexpr std::size_t dtype_size(Dtype d) noexcept {
  switch (d) {
    case Dtype::BOOL:
    case Dtype::U8:
    case Dtype::I8:
    case Dtype::F8_E5M2:
    case Dtype::F8_E4M3:
    case Dtype::F8_E8M0:
      return 1;
    case Dtype::I16:
    case Dtype::U16:
    case Dtype::F16:
    case Dtype::BF16:
      return 2;
    case Dtype::I32:
    case Dtype::U32:
    case Dtype::F32:
      return 4;
    case Dtype::I64:
    case Dtype::U64:
    case Dtype::F64:
      return 8;
  }
  return 0;
}

/// The name the format uses ("F32", "BF16", ...).
constexpr std::string_view dtype_name(Dtype d) noexcept {
  switch (d) {
    case Dtype::BOOL:
      return "BOOL";
    case Dtype::U8:
      return "U8";
    case Dtype::I8:
      return "I8";
    case Dtype::F8_E5M2:
      return "F8_E5M2";
    case Dtype::F8_E4M3:
      return "F8_E4M3";
    case Dtype::F8_E8M0:
      return "F8_E8M0";
    case Dtype::I16:
      return "I16";
    case Dtype::U16:
      return "U16";
    case Dtype::F16:
      return "F16";
    case Dtype::BF16:
      return "BF16";
    case Dtype::I32:
      return "I32";
    case Dtype::U32:
      return "U32";
    case Dtype::F32:
      return "F32";
    case Dtype::I64:
      return "I64";
    case Dtype::U64:
      return "U64";
    case Dtype::F64:
      return "F64";
  }
  return "?";
}

constexpr std::optional<Dtype> dtype_from_name(std::string_view name) noexcept {
  for (Dtype d : all_dtypes)
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

/// One tensor of a header. Offsets are relative to the start of the data section.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::uint64_t nbytes() const noexcept { return end - begin; }
  std::uint64_t numel() const noexcept { return nbytes() / dtype_size(dtype); }
};

/// A parsed, validated header.
struct Header {
  std::vector<TensorInfo> tensors;              ///< in data order (by begin offset)
  std::map<std::string, std::string> metadata;  ///< "__metadata__", empty when absent
  std::uint64_t header_size = 0;                ///< N, the JSON length

  std::uint64_t data_offset() const noexcept { return 8 + header_size; }
};

/// Headers longer than this are refused (the reference implementation's limit, 100 MB).
inline constexpr std::uint64_t max_header_size = 100'000'000;

namespace detail {

using ordo::io::detail::quote_name;
using json = nlohmann::json;

inline std::string tensor_object(std::string_view name) { return "tensor " + quote_name(name); }

inline std::string shape_string(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

inline std::string known_dtypes() {
  std::string s;
  for (Dtype d : all_dtypes) {
    if (!s.empty()) s += ' ';
    s += dtype_name(d);
  }
  return s;
}

/// A JSON value described for an error message: its type and, for scalars, its text.
inline std::string describe(const json& v) {
  std::string text = v.is_structured() ? std::string(v.type_name()) : v.dump();
  if (text.size() > 40) text = text.substr(0, 40) + "...";
  return text;
}

inline std::uint64_t to_u64(const json& v, const std::string& file, const std::string& object,
                            const std::string& what) {
  if (!v.is_number_unsigned())
    throw format_error(file, object, what + " is " + describe(v) + ", not a non-negative integer");
  return v.get<std::uint64_t>();
}

/// Bytes of a tensor of this shape and dtype, or nothing on overflow.
inline std::optional<std::uint64_t> byte_size(const std::vector<std::uint64_t>& shape, Dtype d) {
  std::optional<std::uint64_t> n = 1;
  for (std::uint64_t dim : shape) {
    n = ordo::io::detail::checked_mul(*n, dim);
    if (!n) return std::nullopt;
  }
  return ordo::io::detail::checked_mul(*n, dtype_size(d));
}

inline TensorInfo parse_entry(const std::string& file, const std::string& name, const json& v,
                              std::uint64_t data_size) {
  const std::string obj = tensor_object(name);
  if (name.empty()) throw format_error(file, obj, "empty tensor name");
  if (!v.is_object())
    throw format_error(file, obj, "expected an object with dtype, shape and data_offsets, got " + describe(v));
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw format_error(file, obj, "unexpected key " + quote_name(key));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) throw format_error(file, obj, std::string("missing '") + key + "'");

  TensorInfo t;
  t.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) throw format_error(file, obj, "dtype is " + describe(dt) + ", not a string");
  const auto dtype = dtype_from_name(dt.get_ref<const std::string&>());
  if (!dtype)
    throw format_error(
        file, obj,
        "unknown dtype " + quote_name(dt.get_ref<const std::string&>()) + " (known: " + known_dtypes() + ")");
  t.dtype = *dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) throw format_error(file, obj, "shape is " + describe(shape) + ", not an array");
  t.shape.reserve(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i)
    t.shape.push_back(to_u64(shape[i], file, obj, "shape[" + std::to_string(i) + "]"));

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw format_error(file, obj, "data_offsets is " + describe(off) + ", not an array [begin, end]");
  t.begin = to_u64(off[0], file, obj, "data_offsets[0]");
  t.end = to_u64(off[1], file, obj, "data_offsets[1]");
  if (t.end < t.begin)
    throw format_error(
        file, obj,
        "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] end before they begin");

  const auto bytes = byte_size(t.shape, t.dtype);
  if (!bytes)
    throw format_error(
        file, obj, "shape " + shape_string(t.shape) + " x " + std::string(dtype_name(t.dtype)) + " overflows 64 bits");
  if (*bytes != t.end - t.begin)
    throw format_error(file, obj,
                       "shape " + shape_string(t.shape) + " x " + std::string(dtype_name(t.dtype)) + " is " +
                           std::to_string(*bytes) + " bytes but data_offsets [" + std::to_string(t.begin) + ", " +
                           std::to_string(t.end) + "] span " + std::to_string(t.end - t.begin));
  if (t.end > data_size)
    throw format_error(file, obj,
                       "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                           "] run past the data section of " + std::to_string(data_size) + " bytes");
  return t;
}

}  // namespace detail

/// Parses and validates the header of a whole safetensors file given as bytes. `file_name`
/// only labels the error messages.
inline Header parse_header(std::span<const std::byte> file, std::string_view file_name) {
  using detail::json;
  const std::string fname(file_name);
  if (file.size() < 8)
    throw format_error(fname, "",
                       "file is " + std::to_string(file.size()) + " bytes, shorter than the 8-byte header length");
  const auto n = ordo::io::detail::load_le<std::uint64_t>(file.data());
  const std::uint64_t after = file.size() - 8;
  if (n > max_header_size)
    throw format_error(
        fname, "",
        "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(max_header_size) + " bytes");
  if (n > after)
    throw format_error(fname, "",
                       "header length " + std::to_string(n) + " runs past the end of the file (" +
                           std::to_string(after) + " bytes follow the length field)");
  if (n < 2) throw format_error(fname, "", "header length " + std::to_string(n) + " is too short for a JSON object");

  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  // The callback rejects nesting a header never has (bounding memory on hostile input) and
  // duplicate tensor names, which JSON parsers otherwise resolve silently.
  std::set<std::string> seen;
  auto guard = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
    if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) && depth > 2)
      throw format_error(fname, "", "header nests deeper than a safetensors header can");
    if (ev == json::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second)
        throw format_error(fname, key == "__metadata__" ? std::string("__metadata__") : detail::tensor_object(key),
                           "appears twice in the header");
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, text + n, guard, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    throw format_error(fname, "", std::string("header is not valid JSON: ") + e.what());
  }
  if (!root.is_object())
    throw format_error(fname, "", "header is a JSON " + std::string(root.type_name()) + ", not an object");

  Header h;
  h.header_size = n;
  const std::uint64_t data_size = after - n;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw format_error(fname, "__metadata__", "is " + detail::describe(value) + ", not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw format_error(
              fname, "__metadata__",
              "value of " + ordo::io::detail::quote_name(mk) + " is " + detail::describe(mv) + ", not a string");
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    h.tensors.push_back(detail::parse_entry(fname, key, value, data_size));
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : h.tensors) {
    if (t.begin > expected)
      throw format_error(fname, detail::tensor_object(t.name),
                         "starts at byte " + std::to_string(t.begin) + " of the data section, leaving " +
                             std::to_string(t.begin - expected) +
                             " bytes before it that belong to no tensor (a tensor missing from the header?)");
    if (t.begin < expected)
      throw format_error(fname, detail::tensor_object(t.name),
                         "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] overlap " +
                             detail::tensor_object(prev->name) + " [" + std::to_string(prev->begin) + ", " +
                             std::to_string(prev->end) + "]");
    expected = t.end;
    prev = &t;
  }
  if (expected != data_size)
    throw format_error(fname, "",
                       "data section is " + std::to_string(data_size) + " bytes but the tensors cover " +
                           std::to_string(expected) + " (" + std::to_string(data_size - expected) +
                           " bytes after the last tensor belong to no tensor: a tensor missing from the header?)");
  return h;
}

/// A safetensors file, memory-mapped and validated. Tensor data are byte spans into the
/// mapping, valid while the File lives (moving the File keeps them valid).
class File {
 public:
  explicit File(const std::filesystem::path& path) : map_(path), header_(parse_header(map_.bytes(), map_.path())) {
    index_.reserve(header_.tensors.size());
    for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
  }

  const std::string& path() const noexcept { return map_.path(); }
  const Header& header() const noexcept { return header_; }
  std::span<const TensorInfo> tensors() const noexcept { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const noexcept { return header_.metadata; }

  /// The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
  }
  /// The tensor called `name`; throws format_error when the file has none.
  const TensorInfo& at(std::string_view name) const {
    if (const TensorInfo* t = find(name)) return *t;
    throw format_error(path(), detail::tensor_object(name), "not in the file");
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }

  std::span<const std::byte> data(const TensorInfo& t) const noexcept {
    return map_.bytes().subspan(header_.data_offset() + t.begin, t.nbytes());
  }
  std::span<const std::byte> data(std::string_view name) const { return data(at(name)); }

 private:
  MappedFile map_;
  Header header_;
  std::unordered_map<std::string, std::size_t> index_;
};

// ---- writing ------------------------------------------------------------------------------

/// A tensor to write: its bytes must be shape x dtype size long (little-endian, row-major).
struct TensorEntry {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> data;
};

namespace detail {

/// Checks the entries and returns the order their data are written in: by element size,
/// largest first, then by name, so that each tensor starts aligned to its element size when
/// the data section does (the header is padded to a multiple of 8 bytes).
inline std::vector<const TensorEntry*> layout(std::span<const TensorEntry> entries, const std::string& file) {
  std::set<std::string_view> names;
  std::vector<const TensorEntry*> order;
  for (const TensorEntry& e : entries) {
    const std::string obj = tensor_object(e.name);
    if (e.name.empty()) throw format_error(file, obj, "empty tensor name");
    if (e.name == "__metadata__") throw format_error(file, obj, "the name is reserved for metadata");
    if (!names.insert(e.name).second) throw format_error(file, obj, "given twice");
    const auto bytes = byte_size(e.shape, e.dtype);
    if (!bytes || *bytes != e.data.size())
      throw format_error(file, obj,
                         "shape " + shape_string(e.shape) + " x " + std::string(dtype_name(e.dtype)) + " is " +
                             (bytes ? std::to_string(*bytes) : std::string("over 2^64")) + " bytes but " +
                             std::to_string(e.data.size()) + " were given");
    order.push_back(&e);
  }
  std::stable_sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    const auto sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  return order;
}

}  // namespace detail

/// The 8-byte length and the JSON header (padded with spaces to a multiple of 8) for these
/// entries, written in the order `detail::layout` gives.
inline std::string serialize_header(std::span<const TensorEntry> entries,
                                    const std::map<std::string, std::string>& metadata = {},
                                    const std::string& file_name = "<memory>") {
  const auto order = detail::layout(entries, file_name);
  detail::json root = detail::json::object();
  if (!metadata.empty()) root["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorEntry* e : order) {
    root[e->name] = {{"dtype", std::string(dtype_name(e->dtype))},
                     {"shape", e->shape},
                     {"data_offsets", {offset, offset + e->data.size()}}};
    offset += e->data.size();
  }
  std::string json_text = root.dump();
  json_text.append((8 - json_text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const std::uint64_t n = json_text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + json_text;
}

/// Writes a safetensors file atomically (temporary file beside it, fsync, rename).
inline void write(const std::filesystem::path& path, std::span<const TensorEntry> entries,
                  const std::map<std::string, std::string>& metadata = {}) {
  const std::string file = path.string();
  const std::string head = serialize_header(entries, metadata, file);
  const auto order = detail::layout(entries, file);
  write_file_atomically(path, [&](AtomicSink& sink) {
    sink.write(std::as_bytes(std::span(head)));
    for (const TensorEntry* e : order) sink.write(e->data);
  });
}

// ---- sharded checkpoints ------------------------------------------------------------------

/// `model.safetensors.index.json`: which shard file holds each tensor.
struct ShardIndex {
  std::map<std::string, std::string> weight_map;       ///< tensor name -> shard file name
  nlohmann::json metadata = nlohmann::json::object();  ///< "metadata" (e.g. total_size)

  /// The distinct shard files, sorted.
  std::vector<std::string> shard_files() const {
    std::set<std::string> s;
    for (const auto& [_, f] : weight_map) s.insert(f);
    return {s.begin(), s.end()};
  }
};

/// Parses the text of an index file. Shard names must be plain file names in the index's own
/// directory (no '/', not "." or ".."), so a hostile index cannot point outside it.
inline ShardIndex parse_index(std::string_view text, std::string_view file_name) {
  using detail::json;
  const std::string fname(file_name);
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw format_error(fname, "", std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object())
    throw format_error(fname, "", "is a JSON " + std::string(root.type_name()) + ", not an object");
  if (!root.contains("weight_map")) throw format_error(fname, "", "missing 'weight_map'");
  const json& wm = root["weight_map"];
  if (!wm.is_object()) throw format_error(fname, "weight_map", "is " + detail::describe(wm) + ", not an object");
  ShardIndex idx;
  for (const auto& [name, shard] : wm.items()) {
    const std::string obj = detail::tensor_object(name);
    if (!shard.is_string()) throw format_error(fname, obj, "shard is " + detail::describe(shard) + ", not a string");
    const auto& s = shard.get_ref<const std::string&>();
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
        s.find('\0') != std::string::npos)
      throw format_error(fname, obj, "shard " + detail::quote_name(s) + " is not a plain file name");
    idx.weight_map.emplace(name, s);
  }
  if (root.contains("metadata")) {
    if (!root["metadata"].is_object())
      throw format_error(fname, "metadata", "is " + detail::describe(root["metadata"]) + ", not an object");
    idx.metadata = root["metadata"];
  }
  return idx;
}

inline ShardIndex read_index(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::system_error(errno, std::generic_category(), path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_index(ss.str(), path.string());
}

/// A checkpoint of one or many safetensors files: a directory holding `model.safetensors` or
/// `model.safetensors.index.json` plus its shards, or the path of either file. Opening checks
/// that every tensor the index names is in its shard and that no shard holds a tensor the
/// index does not name.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    fs::path p = path;
    if (fs::is_directory(p)) {
      if (fs::exists(p / "model.safetensors.index.json"))
        p /= "model.safetensors.index.json";
      else
        p /= "model.safetensors";
    }
    const std::string ps = p.string();
    if (ps.size() >= 5 && ps.ends_with(".json")) {
      const ShardIndex idx = read_index(p);
      const fs::path dir = p.parent_path();
      std::map<std::string, std::size_t> file_of;
      for (const std::string& f : idx.shard_files()) {
        file_of.emplace(f, files_.size());
        files_.push_back(std::make_unique<File>(dir / f));
      }
      for (const auto& [name, f] : idx.weight_map) {
        const File& shard = *files_[file_of.at(f)];
        const TensorInfo* t = shard.find(name);
        if (!t)
          throw format_error(ps, detail::tensor_object(name),
                             "the index names shard " + detail::quote_name(f) + " but it is not there");
        where_.emplace(name, Location{&shard, t});
      }
      for (const auto& file : files_)
        for (const TensorInfo& t : file->tensors())
          if (!idx.weight_map.contains(t.name))
            throw format_error(file->path(), detail::tensor_object(t.name), "is not in the index " + ps);
    } else {
      files_.push_back(std::make_unique<File>(p));
      for (const TensorInfo& t : files_[0]->tensors()) where_.emplace(t.name, Location{files_[0].get(), &t});
    }
  }

  struct Location {
    const File* file;
    const TensorInfo* info;
    std::span<const std::byte> data() const { return file->data(*info); }
  };

  /// Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& [n, _] : where_) v.push_back(n);
    return v;
  }
  const Location* find(std::string_view name) const {
    auto it = where_.find(std::string(name));
    return it == where_.end() ? nullptr : &it->second;
  }
  const Location& at(std::string_view name) const {
    if (const Location* l = find(name)) return *l;
    throw format_error(files_.empty() ? std::string("<checkpoint>") : files_.front()->path(),
                       detail::tensor_object(name), "not in the checkpoint");
  }
  std::span<const std::unique_ptr<File>> files() const noexcept { return files_; }

 private:
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, Location> where_;
};

}  // namespace ordo::io::safetensors
