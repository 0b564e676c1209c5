// Flesch reading ease (ordo/eval/readability.hpp): the formula, sentence / word / syllable
// rules and edge cases, and agreement with textstat and the CMU pronouncing dictionary on the
// fixtures made by fixtures/make_readability_fixture.py.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <ordo/eval/readability.hpp>

#include "../test_support.hpp"

using ordo::eval::count_text;
using ordo::eval::english_syllables;
using ordo::eval::flesch_reading_ease;

namespace {

nlohmann::json read_fixture(const std::string& name) {
  const std::string path = std::string(ORDO_EVAL_FIXTURES) + "/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("the Flesch formula on counts") {
  // 2 sentences, 20 words, 30 syllables: 206.835 - 1.015 * 10 - 84.6 * 1.5 = 69.785
  CHECK(flesch_reading_ease(ordo::eval::text_counts{2, 20, 30}) == doctest::Approx(69.785).epsilon(1e-12));
  // "The cat sat on the mat." : 1 sentence, 6 words, 6 syllables.
  CHECK(flesch_reading_ease("The cat sat on the mat.") == doctest::Approx(206.835 - 1.015 * 6 - 84.6));
  const auto c = count_text("The cat sat on the mat. It was happy.");
  CHECK(c.sentences == 2);
  CHECK(c.words == 9);
  CHECK(c.syllables == 10);
  CHECK(flesch_reading_ease("The cat sat on the mat. It was happy.") ==
        doctest::Approx(206.835 - 1.015 * 4.5 - 84.6 * 10.0 / 9.0));
}

TEST_CASE("texts without words are an error; without a terminator one sentence") {
  CHECK(error_of([] { flesch_reading_ease(""); }) == "ordo::eval::flesch_reading_ease: the text has no words");
  CHECK(error_of([] { flesch_reading_ease(" \n\t "); }).find("no words") != std::string::npos);
  CHECK(error_of([] { flesch_reading_ease("... !? -- ** ##"); }).find("no words") != std::string::npos);
  CHECK(error_of([] { ordo::eval::readability_score(""); }).find("no words") != std::string::npos);
  const auto empty = count_text("");
  CHECK((empty.sentences == 0 && empty.words == 0 && empty.syllables == 0));
  const auto c = count_text("a model that was quantized too early rambles on without any punctuation");
  CHECK(c.sentences == 1);
  CHECK(c.words == 12);
  CHECK(count_text("Hello").sentences == 1);
  CHECK(count_text("Hello!!! Are you there??").sentences == 2);
}

TEST_CASE("readability_score maps reading ease to [0, 1]") {
  CHECK(ordo::eval::readability_score("The cat sat on the mat.") == 1.0);  // FRE 116
  const char* hard = "Epistemological skepticism questions whether knowledge of an external world is possible.";
  CHECK(flesch_reading_ease(hard) < 0);
  CHECK(ordo::eval::readability_score(hard) == 0.0);
  const char* mid = "The capital of France is Paris. It is known for its museums and its food.";
  CHECK(ordo::eval::readability_score(mid) == doctest::Approx(flesch_reading_ease(mid) / 100));
}

TEST_CASE("sentence boundaries: abbreviations, numbers, initials, ellipses, quotes") {
  CHECK(count_text("Dr. Smith arrived at 3.14 p.m. He said hello. Then he left!").sentences == 3);
  CHECK(count_text("Mr. and Mrs. Jones met Prof. Lee vs. Dr. Who.").sentences == 1);
  CHECK(count_text("Use a method, e.g. pruning, i.e. removing neurons.").sentences == 1);
  CHECK(count_text("See No. 5 and Fig. 2 for details.").sentences == 1);
  CHECK(count_text("The answer is no. The capital is Paris.").sentences == 2);  // "no." before a word
  CHECK(count_text("J. K. Rowling wrote it.").sentences == 1);
  CHECK(count_text("It costs approx. five dollars, etc. and more.").sentences == 1);
  CHECK(count_text("Wait... What happened?").sentences == 2);
  CHECK(count_text("Wait... then it stopped.").sentences == 1);
  // '?' and '!' always end a sentence, also inside quotes: "she asked" is one of its own.
  CHECK(count_text("\"Where are you going?\" she asked. \"Home.\" He left.").sentences == 4);
  CHECK(count_text("Version 3.14 of ordo.hpp works").sentences == 1);  // dots inside words
  CHECK(count_text("It works (mostly). Really.").sentences == 2);
}

TEST_CASE("sentence boundaries: lines, lists and headings") {
  CHECK(count_text("# Summary\nPruning first is best").sentences == 2);
  CHECK(count_text("Three tips:\n\n- sleep early\n- avoid screens\n- keep it dark").sentences == 4);
  CHECK(count_text("1. First item\n2. Second item\n3. Third item").sentences == 3);
  CHECK(count_text("1. First item\n2. Second item\n3. Third item").words == 6);  // markers are not words
  CHECK(count_text("a line\nthat goes on").sentences == 1);
  CHECK(count_text("a paragraph\n\nanother one").sentences == 2);
}

TEST_CASE("words: dashes split, hyphens and contractions do not") {
  CHECK(count_text("well-known state-of-the-art ideas").words == 3);
  CHECK(count_text("pruning\xE2\x80\x94then quantizing -- works").words == 4);
  CHECK(count_text("They're here; I've seen it, didn't you?").words == 7);
  CHECK(count_text("\xE2\x80\x9CQuoted\xE2\x80\x9D (words) [here] {too} *bold* `code`").words == 6);
  CHECK(count_text("- * # \xE2\x80\xA2 : ; , .").words == 0);
}

TEST_CASE("syllables: vowel groups and their corrections") {
  struct Case {
    const char* word;
    std::size_t syllables;
  };
  const Case cases[] = {
      {"cat", 1},       {"the", 1},      {"be", 1},      {"make", 1},      {"whole", 1},     {"table", 2},
      {"little", 2},    {"people", 2},   {"style", 1},   {"makes", 1},     {"places", 2},    {"boxes", 2},
      {"watches", 2},   {"tables", 2},   {"jumped", 1},  {"wanted", 2},    {"needed", 2},    {"hundred", 2},
      {"troubled", 2},  {"called", 1},   {"lately", 2},  {"movement", 2},  {"careful", 2},   {"management", 3},
      {"happy", 2},     {"rhythm", 2},   {"tourism", 3}, {"yes", 1},       {"they", 1},      {"player", 2},
      {"trying", 2},    {"anyone", 3},   {"going", 2},   {"being", 2},     {"nation", 2},    {"special", 2},
      {"delicious", 3}, {"various", 3},  {"ratio", 3},   {"video", 3},     {"create", 2},    {"area", 3},
      {"quiet", 2},     {"fluent", 2},   {"actual", 3},  {"quality", 3},   {"language", 2},  {"unique", 2},
      {"league", 1},    {"fire", 2},     {"require", 3}, {"entirely", 4},  {"sometimes", 2}, {"therefore", 2},
      {"wherever", 3},  {"moreover", 3}, {"awesome", 2}, {"basically", 3}, {"familiar", 3},  {"million", 2},
      {"opinion", 3},   {"European", 4}, {"ocean", 2},   {"museum", 3},    {"poet", 2},      {"chaos", 2},
      {"beautiful", 3}, {"bye", 1},      {"eye", 1},     {"acre", 2},
  };
  for (const auto& c : cases) CHECK_MESSAGE(english_syllables(c.word) == c.syllables, c.word);
  CHECK(english_syllables("Table") == english_syllables("table"));
  CHECK(english_syllables("...") == 0);
  CHECK(english_syllables("(hello),") == 2);
}

TEST_CASE("syllables: contractions, compounds, acronyms, accents, other scripts") {
  CHECK(english_syllables("didn't") == 2);
  CHECK(english_syllables("don't") == 1);
  CHECK(english_syllables("can\xE2\x80\x99t") == 1);  // curly apostrophe
  CHECK(english_syllables("would've") == 2);
  CHECK(english_syllables("I've") == 1);
  CHECK(english_syllables("it'll") == 2);
  CHECK(english_syllables("they're") == 1);
  CHECK(english_syllables("James's") == 2);
  CHECK(english_syllables("well-known") == 2);
  CHECK(english_syllables("state-of-the-art") == 4);
  CHECK(english_syllables("and/or") == 2);
  CHECK(english_syllables("LLM") == 3);
  CHECK(english_syllables("GPU") == 3);
  CHECK(english_syllables("NASA") == 2);
  CHECK(english_syllables("IT") == 1);  // a common word in capitals is read
  CHECK(english_syllables("WWW") == 9);
  CHECK(english_syllables("hmm") == 1);
  CHECK(english_syllables("Mr.") == 2);
  CHECK(english_syllables("etc.") == 4);
  CHECK(english_syllables("caf\xC3\xA9") == 2);               // café
  CHECK(english_syllables("na\xC3\xAFve") == 2);              // naïve
  CHECK(english_syllables("r\xC3\xB4le") == 1);               // rôle
  CHECK(english_syllables("\xE6\x97\xA5\xE6\x9C\xAC") == 1);  // 日本: one run, one syllable
  CHECK(count_text("\xE6\x97\xA5\xE6\x9C\xAC is Japan.").words == 3);
  CHECK(count_text("great \xF0\x9F\x98\x80 work").words == 2);  // an emoji is not a word
  CHECK(count_text("bad \xFF\xFE bytes").words == 2);           // invalid UTF-8 is not a word
}

TEST_CASE("syllables: numbers as spoken") {
  CHECK(english_syllables("0") == 2);                     // zero
  CHECK(english_syllables("7") == 2);                     // seven
  CHECK(english_syllables("11") == 3);                    // eleven
  CHECK(english_syllables("42") == 3);                    // forty-two
  CHECK(english_syllables("70") == 3);                    // seventy
  CHECK(english_syllables("350") == 5);                   // three hundred fifty
  CHECK(english_syllables("1,000") == 3);                 // one thousand
  CHECK(english_syllables("1,000,000") == 3);             // one million
  CHECK(english_syllables("1918") == 4);                  // nineteen eighteen
  CHECK(english_syllables("1905") == 4);                  // nineteen oh five
  CHECK(english_syllables("1900") == 4);                  // nineteen hundred
  CHECK(english_syllables("2005") == 4);                  // two thousand five
  CHECK(english_syllables("2024") == 5);                  // twenty twenty-four
  CHECK(english_syllables("3.14") == 4);                  // three point one four
  CHECK(english_syllables(".5") == 2);                    // point five
  CHECK(english_syllables("5%") == 3);                    // five percent
  CHECK(english_syllables("$5") == 3);                    // five dollars
  CHECK(english_syllables("21st") == 3);                  // twenty-first
  CHECK(english_syllables("2nd") == 2);                   // second
  CHECK(english_syllables("20th") == 3);                  // twentieth
  CHECK(english_syllables("007") == 6);                   // oh oh seven, read digit by digit
  CHECK(english_syllables("3B") == 2);                    // three B
  CHECK(english_syllables("GPT-4") == 4);                 // G P T four
  CHECK(english_syllables("10-15") == 3);                 // ten, fifteen
  CHECK(english_syllables("1234567890123456789") == 22);  // too long: digit by digit
}

TEST_CASE("agreement with textstat 0.7.13 on the fixture texts") {
  const auto fixture = read_fixture("readability_cases.json");
  const auto& cases = fixture.at("cases");
  REQUIRE(cases.size() >= 30);
  // Texts where ordo counts differently by design, not by its syllable estimate: numerals
  // (textstat gives "1889" one syllable), abbreviations and short or quoted sentences
  // (textstat drops sentences of at most two words and splits at every '.').
  const std::vector<std::string> by_design = {"capital",       "recipe",        "numbers",
                                              "abbreviations", "markdown_list", "dialogue",
                                              "short_answer",  "sotu_2024",     "dashes_semicolons"};
  double sum_all = 0, sum_rest = 0, max_rest = 0;
  std::size_t n_rest = 0, same_words = 0, same_syllables = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    const std::string text = c.at("text");
    const double ref = c.at("flesch_reading_ease");
    const auto counts = count_text(text);
    const double diff = std::abs(flesch_reading_ease(counts) - ref);
    sum_all += diff;
    const bool excused = std::find(by_design.begin(), by_design.end(), name) != by_design.end();
    if (!excused) {
      sum_rest += diff;
      max_rest = std::max(max_rest, diff);
      ++n_rest;
      CHECK_MESSAGE(diff < 4.0, name << ": ordo " << flesch_reading_ease(counts) << ", textstat " << ref);
      CHECK_MESSAGE(counts.sentences == c.at("sentences").get<std::size_t>(), name);
    }
    same_words += counts.words == c.at("words").get<std::size_t>();
    same_syllables += counts.syllables == c.at("syllables").get<std::size_t>();
  }
  const double mean_all = sum_all / static_cast<double>(cases.size());
  const double mean_rest = sum_rest / static_cast<double>(n_rest);
  MESSAGE(
      "FRE |ordo - textstat|: mean " << mean_all << " over " << cases.size() << " texts; mean " << mean_rest << ", max "
                                     << max_rest << " over the " << n_rest
                                     << " texts without numerals, abbreviations or short sentences; same word count in "
                                     << same_words << ", same syllable count in " << same_syllables);
  // Measured: mean 3.03 (all 33), 0.41 and max 3.76 (the other 24); words equal in 32 texts,
  // syllables in 23.
  CHECK(mean_all < 3.5);
  CHECK(mean_rest < 0.8);
  CHECK(same_words >= cases.size() - 1);
  CHECK(same_syllables >= 20);
}

TEST_CASE("syllables of frequent words against the CMU pronouncing dictionary") {
  const auto fixture = read_fixture("syllable_words.json");
  const auto& words = fixture.at("words");
  REQUIRE(words.size() == 3000);
  double tokens = 0, tokens_equal = 0;
  std::size_t types_equal = 0;
  for (const auto& w : words) {
    const std::string word = w.at(0);
    const double frequency = w.at(1);
    const std::size_t cmu = w.at(2);
    tokens += frequency;
    if (english_syllables(word) == cmu) {
      tokens_equal += frequency;
      ++types_equal;
    }
  }
  const double by_token = tokens_equal / tokens;
  const double by_type = static_cast<double>(types_equal) / static_cast<double>(words.size());
  MESSAGE("syllables equal to CMU's first pronunciation: "
          << by_type * 100 << "% of the 3000 words, " << by_token * 100
          << "% of their occurrences in the State of the Union corpus");
  // Measured: 99.4 % of the words, 99.85 % of the occurrences.
  CHECK(by_type > 0.98);
  CHECK(by_token > 0.995);
}
