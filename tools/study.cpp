// ordo-study: the paper's study on one base model — base, P, KD, Q and the six orderings of
// Prune<30>, Distill<T4, A03> and QuantNF4 — with shared prefixes, evaluated and reported.
//
//   ordo-study [--model PATH] [--preset quick|paper] [--out DIR] [--corpus DIR] [--chats PATH]
//              [--train-data text|chat] [--chat-loss assistant|all] [--eval-chats N] [--eval-chat-tokens N]
//              [--train-samples N] [--calibration-samples N] [--seq-len N] [--epochs N]
//              [--eval-tokens N] [--max-cached N] [--prune-weight-share X] [--threads N]
//              [--prompts FILE] [--clarity-prompts N] [--max-new-tokens N] [--minilm DIR]
//              [--no-judge] [--no-answers] [--save-models] [--fresh] [--keep-cache] [--checkpoint-seconds S]
//              [--teacher-logits-mb N] [--scored-logits-only]
//              [--device cpu|cuda|cuda:N] [--dtype float32|bfloat16|float16] [--teacher-device D]
//              [--train-dtype float32|bfloat16] [--vocab-loss-chunk N]
//              [--dist-timeout S] [--paper-only] [--two-stage]
//
// Launched like torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the ranks share the
// training, calibration and evaluation of every configuration; rank 0 writes the reports.
//
// Writes DIR/results.json, results.csv, results.md and size_vs_perplexity.svg, and prints the
// table. Killed, it resumes when run again with the same options and --out: finished
// configurations are kept, cached stage outputs (DIR/cache/) read back, a training stage
// continues from its last checkpoint (--checkpoint-seconds), and the figures equal an
// uninterrupted run's (--fresh starts over instead). Without --model it uses the embedded default (SmolLM2-135M-Instruct). Each
// configuration answers the first N prompts of resources/study_prompts.jsonl for the clarity
// metrics (docs/metrics.md); with ORDO_JUDGE_URL set (an OpenAI-compatible endpoint) an LLM
// judge adds G-Eval correctness and prompt alignment.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include <ordo/paper/paper_study.hpp>

#include "checks.hpp"
#include "data_options.hpp"
#include "device_options.hpp"
#include "dist_options.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ordo-study: the compression-ordering study on one base model"};
  std::string preset = "quick", model, out = "out/study";
  long long train = -1, calibration = -1, seq_len = -1, epochs = -1, eval_tokens = -1, max_cached = -1;
  int threads = 0;
  double weight_share = -1;
  std::string prompts, minilm;
  long long clarity_prompts = -1, max_new_tokens = -1;
  bool no_judge = false, no_answers = false, save_models = false;
  app.add_option("--preset", preset, "quick (2-core CPU, ~20 min) or paper (the paper's budgets)")
      ->check(CLI::IsMember({"quick", "paper"}))
      ->capture_default_str();
  app.add_option("--model", model, "a .gguf file or Hugging Face directory (default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--out", out, "output directory")->capture_default_str();
  app.add_option("--train-samples", train, "training sequences per training stage")->check(ordo::tools::positive);
  app.add_option("--calibration-samples", calibration, "calibration sequences for pruning")
      ->check(ordo::tools::positive);
  app.add_option("--seq-len", seq_len, "sequence length")->check(ordo::tools::within(8, 8192));
  app.add_option("--epochs", epochs, "epochs per training stage")->check(ordo::tools::positive);
  long long eval_chat_tokens = -1;
  app.add_option("--eval-chat-tokens", eval_chat_tokens,
                 "held-out chat tokens (assistant replies) scored per configuration (0: no chat perplexity)")
      ->check(ordo::tools::within(0LL, 1LL << 40));
  app.add_option("--eval-tokens", eval_tokens, "held-out tokens scored per configuration")
      ->check(ordo::tools::positive);
  app.add_option("--max-cached", max_cached, "intermediate models kept at once (default 2)")
      ->check(ordo::tools::within(0, 1000));
  app.add_option("--prune-weight-share", weight_share,
                 "share of the weight term in the pruning importance (the paper: 0.5)")
      ->check(ordo::tools::within(0.0, 1.0));
  ordo::tools::add_threads(app, threads);
  app.add_option("--prompts", prompts,
                 "JSONL prompts for the clarity metrics (default: resources/study_prompts.jsonl)");
  app.add_option("--clarity-prompts", clarity_prompts, "prompts answered per configuration (0: no clarity metrics)")
      ->check(ordo::tools::within(0, 100000));
  app.add_option("--max-new-tokens", max_new_tokens, "answer length limit for the clarity metrics")
      ->check(ordo::tools::positive);
  app.add_option("--minilm", minilm, "all-MiniLM-L6-v2 directory for coherence (default: ./ordo minilm's install)");
  app.add_flag("--no-judge", no_judge, "ignore ORDO_JUDGE_URL");
  app.add_flag("--no-answers", no_answers, "leave the generated answers out of results.json");
  app.add_flag("--save-models", save_models, "save every configuration's model into OUT/models/<name>/");
  bool fresh = false, keep_cache = false;
  double checkpoint_seconds = -1;
  app.add_flag("--fresh", fresh, "discard an unfinished study in --out instead of resuming it");
  app.add_flag("--keep-cache", keep_cache, "keep OUT/cache/ (the stage outputs later configurations reused) at the end");
  app.add_option("--checkpoint-seconds", checkpoint_seconds,
                 "a training checkpoint at most every so many seconds, what a kill can lose (default 120)")
      ->check(ordo::tools::positive);
  bool scored_logits_only = false;
  app.add_flag("--scored-logits-only", scored_logits_only,
               "perplexity with the LM head only on the scored positions: about a tenth less evaluation time in the quick study, "
               "figures that differ from the default in the last digits");
  long long teacher_logits_mb = -1;
  app.add_option("--teacher-logits-mb", teacher_logits_mb,
                 "host memory (MiB) that keeps a CPU teacher's logits for later KD stages on the same batches "
                 "(default 2048; 0: none; the figures do not change)")
      ->check(ordo::tools::within(0LL, 1LL << 30));
  bool paper_only = false;
  std::string recovery = "cross-entropy";
  app.add_flag("--paper-only", paper_only, "only the paper's ten configurations (no P[flap] series)");
  bool two_stage = false;
  app.add_flag("--two-stage", two_stage,
               "also the six orders of two stages (P-KD, KD-P, P-Q, Q-P, KD-Q, Q-KD; their P[flap] ones too "
               "without --paper-only): prefixes of the three-stage orders, they cost evaluation, not training");
  app.add_option("--prune-recovery", recovery,
                 "training after pruning: cross-entropy (the paper) or distillation (from the unpruned model)")
      ->check(CLI::IsMember({"cross-entropy", "distillation"}))
      ->capture_default_str();
  ordo::tools::device_flags device;
  device.add_to(app);
  device.add_teacher_to(app);
  device.add_train_dtype_to(app);
  device.add_vocab_loss_chunk_to(app);
  ordo::tools::data_flags data_options;
  data_options.add_to(app, /*evaluate=*/true);
  ordo::tools::dist_flags dist;
  dist.add_to(app);
  ordo::tools::one_line_errors(app, "ordo-study");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  try {
    auto o = ordo::study::preset(preset);
    o.where = device.resolve();  // before any work
    o.teacher_device = device.teacher();
    o.teacher = device.teacher_model;
    o.train_dtype = device.chosen_train_dtype();
    o.model = model;
    o.out_dir = out;
    o.threads = ordo::tools::resolve_threads(threads);
    ordo::tools::warn_if_slow_blas("ordo-study");
    ordo::io::retain_freed_memory();  // large tensors reuse freed pages (ordo/io/cpu.hpp)
    o.data = data_options.resolve();
    ordo::tools::check_output_dir(o.out_dir);
    if (train > 0) o.budget.train_samples = train;
    if (calibration > 0) o.budget.calibration_samples = calibration;
    if (seq_len > 0) o.budget.sequence_length = seq_len;
    if (epochs > 0) o.budget.epochs = epochs;
    if (eval_tokens > 0) o.eval_tokens = eval_tokens;
    if (eval_chat_tokens >= 0) o.eval_chat_tokens = eval_chat_tokens;
    if (weight_share >= 0) o.budget.prune_weight_share = weight_share;
    if (max_cached >= 0) o.max_cached_models = static_cast<std::size_t>(max_cached);
    if (!prompts.empty()) o.prompts = prompts;
    if (!minilm.empty()) o.minilm = minilm;
    if (clarity_prompts >= 0) o.clarity.prompts = clarity_prompts;
    if (max_new_tokens > 0) o.clarity.max_new_tokens = max_new_tokens;
    o.judge = !no_judge;
    o.save_answers = !no_answers;
    o.save_models = save_models;
    o.flap_series = !paper_only;
    o.two_stage = two_stage;
    o.fresh = fresh;
    o.keep_cache = keep_cache;
    if (checkpoint_seconds > 0) o.checkpoint_seconds = checkpoint_seconds;
    if (teacher_logits_mb >= 0) o.teacher_logits_mb = teacher_logits_mb;
    o.eval_scored_logits_only = scored_logits_only;
    o.vocab_loss_chunk = device.vocab_loss_chunk;
    o.budget.prune_recovery_loss =
        recovery == "distillation" ? ordo::recovery_loss::distillation : ordo::recovery_loss::cross_entropy;
    // Launched like torchrun (RANK, WORLD_SIZE, ...): the ranks share every stage and every
    // evaluation; rank 0 writes --out and prints the table (docs/distributed.md).
    o.group = dist.join();
    const auto rows = ordo::study::run_paper_study(o);
    if (o.group && o.group->rank() != 0) {
      std::fprintf(stderr, "ordo-study: rank %d of %d done; rank 0 wrote the reports\n", o.group->rank(),
                   o.group->size());
      return 0;
    }
    std::printf("\n%s\nReports in %s: results.json, results.csv, results.md, size_vs_perplexity.svg\n",
                ordo::study::markdown_table(rows).c_str(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-study: %s\n", e.what());
    return 1;
  }
}
