// ordo/io/hf_directory.hpp — the files of a Hugging Face checkpoint directory, as bytes:
//
//   is_checkpoint_file(name)   a file a checkpoint directory holds (what a save may replace)
//   tokenizer_files            the tokenizer and generation files copied along with a model
//   checkpoint_size(dir)       exact sizes of its files, tensor data and safetensors headers
//   python_float_repr(v)       a float as Python's json.dumps writes it (bitsandbytes' quant_state)
#pragma once

#include <algorithm>   // std::remove
#include <charconv>    // std::to_chars
#include <cmath>       // std::isnan, std::isinf, std::signbit
#include <cstdint>     // std::uint64_t
#include <filesystem>  // std::filesystem
#include <map>         // std::map
#include <set>         // std::set
#include <string>      // std::string

#include <ordo/io/safetensors.hpp>  // safetensors::File

namespace ordo::io {

/// Sizes of a checkpoint directory, in bytes, counted exactly.
struct CheckpointSize {
  std::map<std::string, std::uint64_t> files;  ///< file name -> size on disk (regular files)
  std::uint64_t file_bytes = 0;                ///< sum of `files`
  std::uint64_t tensor_bytes = 0;              ///< data sections of the *.safetensors files (the tensors)
  std::uint64_t header_bytes = 0;              ///< their 8-byte lengths and JSON headers
};

/// The files a checkpoint directory holds; only a directory of such files is replaced.
inline bool is_checkpoint_file(const std::string& name) {
  static const std::set<std::string> known = {"config.json",
                                              "generation_config.json",
                                              "model.safetensors",
                                              "model.safetensors.index.json",
                                              "tokenizer.json",
                                              "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "chat_template.jinja",
                                              "vocab.json",
                                              "merges.txt",
                                              "added_tokens.json"};
  if (known.contains(name)) return true;
  return name.starts_with("model-") && name.ends_with(".safetensors");
}

/// Tokenizer and generation files copied from a Hugging Face source directory.
inline constexpr const char* tokenizer_files[] = {
    "tokenizer.json",      "tokenizer_config.json",  "special_tokens_map.json",
    "chat_template.jinja", "generation_config.json", "vocab.json",
    "merges.txt",          "added_tokens.json"};

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

}  // namespace ordo::io
