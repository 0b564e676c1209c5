// One KD training step on the default model (SmolLM2-135M-Instruct, dequantized to fp32), in
// tokens/s, against the same step in Python PyTorch (benchmarks/kd_step.py: transformers'
// Llama on the same GGUF file, same shapes, same loss, clipping and AdamW), measured in the
// same run with the same thread count. Prints one JSON line; the goal is ordo_over_pytorch >= 1.
//
//   ordo-bench-kd-step [--model FILE.gguf] [--batch 4] [--seq 128] [--steps 4] [--threads N]
//                      [--dtype float32|bfloat16] [--python PATH (default: $ORDO_BENCH_PYTHON, else python3)]
//                      [--script benchmarks/kd_step.py] [--profile TRACE.json] [--vocab-chunk N]
//                      [--adamw fused|libtorch]
//
// --vocab-chunk N: ordo's loss over the vocabulary fused, N rows at a time
// (Context::vocab_loss_chunk, train/vocab_loss.hpp; in --dtype); 0 (default): the unfused loss.
//
// --adamw libtorch: LibTorch's AdamW operators instead of ordo's fused pass (Context::fused_adamw,
// train/fused_adamw.hpp; the same bits, so the two differ in time only). Either way the JSON's
// adamw_step_seconds times the optimizer step alone both ways on the model's parameters.
//
// --dtype bfloat16: mixed precision on both sides: fp32 master weights, forward and loss under
// CPU autocast in bf16 (ordo: Context::train_dtype; PyTorch: torch.autocast("cpu", bfloat16)).
// The ordo side is ordo's own KD stage (apply(Distill<T4, A03>)): teacher forward without
// gradients, student forward and backward, the guard, clipping and AdamW; the first step warms
// up and is not timed. Without a Python with torch + transformers + gguf, the PyTorch figures
// are null.
//
// gemm_fraction: the step's model FLOPs per second (3 x the student's forward matmul FLOPs for
// its forward and backward, plus the teacher's forward) over the GEMM rate of this machine
// measured in the same run on the model's own linear shapes at the step's rows, in the step's
// compute dtype (benchmarks/flops.hpp): how close the step comes to the matmuls it is made of.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <ordo/io/cpu.hpp>                 // blas_core, retain_freed_memory
#include <ordo/model/language_model.hpp>  // default_model_path
#include <ordo/pipeline.hpp>
#include <ordo/model/torch_compat.hpp>  // torch_major, torch_minor
#include <ordo/stages/distill.hpp>
#include <ordo/train/fused_adamw.hpp>  // adamw_step, probe_adamw_rounding

#include "../tools/checks.hpp"  // positive, non_negative, runnable_program, one_line_errors, ...
#include "flops.hpp"

namespace {

// Runs the Python side; its JSON line, or a string saying why there is none (the script's last line
// of output, e.g. the exception that stopped it).
nlohmann::json run_python(const std::string& command) {
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return "cannot start: " + command;
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  const auto at = out.rfind("{\"impl\"");
  if (status == 0 && at != std::string::npos) {
    try {
      return nlohmann::json::parse(out.substr(at, out.find('\n', at) - at));
    } catch (const std::exception& e) {
      return std::string("unreadable JSON from ") + command + ": " + e.what();
    }
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const auto line = out.rfind('\n');
  return "failed (" + command + "): " + (line == std::string::npos ? out : out.substr(line + 1));
}

}  // namespace

int main(int argc, char** argv) {
  const bool retains = ordo::io::retain_freed_memory();  // as the tools do
  CLI::App app{"ordo-bench-kd-step: one KD training step, tokens/s, against the same step in PyTorch"};
  std::string model_path, dtype = "float32", profile,
                          python = std::getenv("ORDO_BENCH_PYTHON") ? std::getenv("ORDO_BENCH_PYTHON") : "python3",
                          script = std::string(ORDO_SOURCE_DIR) + "/benchmarks/kd_step.py", adamw = "fused";
  std::int64_t batch = 4, seq = 128, steps = 4, vocab_chunk = 0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--model", model_path, "a .gguf file or Hugging Face directory (default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--batch", batch, "sequences per step")->capture_default_str()->check(ordo::tools::positive);
  app.add_option("--seq", seq, "tokens per sequence")->capture_default_str()->check(ordo::tools::within(2, 1 << 20));
  app.add_option("--steps", steps, "timed steps (one more warms up)")
      ->capture_default_str()
      ->check(ordo::tools::positive);
  app.add_option("--threads", threads, "CPU threads (default: the hardware threads)")
      ->capture_default_str()
      ->check(ordo::tools::positive);
  app.add_option("--dtype", dtype, "float32, or bfloat16 (mixed precision on both sides)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  app.add_option("--python", python,
                 "a Python with torch, transformers and gguf for the PyTorch step (default: $ORDO_BENCH_PYTHON, "
                 "else python3; without those modules the PyTorch figures are null)");
  app.add_option("--script", script, "the PyTorch side")->capture_default_str()->check(CLI::ExistingFile);
  app.add_option("--profile", profile, "write LibTorch's operator trace of ordo's run (chrome://tracing)");
  app.add_option("--adamw", adamw, "fused: ordo's one-pass AdamW step; libtorch: LibTorch's operators (same bits)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fused", "libtorch"}));
  app.add_option("--vocab-chunk", vocab_chunk, "ordo's vocabulary loss fused, N rows at a time (0: unfused)")
      ->capture_default_str()
      ->check(ordo::tools::non_negative);
  ordo::tools::one_line_errors(app, "ordo-bench-kd-step");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  // --python must be a program: a wrong one would only show as a null baseline after the run
  if (!ordo::tools::runnable_program(python)) {
    std::fprintf(stderr, "ordo-bench-kd-step: --python %s: not an executable file\n", python.c_str());
    return 1;
  }
  torch::set_num_threads(threads);

  std::optional<ordo::DenseModel> loaded;
  try {
    model_path = ordo::model::existing_model_path(model_path).string();  // "": the embedded default
    loaded.emplace(ordo::DenseModel::load(model_path));
  } catch (const std::exception& e) {  // a missing or unreadable model: one line, status 1
    std::fprintf(stderr, "ordo-bench-kd-step: %s\n", e.what());
    return 1;
  }
  auto& base = *loaded;
  ordo::Context ctx;
  ctx.teacher = std::make_shared<ordo::DenseModel>(base);
  ctx.train_dtype = dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  ctx.vocab_loss_chunk = vocab_chunk;
  ctx.fused_adamw = adamw == "fused";
  std::mt19937_64 rng(0);
  const auto vocab = base.config().vocab_size;
  for (std::int64_t i = 0; i < batch * (steps + 1); ++i) {
    ordo::Example e;
    for (std::int64_t t = 0; t < seq; ++t)
      e.ids.push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(vocab)));
    e.labels = e.ids;
    e.labels[0] = -100;
    ctx.train.push_back(std::move(e));
  }
  ctx.budget.train_samples = batch * (steps + 1);
  ctx.budget.sequence_length = seq;
  ctx.budget.epochs = 1;
  ctx.budget.batch_size = batch;
  ctx.budget.grad_accumulation = 1;
  ctx.budget.distill_learning_rate = 2e-5;
  ctx.budget.warmup_fraction = 0.0;
  ctx.budget.max_grad_norm = 1.0;
  std::vector<double> stamps;
  ctx.progress = [&](const std::string& what, double, const std::string&) {
    if (what != "distill") return;
    stamps.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
    std::fprintf(stderr, "ordo-bench-kd-step: ordo, step %zu of %lld done%s\n", stamps.size(),
                 static_cast<long long>(steps + 1), stamps.size() == 1 ? " (warm-up, not timed)" : "");
  };
  if (profile.empty()) {
    ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  } else {  // a chrome://tracing file of every LibTorch operator of the run
    torch::autograd::profiler::RecordProfile record(profile);
    ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  }
  double timed = 0;
  nlohmann::json step_seconds = nlohmann::json::array();
  for (std::size_t i = 1; i < stamps.size(); ++i) {
    timed += stamps[i] - stamps[i - 1];
    step_seconds.push_back(stamps[i] - stamps[i - 1]);
  }
  const double ordo_tps = static_cast<double>(batch * seq * steps) / timed;
  const double step_tokens = static_cast<double>(batch * seq);
  const double model_flops = 4.0 * bench::forward_flops(base.config(), step_tokens, static_cast<double>(seq));
  const double gemm_rate = bench::model_gemm_rate(base.config(), batch * seq, ctx.train_dtype, torch::kCPU);
  const double achieved = model_flops * static_cast<double>(steps) / timed;

  // The optimizer step alone, on parameters of the model's sizes: LibTorch's operators and the
  // fused pass, alternated, best of 5 each (the same bits either way: tests/train).
  nlohmann::json adamw_seconds;
  {
    std::vector<torch::Tensor> params;
    for (const auto& p : base.lm()->parameters()) {
      params.push_back(p.detach().clone().set_requires_grad(true));
      params.back().mutable_grad() = torch::randn_like(p) * 1e-3;
    }
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(2e-5));
    const auto rounding =
        ordo::train::probe_adamw_rounding(static_cast<torch::optim::AdamWOptions&>(opt.defaults()));
    double best_fused = 1e30, best_libtorch = 1e30;
    for (int rep = 0; rep < 5; ++rep)
      for (const bool fused : {false, true}) {
        const auto t0 = std::chrono::steady_clock::now();
        ordo::train::adamw_step(opt, 0.5, fused ? rounding : std::nullopt);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double& best = fused ? best_fused : best_libtorch;
        best = std::min(best, s);
      }
    adamw_seconds = {{"libtorch", best_libtorch},
                     {"fused", rounding ? nlohmann::json(best_fused) : nlohmann::json("no matching rounding")},
                     {"libtorch_over_fused", rounding ? nlohmann::json(best_libtorch / best_fused) : nlohmann::json(nullptr)}};
  }

  std::fprintf(stderr, "ordo-bench-kd-step: the same steps in PyTorch through %s\n", python.c_str());
  auto py = run_python(python + " '" + script + "' --model '" + model_path + "' --batch " + std::to_string(batch) +
                       " --seq " + std::to_string(seq) + " --steps " + std::to_string(steps) + " --threads " +
                       std::to_string(threads) + " --dtype " + dtype);
  nlohmann::json out;
  out["benchmark"] = "kd_step";
  out["model"] = model_path;
  out["batch"] = batch;
  out["seq"] = seq;
  out["timed_steps"] = steps;
  out["threads"] = threads;
  out["dtype"] = dtype;
  out["vocab_loss_chunk"] = ctx.vocab_loss_chunk;
  out["adamw"] = adamw;
  out["adamw_step_seconds"] = adamw_seconds;  // the optimizer step alone, best of 5
  out["ordo_step_seconds"] = step_seconds;
  out["ordo_tokens_per_s"] = ordo_tps;
  out["libtorch"] = std::to_string(ordo::compat::torch_major) + "." + std::to_string(ordo::compat::torch_minor);
  out["blas_core"] = ordo::io::blas_core();  // OpenBLAS's kernels ("" under MKL)
  out["malloc_retains_freed"] = retains;     // false: a MALLOC_* variable (or not glibc)
  out["model_gflops_per_step"] = model_flops / 1e9;
  out["model_gflops_per_s"] = achieved / 1e9;
  out["gemm_gflops_per_s"] = gemm_rate / 1e9;
  out["gemm_fraction"] = achieved / gemm_rate;
  out["goals"] = {{"ordo_over_pytorch", 1.5}, {"gemm_fraction", 0.6}};
  const bool have_py = py.is_object();
  out["pytorch"] = py;
  out["pytorch_tokens_per_s"] = have_py ? py["tokens_per_s"] : nlohmann::json(nullptr);
  out["ordo_over_pytorch"] =
      have_py ? nlohmann::json(ordo_tps / py["tokens_per_s"].get<double>()) : nlohmann::json(nullptr);
  std::cout << out.dump() << std::endl;
  return 0;
}
