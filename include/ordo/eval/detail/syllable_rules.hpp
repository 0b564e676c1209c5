// ordo/eval/detail/syllable_rules.hpp — syllables of a word of letters only, by rule: vowel
// groups, vowel pairs that split, silent endings, syllabic l / r, compounds, and a table of
// frequent exceptions (english_syllables.hpp describes the rules).
#pragma once

#include <algorithm>    // std::find, std::min, std::max
#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <ordo/eval/detail/readability_chars.hpp>  // is_vowel_letter, starts_with, ends_with, one_of, in

namespace ordo::eval::detail::readability {

// Frequent words whose syllable count the rules below get wrong (counts as the CMU
// pronouncing dictionary gives them first).
struct exception_entry {
  std::string_view word;
  unsigned char syllables;
};
inline constexpr exception_entry exceptions[] = {
    {"every", 3},       {"business", 2},   {"area", 3},        {"idea", 3},       {"our", 2},         {"ourselves", 3},
    {"hour", 2},        {"flour", 2},      {"sour", 2},        {"recipe", 3},     {"simile", 3},      {"apostrophe", 4},
    {"catastrophe", 4}, {"epitome", 4},    {"hyperbole", 4},   {"karate", 3},     {"sesame", 3},      {"acne", 2},
    {"finale", 3},      {"coyote", 3},     {"naked", 2},       {"wicked", 2},     {"rugged", 2},      {"crooked", 2},
    {"wretched", 2},    {"ragged", 2},     {"jagged", 2},      {"element", 3},    {"poem", 2},        {"science", 2},
    {"create", 2},      {"creates", 2},    {"created", 3},     {"real", 1},       {"really", 2},      {"reality", 4},
    {"realize", 3},     {"realized", 3},   {"ideal", 2},       {"nuclear", 3},    {"alien", 3},       {"argue", 2},
    {"argued", 2},      {"arguing", 3},    {"interest", 2},    {"interested", 3}, {"interesting", 3}, {"several", 2},
    {"evening", 2},     {"businesses", 3}, {"requirement", 3}, {"different", 3},  {"maybe", 2},       {"chocolate", 2},
    {"anime", 3},       {"acme", 2},       {"cafe", 2},
};
// Plurals of these ("areas", "hours") count as the singular.

// Short upper-case words that are read, not spelled, when written in capitals.
inline bool common_short_word(std::string_view w) {
  return one_of(w, {"a",   "i",   "am",  "an",  "as",  "at",  "be",  "by",  "do",  "go",  "he",  "if",  "in",  "is",
                    "it",  "me",  "my",  "no",  "of",  "oh",  "ok",  "on",  "or",  "so",  "to",  "up",  "us",  "we",
                    "ye",  "yo",  "ago", "all", "and", "any", "are", "ask", "ate", "bad", "big", "but", "buy", "can",
                    "day", "did", "eat", "end", "far", "few", "for", "get", "got", "had", "has", "her", "him", "his",
                    "how", "its", "let", "may", "new", "not", "now", "odd", "off", "old", "one", "our", "out", "own",
                    "put", "run", "say", "see", "she", "sit", "the", "too", "top", "try", "two", "use", "was", "way",
                    "who", "why", "yes", "yet", "you", "sea", "age", "air", "ice", "oil", "eye", "ear"});
}

// Whether the vowels w[i] and w[i + 1] belong to different syllables.
inline bool splits(std::string_view w, std::size_t i) {
  const char a = w[i], b = w[i + 1];
  const char pre = i > 0 ? w[i - 1] : '\0';
  const std::string_view post = w.substr(i + 2);
  if (is_marked_vowel(b)) return true;
  if (a == 'y') return !(b == 'e' && (post.empty() || post == "s" || post == "d"));  // "try|ing", "an|y|one", not "bye"
  if (b == 'i' && (post == "ng" || post == "ngs")) return true;                      // "go|ing", "be|ing", "see|ing"
  switch (a) {
    case 'i':
      if (in(pre, "ln") && i >= 2 && is_vowel_letter(w[i - 2]) && b != 'i' && !post.empty() &&
          !(b == 'e' && post[0] == 't') &&
          !(b == 'a' && (post[0] == 'b' || starts_with(post, "nc") || post == "l" || post == "ls")))
        return false;  // a glide after l / n: "fa|mil|iar", "sen|ior", "con|ven|ient"
      if (b == 'a') {
        if (in(pre, "tcs") && (post.empty() || in(post[0], "ln") || starts_with(post, "tiv")))
          return false;                                   // "spe|cial", "na|tion|al", "A|sia", "ini|tia|tive"
        if (post == "ge" || post == "ges") return false;  // "mar|riage"
        return true;                                      // "tri|al", "me|di|a"
      }
      if (b == 'o') {
        const bool palatal =
            in(pre, "tscgx") || (pre == 'h' && i >= 2 && w[i - 2] == 's') || (pre == 'l' && i >= 2 && w[i - 2] == 'l');
        if (palatal && !post.empty() && in(post[0], "nu")) return false;  // "na|tion", "de|li|cious", "mil|lion"
        if (pre == 'n' && !post.empty() && post[0] == 'n') return false;  // "o|pin|ion", "un|ion"
        return true;                                                      // "ra|ti|o", "var|i|ous", "li|on"
      }
      if (b == 'u' || b == 'i') return true;  // "me|di|um", "ski|ing"
      if (b == 'e') {
        if (post.empty()) return false;                          // "movie", "die"
        if (post[0] == 't') return true;                         // "qui|et", "so|ci|e|ty"
        if (starts_with(post, "nt") || starts_with(post, "nc"))  // "cli|ent", "au|di|ence"
          return !in(pre, "tc") || starts_with(w, "scien");      // but "pa|tient", "an|cient"
        if ((post == "r" || post == "rs" || post == "st") && i >= 2 && !in(pre, "dt")) {
          for (std::size_t k = 0; k + 1 < i; ++k)
            if (is_vowel_letter(w[k])) return true;  // "ear|li|er", "hap|pi|est"
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
      if (in(pre, "qg")) return false;                           // "qua|li|ty", "lan|guage", "guess", "guide"
      if (b == 'a' || b == 'o' || b == 'u') return true;         // "ac|tu|al", "du|o", "vac|u|um"
      if (b == 'e') return !post.empty() && in(post[0], "lnt");  // "flu|ent", "du|el"
      if (b == 'i')
        return !post.empty() && (in(post[0], "dn") || starts_with(post, "ty") ||
                                 starts_with(post, "tio"));  // "flu|id", "ru|in", "tu|i|tion"
      return false;
    case 'o':
      if (b == 'a') return i == 0 && starts_with(w, "oas");               // "o|a|sis"
      if (b == 'i') return post == "c" || post == "cs" || post == "cal";  // "he|ro|ic"
      if (b == 'e') return !post.empty() && in(post[0], "mtxf");          // "po|em", "po|et", "co|ex|ist"
      if (b == 'o') return i == 1 && (starts_with(w, "cooper") || starts_with(w, "coord") || starts_with(w, "zoolog"));
      return false;
    case 'a':
      if (b == 'o') return true;                                                   // "cha|os"
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
  return one_of(onset, {"bl", "br", "ch", "cl", "cr",  "dr",  "fl",  "fr",  "gl",  "gr",  "kn", "ph",
                        "pl", "pr", "sc", "sh", "sk",  "sl",  "sm",  "sn",  "sp",  "st",  "sw", "th",
                        "tr", "tw", "wh", "wr", "scr", "shr", "spl", "spr", "str", "thr", "sch"});
}

// Compounds whose first part ends in a silent e: "some|times", "there|fore", "where|ever".
inline std::size_t compound_syllables(std::string_view w) {
  static constexpr std::string_view first[] = {
      "some",  "where", "there", "here",  "home", "life", "time",  "care", "base",  "side",  "whole", "house", "more",
      "else",  "like",  "wise",  "stone", "fore", "wide", "peace", "safe", "frame", "state", "use",   "waste", "face",
      "pipe",  "wave",  "note",  "game",  "name", "make", "take",  "fire", "space", "store", "code",  "shape", "type",
      "white", "horse", "grave", "lone",  "hope", "gate", "ware",  "cake", "date",  "bride", "tube"};
  static constexpr std::array<std::string_view, 12> short_second{"one", "ones", "ever",  "over", "in", "as",
                                                                 "of",  "upon", "after", "by",   "to", "on"};
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
    if (e.word == w || (w.size() == e.word.size() + 1 && w.back() == 's' && starts_with(w, e.word))) return e.syllables;
  if (starts_with(w, "every") && n > 6) return 2 + syllables_by_rules(w.substr(5));       // "ev|ery|one"
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

}  // namespace ordo::eval::detail::readability
