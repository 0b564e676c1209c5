// ordo/eval/detail/word_syllables.hpp — syllables of one hyphen-free part of a word (UTF-8):
// contractions, runs of letters (acronyms spelled out, abbreviations, other scripts) and
// numbers with their signs ("5%", "$5", "€5").
#pragma once

#include <algorithm>    // std::all_of
#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

#include <ordo/eval/detail/number_syllables.hpp>   // number_syllables
#include <ordo/eval/detail/readability_chars.hpp>  // is_vowel_letter, is_word_cp, latin_letter, is_apostrophe, one_of
#include <ordo/eval/detail/syllable_rules.hpp>     // exception_entry, common_short_word, syllables_by_rules
#include <ordo/text/utf8.hpp>                      // detail::utf8::sequence_length, next

namespace ordo::eval::detail::readability {

// One run of a word: letters (lower-cased, see is_vowel_letter), upper-case flag, and whether
// it held letters of other scripts.
struct letter_run {
  std::string letters;
  bool all_upper = true;
  bool other_script = false;
};

inline std::size_t letter_run_syllables(const letter_run& r) {
  if (r.letters.empty()) return r.other_script ? 1 : 0;
  std::string lower;
  bool has_vowel = false;
  for (const char c : r.letters) {
    lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    if (is_vowel_letter(c) || c == 'y') has_vowel = true;
  }
  const bool ascii_only = std::all_of(r.letters.begin(), r.letters.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  // Abbreviations read as words: "Mr." (mister), "vs." (versus), "etc." (et cetera).
  static constexpr std::array<exception_entry, 10> abbreviations{
      {{"mr", 2}, {"mrs", 2}, {"ms", 1}, {"dr", 2}, {"st", 1}, {"vs", 2}, {"etc", 4}, {"jr", 2}, {"mt", 1}, {"ok", 2}}};
  for (const auto& a : abbreviations)
    if (a.word == lower) return a.syllables;
  // Acronyms: without a vowel ("LLM", "tv"; not "hmm", "shh"), or 2-3 capitals that are not a
  // common word ("GPU").
  const bool interjection = one_of(lower, {"hm", "hmm", "hmmm", "mm", "mmm", "shh", "sh", "psst", "brr", "grr", "pst"});
  const bool spelled = ascii_only && r.letters.size() >= 2 && !interjection &&
                       (!has_vowel || (r.all_upper && r.letters.size() <= 3 && !common_short_word(lower)));
  if (spelled || (r.letters.size() == 1 && r.letters[0] == 'w' && r.all_upper)) {
    std::size_t s = 0;
    for (const char c : r.letters) s += c == 'w' ? 3 : 1;  // "double u"
    return s;
  }
  return syllables_by_rules(r.letters);
}

// Syllables of one hyphen-free part of a word (UTF-8).
inline std::size_t part_syllables(std::string_view part) {
  // Contractions: the stem, plus a syllable where the suffix adds one after a consonant.
  std::string text(part);
  std::size_t extra = 0;
  {
    std::string norm;  // apostrophes as '\''
    for (std::size_t i = 0; i < text.size();) {
      const auto len = ordo::detail::utf8::sequence_length(text, i);
      if (len == 0) {
        norm.push_back('?');
        ++i;
        continue;
      }
      std::size_t j = i;
      const auto cp = ordo::detail::utf8::next(text, j);
      if (is_apostrophe(cp))
        norm.push_back('\'');
      else
        norm.append(text, i, len);
      i += len;
    }
    text = std::move(norm);
  }
  std::string lower;
  for (const char c : text) lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  const auto stem_ends_in_consonant_sound = [](std::string_view stem) {
    if (stem.empty()) return false;
    const char c = stem.back();
    if (c == 'e') return stem.size() >= 3;  // "are|n't": a silent e after a consonant
    if (is_vowel_letter(c)) return false;
    if ((c == 'y' || c == 'w') && stem.size() >= 2 && is_vowel_letter(stem[stem.size() - 2])) return false;
    return c >= 'a' && c <= 'z';
  };
  if (ends_with(lower, "n't") && lower.size() > 3) {
    const auto stem = std::string_view(lower).substr(0, lower.size() - 3);
    if (stem_ends_in_consonant_sound(stem) && stem.back() != 'n') extra = 1;  // "did|n't", not "don't"
    text.erase(text.size() - 3);
  } else if ((ends_with(lower, "'ll") || ends_with(lower, "'ve") || ends_with(lower, "'d")) && lower.size() > 2) {
    const std::size_t cut = lower[lower.size() - 2] == '\'' ? 2 : 3;
    if (stem_ends_in_consonant_sound(std::string_view(lower).substr(0, lower.size() - cut)))
      extra = 1;  // "it|'ll", "would|'ve", "that|'d"
    text.erase(text.size() - cut);
  } else if ((ends_with(lower, "'re") || ends_with(lower, "'s") || ends_with(lower, "'m")) && lower.size() > 2) {
    const std::size_t cut = lower[lower.size() - 2] == '\'' ? 2 : 3;
    const auto stem = std::string_view(lower).substr(0, lower.size() - cut);
    if (ends_with(lower, "'s") && !stem.empty() &&
        (in(stem.back(), "sxz") || ends_with(stem, "ch") || ends_with(stem, "sh") || ends_with(stem, "ce") ||
         ends_with(stem, "ge")))
      extra = 1;  // "James|'s", "church|'s"
    text.erase(text.size() - cut);
  }

  // Runs of letters and numbers; other characters separate them.
  std::size_t total = extra;
  letter_run run;
  const auto flush_run = [&] {
    total += letter_run_syllables(run);
    run = letter_run{};
  };
  std::size_t i = 0;
  const std::string_view t(text);
  while (i < t.size()) {
    const char c = t[i];
    if (c >= '0' && c <= '9') {
      flush_run();
      // digits, with thousands commas (1,000,000) and one decimal point (3.14).
      std::string digits, fraction;
      bool grouped = false;
      std::size_t j = i;
      while (j < t.size() && t[j] >= '0' && t[j] <= '9') digits.push_back(t[j++]);
      const auto is_digit_at = [&](std::size_t k) { return k < t.size() && t[k] >= '0' && t[k] <= '9'; };
      while (digits.size() <= 3 + (grouped ? digits.size() : 0) && j < t.size() && t[j] == ',' && is_digit_at(j + 1) &&
             is_digit_at(j + 2) && is_digit_at(j + 3) && !is_digit_at(j + 4)) {
        digits.append(t.substr(j + 1, 3));  // 1,000,000
        grouped = true;
        j += 4;
      }
      if (i > 0 && t[i - 1] == '.' && (i == 1 || !is_digit_at(i - 2))) {
        fraction = digits;  // ".5"
        digits.clear();
      }
      if (j + 1 < t.size() && t[j] == '.' && t[j + 1] >= '0' && t[j + 1] <= '9') {
        ++j;
        while (j < t.size() && t[j] >= '0' && t[j] <= '9') fraction.push_back(t[j++]);
      }
      std::string suffix;
      if (j + 2 <= t.size()) {
        std::string s2;
        for (std::size_t k = j; k < j + 2; ++k)
          s2.push_back(static_cast<char>(t[k] >= 'A' && t[k] <= 'Z' ? t[k] - 'A' + 'a' : t[k]));
        const bool word_ends =
            j + 2 == t.size() || !((t[j + 2] >= 'a' && t[j + 2] <= 'z') || (t[j + 2] >= 'A' && t[j + 2] <= 'Z'));
        if (word_ends && one_of(s2, {"st", "nd", "rd", "th"})) {
          suffix = s2;
          j += 2;
        }
      }
      total += number_syllables(digits, fraction, grouped, suffix);
      if (j < t.size() && t[j] == '%') total += 2;  // "percent"
      if (i > 0 && (t[i - 1] == '$')) total += 2;   // "dollars"
      i = j;
      continue;
    }
    const auto len = ordo::detail::utf8::sequence_length(t, i);
    if (len == 0) {  // invalid UTF-8: a separator
      flush_run();
      ++i;
      continue;
    }
    std::size_t j = i;
    const auto cp = ordo::detail::utf8::next(t, j);
    i += len;
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
      run.letters.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp - 'A' + 'a' : cp));
      if (cp >= 'a' && cp <= 'z') run.all_upper = false;
    } else if (is_apostrophe(cp)) {
      // inside a word ("o'clock"): ignored
    } else if (cp >= 0x80 && is_word_cp(cp)) {
      const auto latin = latin_letter(cp);
      if (latin.empty())
        run.other_script = true;
      else
        run.letters.append(latin);
      if (!latin.empty() && cp >= 0xE0) run.all_upper = false;
    } else {
      if (cp == 0x20AC || cp == 0xA3) {  // "€5", "£5"
        flush_run();
        if (i < t.size() && t[i] >= '0' && t[i] <= '9') total += cp == 0xA3 ? 1 : 2;  // pounds, euros
        continue;
      }
      flush_run();
    }
  }
  flush_run();
  return total;
}

}  // namespace ordo::eval::detail::readability
