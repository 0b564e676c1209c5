// ordo/eval/detail/segmentation.hpp — how readability.hpp splits text: pieces between white
// space (with line starts and blank lines), dashes, word stripping, list markers, and where a
// sentence ends (abbreviations, initials, numbers; readability.hpp describes the rules).
#pragma once

#include <cctype>       // std::isalpha, std::isupper
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <ordo/eval/detail/readability_chars.hpp>  // is_word_cp, one_of
#include <ordo/text/utf8.hpp>                      // detail::utf8::sequence_length, next

namespace ordo::eval::detail::readability {

// The pieces of text between white space, with whether each starts a line and what follows.
struct piece {
  std::string_view text;
  bool line_start = false;  // first piece on its line
  bool after_blank_line = false;
};

inline std::vector<piece> split_pieces(std::string_view s) {
  std::vector<piece> out;
  std::size_t i = 0;
  int newlines = 1;  // the text starts a line
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\n') {
      ++newlines;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
      continue;
    }
    // U+00A0 (no-break space) and U+2000..U+200B, U+3000 are white space too.
    if (static_cast<unsigned char>(c) >= 0x80) {
      std::size_t j = i;
      const auto len = ordo::detail::utf8::sequence_length(s, i);
      if (len > 0) {
        const auto cp = ordo::detail::utf8::next(s, j);
        if (cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x3000 || cp == 0x2028 || cp == 0x2029) {
          if (cp == 0x2028 || cp == 0x2029) ++newlines;
          i += len;
          continue;
        }
      }
    }
    std::size_t j = i;
    while (j < s.size()) {
      const char d = s[j];
      if (d == ' ' || d == '\t' || d == '\r' || d == '\n' || d == '\f' || d == '\v') break;
      if (static_cast<unsigned char>(d) >= 0x80) {
        const auto len = ordo::detail::utf8::sequence_length(s, j);
        if (len > 0) {
          std::size_t k = j;
          const auto cp = ordo::detail::utf8::next(s, k);
          if (cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x3000 || cp == 0x2028 || cp == 0x2029) break;
          j += len;
          continue;
        }
      }
      ++j;
    }
    out.push_back({s.substr(i, j - i), newlines > 0, newlines > 1 && !out.empty()});
    newlines = 0;
    i = j;
  }
  return out;
}

// Splits a piece at dashes (— – ― and "--") into word candidates.
inline std::vector<std::string_view> split_dashes(std::string_view p) {
  std::vector<std::string_view> out;
  std::size_t start = 0, i = 0;
  while (i < p.size()) {
    std::size_t len = 0;
    if (p.substr(i, 2) == "--")
      len = 2;
    else if (p.substr(i, 3) == "\xE2\x80\x94" || p.substr(i, 3) == "\xE2\x80\x93" || p.substr(i, 3) == "\xE2\x80\x95")
      len = 3;
    if (len) {
      if (i > start) out.push_back(p.substr(start, i - start));
      i += len;
      while (i < p.size() && p[i] == '-') ++i;
      start = i;
    } else {
      ++i;
    }
  }
  if (start < p.size()) out.push_back(p.substr(start));
  return out;
}

// The word in a candidate: without leading and trailing characters that cannot be part of a
// word (apostrophes inside stay; a trailing "'s" stays). Empty when it holds no letter or digit.
inline std::string_view strip_word(std::string_view c) {
  std::size_t begin = 0, end = c.size();
  const auto cp_at = [&](std::size_t i, std::size_t* len) -> std::uint32_t {
    const auto l = ordo::detail::utf8::sequence_length(c, i);
    if (l == 0) {
      *len = 1;
      return 0xFFFD;
    }
    *len = l;
    std::size_t j = i;
    return ordo::detail::utf8::next(c, j);
  };
  while (begin < end) {
    std::size_t len = 0;
    const auto cp = cp_at(begin, &len);
    if (is_word_cp(cp) || ((cp == '$' || cp == 0x20AC || cp == 0xA3 || cp == '.') && begin + len < end &&
                           c[begin + len] >= '0' && c[begin + len] <= '9'))
      break;  // "$5", ".5"
    begin += len;
  }
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(c[start]) & 0xC0) == 0x80) --start;
    std::size_t len = 0;
    const auto cp = cp_at(start, &len);
    if (is_word_cp(cp) || (cp == '%' && start > begin)) break;
    end = start;
  }
  return c.substr(begin, end - begin);
}

// Whether a piece at the start of a line is a list marker ("1.", "2)", "-", "*", "•", "#").
inline bool is_list_marker(std::string_view p) {
  if (p == "-" || p == "*" || p == "+" || p == "\xE2\x80\xA2" || p == ">") return true;
  if (!p.empty() && p.find_first_not_of('#') == std::string_view::npos) return true;
  std::size_t i = 0;
  while (i < p.size() && p[i] >= '0' && p[i] <= '9') ++i;
  return i > 0 && i + 1 == p.size() && (p[i] == '.' || p[i] == ')');
}

inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// Whether a piece (the last one of a sentence candidate) ends its sentence, given the next one.
inline bool ends_sentence(std::string_view p, std::string_view next) {
  // Drop closing quotes, brackets and Markdown emphasis.
  std::size_t end = p.size();
  while (end > 0) {
    const char c = p[end - 1];
    if (c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == '*' || c == '_' || c == '`') {
      --end;
      continue;
    }
    if (end >= 3 && (p.substr(end - 3, 3) == "\xE2\x80\x9D" || p.substr(end - 3, 3) == "\xE2\x80\x99")) {  // ” ’
      end -= 3;
      continue;
    }
    if (end >= 2 && p.substr(end - 2, 2) == "\xC2\xBB") {  // »
      end -= 2;
      continue;
    }
    break;
  }
  const std::string_view core = p.substr(0, end);
  if (core.empty()) return false;
  if (core.back() == '!' || core.back() == '?') return true;
  if (core.size() >= 3 && core.substr(core.size() - 3) == "\xE2\x80\xA6") return true;  // …
  if (core.back() != '.') return false;
  // The first letter of the next piece, past opening quotes and brackets.
  char next_first = '\0';
  for (const char c : next) {
    if (c == '"' || c == '\'' || c == '(' || c == '[' || c == '*' || c == '_' || c == '`' ||
        static_cast<unsigned char>(c) >= 0x80)
      continue;
    next_first = c;
    break;
  }
  if (next_first >= 'a' && next_first <= 'z') return false;  // "approx. five", "etc. and"
  std::size_t word_end = core.size();
  while (word_end > 0 && core[word_end - 1] == '.') --word_end;
  if (core.size() - word_end >= 2) return true;  // "..." followed by a capital
  std::size_t word_begin = word_end;
  while (word_begin > 0 &&
         (std::isalpha(static_cast<unsigned char>(core[word_begin - 1])) || core[word_begin - 1] == '.'))
    --word_begin;
  const std::string word = lower_ascii(core.substr(word_begin, word_end - word_begin));
  if (one_of(word, {"mr",  "mrs", "ms",  "dr",  "prof", "st", "mt", "gen", "col", "lt",  "sgt", "capt",  "rev",
                    "gov", "sen", "rep", "hon", "pres", "vs", "cf", "e.g", "i.e", "viz", "ca",  "approx"}))
    return false;
  const bool next_digit = next_first >= '0' && next_first <= '9';
  if (next_digit &&
      one_of(word, {"no",  "nos", "fig", "figs", "vol", "vols", "eq",  "eqs", "p",    "pp",  "ch",  "sec",
                    "jan", "feb", "mar", "apr",  "jun", "jul",  "aug", "sep", "sept", "oct", "nov", "dec"}))
    return false;
  const bool initial =
      word_begin + 1 == word_end && word_begin == 0 && std::isupper(static_cast<unsigned char>(core[word_begin]));
  if (initial && next_first >= 'A' && next_first <= 'Z') return false;  // "J. K. Rowling"
  return true;
}

}  // namespace ordo::eval::detail::readability
