// ordo/text/detail/pcre2_regex.hpp — a small RAII wrapper around PCRE2 (8-bit, UTF + UCP).
//
// Pre-tokenizer patterns use Unicode properties (\p{L}, \p{N}), Unicode \s and lookahead, which
// std::regex lacks; PCRE2 with PCRE2_UTF | PCRE2_UCP has them and is in every distribution
// (Debian: libpcre2-dev; link libpcre2-8). Patterns are JIT-compiled when the platform allows.
// Subjects must be well-formed UTF-8: callers validate once, then matching skips the check.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>  // pcre2_compile_8, pcre2_match_8, ...

#include <cstddef>      // std::size_t
#include <memory>       // std::shared_ptr
#include <new>          // std::bad_alloc
#include <optional>     // std::optional
#include <stdexcept>    // std::invalid_argument, std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair
#include <vector>       // std::vector

#include <ordo/text/utf8.hpp>  // utf8::lead_length

namespace ordo::detail {

/// A compiled pattern; cheap to copy (shared), safe to use from several threads at once.
class Pcre2Regex {
 public:
  Pcre2Regex() = default;

  /// Compiles `pattern`; throws std::invalid_argument naming the pattern, the offset and PCRE2's
  /// reason when it does not compile.
  explicit Pcre2Regex(std::string_view pattern) : pattern_(pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code_8* code = pcre2_compile_8(reinterpret_cast<PCRE2_SPTR8>(pattern.data()), pattern.size(),
                                         PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code == nullptr) {
      throw std::invalid_argument("regex /" + std::string(pattern) + "/ does not compile at offset " +
                                  std::to_string(offset) + ": " + message(error));
    }
    code_.reset(code, pcre2_code_free_8);
    (void)pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE);  // without JIT, matching interprets
  }

  const std::string& pattern() const { return pattern_; }
  explicit operator bool() const { return static_cast<bool>(code_); }

  /// Every non-empty match in `subject`, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view subject) const {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    if (subject.empty()) return out;
    MatchData md(code_.get());
    std::size_t at = 0;
    while (at < subject.size()) {
      const auto m = match_at(subject, at, md);
      if (!m) break;
      if (m->first == m->second) {  // an empty match: move one character on
        at = m->second + utf8::lead_length(static_cast<unsigned char>(subject[m->second]));
        continue;
      }
      out.push_back(*m);
      at = m->second;
    }
    return out;
  }

  /// Whether the pattern matches somewhere in `subject`.
  bool search(std::string_view subject) const {
    MatchData md(code_.get());
    return match_at(subject, 0, md).has_value();
  }

 private:
  struct MatchData {
    explicit MatchData(const pcre2_code_8* code) : md(pcre2_match_data_create_from_pattern_8(code, nullptr)) {
      if (md == nullptr) throw std::bad_alloc();
    }
    ~MatchData() { pcre2_match_data_free_8(md); }
    MatchData(const MatchData&) = delete;
    MatchData& operator=(const MatchData&) = delete;
    pcre2_match_data_8* md;
  };

  static std::string message(int error) {
    PCRE2_UCHAR8 buffer[256];
    const int n = pcre2_get_error_message_8(error, buffer, sizeof buffer);
    return n < 0 ? "PCRE2 error " + std::to_string(error)
                 : std::string(reinterpret_cast<char*>(buffer), static_cast<std::size_t>(n));
  }

  std::optional<std::pair<std::size_t, std::size_t>> match_at(std::string_view subject, std::size_t at,
                                                              MatchData& md) const {
    const auto* s = reinterpret_cast<PCRE2_SPTR8>(subject.data());
    int rc = pcre2_match_8(code_.get(), s, subject.size(), at, PCRE2_NO_UTF_CHECK, md.md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // very long runs: retry with the interpreter (heap)
      rc = pcre2_match_8(code_.get(), s, subject.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
    if (rc < 0) {
      throw std::runtime_error("regex /" + pattern_ + "/ failed on a " + std::to_string(subject.size()) +
                               "-byte text: " + message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer_8(md.md);
    return std::pair<std::size_t, std::size_t>{ov[0], ov[1]};
  }

  std::string pattern_;
  std::shared_ptr<pcre2_code_8> code_;
};

}  // namespace ordo::detail
