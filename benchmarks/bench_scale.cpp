// ordo-bench-scale: KD training steps on random-weight models of published shapes (no download),
// to see what ordo does at the paper's model sizes on a given device.
//
//   ordo-bench-scale --shape qwen2.5-3b [--teacher-shape qwen2.5-7b] [--device cuda] [--dtype bfloat16]
//                    [--steps 3] [--batch-size 1] [--seq-len 256] [--threads N] [--libtorch-adamw]
//
// A shape is a folder of resources/shapes/ (its config.json) or a path to a directory with a
// config.json. The student trains (AdamW, fp32 master weights; bf16 autocast on CUDA) with the
// distillation loss of Distill<T4, A03> against the teacher (the student's shape unless
// --teacher-shape). The first step warms up and is not timed. Prints one JSON line:
// tokens_per_s, step seconds, peak host memory (VmHWM), peak device memory (CUDA), the model
// FLOPs per step, the device's matmul FLOP rate measured in the same run (square matmuls in the
// compute dtype) and mfu = achieved model FLOP/s over that rate.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#ifdef ORDO_BENCH_CUDA_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <ordo/io/cpu.hpp>  // retain_freed_memory
#include <ordo/model/config.hpp>
#include <ordo/model/decoder.hpp>
#include <ordo/model/device.hpp>
#include <ordo/stages/distill.hpp>
#include <ordo/train/trainer.hpp>

#include "../tools/checks.hpp"  // one_line_errors, parse_command_line, positive, within
#include "flops.hpp"

namespace fs = std::filesystem;

namespace {

fs::path shape_dir(const std::string& shape) {
  if (fs::exists(fs::path(shape) / "config.json")) return shape;
  const auto dir = fs::path(ORDO_SOURCE_DIR) / "resources/shapes" / shape;
  if (!fs::exists(dir / "config.json")) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(fs::path(ORDO_SOURCE_DIR) / "resources/shapes"))
      names.push_back(e.path().filename().string());
    std::ranges::sort(names);
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("shape \"" + shape + "\": not a directory with config.json nor one of " + known);
  }
  return dir;
}

double peak_host_gib() {  // VmHWM: the resident set's high-water mark
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / (1024.0 * 1024.0);
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  const bool retains = ordo::io::retain_freed_memory();  // as the tools do
  CLI::App app{"ordo-bench-scale: KD steps on random-weight models of published shapes"};
  std::string shape, teacher_shape, device_text = "cpu", dtype_text = "float32";
  int steps = 3, threads = 2;
  std::int64_t batch = 1, seq_len = 256;
  app.add_option("--shape", shape, "student shape: a folder of resources/shapes/ or a directory")->required();
  app.add_option("--teacher-shape", teacher_shape, "teacher shape (default: the student's)");
  app.add_option("--device", device_text, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", dtype_text, "dense parameters of the teacher (the student keeps fp32 master weights)")
      ->capture_default_str();
  app.add_option("--steps", steps, "timed steps (after one warm-up step)")
      ->capture_default_str()
      ->check(ordo::tools::positive);
  app.add_option("--batch-size", batch, "sequences per step")->capture_default_str()->check(ordo::tools::positive);
  app.add_option("--seq-len", seq_len, "tokens per sequence")->capture_default_str()->check(ordo::tools::within(2, 131072));
  app.add_option("--threads", threads, "CPU threads")->capture_default_str()->check(ordo::tools::positive);
  bool libtorch_adamw = false;
  app.add_flag("--libtorch-adamw", libtorch_adamw,
               "LibTorch's AdamW step (nine operators per parameter) instead of the fused one (TrainOptions::fused_adamw)");
  ordo::tools::one_line_errors(app, "ordo-bench-scale");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  try {
    const ordo::model::placement where(ordo::model::parse_device(device_text), ordo::model::parse_dtype(dtype_text));
    ordo::model::require_device(where.device);
    ordo::model::require_dtype(where.device, where.dtype);
    at::set_num_threads(threads);
    torch::manual_seed(1);
    const auto student_config = ordo::model::decoder_config::load(shape_dir(shape));
    const auto teacher_config =
        ordo::model::decoder_config::load(shape_dir(teacher_shape.empty() ? shape : teacher_shape));
    if (teacher_config.vocab_size < student_config.vocab_size)
      throw std::invalid_argument("the teacher's vocabulary is smaller than the student's");
    const auto train_dtype = where.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;

    ordo::model::CausalLM student(student_config,
                                  ordo::model::build_options(ordo::model::placement(where.device), true));
    ordo::model::CausalLM teacher(teacher_config, ordo::model::build_options(where, true));
    for (auto& p : teacher->parameters()) p.set_requires_grad(false);
    teacher->eval();
    std::int64_t student_params = 0, teacher_params = 0;
    for (const auto& p : student->parameters()) student_params += p.numel();
    for (const auto& p : teacher->parameters()) teacher_params += p.numel();

    // Random token sequences (the speed does not depend on the text).
    std::vector<ordo::Example> examples;
    auto tokens = torch::randint(0, student_config.vocab_size, {(steps + 1) * batch, seq_len}, torch::kLong);
    for (std::int64_t i = 0; i < tokens.size(0); ++i) {
      ordo::Example e;
      auto row = tokens[i];
      e.ids.assign(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + seq_len);
      e.labels = e.ids;
      examples.push_back(std::move(e));
    }
    ordo::train::TrainOptions o;
    o.batch_size = batch;
    o.learning_rate = 1e-5;
    o.shuffle = false;
    o.compute_dtype = train_dtype;
    o.label = "bench-scale";
    o.fused_adamw = !libtorch_adamw;
    std::vector<double> step_seconds;
    auto last = std::chrono::steady_clock::now();
    auto loss = [&](ordo::model::CausalLM& lm, const ordo::data::Batch& b) {
      torch::Tensor target;
      {
        torch::NoGradGuard no_grad;
        target = teacher->forward(b.ids, b.attention_mask);
      }
      return ordo::distill::loss_terms(lm->forward(b.ids, b.attention_mask), target, b.labels, 4.0, 0.3).loss;
    };
    auto progress = [&](const std::string&, double, const std::string&) {
      bench::synchronize(where.device);
      const auto now = std::chrono::steady_clock::now();
      step_seconds.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
      std::fprintf(stderr, "step %zu: %.3f s\n", step_seconds.size(), step_seconds.back());
    };
#ifdef ORDO_BENCH_CUDA_STATS
    if (where.device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(where.device.index());
#endif
    ordo::train::train(student, examples, loss, o, progress);
    double timed = 0;
    for (std::size_t i = 1; i < step_seconds.size(); ++i) timed += step_seconds[i];
    const double step = timed / static_cast<double>(step_seconds.size() - 1);
    const double step_tokens = static_cast<double>(batch * seq_len);
    // student: forward + backward (2x forward); teacher: forward
    const double flops = 3.0 * bench::forward_flops(student_config, step_tokens, static_cast<double>(seq_len)) +
                         bench::forward_flops(teacher_config, step_tokens, static_cast<double>(seq_len));
    const double rate = bench::square_gemm_rate(train_dtype, where.device);
    double device_peak_gib = 0;
#ifdef ORDO_BENCH_CUDA_STATS
    if (where.device.is_cuda())
      device_peak_gib =
          static_cast<double>(
              c10::cuda::CUDACachingAllocator::getDeviceStats(where.device.index()).allocated_bytes[0].peak) /
          (1024.0 * 1024.0 * 1024.0);
#endif
    nlohmann::json out = {{"malloc_retains_freed", retains},
                          {"shape", shape},
                          {"teacher_shape", teacher_shape.empty() ? shape : teacher_shape},
                          {"student_params", student_params},
                          {"teacher_params", teacher_params},
                          {"device", ordo::model::device_name(where.device)},
                          {"teacher_dtype", ordo::model::torch_dtype_name(where.dtype)},
                          {"train_dtype", ordo::model::torch_dtype_name(train_dtype)},
                          {"adamw", libtorch_adamw ? "libtorch" : "fused"},
                          {"batch_size", batch},
                          {"seq_len", seq_len},
                          {"timed_steps", step_seconds.size() - 1},
                          {"step_seconds", step},
                          {"tokens_per_s", step_tokens / step},
                          {"model_flops_per_step", flops},
                          {"matmul_flops_per_s", rate},
                          {"mfu", flops / step / rate},
                          {"peak_host_gib", peak_host_gib()},
                          {"peak_device_gib", device_peak_gib},
                          {"threads", threads}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-bench-scale: %s\n", e.what());
    return 1;
  }
}
