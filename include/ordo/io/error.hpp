// ordo/io/error.hpp — the exception every ordo file reader and writer throws for a bad file.
#pragma once

#include <stdexcept>  // std::runtime_error
#include <string>     // std::string
#include <utility>    // std::move

namespace ordo::io {

/// A file does not follow its format. The message names the file, the object (tensor, key)
/// when there is one, and what is wrong: "model.safetensors: tensor 'w': shape [2, 3] x F32 is
/// 24 bytes but data_offsets span 20". `file()` and `object()` give the parts on their own.
class format_error : public std::runtime_error {
 public:
  format_error(std::string file, std::string object, const std::string& problem)
      : std::runtime_error(compose(file, object, problem)), file_(std::move(file)), object_(std::move(object)) {}

  const std::string& file() const noexcept { return file_; }
  /// "tensor 'name'", "key 'name'" or "" when the problem is the file as a whole.
  const std::string& object() const noexcept { return object_; }

 private:
  static std::string compose(const std::string& file, const std::string& object, const std::string& problem) {
    std::string s = file;
    s += ": ";
    if (!object.empty()) {
      s += object;
      s += ": ";
    }
    s += problem;
    return s;
  }

  std::string file_;
  std::string object_;
};

}  // namespace ordo::io
