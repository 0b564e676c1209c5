// ordo/eval/readability.hpp — Flesch reading ease of English text, with its sentence, word and
// syllable counts. Torch-free.
//
//   FRE = 206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words)
//
// (Flesch, 1948). Higher is easier: 90-100 a short plain sentence, 60-70 plain English, 0-30
// academic prose; the value is not bounded (one long sentence of long words goes below 0). The
// paper's clarity metric averages reading ease with two scores in [0, 1]; readability_score()
// maps FRE to [0, 1] as min(max(FRE, 0), 100) / 100 (the paper does not say how it scaled it).
//
//   double fre = ordo::eval::flesch_reading_ease("The cat sat on the mat. It was happy.");
//   auto c = ordo::eval::count_text(answer);   // c.sentences, c.words, c.syllables
//
// Sentences. A sentence ends at a word ending in '.', '!', '?' or '…' (after closing quotes
// and brackets), and at the end of the text; text without any terminator is one sentence.
// Terminators inside a word ("3.14", "ordo.hpp", "e.g") end nothing. A word ending in '.' does
// not end a sentence when the next word starts with a lower-case letter ("approx. five"), when
// it is a title or Latin abbreviation (Mr. Mrs. Ms. Dr. Prof. St. Mt. Gen. Col. Lt. Sgt. Capt.
// Rev. Gov. Sen. Rep. Hon. Pres. vs. cf. e.g. i.e. viz. ca. approx.), when it is an abbreviation
// that precedes a number and a number follows (No. 5, Fig. 2, Vol. 3, Eq. 1, p. 12, Jan. 5),
// or when it is a single capital letter followed by a capitalized word (initials: "J. K.
// Rowling"). Line structure also ends sentences: a blank line, a line that starts a list item
// ("-", "*", "+", "•", "1.", "2)") or a Markdown heading ("#"), and the end of a heading line.
// Only segments with at least one word count.
//
// Words. Text is split at white space and at dashes (— – ― and "--"); a piece is a word when
// it holds a letter or a digit after leading and trailing punctuation is stripped. Hyphenated
// compounds and contractions are one word each; list markers at the start of a line are not
// words.
//
// Syllables: english_syllables (english_syllables.hpp describes the rules).
//
// Agreement with textstat 0.7.13 (which looks words up in the CMU pronouncing dictionary, then
// falls back on pyphen's hyphenation patterns, and splits sentences differently) is measured
// in tests/eval/ (docs/metrics.md has the figures).
#pragma once

#include <algorithm>    // std::clamp
#include <cstddef>      // std::size_t
#include <stdexcept>    // std::invalid_argument
#include <string_view>  // std::string_view

#include <ordo/eval/detail/segmentation.hpp>  // split_pieces, split_dashes, strip_word, is_list_marker, ends_sentence
#include <ordo/eval/english_syllables.hpp>    // english_syllables

namespace ordo::eval {

/// What Flesch reading ease is computed from.
struct text_counts {
  std::size_t sentences = 0;
  std::size_t words = 0;
  std::size_t syllables = 0;
};

/// Sentences, words and syllables of a text (see the header comment for the rules).
inline text_counts count_text(std::string_view text) {
  namespace r = detail::readability;
  const auto pieces = r::split_pieces(text);
  text_counts c;
  std::size_t words_in_sentence = 0;
  bool heading_line = false;
  const auto close_sentence = [&] {
    if (words_in_sentence > 0) ++c.sentences;
    words_in_sentence = 0;
  };
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const auto& p = pieces[k];
    if (p.line_start) {
      if (p.after_blank_line || heading_line) close_sentence();
      heading_line = !p.text.empty() && p.text[0] == '#';
      if (r::is_list_marker(p.text)) {
        close_sentence();
        continue;
      }
    }
    for (const auto candidate : r::split_dashes(p.text)) {
      const auto w = r::strip_word(candidate);
      if (w.empty()) continue;
      ++c.words;
      ++words_in_sentence;
      c.syllables += english_syllables(w);
    }
    const std::string_view next = k + 1 < pieces.size() ? pieces[k + 1].text : std::string_view{};
    if (r::ends_sentence(p.text, next)) close_sentence();
  }
  close_sentence();
  return c;
}

/// Flesch reading ease from counts; throws std::invalid_argument when there are no words.
inline double flesch_reading_ease(const text_counts& c) {
  if (c.words == 0 || c.sentences == 0)
    throw std::invalid_argument("ordo::eval::flesch_reading_ease: the text has no words");
  return 206.835 - 1.015 * (static_cast<double>(c.words) / static_cast<double>(c.sentences)) -
         84.6 * (static_cast<double>(c.syllables) / static_cast<double>(c.words));
}

/// Flesch reading ease of a text; throws std::invalid_argument when it has no words (check
/// count_text(text).words first where empty answers are expected).
inline double flesch_reading_ease(std::string_view text) { return flesch_reading_ease(count_text(text)); }

/// Reading ease in [0, 1] for averaging with other scores: FRE clamped to [0, 100], over 100.
inline double readability_score(std::string_view text) {
  return std::clamp(flesch_reading_ease(text), 0.0, 100.0) / 100.0;
}

}  // namespace ordo::eval
