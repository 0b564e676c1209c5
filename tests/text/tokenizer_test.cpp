// Parity of ordo::Tokenizer with Hugging Face `tokenizers` on committed fixtures
// (tests/text/make_tokenizer_fixtures.py), the GGUF-vocabulary path, streaming decode, and the
// errors malformed tokenizer files give.
#include <ordo/model/default_model.hpp>    // default_model_path
#include <ordo/model/tokenizer_files.hpp>  // write_gguf_tokenizer_files
#include <ordo/text/tokenizer.hpp>
#include <ordo/text/chat_template.hpp>  // read_chat_template
#include <ordo/io/gguf.hpp>             // gguf::TokenizerMetadata, gguf::File

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../test_support.hpp"  // skip_unless_installed

namespace {

const std::filesystem::path fixtures = ORDO_TEXT_FIXTURES;

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << p);
  return nlohmann::json::parse(in);
}

const nlohmann::json& all_cases() {
  static const nlohmann::json j = read_json(fixtures / "tokenizer_cases.json");
  return j;
}

// Loaded once: the file is 1.4 MB and several tests use it.
const ordo::Tokenizer& smollm2() {
  static const ordo::Tokenizer t = ordo::Tokenizer::from_file(fixtures / "smollm2_tokenizer.json");
  return t;
}

std::vector<ordo::TokenId> ids_of(const nlohmann::json& j) { return j.get<std::vector<ordo::TokenId>>(); }

// The GGUF form of a tokenizer.json: tokens by id (unused ids filled), "left right" merges,
// token types (3 control = special added token, 4 user-defined = other added token).
ordo::BpeVocabulary as_gguf_vocabulary(const nlohmann::json& tj, const nlohmann::json& family) {
  ordo::BpeVocabulary v;
  std::size_t n = 0;
  for (const auto& [tok, id] : tj["model"]["vocab"].items()) n = std::max<std::size_t>(n, id.get<std::size_t>() + 1);
  for (const auto& a : tj["added_tokens"]) n = std::max<std::size_t>(n, a["id"].get<std::size_t>() + 1);
  v.tokens.resize(n);
  v.token_types.assign(n, 1);
  std::vector<bool> used(n, false);
  for (const auto& [tok, id] : tj["model"]["vocab"].items()) {
    v.tokens[id.get<std::size_t>()] = tok;
    used[id.get<std::size_t>()] = true;
  }
  for (const auto& a : tj["added_tokens"]) {
    const auto id = a["id"].get<std::size_t>();
    v.tokens[id] = a["content"].get<std::string>();
    v.token_types[id] = a["special"].get<bool>() ? 3 : 4;
    used[id] = true;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!used[i]) {  // ids the cut-down fixtures left out
      v.tokens[i] = "<unused" + std::to_string(i) + ">";
      v.token_types[i] = 5;
    }
  }
  for (const auto& m : tj["model"]["merges"]) {
    v.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  v.pre = family["gguf_pre"].get<std::string>();
  v.bos_id = family["bos_id"].get<ordo::TokenId>();
  v.eos_id = family["eos_id"].get<ordo::TokenId>();
  return v;
}

// Built once per family: the vocabularies have 49k to 152k entries.
const ordo::Tokenizer& gguf_tokenizer(const std::string& family) {
  static std::map<std::string, ordo::Tokenizer> built;
  if (const auto it = built.find(family); it != built.end()) return it->second;
  const auto& f = all_cases()[family];
  const auto tj = read_json(fixtures / f["tokenizer"].get<std::string>());
  return built.emplace(family, ordo::Tokenizer::from_vocabulary(as_gguf_vocabulary(tj, f))).first->second;
}

void check_cases(const ordo::Tokenizer& tok, const nlohmann::json& family, bool gguf_path, bool round_trip = true) {
  int n = 0;
  for (const auto& c : family["cases"]) {
    const auto text = c["text"].get<std::string>();
    const auto want = ids_of(c["ids"]);
    CAPTURE(text);
    CHECK(tok.encode(text, {.add_special_tokens = false}) == want);
    const auto want_special = c.contains("ids_with_special") ? ids_of(c["ids_with_special"]) : want;
    CHECK(tok.encode(text) == want_special);
    if (!gguf_path) {
      CHECK(tok.decode(want) == c["decoded"].get<std::string>());
      CHECK(tok.decode(want, /*skip_special_tokens=*/true) == c["decoded_skip_special"].get<std::string>());
    }
    if (round_trip) CHECK(tok.decode(tok.encode(text, {.add_special_tokens = false})) == text);
    if (c.contains("prefix_decodes")) {
      const auto& prefixes = c["prefix_decodes"];
      for (std::size_t k = 0; k < prefixes.size(); ++k) {
        const std::vector<ordo::TokenId> head(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(k));
        CHECK(tok.decode(head) == prefixes[k].get<std::string>());
      }
    }
    // Streaming gives the same text as decoding at once.
    ordo::StreamDecoder stream(tok);
    std::string streamed;
    for (const auto id : want) streamed += stream.push(id);
    streamed += stream.finish();
    CHECK(streamed == c["decoded"].get<std::string>());
    ++n;
  }
  CHECK(n > 10);
}

std::string error_of(std::string_view json, const std::string& source = "bad/tokenizer.json") {
  try {
    (void)ordo::Tokenizer::from_json(json, source);
  } catch (const ordo::TokenizerError& e) {
    return e.what();
  }
  return "(no error)";
}

// A minimal valid byte-level tokenizer.json with room for one broken part.
std::string minimal_json(const std::string& vocab_extra = "", const std::string& merges = "[]",
                         const std::string& extra = "") {
  std::string vocab = "{";
  for (unsigned b = 0; b < 256; ++b) {
    const std::string sym = ordo::detail::byte_level::alphabet()[b];
    vocab += nlohmann::json(sym).dump() + ":" + std::to_string(b) + ",";
  }
  vocab += "\"ab\":256" + vocab_extra + "}";
  return R"({"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":)" + merges +
         R"(},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},)"
         R"("decoder":{"type":"ByteLevel"})" +
         extra + "}";
}

}  // namespace

TEST_CASE("tokenizer.json: encode and decode equal Hugging Face tokenizers on every fixture string") {
  for (const auto& family : {"smollm2", "llama3", "qwen2", "flags", "llama2", "llama2_metaspace"}) {
    CAPTURE(family);
    const auto& f = all_cases()[family];
    const auto tok = std::string(family) == "smollm2"
                         ? smollm2()
                         : ordo::Tokenizer::from_file(fixtures / f["tokenizer"].get<std::string>());
    // The "flags" tokenizer adds a prefix space and strips around some added tokens; Llama 2's
    // adds a "\u2581" to every piece and strips one space when decoding.
    const std::string name = family;
    check_cases(tok, f, /*gguf_path=*/false, /*round_trip=*/name == "smollm2" || name == "llama3" || name == "qwen2");
  }
}

TEST_CASE("GGUF vocabulary: tokenizer.ggml.pre selects the family's pre-tokenizer") {
  for (const auto& family : {"smollm2", "llama3", "qwen2"}) {
    CAPTURE(family);
    const auto& f = all_cases()[family];
    const auto& tok = gguf_tokenizer(family);
    CHECK(tok.bos_id() == f["bos_id"].get<ordo::TokenId>());
    CHECK(tok.eos_id() == f["eos_id"].get<ordo::TokenId>());
    CHECK(tok.ignores_merges() == (std::string(family) == "llama3"));
    check_cases(tok, f, /*gguf_path=*/true);
  }
}

// Llama 2's GGUF-style vocabulary (scores, no merges), cut down to the fixture strings' tokens.
static ordo::BpeVocabulary llama2_gguf_vocabulary() {
  const auto g = read_json(fixtures / "llama2_gguf_vocab.json");
  ordo::BpeVocabulary v;
  v.model = g["model"].get<std::string>();
  const auto n = g["size"].get<std::size_t>();
  v.tokens.resize(n);
  v.scores.assign(n, -1e9f);
  v.token_types.assign(n, 5);  // ids the cut-down fixture left out: unused
  for (std::size_t i = 0; i < n; ++i) v.tokens[i] = "<unused" + std::to_string(i) + ">";
  for (const auto& [id, tok] : g["tokens"].items()) v.tokens[std::stoul(id)] = tok.get<std::string>();
  for (const auto& [id, x] : g["scores"].items()) v.scores[std::stoul(id)] = x.get<float>();
  for (const auto& [id, t] : g["types"].items()) v.token_types[std::stoul(id)] = t.get<std::int32_t>();
  v.bos_id = g["bos_id"].get<ordo::TokenId>();
  v.eos_id = g["eos_id"].get<ordo::TokenId>();
  v.unk_id = g["unk_id"].get<ordo::TokenId>();
  return v;
}

TEST_CASE("GGUF SentencePiece vocabulary (\"llama\", scores, no merges): merges derived as transformers does") {
  auto v = llama2_gguf_vocabulary();
  const auto tok = ordo::Tokenizer::from_vocabulary(v, "llama2.gguf");
  CHECK_FALSE(tok.byte_level());
  check_cases(tok, all_cases()["llama2"], /*gguf_path=*/true, /*round_trip=*/false);
  v.scores.pop_back();
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_vocabulary(v, "llama2.gguf"),
                       doctest::Contains("llama2.gguf: tokenizer.ggml.scores has"), ordo::TokenizerError);
  v.model = "bert";
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_vocabulary(v, "bert.gguf"),
                       doctest::Contains("bert.gguf: tokenizer.ggml.model is \"bert\""), ordo::TokenizerError);
}

TEST_CASE("GGUF vocabulary as tokenizer.json: the written file encodes and decodes as Hugging Face does") {
  // What a model loaded from GGUF saves beside its weights (hf_tokenizer_json), read back as
  // tokenizer.json: every fixture string gives Hugging Face's ids, with and without special
  // tokens, and Hugging Face's decoding (which the GGUF path itself is not checked on).
  const auto check_family = [](const ordo::BpeVocabulary& v, const std::string& family) {
    CAPTURE(family);
    const auto j = ordo::Tokenizer::hf_tokenizer_json(v, family + ".gguf");
    const auto tok = ordo::Tokenizer::from_json(j.dump(), family + "/tokenizer.json");
    const auto gguf = ordo::Tokenizer::from_vocabulary(v);
    CHECK(tok.byte_level() == gguf.byte_level());
    CHECK(tok.ignores_merges() == gguf.ignores_merges());
    CHECK(tok.vocab_size() == gguf.vocab_size());
    CHECK(tok.added_tokens().size() == gguf.added_tokens().size());
    check_cases(tok, all_cases()[family], /*gguf_path=*/false, /*round_trip=*/family != "llama2");
    // The config beside it names the special tokens by spelling.
    const auto config = ordo::Tokenizer::hf_tokenizer_config(v, "{{ x }}", 4096);
    CHECK(config["bos_token"] == v.tokens[static_cast<std::size_t>(*v.bos_id)]);
    CHECK(config["eos_token"] == v.tokens[static_cast<std::size_t>(*v.eos_id)]);
    CHECK(config["chat_template"] == "{{ x }}");
    CHECK(config["add_bos_token"] == (tok.encode("a") != tok.encode("a", {.add_special_tokens = false})));
  };
  for (const auto& family : {"smollm2", "llama3", "qwen2"}) {
    const auto& f = all_cases()[family];
    check_family(as_gguf_vocabulary(read_json(fixtures / f["tokenizer"].get<std::string>()), f), family);
  }
  check_family(llama2_gguf_vocabulary(), "llama2");
  // A vocabulary ordo cannot load is refused here too, naming its source.
  auto bad = llama2_gguf_vocabulary();
  bad.model = "bert";
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::hf_tokenizer_json(bad, "bert.gguf"),
                       doctest::Contains("bert.gguf: tokenizer.ggml.model"), ordo::TokenizerError);
}

TEST_CASE("GGUF vocabulary: the pre-tokenizer decides, so a wrong one changes the ids") {
  // Guards the test above against passing for any pre name: SmolLM2 splits digits one by one.
  const auto& f = all_cases()["smollm2"];
  const auto tj = read_json(fixtures / "smollm2_tokenizer.json");
  auto v = as_gguf_vocabulary(tj, f);
  const auto& smollm = gguf_tokenizer("smollm2");
  v.pre = "llama-bpe";
  const auto llama = ordo::Tokenizer::from_vocabulary(v);
  CHECK(smollm.encode("a\n\nb", {.add_special_tokens = false}) !=
        llama.encode("a\n\nb", {.add_special_tokens = false}));
}

TEST_CASE("special tokens: matched in the text unless parse_special is off; skipped on request") {
  const auto& tok = smollm2();
  const auto im_start = tok.token_id("<|im_start|>");
  REQUIRE(im_start);
  CHECK(tok.is_special(*im_start));
  const auto ids = tok.encode("<|im_start|>user");
  REQUIRE(ids.size() >= 2);
  CHECK(ids.front() == *im_start);
  const auto spelled = tok.encode("<|im_start|>user", {.parse_special = false});
  CHECK(std::find(spelled.begin(), spelled.end(), *im_start) == spelled.end());
  CHECK(tok.decode(spelled) == "<|im_start|>user");
  CHECK(tok.decode(ids, /*skip_special_tokens=*/true) == "user");
}

TEST_CASE("decode: partial UTF-8 becomes U+FFFD; StreamDecoder waits for the rest of a character") {
  const auto& tok = smollm2();
  // Byte tokens: each byte of "€" (E2 82 AC) alone.
  std::vector<ordo::TokenId> bytes;
  for (const unsigned char b : std::string("\xE2\x82\xAC")) {
    const auto id = tok.token_id(ordo::detail::byte_level::alphabet()[b]);
    REQUIRE(id);
    bytes.push_back(*id);
  }
  CHECK(tok.decode(bytes) == "\xE2\x82\xAC");
  CHECK(tok.decode({bytes[0], bytes[1]}) == "\xEF\xBF\xBD");              // truncated: one U+FFFD
  CHECK(tok.decode({bytes[1]}) == "\xEF\xBF\xBD");                        // stray continuation byte
  CHECK(tok.decode_bytes({bytes.data(), 2}) == std::string("\xE2\x82"));  // raw bytes, unchanged
  ordo::StreamDecoder stream(tok);
  CHECK(stream.push(bytes[0]).empty());
  CHECK(stream.push(bytes[1]).empty());
  CHECK(stream.push(bytes[2]) == "\xE2\x82\xAC");
  CHECK(stream.push(bytes[0]).empty());
  CHECK(stream.finish() == "\xEF\xBF\xBD");
  // Ids outside the vocabulary are skipped, as Hugging Face does.
  CHECK(tok.decode({-1, 1'000'000}).empty());
}

TEST_CASE("encode rejects text that is not UTF-8") {
  const auto& tok = smollm2();
  CHECK_THROWS_WITH_AS(tok.encode("ok \xC3("), doctest::Contains("not valid UTF-8 (byte 3)"), std::invalid_argument);
}

TEST_CASE("malformed tokenizer.json: the error names the file and the problem") {
  CHECK(error_of(minimal_json()) == "(no error)");
  CHECK(error_of(minimal_json("", R"([["a","b"]])")) == "(no error)");
  CHECK(error_of(minimal_json("", R"(["a b"])")) == "(no error)");

  const auto has = [](const std::string& message, std::initializer_list<const char*> parts) {
    CAPTURE(message);
    CHECK(message.find("bad/tokenizer.json: ") == 0);
    for (const char* p : parts) CHECK(message.find(p) != std::string::npos);
  };
  has(error_of("{\"model\": "), {"not valid JSON"});
  has(error_of("[1, 2]"), {"top level must be a JSON object"});
  has(error_of("{}"), {"has no \"model\""});
  has(error_of(R"({"model":{"type":"WordPiece","vocab":{}}})"), {"model.type", "WordPiece", "BPE"});
  has(error_of(minimal_json(R"(,"x":"seven")")), {"model.vocab[\"x\"]", "integer id"});
  has(error_of(minimal_json(R"(,"x":-4)")), {"model.vocab[\"x\"]", "outside"});
  has(error_of(minimal_json(R"(,"x":99999999999)")), {"outside"});
  has(error_of(minimal_json(R"(,"x":5)")), {"id 5", "given to both"});
  has(error_of(minimal_json("", R"(["a"])")), {"model.merges[0]", "left right"});
  has(error_of(minimal_json("", R"(["a zz"])")), {"merge 0", "\"zz\" is not in the vocabulary"});
  has(error_of(minimal_json("", R"(["a q"])")), {"merge 0", "merged token \"aq\""});
  has(error_of(minimal_json("", R"(["a b", "b a"])")), {"merge 1", "merged token \"ba\""});
  has(error_of(minimal_json("", R"([["a"]])")), {"model.merges[0]"});
  has(error_of(minimal_json("", "{}")), {"model.merges must be an array"});
  has(error_of(minimal_json("", "[]", R"(,"added_tokens":[{"id":3}])")), {"added_tokens[0]", "content"});
  has(error_of(minimal_json("", "[]", R"(,"added_tokens":[{"id":3,"content":"<s>","special":"yes"}])")),
      {"added_tokens[0].special", "true or false"});
  has(error_of(minimal_json("", "[]", R"(,"normalizer":{"type":"Lowercase"})")), {"normalizer.type", "Lowercase"});
  has(error_of(minimal_json(
          "", "[]",
          R"(,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{}})")),
      {"special_tokens", "<s>"});

  std::string no_decoder = minimal_json();
  const std::string decoder_part = R"(,"decoder":{"type":"ByteLevel"})";
  no_decoder.replace(no_decoder.find(decoder_part), decoder_part.size(), "");
  has(error_of(no_decoder), {"no decoder"});

  std::string whitespace = minimal_json();
  const std::string byte_level_part = R"("type":"ByteLevel","add_prefix_space")";
  whitespace.replace(whitespace.find(byte_level_part), byte_level_part.size(),
                     R"("type":"WhitespaceSplit","add_prefix_space")");
  has(error_of(whitespace), {"pre_tokenizer.type", "WhitespaceSplit"});

  std::string fallback = minimal_json();
  fallback.replace(fallback.find(R"("type":"BPE")"), 12, R"("type":"BPE","byte_fallback":true)");
  has(error_of(fallback), {"byte_fallback is true in a byte-level tokenizer"});

  std::string bad_regex = minimal_json();
  bad_regex.replace(
      bad_regex.find(R"({"type":"ByteLevel","add_prefix_space")"), 0,
      R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(["},"behavior":"Isolated"},)");
  bad_regex.replace(bad_regex.find(R"(,"decoder")"), 0, "]}");
  has(error_of(bad_regex), {"pre_tokenizer.pretokenizers[0].pattern.Regex", "does not compile"});

  std::string not_byte_level = minimal_json();
  not_byte_level.replace(not_byte_level.find(R"({"type":"ByteLevel","add_prefix_space")"), 0,
                         R"({"type":"Digits","individual_digits":true},"unused":)");
  has(error_of(not_byte_level), {"no ByteLevel step and model.byte_fallback is false"});
}

TEST_CASE("malformed files: missing and broken files are named") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto missing = dir / "ordo-no-such-tokenizer.json";
  std::filesystem::remove(missing);
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_file(missing),
                       doctest::Contains("ordo-no-such-tokenizer.json: cannot open"), ordo::TokenizerError);
  const auto broken = dir / "ordo-broken-tokenizer.json";
  {
    std::ofstream out(broken);
    out << minimal_json().substr(0, 500);
  }
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_file(broken),
                       doctest::Contains("ordo-broken-tokenizer.json: not valid JSON"), ordo::TokenizerError);
  std::filesystem::remove(broken);
}

TEST_CASE("GGUF vocabulary errors name the metadata key") {
  ordo::BpeVocabulary v;
  for (unsigned b = 0; b < 256; ++b) v.tokens.push_back(ordo::detail::byte_level::alphabet()[b]);
  v.pre = "smollm";
  CHECK_NOTHROW((void)ordo::Tokenizer::from_vocabulary(v));
  const auto message = [&v] {
    try {
      (void)ordo::Tokenizer::from_vocabulary(v, "model.gguf");
    } catch (const ordo::TokenizerError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  v.pre = "tekken";
  CHECK(message().find("model.gguf: tokenizer.ggml.pre \"tekken\"") == 0);
  CHECK(message().find("llama-bpe") != std::string::npos);  // lists the known names
  v.pre = "qwen2";
  v.merges = {"a"};
  CHECK(message().find("tokenizer.ggml.merges[0]") != std::string::npos);
  v.merges = {"a zz"};
  CHECK(message().find("\"zz\" is not in the vocabulary") != std::string::npos);
  v.merges.clear();
  v.token_types = {1, 2, 3};
  CHECK(message().find("tokenizer.ggml.token_type has 3 entries for 256 tokens") != std::string::npos);
  v.token_types.clear();
  v.bos_id = 300;
  CHECK(message().find("tokenizer.ggml.bos_token_id = 300") != std::string::npos);
}

TEST_CASE("Hugging Face directory: tokenizer_config.json gives BOS/EOS/PAD and the chat template") {
  const auto dir = std::filesystem::temp_directory_path() / "ordo-tokenizer-dir-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixtures / "flags_tokenizer.json", dir / "tokenizer.json");
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}";
  const auto write_config = [&](const nlohmann::json& config) {
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
  };
  write_config(
      {{"bos_token", {{"content", "<|x|>"}, {"lstrip", false}}},
       {"eos_token", "[SEP]"},
       {"pad_token", nullptr},
       {"chat_template", {{{"name", "tool_use"}, {"template", "x"}}, {{"name", "default"}, {"template", chatml}}}}});
  const auto tok = ordo::Tokenizer::from_directory(dir);
  CHECK(tok.bos_id() == tok.token_id("<|x|>"));
  CHECK(tok.eos_id() == tok.token_id("[SEP]"));
  CHECK(tok.eos_id().has_value());
  CHECK_FALSE(tok.pad_id().has_value());
  CHECK(ordo::read_chat_template(dir) == chatml);

  std::ofstream(dir / "chat_template.jinja") << "from the jinja file";
  CHECK(ordo::read_chat_template(dir) == "from the jinja file");
  std::filesystem::remove(dir / "chat_template.jinja");

  write_config({{"eos_token", "<nope>"}});
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_directory(dir),
                       doctest::Contains("tokenizer_config.json: eos_token \"<nope>\" is not a token"),
                       ordo::TokenizerError);
  CHECK_FALSE(ordo::read_chat_template(dir).has_value());
  write_config({{"chat_template", 42}});
  CHECK_THROWS_AS((void)ordo::read_chat_template(dir), ordo::ChatTemplateError);
  std::filesystem::remove(dir / "tokenizer.json");
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_directory(dir), doctest::Contains("tokenizer.json: cannot open"),
                       ordo::TokenizerError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("GGUF metadata (ordo::io::gguf::TokenizerMetadata) builds the same tokenizer as BpeVocabulary") {
  // A small Llama-3-style vocabulary: the 256 byte symbols, two merges, BOS and an end-of-turn token.
  ordo::BpeVocabulary v;
  for (unsigned b = 0; b < 256; ++b) v.tokens.push_back(ordo::detail::byte_level::alphabet()[b]);
  v.tokens.insert(v.tokens.end(), {"ab",
                                   "\xC4\xA0"
                                   "ab",
                                   "<|begin_of_text|>", "<|eot_id|>"});
  v.merges = {"a b", "\xC4\xA0 ab"};
  v.token_types.assign(v.tokens.size(), 1);
  v.token_types[258] = v.token_types[259] = 3;
  v.pre = "llama-bpe";
  v.bos_id = 258;
  v.eos_id = 259;
  ordo::io::gguf::TokenizerMetadata m;
  m.model = "gpt2";
  m.pre = v.pre;
  m.tokens.assign(v.tokens.begin(), v.tokens.end());
  m.merges.assign(v.merges.begin(), v.merges.end());
  m.token_types = v.token_types;
  m.bos_id = 258;
  m.eos_id = 259;
  const auto from_meta = ordo::Tokenizer::from_gguf_metadata(m, "llama3.gguf");
  const auto from_vocab = ordo::Tokenizer::from_vocabulary(v);
  const std::string text = "ab ab<|eot_id|>abab 123";
  CHECK(from_meta.encode(text) == from_vocab.encode(text));
  CHECK(from_meta.encode(text).front() == 258);  // llama-bpe adds BOS by default
  CHECK(from_meta.encode(" ab", {.add_special_tokens = false}) == std::vector<ordo::TokenId>{257});
  CHECK(from_meta.eos_id() == 259);
  m.add_bos = false;  // tokenizer.ggml.add_bos_token overrides the family's default
  CHECK(ordo::Tokenizer::from_gguf_metadata(m).encode(text) == from_vocab.encode(text, {.add_special_tokens = false}));
  m.model = "t5";
  CHECK_THROWS_WITH_AS((void)ordo::Tokenizer::from_gguf_metadata(m, "t5.gguf"),
                       doctest::Contains("t5.gguf: tokenizer.ggml.model is \"t5\""), ordo::TokenizerError);
}

namespace {
/// $ORDO_DEFAULT_MODEL, else the embedded default model in the source tree (`./ordo model`).
std::string default_model_path() { return ordo::model::default_model_path().string(); }
}  // namespace

// The suite "model" (ctest text.tokenizer.model) needs the default model and skips without it.
TEST_CASE("the default model's GGUF: tokenizer and chat template match the fixtures" * doctest::test_suite("model")) {
  const std::string path = default_model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  const ordo::io::gguf::File file(path);
  const auto meta = file.tokenizer();
  const auto tok = ordo::Tokenizer::from_gguf_metadata(meta, path);
  check_cases(tok, all_cases()["smollm2"], /*gguf_path=*/true);
  const auto chat = ordo::ChatTemplate::from_jinja(meta.chat_template);
  CHECK(chat.default_system() == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

// The files ordo saves beside a model from GGUF (tokenizer.json, tokenizer_config.json,
// chat_template.jinja), against what Hugging Face `tokenizers` and transformers made of the same
// files (fixtures/saved_tokenizer_hf.json, make_saved_tokenizer_fixture.py: 213 texts on which
// tokenizers, transformers and ordo's GGUF tokenizer agreed).
TEST_CASE("the default model's GGUF saved as tokenizer files: Hugging Face's ids, special tokens, chat" *
          doctest::test_suite("model")) {
  const std::string path = default_model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  const auto dir = std::filesystem::temp_directory_path() / "ordo-saved-tokenizer-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ordo::model::write_gguf_tokenizer_files(path, dir);
  const auto saved = ordo::Tokenizer::from_directory(dir);
  const ordo::io::gguf::File file(path);
  const auto gguf = ordo::Tokenizer::from_gguf_metadata(file.tokenizer(), path);
  const auto hf = read_json(fixtures / "saved_tokenizer_hf.json");
  int n = 0;
  for (const auto& c : hf["cases"]) {
    const auto text = c["text"].get<std::string>();
    CAPTURE(text);
    const auto want = ids_of(c["ids"]);
    CHECK(saved.encode(text) == want);
    CHECK(gguf.encode(text) == want);
    CHECK(saved.decode(want) == text);
    ++n;
  }
  CHECK(n > 200);
  const auto spelling = [&](std::optional<ordo::TokenId> id) { return id ? saved.token_text(*id) : std::string(); };
  CHECK(spelling(saved.eos_id()) == hf["eos_token"].get<std::string>());
  CHECK(spelling(saved.bos_id()) == hf["bos_token"].get<std::string>());
  CHECK(spelling(saved.pad_id()) == hf["pad_token"].get<std::string>());
  const auto jinja = ordo::read_chat_template(dir);
  REQUIRE(jinja);
  const auto chat = ordo::ChatTemplate::from_jinja(*jinja);
  CHECK(chat.render({{"user", "What is 12 + 30?"}, {"assistant", "It is 42."}}, false) ==
        hf["chat_rendered"].get<std::string>());
  std::filesystem::remove_all(dir);
}

TEST_CASE("tokenizer.json as a GGUF vocabulary (GGUF export): the same ids, the pre-tokenizer llama.cpp names") {
  const std::map<std::string, std::string> expected_pre = {
      {"smollm2", "smollm"}, {"llama3", "llama-bpe"}, {"qwen2", "qwen2"}};
  for (const auto& [family, pre] : expected_pre) {
    CAPTURE(family);
    const auto& f = all_cases()[family];
    const auto tok = family == "smollm2" ? smollm2() : ordo::Tokenizer::from_file(fixtures / f["tokenizer"].get<std::string>());
    const auto v = tok.gguf_vocabulary();
    CHECK(v.model == "gpt2");
    CHECK(v.pre == pre);
    CHECK(v.tokens.size() == tok.vocab_size());
    CHECK(*v.add_bos == (family == "llama3"));  // Llama 3's post-processor adds BOS
    if (tok.bos_id()) CHECK(v.bos_id == tok.bos_id());
    if (family == "llama3") CHECK(v.bos_id == f["bos_id"].get<ordo::TokenId>());
    const auto back = ordo::Tokenizer::from_vocabulary(v);
    check_cases(back, f, /*gguf_path=*/true);
    for (const auto& a : tok.added_tokens())
      CHECK(v.token_types[static_cast<std::size_t>(a.id)] == (a.special ? 3 : 4));
  }
  // SentencePiece-style (Llama 2): not written, and the message says why.
  const auto llama2 = ordo::Tokenizer::from_file(fixtures / "llama2_tokenizer.json");
  CHECK_THROWS_WITH_AS(llama2.gguf_vocabulary(), doctest::Contains("not byte-level"), ordo::TokenizerError);
}
