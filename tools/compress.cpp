// ordo-compress: one compression pipeline, chosen by name, on one model; saves the result.
//
//   ordo-compress --pipeline P-KD-Q [--model PATH] [--tokenizer PATH] --out DIR [--corpus DIR]
//                 [--train-data text|chat] [--chats PATH] [--chat-loss assistant|all]
//                 [--calibration-samples N] [--train-samples N] [--seq-len N] [--epochs N]
//                 [--batch-size N] [--prune-lr X] [--kd-lr X] [--no-recovery] [--seed N] [--threads N]
//                 [--device cpu|cuda|cuda:N] [--dtype float32|bfloat16|float16] [--teacher-device D]
//                 [--train-dtype float32|bfloat16]
//                 [--teacher PATH]
//                 [--prune-importance paper|activation|wanda|flap|taylor] [--prune-allocation uniform|global]
//                 [--prune-recovery cross-entropy|distillation] [--format hf|gguf] [--gguf-type f32|f16|bf16|q8_0]
//                 [--gguf-ffn padded|per-layer] [--dist-timeout S] [--dist-overlap auto|on|off]
//                 [--vocab-loss-chunk N] [--fresh] [--checkpoint-seconds S]
//
// NAME is a chain ("Q-D-P-KD-Q") or the paper's notation ("Q-P-KD"): any order of any of the three
// stages (base, P, KD, Q, the six two-stage orders such as P-KD or Q-KD = Q-D-KD-Q, the paper's six
// three-stage orders). The pipeline runs through the compile-time dispatch (the name picks one of
// sixteen typed pipelines, ordo::every_configuration, with P = Prune<30, Importance, Allocation> of the --prune-* choices; the JSON
// names it, e.g. "P[flap]-KD-Q"). The result is saved as a Hugging Face directory (dense) or in bitsandbytes' NF4
// serialization (a chain ending in Q), then loaded back from disk and compared with the model in
// memory: the logits of both on the first calibration sequence must be equal ("reload" in the
// summary; a mismatch is an error). The last line of output is a JSON summary. A model saved
// from GGUF carries the GGUF's tokenizer as tokenizer.json, so an output is itself a valid
// --model; --tokenizer takes the tokenizer from another model for a directory without one.
// --format gguf writes DIR/model.gguf instead (llama.cpp's keys and tensor names, the GGUF
// tokenizer and chat template; FFN widths that pruning made differ zero-padded to the widest, or
// with --gguf-ffn per-layer one width per layer); a chain that
// ends in Q is exported as its exact dequantized values rounded to --gguf-type.
//
// Killed (a kill -9, a lost machine), it resumes when run again with the same options and --out:
// until the model is saved, OUT.unfinished/ beside OUT holds the run's options, the output of its
// last finished training stage (P or KD) and the training checkpoints of the stage in progress
// (at most every --checkpoint-seconds), so a second run continues where the first stopped and
// saves the model an uninterrupted run saves, bit for bit. Other options are refused (--fresh
// discards the unfinished run); the directory is removed once the model is saved.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <cstdio>
#include <algorithm>  // std::ranges::any_of
#include <sstream>
#include <utility>  // std::pair
#include <vector>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/hana/tuple.hpp>  // hana::make_tuple
#include <nlohmann/json.hpp>

#include <ordo/io/hf_directory.hpp>  // is_checkpoint_file
#include <ordo/model/checkpoint.hpp>
#include <ordo/model/load_for_inference.hpp>
#include <ordo/model/save_gguf.hpp>
#include <ordo/paper/paper_study.hpp>
#include <ordo/paper/resume.hpp>  // study_store, file_identity, budget_identity
#include <ordo/study/executor.hpp>  // execute

#include "checks.hpp"
#include "data_options.hpp"
#include "device_options.hpp"
#include "dist_options.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ordo-compress: run one compression pipeline and save the model"};
  std::string pipeline, model_path, out, tokenizer_path, format = "hf", gguf_type_name = "f16";
  auto options = ordo::study::preset("quick");
  bool no_recovery = false;
  app.add_option("--pipeline", pipeline, "any order of P, KD, Q or some of them: P-KD-Q, Q-P-KD (= Q-D-P-KD-Q), P-KD, Q-KD, P, KD, Q, base...")->required();
  app.add_option("--model", model_path, "a .gguf file or HF directory (default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--tokenizer", tokenizer_path,
                 "take the tokenizer and chat template from this model (for a directory without tokenizer.json)")->check(ordo::tools::non_empty);
  app.add_option("--out", out, "output directory")->required();
  app.add_option("--format", format, "hf (a Hugging Face directory; NF4 in bitsandbytes' format) or gguf (DIR/model.gguf)")
      ->check(CLI::IsMember({"hf", "gguf"}))
      ->capture_default_str();
  app.add_option("--gguf-type", gguf_type_name, "with --format gguf: the weights' type, f32, f16, bf16 or q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
      ->capture_default_str();
  std::string gguf_ffn_name = "padded";
  app.add_option("--gguf-ffn", gguf_ffn_name,
                 "with --format gguf, FFN widths that differ between layers: padded (zero neurons up to the "
                 "widest; llama.cpp loads it) or per-layer (one width per layer; smallest; ordo reads it)")
      ->check(CLI::IsMember({"padded", "per-layer"}))
      ->capture_default_str();
  app.add_option("--calibration-samples", options.budget.calibration_samples)
      ->check(ordo::tools::positive)
      ->capture_default_str();
  app.add_option("--train-samples", options.budget.train_samples)->check(ordo::tools::positive)->capture_default_str();
  app.add_option("--seq-len", options.budget.sequence_length)->check(ordo::tools::within(8, 8192))->capture_default_str();
  app.add_option("--epochs", options.budget.epochs)->check(ordo::tools::positive)->capture_default_str();
  app.add_option("--batch-size", options.budget.batch_size)->check(ordo::tools::positive)->capture_default_str();
  app.add_option("--prune-lr", options.budget.prune_learning_rate)->check(ordo::tools::positive)->capture_default_str();
  app.add_option("--kd-lr", options.budget.distill_learning_rate)->check(ordo::tools::positive)->capture_default_str();
  app.add_flag("--no-recovery", no_recovery, "skip the fine-tune after pruning");
  std::string importance = "paper", allocation = "uniform", recovery = "cross-entropy";
  app.add_option("--prune-importance", importance, "paper, activation, wanda, flap or taylor")
      ->check(CLI::IsMember({"paper", "activation", "wanda", "flap", "taylor"}))
      ->capture_default_str();
  app.add_option("--prune-allocation", allocation, "uniform (the same ratio in every layer) or global")
      ->check(CLI::IsMember({"uniform", "global"}))
      ->capture_default_str();
  app.add_option("--prune-recovery", recovery,
                 "training after pruning: cross-entropy (the paper) or distillation (from the unpruned model)")
      ->check(CLI::IsMember({"cross-entropy", "distillation"}))
      ->capture_default_str();
  app.add_option("--seed", options.seed)->check(ordo::tools::non_negative)->capture_default_str();
  bool fresh = false;
  app.add_flag("--fresh", fresh, "discard an unfinished run of this --out (OUT.unfinished/) instead of resuming it");
  double checkpoint_seconds = 120;
  app.add_option("--checkpoint-seconds", checkpoint_seconds,
                 "a training checkpoint at most every so many seconds, what a kill can lose")
      ->check(ordo::tools::positive)
      ->capture_default_str();
  ordo::tools::add_threads(app, options.threads);
  ordo::tools::device_flags device;
  device.add_to(app);
  device.add_teacher_to(app);
  device.add_train_dtype_to(app);
  device.add_vocab_loss_chunk_to(app);
  ordo::tools::dist_flags dist;
  dist.add_to(app);
  ordo::tools::data_flags data_options;
  data_options.add_to(app, /*evaluate=*/false);
  ordo::tools::one_line_errors(app, "ordo-compress");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  options.budget.prune_recovery = !no_recovery;
  options.budget.prune_recovery_loss =
      recovery == "distillation" ? ordo::recovery_loss::distillation : ordo::recovery_loss::cross_entropy;
  try {
    const auto where = device.resolve();  // before any work
    const auto gguf_type = ordo::model::gguf_type_from_name(gguf_type_name);
    const auto gguf_ffn = gguf_ffn_name == "per-layer" ? ordo::model::gguf_ffn::per_layer : ordo::model::gguf_ffn::padded;
    const auto teacher_device = device.teacher();
    const auto train_dtype = device.chosen_train_dtype().value_or(ordo::study::default_train_dtype(where.device));
    // The pipeline by name among the sixteen, before any work; from here on its chain
    // ("Q-D-P-KD-Q" for "q-p-kd") and its notation, whatever case or form the name came in (a
    // resumed run is recognised by the notation).
    using KD = ordo::Distill<ordo::T4, ordo::A03>;
    using Q = ordo::QuantNF4;
    const auto named = ordo::with_pipeline(pipeline, ordo::every_configuration<ordo::Prune<30>, KD, Q>(), [](auto t) {
      using Pipe = typename decltype(t)::type;
      return std::pair{std::string(ordo::pipeline_name_v<Pipe>), std::string(ordo::paper_notation_v<Pipe>)};
    });
    const std::string& named_chain = named.first;
    const std::string& named_notation = named.second;
    // Only pruning and distillation read data: a chain of Q (and D) stages alone needs no corpus
    // (one given explicitly is still checked).
    std::vector<std::string> stage_names;  // "Q-D-P-KD-Q" -> Q, D, P, KD, Q
    {
      std::string part;
      std::stringstream parts(named_chain);
      while (std::getline(parts, part, '-')) stage_names.push_back(part);
    }
    const bool reads_data =
        std::ranges::any_of(stage_names, [](const std::string& n) { return n == "P" || n == "KD"; });
    const auto sources =
        reads_data || !data_options.corpus.empty() ? data_options.resolve() : ordo::study::data_sources{};
    ordo::tools::check_output_dir(out);
    // The result replaces `out` only when it holds nothing but the writer's own files (a
    // checkpoint's, or model.gguf with --format gguf): checked now, not after the pipeline ran.
    if (std::filesystem::is_directory(out))
      for (const auto& e : std::filesystem::directory_iterator(out)) {
        const auto name = e.path().filename().string();
        const bool own = format == "gguf" ? name == "model.gguf" : ordo::io::is_checkpoint_file(name);
        if (!e.is_regular_file() || !own)
          throw std::invalid_argument(out + ": exists and holds '" + name +
                                      "', which ordo-compress would not replace; give an empty or new directory (--out)");
      }
    // Where an unfinished run keeps its state: beside OUT, which is written whole at the end.
    const auto work = [&] {
      auto o = std::filesystem::absolute(out).lexically_normal();
      if (o.filename().empty()) o = o.parent_path();
      return o.parent_path() / (o.filename().string() + ".unfinished");
    }();
    if (std::filesystem::exists(work) && !std::filesystem::is_directory(work))
      throw std::invalid_argument(work.string() + ": exists and is not a directory (the unfinished-run state of --out)");
    // Launched like torchrun (RANK, WORLD_SIZE, ...): every rank computes its share of each
    // stage; rank 0 alone saves (docs/distributed.md).
    const auto group = dist.join();
    const bool writer = !group || group->rank() == 0;
    options.threads = ordo::tools::resolve_threads(options.threads);
    ordo::tools::warn_if_slow_blas("ordo-compress");
    ordo::io::retain_freed_memory();  // large tensors reuse freed pages (ordo/io/cpu.hpp)
    at::set_num_threads(options.threads);
    torch::manual_seed(options.seed);
    const auto started = std::chrono::steady_clock::now();
    const auto base = [&] {
      if (tokenizer_path.empty()) return ordo::DenseModel::load(model_path, where);
      auto m = ordo::model::load_for_inference(model_path, tokenizer_path, where);
      if (m.lm->config().original.contains("quantization_config"))
        throw std::runtime_error(model_path + ": an NF4 model; compression starts from a dense one");
      return ordo::DenseModel(m.lm, std::make_shared<const ordo::Tokenizer>(std::move(m.tokenizer)), std::move(m.chat),
                              m.source);
    }();
    auto data = reads_data ? ordo::study::prepare_data(base, sources, options.budget, options.seed)
                           : ordo::study::study_data{};
    auto& context = data.context;
    context.group = group;
    context.teacher = ordo::study::distillation_teacher(base, model_path, where, teacher_device, device.teacher_model);
    context.train_dtype = train_dtype;
    context.vocab_loss_chunk = device.vocab_loss_chunk;
    ordo::study::study_progress progress;
    progress.quiet = !writer;
    context.progress = [&](const std::string& what, double f, const std::string& d) { progress.progress(what, f, d); };

    // A killed run resumes (the header above). The state is opened once the model and the data
    // have loaded, so a bad model or corpus leaves nothing beside OUT.
    nlohmann::json fingerprint = {
        {"pipeline", named_notation},
        {"model", ordo::study::file_identity(base.source())},
        {"tokenizer", ordo::study::file_identity(tokenizer_path)},
        {"corpus", ordo::study::file_identity(reads_data ? sources.corpus : std::filesystem::path())},
        {"chats", ordo::study::file_identity(reads_data ? sources.chats : std::filesystem::path())},
        {"train_data", data_options.train},
        {"chat_loss", data_options.chat_loss},
        {"budget", ordo::study::budget_identity(options.budget)},
        {"prune_importance", importance},
        {"prune_allocation", allocation},
        {"seed", options.seed},
        {"vocab_loss_chunk", device.vocab_loss_chunk},
        {"device", ordo::model::device_name(where.device)},
        {"dtype", ordo::model::torch_dtype_name(where.dtype)},
        {"teacher_device", ordo::model::device_name(teacher_device.value_or(where.device))},
        {"teacher", ordo::study::file_identity(device.teacher_model)}};
    // only when it is not the device's default: a run begun before --train-dtype existed resumes
    if (train_dtype != ordo::study::default_train_dtype(where.device))
      fingerprint["train_dtype"] = ordo::model::torch_dtype_name(train_dtype);
    const int world_size = group ? group->size() : 1;
    ordo::study::study_store store(work, where, {.group = group});
    if (store.begin(fingerprint, fresh, {{"threads", options.threads}, {"world_size", world_size}}) && writer) {
      std::string stored;
      for (const auto& c : store.cached()) stored += (stored.empty() ? "" : ", ") + c;
      std::fprintf(stderr, "ordo-compress: resuming the unfinished run in %s (run %d): %s\n", work.c_str(),
                   store.runs(),
                   stored.empty() ? "no training stage had finished"
                                  : ("stage output kept: " + stored).c_str());
      if (const auto note = store.threads_changed(options.threads); !note.empty())
        std::fprintf(stderr, "ordo-compress: %s\n", note.c_str());
    }
    if (store.first_conditions().value("world_size", 1) != world_size)
      throw std::runtime_error(work.string() + ": the unfinished run had " +
                               std::to_string(store.first_conditions().value("world_size", 1)) +
                               " processes, this one " + std::to_string(world_size) +
                               "; resume it with the same world size, or pass --fresh");
    store.use_base(base);
    context.work_dir = store.train_dir();  // training checkpoints, for a run killed mid-stage
    context.checkpoint_seconds = checkpoint_seconds;
    context.checkpoint_at_end = false;  // the stage's output goes to the store instead

    // What every summary says: the pipeline, its data, the base model's size and the reload check.
    auto summary_of = [&](const std::string& notation, std::string_view chain, const std::string& stages,
                          const torch::Tensor& probe, double diff) {
      return nlohmann::json{{"pipeline", notation},
                            {"chain", std::string(chain)},
                            {"stages", stages},
                            {"train_data", data.summary["train_data"]},
                            {"train_loss_tokens", data.summary["train_loss_tokens"]},
                            {"base_memory_mb", base.memory_bytes() / 1048576.0},
                            {"reload", {{"probe_tokens", probe.size(1)}, {"max_abs_logit_difference", diff}}}};
    };
    // --format gguf: one model.gguf in `out` (an NF4 result through the Dequantize stage), loaded
    // back with ordo's GGUF reader; the logits must be equal for a dense model saved in f32 and
    // within the rounding of the type otherwise (reported).
    auto save_as_gguf = [&](auto& result, std::string_view chain, const std::string& notation,
                            const std::string& stages, const torch::Tensor& probe, ordo::Context& ctx) {
      constexpr bool quantized = std::is_same_v<std::decay_t<decltype(result)>, ordo::QuantizedModel>;
      const ordo::DenseModel dense = [&] {
        if constexpr (quantized)
          return ordo::apply(ordo::Dequantize{}, result, ctx);
        else
          return result;
      }();
      const auto dir = ordo::io::write_directory_atomically(
          out, [&](const std::filesystem::path& tmp) { ordo::model::save_gguf(dense, tmp / "model.gguf", gguf_type, notation, gguf_ffn); },
          [](const std::string& name) { return name == "model.gguf"; });
      const auto file = dir / "model.gguf";
      auto back = ordo::model::load_gguf(file, where);
      torch::NoGradGuard no_grad;
      back->eval();
      auto lm = result.lm();
      lm->eval();
      const auto diff = (lm->forward(probe) - back->forward(probe)).abs().max().template item<double>();
      // F32 is exact, except that zero-padded FFN layers change the order of the matmuls' sums
      // (the padded neurons add exact zeros): a few 1e-5 then.
      const bool padded = gguf_ffn == ordo::model::gguf_ffn::padded && !dense.config().uniform_intermediate();
      const double allowed = padded ? 1e-3 : 0.0;
      if (!std::isfinite(diff) || (!quantized && gguf_type == ordo::io::gguf::TensorType::F32 && diff > allowed))
        throw std::runtime_error("the model loaded back from " + file.string() +
                                 " does not give the saved model's logits (max |difference| " + std::to_string(diff) +
                                 ")");
      const auto bytes = std::filesystem::file_size(file);
      auto summary = summary_of(notation, chain, stages, probe, diff);
      summary["format"] = "gguf";
      summary["gguf_type"] = gguf_type_name;
      summary["gguf_ffn"] = gguf_ffn_name;
      summary["out"] = file.string();
      summary["file_mb"] = static_cast<double>(bytes) / 1048576.0;
      summary["compression"] = static_cast<double>(base.memory_bytes()) / static_cast<double>(bytes);
      return summary;
    };
    // Saves the pipeline's result into OUT and checks it loaded back (rank 0 alone).
    auto save_and_check = [&](auto t, const auto& result) {
      using Pipe = typename decltype(t)::type;
      ordo::model::SavedCheckpoint saved;
      torch::Tensor reloaded_logits;
      // The reload check's input: the first calibration sequence, or a fixed sentence when the
      // chain read no data.
      const auto probe =
          context.calibration.empty()
              ? torch::tensor(base.tokenizer().encode("The capital of France is Paris. It lies on the Seine."),
                              torch::kInt).to(torch::kLong).unsqueeze(0)
              : torch::tensor(context.calibration.front().ids, torch::kLong).unsqueeze(0);
      std::fprintf(stderr, "ordo-compress: saving to %s, then loading it back to check its logits\n", out.c_str());
      if (format == "gguf") return save_as_gguf(result, Pipe::name(), std::string(ordo::paper_notation_v<Pipe>),
                                                  Pipe::description(), probe, context);
      if constexpr (std::is_same_v<std::decay_t<decltype(result)>, ordo::QuantizedModel>) {
        saved = ordo::model::save_nf4(result, out);
        auto back = ordo::model::load_nf4(saved.dir, where);
        torch::NoGradGuard no_grad;
        back.lm()->eval();
        reloaded_logits = back.lm()->forward(probe);
      } else {
        saved = ordo::model::save_hf(result, out);
        auto back = ordo::DenseModel::load(saved.dir, where);
        torch::NoGradGuard no_grad;
        back.lm()->eval();
        reloaded_logits = back.lm()->forward(probe);
      }
      torch::NoGradGuard no_grad;
      auto lm = result.lm();
      lm->eval();
      const auto logits = lm->forward(probe);
      const double diff = (logits - reloaded_logits).abs().max().template item<double>();
      if (!(diff == 0.0))
        throw std::runtime_error("the model loaded back from " + saved.dir.string() +
                                 " does not give the saved model's logits (max |difference| " + std::to_string(diff) +
                                 ")");
      auto summary = summary_of(std::string(ordo::paper_notation_v<Pipe>), Pipe::name(), Pipe::description(), probe, diff);
      summary["out"] = saved.dir.string();
      summary["file_mb"] = saved.size.file_bytes / 1048576.0;
      summary["tensor_mb"] = saved.size.tensor_bytes / 1048576.0;
      summary["memory_mb"] = saved.memory_bytes / 1048576.0;
      summary["compression"] = static_cast<double>(base.memory_bytes()) / saved.memory_bytes;
      return summary;
    };
    // The pipeline through the executor with the store: each trained stage's output is kept in
    // OUT.unfinished/ until the next one is, and a resumed run starts from the last of them.
    auto run_one = [&](auto t) {
      nlohmann::json summary;
      ordo::study::journaled_progress observer{progress, store};
      ordo::study::execute(
          boost::hana::make_tuple(t), base, context,
          [&](auto pipe, const auto& result) {
            if (writer) summary = save_and_check(pipe, result);
          },
          ordo::study::options{.max_cached_models = 0, .store_trained_outputs = true}, observer, store);
      if (!writer) summary = nlohmann::json{{"rank", group->rank()}};
      return summary;
    };
    // The P stage's type from the --prune-* choices, then the pipeline by name among its sixteen.
    auto with_prune = [&](auto importance_tag, auto allocation_tag) {
      using P = ordo::Prune<30, typename decltype(importance_tag)::type, typename decltype(allocation_tag)::type>;
      // "P-KD-Q" names the P[flap]-KD-Q of these sixteen: each P of the name becomes P's symbol.
      std::string name;
      for (const auto& part : stage_names)
        name += (name.empty() ? "" : "-") + (part == "P" ? std::string(P::symbol) : part);
      return ordo::with_pipeline(name, ordo::every_configuration<P, KD, Q>(), run_one);
    };
    auto with_allocation = [&](auto importance_tag) {
      if (allocation == "global") return with_prune(importance_tag, boost::hana::type_c<ordo::allocation::global>);
      return with_prune(importance_tag, boost::hana::type_c<ordo::allocation::uniform>);
    };
    namespace imp = ordo::importance;
    auto summary = importance == "activation" ? with_allocation(boost::hana::type_c<imp::activation>)
                   : importance == "wanda"    ? with_allocation(boost::hana::type_c<imp::wanda>)
                   : importance == "flap"     ? with_allocation(boost::hana::type_c<imp::flap>)
                   : importance == "taylor"   ? with_allocation(boost::hana::type_c<imp::taylor>)
                                              : with_allocation(boost::hana::type_c<imp::paper>);
    summary["teacher"] = device.teacher_model.empty() ? std::string("the base model") : device.teacher_model;
    summary["prune_importance"] = importance;
    summary["prune_allocation"] = allocation;
    summary["prune_recovery"] = no_recovery ? "none" : recovery;
    summary["vocab_loss_chunk"] = device.vocab_loss_chunk;
    summary["device"] = ordo::model::device_name(where.device);
    summary["dtype"] = ordo::model::torch_dtype_name(where.dtype);
    summary["train_dtype"] = ordo::model::torch_dtype_name(train_dtype);
    summary["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    summary["calibration_samples"] = context.calibration.size();
    summary["train_samples"] = context.train.size();
    if (group) group->barrier(std::chrono::hours(1));  // the others wait for the saved model (an hour at most)
    summary["runs"] = store.runs();  // 2 or more: resumed
    store.finish();  // the model is saved: nothing to resume
    if (writer) {
      std::error_code ec;
      std::filesystem::remove(work, ec);  // empty now (state/ and cache/ are gone)
      if (ec) std::fprintf(stderr, "ordo-compress: %s: not removed (%s)\n", work.c_str(), ec.message().c_str());
    }
    if (!writer) {
      std::fprintf(stderr, "ordo-compress: rank %d of %d done; rank 0 saved the model\n", group->rank(), group->size());
      return 0;
    }
    summary["world_size"] = world_size;
    std::printf("%s\n", summary.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-compress: %s\n", e.what());
    return 1;
  }
}
