// ordo/eval/english_syllables.hpp — syllables of one English word, as Flesch reading ease
// (readability.hpp) counts them. Torch-free.
//
//   std::size_t n = ordo::eval::english_syllables("syllable");   // 3
//
// Syllables (english_syllables, per word): the vowel groups of the word (a e i o u, and y
// where it is a vowel: not word-initially before a vowel, not after a vowel), with
//   - vowel pairs that are two syllables split ("cre|ate", "vi|de|o", "flu|ent", "go|ing",
//     "ar|e|a", "var|i|ous", "sci|ence", "qui|et"), and those that are one kept
//     ("na|tion", "spe|cial", "peo|ple", "lan|guage", "pa|tient"),
//   - silent endings removed: final e ("make"), -es ("makes", not "places"), -ed ("jumped",
//     not "wanted"), e before -ly -ful -ment -ness -less -ty ("lately", "movement"),
//   - consonant + le / re kept ("ta|ble", "ac|re", "trou|bled", "hun|dred"), -ism / -asm / -thm
//     (+1), -ire ("fi|re"), contractions ("did|n't", "would|'ve"), compounds whose first part
//     ends in a silent e ("some|times", "there|fore", "where|ever"),
//   - a table of frequent words the rules get wrong ("every", "business", "area"...).
// Numbers count as spoken: "1918" as a year (4), "1,000" (3), "3.14" (4), "5%" (3),
// "21st" (3); letters-only acronyms without vowels, and upper-case 2-3 letter acronyms that are
// not common words, are spelled out ("LLM" 3, "GPU" 3, "W" 3). Letters outside Latin scripts
// count one syllable per run. Every word has at least one syllable.
#pragma once

#include <algorithm>    // std::max
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view

#include <ordo/eval/detail/segmentation.hpp>    // strip_word
#include <ordo/eval/detail/word_syllables.hpp>  // part_syllables

namespace ordo::eval {

/// Syllables of one English word (see the header comment), at least 1; 0 for a piece with no
/// letter or digit.
inline std::size_t english_syllables(std::string_view word) {
  namespace r = detail::readability;
  const auto w = r::strip_word(word);
  if (w.empty()) return 0;
  std::size_t total = 0;
  std::size_t start = 0;
  // Hyphenated compounds and slashes: the parts' syllables add up.
  for (std::size_t i = 0; i <= w.size(); ++i) {
    if (i == w.size() || w[i] == '-' || w[i] == '/') {
      if (i > start) total += r::part_syllables(w.substr(start, i - start));
      start = i + 1;
    }
  }
  return std::max<std::size_t>(total, 1);
}

}  // namespace ordo::eval
