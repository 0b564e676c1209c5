// ordo/paper/resume.hpp — what makes a killed study resumable: its state under OUT/state/ and
// the stage outputs it keeps under OUT/cache/.
//
//   OUT/state/run.json              the options that decide the figures (a resumed run must match)
//   OUT/state/rows/<chain>.json     one per finished configuration: its result row
//   OUT/state/stages.json           seconds of each stage application finished, by chain
//   OUT/state/measurements/<name>.json  a tool's own figures, kept as measured (ordo-prune-scan)
//   OUT/state/lock                  held (flock) while a study runs in OUT
//   OUT/cache/models/<NN>-<chain>/  stage outputs that later configurations need, as saved
//                                   checkpoints (save_hf, or save_nf4 for NF4 models)
//   OUT/cache/train/                training checkpoints of the stage in progress
//
//   ordo::study::study_store store(out, where, {.keep_cache = false});
//   store.begin(fingerprint, /*fresh=*/false);  // before loading anything; true: resumed
//   store.use_base(base);                       // whose tokenizer cached models get back
//   execute(pipelines, base, context, sink, opts, observer, store);  // sink calls store.record(row)
//   store.finish();  // removes state/ and, unless keep_cache, cache/
//
// Every file is written atomically (temporary, fsync, rename), so a kill at any moment leaves
// either the old or the new file. The cache holds at most the executor's in-memory bound of
// models (study_options::max_cached_models) plus one training checkpoint.
//
// Data-parallel (store_options::group): rank 0 alone locks and writes OUT; the other ranks read
// its state once it has opened it (OUT must be a directory every rank sees: one machine, or a
// shared filesystem; checked at begin), and take a cached model when rank 0 does, reading the
// same directory.
#pragma once

#include <fcntl.h>     // open
#include <sys/file.h>  // flock
#include <unistd.h>    // close

#include <algorithm>    // std::sort
#include <cstdio>       // std::snprintf
#include <filesystem>   // std::filesystem
#include <fstream>      // std::ifstream
#include <map>          // std::map
#include <memory>       // std::shared_ptr
#include <optional>     // std::optional
#include <sstream>      // std::stringstream
#include <system_error> // std::error_code
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <nlohmann/json.hpp>

#include <ordo/io/atomic_directory.hpp>    // write_text
#include <ordo/model/checkpoint.hpp>       // save_hf, save_nf4, load_nf4
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/device.hpp>           // placement
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/paper/report.hpp>           // result_row, to_json, row_from_json
#include <ordo/pipeline/events.hpp>        // pipeline_event
#include <ordo/stages/budget.hpp>          // Budget
#include <ordo/study/executor.hpp>         // prefix_key
#include <ordo/train/distributed.hpp>      // dist::group

namespace ordo::study {

/// What identifies an input file or directory for a resumed run: its path, and each file's size
/// and modification time (a model replaced in place is another model); null for an empty path.
inline nlohmann::json file_identity(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return nullptr;
  std::error_code ec;
  auto stamp = [&](const fs::path& p) {
    const auto t = fs::last_write_time(p, ec).time_since_epoch().count();
    return nlohmann::json::array({fs::file_size(p, ec), static_cast<long long>(t)});
  };
  nlohmann::json j = {{"path", fs::absolute(path, ec).lexically_normal().string()}};
  if (fs::is_regular_file(path, ec)) {
    j["file"] = stamp(path);
  } else if (fs::is_directory(path, ec)) {
    nlohmann::json files = nlohmann::json::object();
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file()) files[e.path().filename().string()] = stamp(e.path());
    j["files"] = files;
  }
  return j;
}

/// The budget's fields, for a resumed run's fingerprint (every one of them decides the models).
inline nlohmann::json budget_identity(const Budget& b) {
  return {{"calibration_samples", b.calibration_samples},
          {"train_samples", b.train_samples},
          {"sequence_length", b.sequence_length},
          {"epochs", b.epochs},
          {"batch_size", b.batch_size},
          {"grad_accumulation", b.grad_accumulation},
          {"prune_learning_rate", b.prune_learning_rate},
          {"distill_learning_rate", b.distill_learning_rate},
          {"weight_decay", b.weight_decay},
          {"warmup_fraction", b.warmup_fraction},
          {"max_grad_norm", b.max_grad_norm},
          {"prune_recovery", b.prune_recovery},
          {"prune_recovery_loss",
           b.prune_recovery_loss == recovery_loss::distillation ? "distillation" : "cross_entropy"},
          {"prune_weight_share", b.prune_weight_share}};
}

struct store_options {
  bool keep_cache = false;  ///< leave OUT/cache/ in place when the study ends
  /// The ranks of a data-parallel study (nullptr: one process); rank 0 writes.
  std::shared_ptr<dist::group> group;
};

/// The study's store (see the executor's store members) and its journal of finished rows.
class study_store {
 public:
  study_store(std::filesystem::path out, model::placement where, store_options o = {})
      : out_(std::move(out)), where_(std::move(where)), options_(o) {}
  study_store(const study_store&) = delete;
  study_store& operator=(const study_store&) = delete;
  ~study_store() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  std::filesystem::path state_dir() const { return out_ / "state"; }
  std::filesystem::path cache_dir() const { return out_ / "cache"; }
  /// Where training stages keep their checkpoints (Context::work_dir).
  std::filesystem::path train_dir() const { return cache_dir() / "train"; }

  /// Takes OUT's lock and opens its state: none yet (or `fresh`: discarded) starts a new run
  /// recording `fingerprint`; the same fingerprint resumes; another is an error naming the first
  /// option that differs. `conditions` (e.g. the thread count: it may change the last digits of
  /// the figures, never their meaning) are recorded by the first run, see first_conditions().
  /// Returns true when it resumes.
  bool begin(const nlohmann::json& fingerprint, bool fresh, const nlohmann::json& conditions = {}) {
    auto* group = options_.group.get();
    if (writer()) open_state(fingerprint, fresh, conditions);
    if (group) {
      group->barrier();  // rank 0 has opened the state
      if (!writer()) follow_state();
      group->require_same("view of " + state_dir().string(), state_digest(),
                          "--out must be one directory that every rank sees (one machine, or a shared filesystem), "
                          "and the ranks must be started with the same options");
    }
    return resumed_;
  }

  /// Whether this process writes OUT (one process, or rank 0).
  bool writer() const { return !options_.group || options_.group->rank() == 0; }

 private:
  void open_state(const nlohmann::json& fingerprint, bool fresh, const nlohmann::json& conditions) {
    namespace fs = std::filesystem;
    fs::create_directories(state_dir());
    lock();
    const auto run = state_dir() / "run.json";
    if (fresh) {
      discard();
      fs::create_directories(state_dir());
    }
    if (fs::exists(run)) {
      const auto recorded = read_json(run);
      if (!recorded.contains("options"))
        throw std::runtime_error(run.string() + ": not a study's state (no \"options\"); remove " +
                                 state_dir().string() + " or pass --fresh");
      const auto& was = recorded["options"];
      if (was != fingerprint) throw std::runtime_error(mismatch(was, fingerprint));
      resumed_ = true;
      runs_ = recorded.value("runs", 1) + 1;
      first_conditions_ = recorded.value("conditions", nlohmann::json());
    } else {
      // A state without run.json (killed before it was written) holds nothing worth keeping.
      discard();
      fs::create_directories(state_dir());
      runs_ = 1;
      first_conditions_ = conditions;
    }
    io::write_text(run, nlohmann::json{{"options", fingerprint}, {"runs", runs_}, {"conditions", first_conditions_}}
                                .dump(2) +
                            "\n");
    remove_temporaries(state_dir());
    fs::create_directories(state_dir() / "rows");
    remove_temporaries(state_dir() / "rows");
    fs::create_directories(measurements_dir());
    remove_temporaries(measurements_dir());
    fs::create_directories(cache_dir() / "models");
    // Training checkpoints are named by their run (data, options, starting weights), so an old
    // one resumes only the very stage that wrote it; its temporaries are of a dead process.
    fs::create_directories(train_dir());
    remove_temporaries(train_dir());
    for (const auto& e : fs::directory_iterator(cache_dir() / "models"))
      if (e.path().filename().string().starts_with(".")) fs::remove_all(e.path());  // a killed save
    for (const auto& e : fs::directory_iterator(state_dir() / "rows"))
      if (e.path().extension() == ".json") rows_[e.path().stem().string()] = row_from_file(e.path());
    const auto stages = state_dir() / "stages.json";
    if (fs::exists(stages)) {
      const auto seconds = read_json(stages);  // held: items() refers to it
      for (const auto& [k, v] : seconds.items()) {
        if (!v.is_number()) throw std::runtime_error(stages.string() + ": '" + k + "' is not a number; pass --fresh to start over");
        stage_seconds_[k] = v.get<double>();
      }
    }
  }

  // A rank other than 0: what rank 0 opened, read only.
  void follow_state() {
    namespace fs = std::filesystem;
    const auto run = state_dir() / "run.json";
    if (!fs::exists(run)) return;  // the digest check reports it
    const auto recorded = read_json(run);
    runs_ = recorded.value("runs", 1);
    resumed_ = runs_ > 1;
    first_conditions_ = recorded.value("conditions", nlohmann::json());
    for (const auto& e : fs::directory_iterator(state_dir() / "rows"))
      if (e.path().extension() == ".json") rows_[e.path().stem().string()] = row_from_file(e.path());
    if (const auto stages = state_dir() / "stages.json"; fs::exists(stages)) {
      const auto seconds = read_json(stages);  // held: items() refers to it
      for (const auto& [k, v] : seconds.items()) stage_seconds_[k] = v.get<double>();
    }
  }

  // What every rank must see alike: the run's record, the finished rows, the cached models.
  std::string state_digest() const {
    namespace fs = std::filesystem;
    std::string d;
    const auto run = state_dir() / "run.json";
    if (fs::exists(run)) {
      std::ifstream in(run);
      std::stringstream s;
      s << in.rdbuf();
      d = s.str();
    }
    for (const auto& [name, row] : rows_) d += "\nrow " + name;
    for (const auto& c : cached()) d += "\ncached " + c;
    return d;
  }

 public:

  /// The base model: cached models are given its tokenizer, chat template and source back.
  void use_base(const DenseModel& base) { base_ = &base; }

  bool resumed() const { return resumed_; }
  int runs() const { return runs_; }  ///< this one included
  const nlohmann::json& first_conditions() const { return first_conditions_; }
  /// When the first run recorded another thread count than `threads` (a resumed run): what to
  /// tell the user, "the first run used 2 threads, this one 1: ..."; empty otherwise. The BLAS
  /// sums in another order with other threads, so the last digits may differ.
  std::string threads_changed(int threads) const {
    if (!resumed_ || !first_conditions_.contains("threads") || first_conditions_["threads"] == threads) return {};
    const auto first = first_conditions_["threads"].dump();
    return "the first run used " + first + " threads, this one " + std::to_string(threads) +
           ": figures may differ from an uninterrupted run's in the last digits (--threads " + first + " gives the same)";
  }
  /// Rows finished by earlier runs (and by this one, once recorded), by configuration.
  const std::map<std::string, result_row>& rows() const { return rows_; }
  /// Seconds of every stage application finished so far, by chain ("P-KD").
  const std::map<std::string, double>& stage_seconds() const { return stage_seconds_; }
  /// Cached stage outputs on disk now, by directory name ("03-P-KD").
  std::vector<std::string> cached() const {
    std::vector<std::string> out;
    if (std::filesystem::is_directory(cache_dir() / "models"))
      for (const auto& e : std::filesystem::directory_iterator(cache_dir() / "models"))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // --- the executor's store -------------------------------------------------------------
  bool finished(const pipeline_event& e) const { return rows_.count(std::string(e.pipeline)) > 0; }

  template <class M>
  std::optional<M> load(const prefix_key& k) {
    const auto dir = model_dir(k);
    bool stored = writer() && has(k);
    if (options_.group)  // rank 0 decides; the others read the same directory
      stored = options_.group->all_reduce_sum(std::vector<double>{stored ? 1.0 : 0.0})[0] > 0;
    if (!stored) return std::nullopt;
    if (!base_) throw std::logic_error("study_store::load: use_base was not called");
    auto loaded = [&]() -> M {
      if constexpr (std::is_same_v<M, QuantizedModel>) {
        auto q = model::load_nf4(dir, where_);
        QuantizedModel m(q.lm(), base_->shared_tokenizer(), base_->chat_template(), base_->source());
        m.blocksize = q.blocksize;
        m.double_quantization = q.double_quantization;
        return m;
      } else {
        static_assert(std::is_same_v<M, DenseModel>, "study_store: DenseModel or QuantizedModel");
        auto d = DenseModel::load(dir, where_);
        return DenseModel(d.lm(), base_->shared_tokenizer(), base_->chat_template(), base_->source());
      }
    }();
    if (options_.group) options_.group->barrier();  // every rank has read it before rank 0 may drop it
    return loaded;
  }

  template <class M>
  void save(const prefix_key& k, const M& m) {
    if (!writer()) return;
    if constexpr (std::is_same_v<M, QuantizedModel>)
      model::save_nf4(m, model_dir(k));
    else
      model::save_hf(m, model_dir(k));
  }

  /// Whether an earlier run left the model of prefix `k` (what load() would read).
  bool has(const prefix_key& k) const { return std::filesystem::exists(model_dir(k) / "config.json"); }

  void drop(const prefix_key& k) {
    if (writer() && !options_.keep_cache) std::filesystem::remove_all(model_dir(k));
  }

  // --- the journal ------------------------------------------------------------------------
  /// Records a finished configuration (atomically): a later run skips it.
  void record(const result_row& r) {
    if (writer()) io::write_text(state_dir() / "rows" / (r.configuration + ".json"), to_json(r).dump() + "\n");
    rows_[r.configuration] = r;
  }
  /// Records the duration of a finished stage application and clears the training checkpoints
  /// (the stage's output is the executor's now).
  void record_stage(const std::string& chain, double seconds) {
    stage_seconds_[chain] = seconds;
    if (!writer()) return;
    io::write_text(state_dir() / "stages.json", nlohmann::json(stage_seconds_).dump(2) + "\n");
    std::filesystem::remove_all(train_dir());
    std::filesystem::create_directories(train_dir());
  }

  /// A figure an earlier run with these options kept under `name` (keep_measurement), if any: a
  /// tool that measures many things (ordo-prune-scan) reads it back instead of measuring again.
  std::optional<nlohmann::json> measurement(const std::string& name) const {
    const auto file = measurements_dir() / (name + ".json");
    if (!std::filesystem::exists(file)) return std::nullopt;
    return read_json(file);
  }
  /// Keeps a figure (atomically) as soon as it is measured.
  void keep_measurement(const std::string& name, const nlohmann::json& value) {
    if (writer()) io::write_text(measurements_dir() / (name + ".json"), value.dump() + "\n");
  }
  /// How many figures earlier runs kept.
  std::size_t measurement_count() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(measurements_dir()))
      if (e.path().extension() == ".json") ++n;
    return n;
  }

  /// The study is complete and its reports written: removes the state and, unless keep_cache,
  /// the cache (a run in this OUT starts afresh from now on).
  void finish() {
    if (options_.group) options_.group->barrier();
    if (!writer()) return;
    if (!options_.keep_cache) std::filesystem::remove_all(cache_dir());
    std::filesystem::remove_all(state_dir());  // the lock file too: this process still holds it
  }

 private:
  std::filesystem::path measurements_dir() const { return state_dir() / "measurements"; }

  std::filesystem::path model_dir(const prefix_key& k) const {
    char number[16];
    std::snprintf(number, sizeof number, "%02zu-", k.index);
    return cache_dir() / "models" / (number + std::string(k.name));
  }

  void lock() {
    const auto path = state_dir() / "lock";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) throw std::runtime_error(path.string() + ": cannot open the study's lock file");
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
      throw std::runtime_error(out_.string() + ": another ordo run is using this directory (" + path.string() +
                               " is locked); wait for it or give another --out");
  }

  // Everything in state/ but the lock (held by this process).
  void discard() {
    namespace fs = std::filesystem;
    if (!fs::exists(state_dir())) return;
    for (const auto& e : fs::directory_iterator(state_dir()))
      if (e.path().filename() != "lock") fs::remove_all(e.path());
    rows_.clear();
    stage_seconds_.clear();
  }

  // Temporary files of atomic writes killed midway (only this process writes here: it holds
  // the lock).
  static void remove_temporaries(const std::filesystem::path& dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) std::filesystem::remove_all(e.path());
  }

  static nlohmann::json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    try {
      return nlohmann::json::parse(s.str());
    } catch (const std::exception& e) {
      throw std::runtime_error(p.string() + ": unreadable (" + e.what() + "); pass --fresh to start over");
    }
  }

  static result_row row_from_file(const std::filesystem::path& p) {
    try {
      return row_from_json(read_json(p));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(p.string() + ": " + e.what() + "; pass --fresh to start over");
    }
  }

  std::string mismatch(const nlohmann::json& was, const nlohmann::json& now) const {
    std::string what = "the options differ";
    for (const auto& [k, v] : now.items()) {
      if (!was.contains(k)) {
        what = "'" + k + "' is new";
        break;
      }
      if (was[k] != v) {
        what = "'" + k + "' was " + was[k].dump() + ", now " + v.dump();
        break;
      }
    }
    if (what == "the options differ")
      for (const auto& [k, v] : was.items())
        if (!now.contains(k)) {
          what = "'" + k + "' is gone";
          break;
        }
    return out_.string() + " holds an unfinished run with other options (" + what +
           "); resume it with the same options, pass --fresh to discard it, or give another --out";
  }

  std::filesystem::path out_;
  const DenseModel* base_ = nullptr;
  model::placement where_;
  store_options options_;
  int lock_fd_ = -1;
  bool resumed_ = false;
  int runs_ = 0;
  nlohmann::json first_conditions_;
  std::map<std::string, result_row> rows_;
  std::map<std::string, double> stage_seconds_;
};

}  // namespace ordo::study
