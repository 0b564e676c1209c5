// ordo/data/error.hpp — the error of the data layer: bad input, named by file and line.
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

namespace ordo::data {

/// Input ordo cannot turn into examples. what() starts with "<file>:<line>: " where a line is
/// known, "<file>: " otherwise.
class DataError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// "file:line" (line counts from 1), or "file" when line is 0.
inline std::string where(const std::string& file, std::int64_t line = 0) {
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

}  // namespace ordo::data
