// One KD training step on the default model (SmolLM2-135M-Instruct, dequantized to fp32), in
// tokens/s, against the same step in Python PyTorch (benchmarks/kd_step.py: transformers'
// Llama on the same GGUF file, same shapes, same loss, clipping and AdamW), measured in the
// same run with the same thread count. Prints one JSON line; the goal is ordo_over_pytorch >= 1.
//
//   ordo-bench-kd-step [--model FILE.gguf] [--batch 4] [--seq 128] [--steps 4] [--threads N]
//                      [--dtype float32|bfloat16] [--python /work/venv/py/bin/python]
//                      [--script benchmarks/kd_step.py] [--profile TRACE.json] [--vocab-chunk N]
//
// --vocab-chunk N: ordo's loss over the vocabulary fused, N rows at a time
// (Context::vocab_loss_chunk, train/vocab_loss.hpp; float32); 0 (default): the unfused loss.
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
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <ordo/io/cpu.hpp>                 // blas_core, retain_freed_memory
#include <ordo/model/language_model.hpp>  // default_model_path
#include <ordo/pipeline.hpp>
#include <ordo/model/torch_compat.hpp>  // torch_major, torch_minor
#include <ordo/stages/distill.hpp>

#include "flops.hpp"

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

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
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << "ordo-bench-kd-step [--model FILE.gguf] [--batch 4] [--seq 128] [--steps 4] [--threads N]\n"
                   "                   [--dtype float32|bfloat16] [--python PATH] [--script kd_step.py]\n"
                   "                   [--profile TRACE.json]  (LibTorch operators of ordo's run, chrome://tracing)\n"
                   "                   [--vocab-chunk N]  (ordo's vocabulary loss fused, N rows at a time; 0: unfused)\n"
                   "--threads defaults to the number of hardware threads.\n";
      return 0;
    }
  const std::string model_path = arg(argc, argv, "model", ordo::model::default_model_path().string());
  const auto batch = std::stoll(arg(argc, argv, "batch", "4"));
  const auto seq = std::stoll(arg(argc, argv, "seq", "128"));
  const auto steps = std::stoll(arg(argc, argv, "steps", "4"));
  const int threads =
      std::stoi(arg(argc, argv, "threads", std::to_string(std::max(1u, std::thread::hardware_concurrency()))));
  const std::string python = arg(argc, argv, "python", "/work/venv/py/bin/python");
  const std::string dtype = arg(argc, argv, "dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16") {
    std::cerr << "ordo-bench-kd-step: --dtype takes float32 or bfloat16, not " << dtype << "\n";
    return 2;
  }
  const std::string script = arg(argc, argv, "script", std::string(ORDO_SOURCE_DIR) + "/benchmarks/kd_step.py");
  torch::set_num_threads(threads);

  auto base = ordo::DenseModel::load(model_path);
  ordo::Context ctx;
  ctx.teacher = std::make_shared<ordo::DenseModel>(base);
  ctx.train_dtype = dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  ctx.vocab_loss_chunk = std::stoll(arg(argc, argv, "vocab-chunk", "0"));
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
    if (what == "distill")
      stamps.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  };
  const std::string profile = arg(argc, argv, "profile", "");
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

  auto py = run_python(python + " " + script + " --model " + model_path + " --batch " + std::to_string(batch) +
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
