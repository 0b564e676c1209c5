// tools/text_input.hpp — `--text FILE`, or `--text -` for standard input, as ordo-perplexity and
// ordo-tokenize read it:
//
//   app.add_option("--text", path, "...")->check(ordo::tools::text_file_or_stdin);
//   const std::string text = ordo::tools::read_text_argument(path);   // UTF-8, bounded in size
//   ordo::tools::text_name(path)                                      // "standard input" for "-"
//
// A file goes through ordo::data::read_text_file (a regular file of at most 1 GiB). Standard input
// is refused when it is a terminal (the tool would wait for typing, not for a pipe), read to its end
// up to the same limit, and checked as UTF-8 with the line of the first bad byte. Torch-free.
#pragma once

#include <unistd.h>  // isatty, STDIN_FILENO

#include <algorithm>  // std::count
#include <cstdint>    // std::uintmax_t
#include <cstdio>     // std::fread, stdin
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <CLI/CLI.hpp>

#include <ordo/data/corpora.hpp>  // read_text_file, default_max_text_bytes
#include <ordo/data/error.hpp>    // DataError, where
#include <ordo/text/utf8.hpp>     // utf8::first_invalid

namespace ordo::tools {

/// "-" (standard input) or a file that exists.
inline const CLI::Validator text_file_or_stdin(
    [](std::string& path) -> std::string { return path == "-" ? std::string() : CLI::ExistingFile(path); },
    "FILE|-", "text_file_or_stdin");

/// How messages name the text: its path, or "standard input".
inline std::string text_name(const std::string& path) { return path == "-" ? "standard input" : path; }

/// The text of `path` ("-": standard input, read to its end), valid UTF-8 of at most `max_bytes`.
inline std::string read_text_argument(const std::string& path,
                                      std::uintmax_t max_bytes = ordo::data::default_max_text_bytes) {
  if (path != "-") return ordo::data::read_text_file(path, max_bytes).text;
  if (::isatty(STDIN_FILENO))
    throw std::invalid_argument("--text -: standard input is a terminal; pipe or redirect a text into it");
  std::string text;
  char buffer[1 << 16];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, stdin)) > 0;) {
    if (text.size() + n > max_bytes)
      throw ordo::data::DataError("standard input: more than the limit of " + std::to_string(max_bytes) +
                                  " bytes for one text");
    text.append(buffer, n);
  }
  if (std::ferror(stdin)) throw ordo::data::DataError("standard input: read error");
  if (const auto bad = ordo::detail::utf8::first_invalid(text)) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(*bad), '\n');
    throw ordo::data::DataError(ordo::data::where("standard input", line) + ": not valid UTF-8 (byte " +
                                std::to_string(*bad) + ")");
  }
  return text;
}

}  // namespace ordo::tools
