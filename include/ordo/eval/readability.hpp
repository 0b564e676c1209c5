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
//
// Agreement with textstat 0.7.13 (which looks words up in the CMU pronouncing dictionary, then
// falls back on pyphen's hyphenation patterns, and splits sentences differently) is measured
// in tests/eval/ (docs/metrics.md has the figures).
#pragma once

#include <algorithm>    // std::min, std::max, std::find, std::all_of, std::clamp
#include <array>        // std::array
#include <cctype>       // std::isalpha, std::isupper
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t, std::uint64_t
#include <initializer_list>  // std::initializer_list
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <ordo/model/detail/utf8.hpp>  // detail::utf8::sequence_length, next

namespace ordo::eval {

/// What Flesch reading ease is computed from.
struct text_counts {
  std::size_t sentences = 0;
  std::size_t words = 0;
  std::size_t syllables = 0;
};

namespace detail::readability {

// A word's letters for syllable counting: lower-case ASCII, with vowels that carry an acute or
// grave accent or a diaeresis written as upper-case A E I O U (always sounded, and never merged
// with a vowel before them: "café", "naïve").
inline bool is_vowel_letter(char c) {
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'A' || c == 'E' || c == 'I' ||
         c == 'O' || c == 'U';
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

// Frequent words whose syllable count the rules below get wrong (counts as the CMU
// pronouncing dictionary gives them first).
struct exception_entry {
  std::string_view word;
  unsigned char syllables;
};
inline constexpr exception_entry exceptions[] = {
    {"every", 3},      {"business", 2},   {"area", 3},       {"idea", 3},       {"our", 2},
    {"ourselves", 3},  {"hour", 2},       {"flour", 2},      {"sour", 2},       {"recipe", 3},
    {"simile", 3},     {"apostrophe", 4}, {"catastrophe", 4}, {"epitome", 4},   {"hyperbole", 4},
    {"karate", 3},     {"sesame", 3},     {"acne", 2},       {"finale", 3},     {"coyote", 3},
    {"naked", 2},      {"wicked", 2},     {"rugged", 2},     {"crooked", 2},    {"wretched", 2},
    {"ragged", 2},     {"jagged", 2},     {"element", 3},    {"poem", 2},       {"science", 2},
    {"create", 2},     {"creates", 2},    {"created", 3},    {"real", 1},       {"really", 2},
    {"reality", 4},    {"realize", 3},    {"realized", 3},   {"ideal", 2},      {"nuclear", 3},
    {"alien", 3},      {"argue", 2},      {"argued", 2},     {"arguing", 3},    {"interest", 2},
    {"interested", 3}, {"interesting", 3}, {"several", 2},   {"evening", 2},    {"businesses", 3},
    {"requirement", 3}, {"different", 3}, {"maybe", 2},     {"chocolate", 2},  {"anime", 3},
    {"acme", 2},       {"cafe", 2},
};
// Plurals of these ("areas", "hours") count as the singular.

// Short upper-case words that are read, not spelled, when written in capitals.
inline bool common_short_word(std::string_view w) {
  return one_of(w, {"a",   "i",   "am",  "an",  "as",  "at",  "be",  "by",  "do",  "go",  "he",  "if",
                    "in",  "is",  "it",  "me",  "my",  "no",  "of",  "oh",  "ok",  "on",  "or",  "so",
                    "to",  "up",  "us",  "we",  "ye",  "yo",  "ago", "all", "and", "any", "are", "ask",
                    "ate", "bad", "big", "but", "buy", "can", "day", "did", "eat", "end", "far", "few",
                    "for", "get", "got", "had", "has", "her", "him", "his", "how", "its", "let", "may",
                    "new", "not", "now", "odd", "off", "old", "one", "our", "out", "own", "put", "run",
                    "say", "see", "she", "sit", "the", "too", "top", "try", "two", "use", "was", "way",
                    "who", "why", "yes", "yet", "you", "sea", "age", "air", "ice", "oil", "eye", "ear"});
}

// Whether the vowels w[i] and w[i + 1] belong to different syllables.
inline bool splits(std::string_view w, std::size_t i) {
  const char a = w[i], b = w[i + 1];
  const char pre = i > 0 ? w[i - 1] : '\0';
  const std::string_view post = w.substr(i + 2);
  if (is_marked_vowel(b)) return true;
  if (a == 'y') return !(b == 'e' && (post.empty() || post == "s" || post == "d"));  // "try|ing", "an|y|one", not "bye"
  if (b == 'i' && (post == "ng" || post == "ngs")) return true;  // "go|ing", "be|ing", "see|ing"
  switch (a) {
    case 'i':
      if (in(pre, "ln") && i >= 2 && is_vowel_letter(w[i - 2]) && b != 'i' && !post.empty() &&
          !(b == 'e' && post[0] == 't') &&
          !(b == 'a' && (post[0] == 'b' || starts_with(post, "nc") || post == "l" || post == "ls")))
        return false;  // a glide after l / n: "fa|mil|iar", "sen|ior", "con|ven|ient"
      if (b == 'a') {
        if (in(pre, "tcs") && (post.empty() || in(post[0], "ln") || starts_with(post, "tiv")))
          return false;  // "spe|cial", "na|tion|al", "A|sia", "ini|tia|tive"
        if (post == "ge" || post == "ges") return false;                          // "mar|riage"
        return true;                                                              // "tri|al", "me|di|a"
      }
      if (b == 'o') {
        const bool palatal = in(pre, "tscgx") || (pre == 'h' && i >= 2 && w[i - 2] == 's') ||
                             (pre == 'l' && i >= 2 && w[i - 2] == 'l');
        if (palatal && !post.empty() && in(post[0], "nu")) return false;  // "na|tion", "de|li|cious", "mil|lion"
        if (pre == 'n' && !post.empty() && post[0] == 'n') return false;  // "o|pin|ion", "un|ion"
        return true;                                                       // "ra|ti|o", "var|i|ous", "li|on"
      }
      if (b == 'u' || b == 'i') return true;  // "me|di|um", "ski|ing"
      if (b == 'e') {
        if (post.empty()) return false;                          // "movie", "die"
        if (post[0] == 't') return true;                         // "qui|et", "so|ci|e|ty"
        if (starts_with(post, "nt") || starts_with(post, "nc"))  // "cli|ent", "au|di|ence"
          return !in(pre, "tc") || starts_with(w, "scien");      // but "pa|tient", "an|cient"
        if ((post == "r" || post == "rs" || post == "st") && i >= 2 && !in(pre, "dt")) {
          for (std::size_t k = 0; k + 1 < i; ++k)
            if (is_vowel_letter(w[k])) return true;              // "ear|li|er", "hap|pi|est"
        }
        return false;
      }
      return false;
    case 'e':
      if (b == 'a') {
        if (post.empty()) {
          for (std::size_t k = 0; k < i; ++k)
            if (is_vowel_letter(w[k])) return true;  // "ar|e|a", "Ko|re|a", but "tea"
          return false;
        }
        if ((post == "n" || post == "ns") && pre != 'c') {
          for (std::size_t k = 0; k < i; ++k)
            if (is_vowel_letter(w[k])) return true;  // "Eu|ro|pe|an", but "ocean", "clean"
          return false;
        }
        if (i == 2 && starts_with(w, "creat")) return true;
        if (i == 2 && starts_with(w, "theat")) return true;
        if (i == 1 && (starts_with(w, "react") || starts_with(w, "reass") || starts_with(w, "reapp") ||
                       starts_with(w, "reaff") || starts_with(w, "readj") || starts_with(w, "reawa")))
          return true;
        return false;
      }
      if (b == 'o') {
        if (pre == 'p') return false;                                            // "peo|ple"
        if (in(pre, "gc") && !post.empty() && in(post[0], "nur")) return false;  // "sur|geon", "gor|geous", "George"
        if (pre == 't' && starts_with(post, "us")) return false;                 // "righ|teous"
        return true;                                                             // "vi|de|o", "the|o|ry"
      }
      if (b == 'u') return post == "m" || post == "ms";  // "mu|se|um"
      return false;
    case 'u':
      if (in(pre, "qg")) return false;  // "qua|li|ty", "lan|guage", "guess", "guide"
      if (b == 'a' || b == 'o' || b == 'u') return true;                             // "ac|tu|al", "du|o", "vac|u|um"
      if (b == 'e') return !post.empty() && in(post[0], "lnt");                      // "flu|ent", "du|el"
      if (b == 'i')
        return !post.empty() && (in(post[0], "dn") || starts_with(post, "ty") || starts_with(post, "tio"));  // "flu|id", "ru|in", "tu|i|tion"
      return false;
    case 'o':
      if (b == 'a') return i == 0 && starts_with(w, "oas");        // "o|a|sis"
      if (b == 'i') return post == "c" || post == "cs" || post == "cal";  // "he|ro|ic"
      if (b == 'e') return !post.empty() && in(post[0], "mtxf");   // "po|em", "po|et", "co|ex|ist"
      if (b == 'o') return i == 1 && (starts_with(w, "cooper") || starts_with(w, "coord") || starts_with(w, "zoolog"));
      return false;
    case 'a':
      if (b == 'o') return true;                                   // "cha|os"
      if (b == 'i') return post == "c" || post == "cs" || starts_with(w, "naiv");  // "mo|sa|ic", "na|ive"
      return false;
    default:
      return false;
  }
}

// Syllables of a word of letters only (see the comment on is_vowel_letter), by the rules.
inline std::size_t syllables_by_rules(std::string_view w);

// Whether `s` starts with a consonant cluster that can begin an English syllable.
inline bool starts_with_onset(std::string_view s) {
  std::size_t k = s.size() >= 2 && s[0] == 'y' && is_vowel_letter(s[1]) ? 1 : 0;  // "yard"
  while (k < s.size() && !is_vowel_letter(s[k]) && (s[k] != 'y' || k == 0)) ++k;
  if (k == 0 || k == s.size()) return false;
  const auto onset = s.substr(0, k);
  if (k == 1) return true;
  return one_of(onset, {"bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "kn", "ph", "pl", "pr",
                        "sc", "sh", "sk", "sl", "sm", "sn", "sp", "st", "sw", "th", "tr", "tw", "wh", "wr",
                        "scr", "shr", "spl", "spr", "str", "thr", "sch"});
}

// Compounds whose first part ends in a silent e: "some|times", "there|fore", "where|ever".
inline std::size_t compound_syllables(std::string_view w) {
  static constexpr std::string_view first[] = {
      "some", "where", "there", "here",  "home",  "life",  "time",  "care",  "base",  "side",
      "whole", "house", "more", "else",  "like",  "wise",  "stone", "fore",  "wide",  "peace",
      "safe", "frame", "state", "use",   "waste", "face",  "pipe",  "wave",  "note",  "game",
      "name", "make",  "take",  "fire",  "space", "store", "code",  "shape", "type",  "white",
      "horse", "grave", "lone", "hope",  "gate",  "ware",  "cake",  "date",  "bride", "tube"};
  static constexpr std::array<std::string_view, 12> short_second{"one", "ones", "ever", "over", "in",  "as",
                                                                 "of",  "upon", "after", "by",  "to", "on"};
  for (const std::string_view f : first) {
    if (!starts_with(w, f) || w.size() <= f.size() + 1) continue;
    const auto rest = w.substr(f.size());
    const bool listed = std::find(short_second.begin(), short_second.end(), rest) != short_second.end();
    const bool word = rest.size() >= 3 && starts_with_onset(rest) &&
                      !one_of(rest, {"ful", "fully", "less", "ness", "ment", "ments", "ly", "ty", "ver", "vers"});
    if (listed || word) return syllables_by_rules(f) + syllables_by_rules(rest);
  }
  return 0;
}

inline std::size_t syllables_by_rules(std::string_view w) {
  const std::size_t n = w.size();
  if (n == 0) return 0;
  for (const auto& e : exceptions)
    if (e.word == w || (w.size() == e.word.size() + 1 && w.back() == 's' && starts_with(w, e.word)))
      return e.syllables;
  if (starts_with(w, "every") && n > 6) return 2 + syllables_by_rules(w.substr(5));  // "ev|ery|one"
  if (ends_with(w, "esome") && n > 6) return syllables_by_rules(w.substr(0, n - 4)) + 1;  // "awe|some"
  if (const auto c = compound_syllables(w)) return c;

  // Which letters are vowels: y is a consonant at the start before a vowel ("yes") and after a
  // vowel, or after a vowel and w ("boy", "they", "lawyer").
  std::vector<bool> vowel(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (w[i] == 'u' && i > 0 && (w[i - 1] == 'q' || (w[i - 1] == 'g' && i + 1 < n && in(w[i + 1], "aeio")))) {
      vowel[i] = false;  // "qu", and "gu" before a vowel ("guard", "league"): a consonant
      continue;
    }
    if (w[i] != 'y') {
      vowel[i] = is_vowel_letter(w[i]);
      continue;
    }
    const bool next_vowel = i + 1 < n && is_vowel_letter(w[i + 1]);
    const bool after_vowel = i > 0 && (vowel[i - 1] || (w[i - 1] == 'w' && i >= 2 && vowel[i - 2]));
    vowel[i] = !((i == 0 && next_vowel) || after_vowel);
  }
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!vowel[i]) continue;
    if (i == 0 || !vowel[i - 1] || splits(w, i - 1)) ++count;
  }
  const auto consonant = [&](std::size_t i) { return i < n && !vowel[i]; };
  // An 'e' at i that is a vowel group of its own (a consonant before it).
  const auto lone_e = [&](std::size_t i) { return w[i] == 'e' && i > 0 && consonant(i - 1); };
  const auto vowel_before = [&](std::size_t i) {  // a vowel somewhere before position i
    for (std::size_t k = 0; k < i; ++k)
      if (vowel[k]) return true;
    return false;
  };
  // Consonant + l / r before the ending keeps its syllable: "ta|ble", "ac|re", "trou|bled".
  const auto syllabic = [&](std::size_t liquid) {
    return liquid >= 1 && (w[liquid] == 'l' || w[liquid] == 'r') && consonant(liquid - 1) &&
           w[liquid - 1] != w[liquid] && !(w[liquid] == 'l' && w[liquid - 1] == 'r');
  };
  std::size_t silent = 0;
  if (n >= 2 && w[n - 1] == 'e' && lone_e(n - 1) && vowel_before(n - 1) && !syllabic(n - 2)) {
    silent = 1;  // "make", "whole"
  } else if (n >= 3 && ends_with(w, "es") && lone_e(n - 2) && vowel_before(n - 2)) {
    const char c = w[n - 3];
    const bool sibilant = in(c, "sxzcg") || (c == 'h' && n >= 4 && in(w[n - 4], "cs"));
    if (!sibilant && !syllabic(n - 3)) silent = 1;  // "makes", not "places", "tables"
  } else if (n >= 3 && ends_with(w, "ed") && lone_e(n - 2) && vowel_before(n - 2)) {
    const char c = w[n - 3];
    if (!in(c, "td") && !syllabic(n - 3)) silent = 1;  // "jumped", not "wanted", "hundred"
  } else {
    // e before a consonant suffix after a vowel-consonant (or soft c / g / s): "lately",
    // "movement", "careful", "management".
    for (const std::string_view suffix : {"ly", "ful", "fully", "ment", "ments", "ness", "less", "ty"}) {
      if (!ends_with(w, suffix) || n < suffix.size() + 3) continue;
      const std::size_t e = n - suffix.size() - 1;
      if (!lone_e(e)) continue;
      const char c = w[e - 1];
      if (in(c, "cgs") || (e >= 2 && vowel[e - 2]) || (c == 't' && e >= 3 && w[e - 2] == 's' && vowel[e - 3]))
        silent = 1;  // "wasteful" too
      break;
    }
  }
  count -= std::min(silent, count > 1 ? std::size_t{1} : std::size_t{0});
  if (ends_with(w, "ism") || ends_with(w, "isms") || ends_with(w, "asm") || ends_with(w, "asms") ||
      ends_with(w, "thm") || ends_with(w, "thms"))
    ++count;  // "tour|is|m", "sar|cas|m", "rhy|thm"
  for (const std::string_view ending : {"ire", "ires", "ired", "irely", "irement", "irements"}) {
    if (!ends_with(w, ending) || n < ending.size() + 1) continue;
    if (consonant(n - ending.size() - 1)) ++count;  // "fi|re", "de|si|re", "ti|red", "en|ti|re|ly"
    break;
  }
  if (ends_with(w, "ically")) --count;  // "prac|ti|cally"
  return std::max<std::size_t>(count, 1);
}

// Syllables of a number spoken in English.
inline constexpr std::array<unsigned char, 20> small_number{2, 1, 1, 1, 1, 1, 1, 2, 1, 1,   // zero..nine
                                                            1, 3, 1, 2, 2, 2, 2, 3, 2, 2};  // ten..nineteen
inline std::size_t below_hundred(std::uint64_t n) {
  if (n < 20) return small_number[n];
  const std::size_t tens = n / 10 == 7 ? 3 : 2;  // twenty, ..., seventy (3), ...
  return tens + (n % 10 ? small_number[n % 10] : 0);
}
inline std::size_t cardinal(std::uint64_t n) {
  if (n == 0) return 2;
  std::size_t s = 0;
  const auto below_thousand = [](std::uint64_t m) {
    std::size_t t = 0;
    if (m >= 100) t += small_number[m / 100] + 2;  // "... hundred"
    if (m % 100) t += below_hundred(m % 100);
    return t;
  };
  for (std::uint64_t scale = 1'000'000'000'000ULL; scale >= 1000; scale /= 1000) {
    if (n >= scale) {
      s += below_thousand(n / scale) + 2;  // thousand, million, billion, trillion
      n %= scale;
    }
  }
  return s + (n ? below_thousand(n) : 0);
}
// A digit string (and optional fraction digits); `grouped` when written with thousands commas.
inline std::size_t number_syllables(std::string_view digits, std::string_view fraction, bool grouped,
                                    std::string_view ordinal_suffix) {
  const auto digit_by_digit = [](std::string_view d) {
    std::size_t s = 0;
    for (const char c : d) s += small_number[static_cast<std::size_t>(c - '0')];
    return s;
  };
  std::size_t s = 0;
  std::uint64_t value = 0;
  if (digits.empty()) {
    s = 0;  // ".5": "point five"
  } else if (digits.size() > 15 || (digits.size() > 1 && digits[0] == '0')) {
    s = digit_by_digit(digits);  // codes, phone numbers, "007"
  } else {
    for (const char c : digits) value = value * 10 + static_cast<std::uint64_t>(c - '0');
    const bool year = !grouped && fraction.empty() && ordinal_suffix.empty() && digits.size() == 4 &&
                      ((value >= 1100 && value <= 1999) || (value >= 2010 && value <= 2099));
    if (year) {
      const auto hi = value / 100, lo = value % 100;
      s = below_hundred(hi) + (lo == 0 ? 2 : lo < 10 ? 1 + small_number[lo] : below_hundred(lo));  // "nineteen oh five"
    } else {
      s = cardinal(value);
      if (!ordinal_suffix.empty()) {
        const auto last = value % 100;
        if (last % 10 == 2 && last != 12) s += 1;          // "second"
        else if (last >= 20 && last % 10 == 0) s += 1;     // "twentieth"
      }
    }
  }
  if (!fraction.empty()) s += 1 + digit_by_digit(fraction);  // "point one four"
  return s;
}

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
      "a", "A", "a", "a", "A", "a", "ae", "c", "E", "E", "e", "E", "i", "I", "i", "I",
      "d", "n", "o", "O", "o", "o", "O", "", "o", "u", "U", "u", "U", "y", "th", "ss",
      // U+00E0..U+00FF
      "a", "A", "a", "a", "A", "a", "ae", "c", "E", "E", "e", "E", "i", "I", "i", "I",
      "d", "n", "o", "O", "o", "o", "O", "", "o", "u", "U", "u", "U", "y", "th", "y"};
  if (cp >= 0xC0 && cp <= 0xFF) return table[cp - 0xC0];
  if (cp == 0x152 || cp == 0x153) return "e";  // œ
  return "";
}

inline bool is_apostrophe(std::uint32_t cp) { return cp == '\'' || cp == 0x2019; }

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
      {{"mr", 2}, {"mrs", 2}, {"ms", 1}, {"dr", 2}, {"st", 1}, {"vs", 2}, {"etc", 4}, {"jr", 2}, {"mt", 1},
       {"ok", 2}}};
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
      if (is_apostrophe(cp)) norm.push_back('\'');
      else norm.append(text, i, len);
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
    text.resize(text.size() - 3);
  } else if ((ends_with(lower, "'ll") || ends_with(lower, "'ve") || ends_with(lower, "'d")) && lower.size() > 2) {
    const std::size_t cut = lower[lower.size() - 2] == '\'' ? 2 : 3;
    if (stem_ends_in_consonant_sound(std::string_view(lower).substr(0, lower.size() - cut)))
      extra = 1;  // "it|'ll", "would|'ve", "that|'d"
    text.resize(text.size() - cut);
  } else if ((ends_with(lower, "'re") || ends_with(lower, "'s") || ends_with(lower, "'m")) && lower.size() > 2) {
    const std::size_t cut = lower[lower.size() - 2] == '\'' ? 2 : 3;
    const auto stem = std::string_view(lower).substr(0, lower.size() - cut);
    if (ends_with(lower, "'s") && !stem.empty() &&
        (in(stem.back(), "sxz") || ends_with(stem, "ch") || ends_with(stem, "sh") || ends_with(stem, "ce") ||
         ends_with(stem, "ge")))
      extra = 1;  // "James|'s", "church|'s"
    text.resize(text.size() - cut);
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
      while (digits.size() <= 3 + (grouped ? digits.size() : 0) && j < t.size() && t[j] == ',' &&
             is_digit_at(j + 1) && is_digit_at(j + 2) && is_digit_at(j + 3) && !is_digit_at(j + 4)) {
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
        for (std::size_t k = j; k < j + 2; ++k) s2.push_back(static_cast<char>(t[k] >= 'A' && t[k] <= 'Z' ? t[k] - 'A' + 'a' : t[k]));
        const bool word_ends = j + 2 == t.size() || !((t[j + 2] >= 'a' && t[j + 2] <= 'z') || (t[j + 2] >= 'A' && t[j + 2] <= 'Z'));
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
      if (latin.empty()) run.other_script = true;
      else run.letters.append(latin);
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

// The pieces of text between white space, with whether each starts a line and what follows.
struct piece {
  std::string_view text;
  bool line_start = false;     // first piece on its line
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
    if (p.substr(i, 2) == "--") len = 2;
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
  while (word_begin > 0 && (std::isalpha(static_cast<unsigned char>(core[word_begin - 1])) || core[word_begin - 1] == '.'))
    --word_begin;
  const std::string word = lower_ascii(core.substr(word_begin, word_end - word_begin));
  if (one_of(word, {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "gen", "col", "lt", "sgt", "capt", "rev", "gov",
                    "sen", "rep", "hon", "pres", "vs", "cf", "e.g", "i.e", "viz", "ca", "approx"}))
    return false;
  const bool next_digit = next_first >= '0' && next_first <= '9';
  if (next_digit && one_of(word, {"no", "nos", "fig", "figs", "vol", "vols", "eq", "eqs", "p", "pp", "ch", "sec",
                                  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}))
    return false;
  const bool initial = word_begin + 1 == word_end && word_begin == 0 &&
                       std::isupper(static_cast<unsigned char>(core[word_begin]));
  if (initial && next_first >= 'A' && next_first <= 'Z') return false;  // "J. K. Rowling"
  return true;
}

}  // namespace detail::readability

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
