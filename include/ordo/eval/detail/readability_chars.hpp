// ordo/eval/detail/readability_chars.hpp — character classes and string helpers of the
// readability counts (readability.hpp): the letters of syllable counting, code points that can
// be part of a word, Latin-1 letters as ASCII, apostrophes, and small string_view tests.
#pragma once

#include <algorithm>         // std::find
#include <cstdint>           // std::uint32_t
#include <initializer_list>  // std::initializer_list
#include <string_view>       // std::string_view

namespace ordo::eval::detail::readability {

// A word's letters for syllable counting: lower-case ASCII, with vowels that carry an acute or
// grave accent or a diaeresis written as upper-case A E I O U (always sounded, and never merged
// with a vowel before them: "café", "naïve").
inline bool is_vowel_letter(char c) {
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'A' || c == 'E' || c == 'I' || c == 'O' ||
         c == 'U';
}
inline bool is_marked_vowel(char c) { return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U'; }

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
inline bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
inline bool one_of(std::string_view s, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}
inline bool in(char c, std::string_view set) { return c != '\0' && set.find(c) != std::string_view::npos; }

// Code points that can be part of a word: ASCII letters and digits, and letters beyond ASCII
// (everything from U+00C0 except a few symbol blocks).
inline bool is_word_cp(std::uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
  if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;    // punctuation, symbols, arrows, math, shapes
  if (cp >= 0x3000 && cp <= 0x303F) return false;    // CJK punctuation
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;    // private use
  if (cp >= 0xFE00 && cp <= 0xFE0F) return false;    // variation selectors
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;    // full-width punctuation
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;  // emoji and pictographs
  if (cp == 0xFFFD) return false;
  return true;
}

// A Latin-1 letter as the ASCII letter(s) for syllable counting; "" for other scripts.
inline std::string_view latin_letter(std::uint32_t cp) {
  static constexpr std::string_view table[64] = {
      // U+00C0..U+00DF
      "a", "A", "a", "a", "A", "a", "ae", "c", "E", "E", "e", "E", "i", "I", "i", "I", "d", "n", "o", "O", "o", "o",
      "O", "", "o", "u", "U", "u", "U", "y", "th", "ss",
      // U+00E0..U+00FF
      "a", "A", "a", "a", "A", "a", "ae", "c", "E", "E", "e", "E", "i", "I", "i", "I", "d", "n", "o", "O", "o", "o",
      "O", "", "o", "u", "U", "u", "U", "y", "th", "y"};
  if (cp >= 0xC0 && cp <= 0xFF) return table[cp - 0xC0];
  if (cp == 0x152 || cp == 0x153) return "e";  // œ
  return "";
}

inline bool is_apostrophe(std::uint32_t cp) { return cp == '\'' || cp == 0x2019; }

}  // namespace ordo::eval::detail::readability
