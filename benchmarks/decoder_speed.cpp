// ordo-bench-decoder: prefill tokens/s and batch-1 decode tokens/s of ordo's decoder on any model
// ordo loads (default: the embedded GGUF, dequantized to fp32; an NF4 directory, what a chain
// ending in Q saves, decodes with the NF4 GEMV), and, in the same run when a Python is given:
// transformers on the same model (a GGUF dequantized to fp32; an NF4 directory with
// bitsandbytes when it imports), and llama.cpp on a GGUF as it is (quantized) when that Python
// has llama_cpp (PyPI llama-cpp-python): --model itself when it is a .gguf, else --llama-cpp-model
// (default: the embedded default model). Prints JSON with the ratios (ordo / the other; above
// 1: ordo is faster).
//
//   ordo-bench-decoder [--model PATH] [--llama-cpp-model FILE.gguf] [--prompt-tokens 256]
//                      [--decode-tokens 64] [--threads 2] [--repeat 3]
//                      [--python /path/to/venv/bin/python]   (or $ORDO_BENCH_PYTHON)
//                      [--static-cache]   (also decode through static_decoder: a CUDA graph on a GPU)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <ordo/io/cpu.hpp>                     // retain_freed_memory, blas_core
#include <ordo/model/default_model.hpp>        // default_model_path
#include <ordo/model/load_for_inference.hpp>  // load_for_inference
#include <ordo/model/static_decode.hpp>       // static_decoder
#include <ordo/model/torch_compat.hpp>        // torch_major, torch_minor
#include <ordo/model/transform.hpp>           // for_each_decoder_linear, model_bytes

#include "../tools/checks.hpp"          // positive, runnable_program, one_line_errors, ...
#include "../tools/device_options.hpp"  // --device, --dtype

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

nlohmann::json run_python(const std::string& python, const std::string& model, const std::string& llama_cpp_model,
                          int prompt, int decode, int threads, int repeat, const std::string& device,
                          const std::string& dtype) {
  const std::string cmd = python + " " + std::string(ORDO_SOURCE_DIR) + "/benchmarks/decoder_speed.py '" + model +
                          "' " + std::to_string(prompt) + " " + std::to_string(decode) + " " + std::to_string(threads) +
                          " --repeat " + std::to_string(repeat) + " --llama-cpp-model '" + llama_cpp_model +
                          "' --device " + device + " --dtype " + dtype + " 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return nullptr;
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe.get())) out = buf;  // the last line is the JSON
  try {
    return nlohmann::json::parse(out);
  } catch (...) {
    return nullptr;
  }
}
}  // namespace

int main(int argc, char** argv) {
  const bool retains = ordo::io::retain_freed_memory();  // as the tools do
  CLI::App app{"ordo-bench-decoder: prefill and decode speed against transformers and llama.cpp"};
  std::string model_path, llama_cpp_model,
      python = std::getenv("ORDO_BENCH_PYTHON") ? std::getenv("ORDO_BENCH_PYTHON") : "";
  int prompt = 256, decode = 64, threads = 2, repeat = 3;
  app.add_option("--model", model_path,
                 "a .gguf file, HF directory or NF4 directory (what a chain ending in Q saves; default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--llama-cpp-model", llama_cpp_model,
                 "the GGUF llama.cpp decodes when --model is not one (default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--prompt-tokens", prompt)->capture_default_str()->check(ordo::tools::positive);
  app.add_option("--decode-tokens", decode)->capture_default_str()->check(ordo::tools::positive);
  app.add_option("--threads", threads)->capture_default_str()->check(ordo::tools::positive);
  app.add_option("--repeat", repeat, "timed runs of prefill and decode; each figure is the best run")
      ->capture_default_str()
      ->check(ordo::tools::positive);
  app.add_option("--python", python, "a Python with torch and transformers, for the comparison");
  bool static_cache = false;
  app.add_flag("--static-cache", static_cache,
               "also decode with a KV cache of fixed capacity, a step of fixed shapes that a CUDA device replays "
               "as one CUDA graph (ordo/model/static_decode.hpp), timed beside the default");
  int batch = 0;
  app.add_option("--batch", batch,
                 "also decode this many left-padded prompts at once (as the study generates its answers), with the "
                 "fused batched step and with the general path, timed in the same run (0: not)")
      ->check(ordo::tools::within(0, 64));
  std::string profile;
  app.add_option("--profile", profile, "write LibTorch's operator trace of ordo's decode steps (chrome://tracing)");
  ordo::tools::device_flags where_flags;
  where_flags.add_to(app);
  where_flags.add_head_to(app);
  where_flags.add_gemv_to(app);
  ordo::tools::one_line_errors(app, "ordo-bench-decoder");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  // --python (or $ORDO_BENCH_PYTHON) must be a program: a wrong path would only show as a missing
  // baseline after the whole run
  if (!python.empty() && !ordo::tools::runnable_program(python)) {
    std::fprintf(stderr, "ordo-bench-decoder: --python %s: not an executable file\n", python.c_str());
    return 1;
  }
  at::set_num_threads(threads);
  ordo::model::placement where;
  try {
    where = where_flags.resolve();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-bench-decoder: %s\n", e.what());
    return 1;
  }
  std::optional<ordo::model::LanguageModel> loaded;
  try {
    loaded.emplace(ordo::model::load_for_inference(ordo::model::existing_model_path(model_path), {}, where));
  } catch (const std::exception& e) {  // a missing or unreadable model: one line, status 1
    std::fprintf(stderr, "ordo-bench-decoder: %s\n", e.what());
    return 1;
  }
  auto& m = *loaded;
  auto lm = m.lm;
  where_flags.apply_head(lm);
  bool nf4 = false;
  ordo::model::for_each_decoder_linear(lm, [&](const std::string&, ordo::model::Linear& l) { nf4 |= l->quantized(); });
  if (llama_cpp_model.empty())
    llama_cpp_model = m.source.extension() == ".gguf" ? m.source.string() : ordo::model::default_model_path().string();
  torch::NoGradGuard no_grad;
  auto ids = (torch::arange(prompt, torch::kLong) * 7919).remainder(40000) + 100;
  ids = ids.unsqueeze(0);
  // Timings end with the result on the host: on a GPU, that waits for the queued kernels.
  const auto finished = [](const torch::Tensor& t) { (void)t.to(torch::kCPU); };
  finished(lm->forward(ids.slice(1, 0, 16)));  // warm-up (on a device: NF4 bytes copied there)
  double prefill = 1e30, decoding = 1e30;
  // `decode` greedy steps from `token` through next(token) -> the next token; the seconds they
  // take (until the last token is on the host) go into `best` when fewer, their tokens into `tokens`.
  const auto timed_decode = [&](torch::Tensor token, const auto& next, double& best, std::vector<torch::Tensor>& tokens) {
    tokens.clear();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < decode; ++i) {
      token = next(token);
      tokens.push_back(token);
    }
    finished(token);
    best = std::min(best, seconds_since(t0));
  };
  std::vector<torch::Tensor> eager_tokens;  // the last run's, to compare with a static cache's
  std::optional<torch::autograd::profiler::RecordProfile> record;
  for (int run = 0; run < repeat; ++run) {
    std::fprintf(stderr, "ordo-bench-decoder: ordo, run %d of %d\n", run + 1, repeat);
    ordo::model::kv_cache cache;
    cache.reserve = prompt + decode;  // as generate makes it
    const auto t0 = std::chrono::steady_clock::now();
    const auto token = lm->forward(ids, {}, &cache).select(1, -1).argmax(-1, true);
    finished(token);
    prefill = std::min(prefill, seconds_since(t0));
    if (!profile.empty() && run + 1 == repeat) record.emplace(profile);  // the last run's decode steps
    const auto next = [&](const torch::Tensor& t) { return lm->forward(t, {}, &cache).select(1, -1).argmax(-1, true); };
    timed_decode(token, next, decoding, eager_tokens);
  }
  record.reset();
  // The same decoding through a static KV cache (a CUDA graph on a CUDA device): its first steps
  // warm up and capture, so each run is a new decoder, timed from the prefill's token on.
  double static_decoding = 1e30;
  bool static_captured = false;
  std::vector<torch::Tensor> static_tokens;
  for (int run = 0; static_cache && run < repeat; ++run) {
    std::fprintf(stderr, "ordo-bench-decoder: ordo with a static KV cache, run %d of %d\n", run + 1, repeat);
    ordo::model::static_decoder fixed(lm, prompt + decode + 1);
    static_captured = fixed.captures();
    const auto token = fixed.prefill(ids).argmax(-1, true);
    finished(token);
    const auto next = [&](const torch::Tensor& t) { return fixed.step(t).argmax(-1, true); };
    timed_decode(token, next, static_decoding, static_tokens);
  }
  // `batch` prompts at once, left-padded (row b is the prompt without its first 4b tokens), then
  // `decode` greedy steps for all rows: with the fused batched step (the default on the CPU) and
  // with the general path (set_fused_decoding(false)), each the best of `repeat` runs.
  double batch_fused = 1e30, batch_general = 1e30;
  std::vector<torch::Tensor> batch_tokens[2];
  for (int run = 0; batch > 0 && run < 2 * repeat; ++run) {
    const bool fused = run % 2 == 0;
    std::fprintf(stderr, "ordo-bench-decoder: %d prompts at once, %s, run %d of %d\n", batch,
                 fused ? "fused step" : "general path", run / 2 + 1, repeat);
    lm->set_fused_decoding(fused);
    auto rows = ids.repeat({batch, 1});
    auto mask = torch::ones({batch, prompt}, torch::kLong);
    for (int b = 0; b < batch; ++b) {
      const auto pad = std::min<std::int64_t>(4 * b, prompt - 1);
      rows[b].slice(0, 0, pad).fill_(0);
      mask[b].slice(0, 0, pad).fill_(0);
    }
    ordo::model::kv_cache cache;
    cache.reserve = prompt + decode;  // as generate_batch makes it
    auto token = lm->head(lm->hidden(rows, mask, &cache).select(1, -1)).argmax(-1, true);  // [batch, 1]
    finished(token);
    const auto next = [&](const torch::Tensor& t) {
      mask = torch::cat({mask, torch::ones({batch, 1}, torch::kLong)}, 1);
      return lm->forward(t, mask, &cache).select(1, -1).argmax(-1, true);
    };
    timed_decode(token, next, fused ? batch_fused : batch_general, batch_tokens[fused ? 0 : 1]);
  }
  lm->set_fused_decoding(true);
  nlohmann::json out = {
      {"benchmark", "decoder_speed"},
      {"model", m.source.string()},
      {"nf4", nf4},
      {"head", where_flags.head_name()},
      {"nf4_gemv", where_flags.nf4_gemv},
      {"model_mb", static_cast<double>(ordo::model::model_bytes(lm)) / (1024.0 * 1024.0)},
      {"prompt_tokens", prompt},
      {"decode_tokens", decode},
      {"threads", threads},
      {"device", ordo::model::device_name(where.device)},
      {"dtype", ordo::model::torch_dtype_name(where.dtype)},
      {"repeat", repeat},
      {"libtorch", std::to_string(ordo::compat::torch_major) + "." + std::to_string(ordo::compat::torch_minor)},
      {"blas_core", ordo::io::blas_core()},
      {"malloc_retains_freed", retains},
      {"ordo", {{"prefill_tokens_per_s", prompt / prefill}, {"decode_tokens_per_s", decode / decoding}}}};
  if (static_cache) {
    out["ordo"]["static_cache_decode_tokens_per_s"] = decode / static_decoding;
    out["ordo"]["static_cache_cuda_graph"] = static_captured;
    out["ordo"]["static_cache_over_default"] = decoding / static_decoding;
    // greedy tokens of the two paths (logits equal up to fp32 rounding: a near tie may differ)
    out["ordo"]["static_cache_same_tokens"] =
        torch::equal(torch::cat(eager_tokens).to(torch::kCPU), torch::cat(static_tokens).to(torch::kCPU));
  }
  if (batch > 0) {
    out["ordo"]["batch"] = batch;
    out["ordo"]["batch_decode_tokens_per_s"] = batch * decode / batch_fused;
    out["ordo"]["batch_general_path_decode_tokens_per_s"] = batch * decode / batch_general;
    out["ordo"]["batch_fused_over_general_path"] = batch_general / batch_fused;
    out["ordo"]["batch_over_batch_1"] = (batch * decode / batch_fused) / (decode / decoding);
    out["ordo"]["batch_same_tokens"] = torch::equal(torch::cat(batch_tokens[0], 1), torch::cat(batch_tokens[1], 1));
  }
  if (!python.empty()) {
    std::fprintf(stderr, "ordo-bench-decoder: the baselines through %s\n", python.c_str());
    auto py = run_python(python, m.source.string(), llama_cpp_model, prompt, decode, threads, repeat,
                         ordo::model::device_name(where.device), ordo::model::torch_dtype_name(where.dtype));
    if (py.is_object() && py.contains("llama_cpp")) {
      const auto cpp = py["llama_cpp"];
      py.erase("llama_cpp");
      out["llama_cpp"] = cpp;
      if (cpp.contains("decode_tokens_per_s")) {
        out["ratio_prefill_llama_cpp"] = (prompt / prefill) / cpp["prefill_tokens_per_s"].get<double>();
        out["ratio_decode_llama_cpp"] = (decode / decoding) / cpp["decode_tokens_per_s"].get<double>();
      }
    }
    out["transformers"] = py;
    if (py.is_object() && py.contains("prefill_tokens_per_s")) {
      out["ratio_prefill"] = (prompt / prefill) / py["prefill_tokens_per_s"].get<double>();
      out["ratio_decode"] = (decode / decoding) / py["decode_tokens_per_s"].get<double>();
    }
  }
  // The goals of the speed issue: prefill >= 1.3x transformers; an NF4 model decodes at least as
  // fast as llama.cpp on the 4-bit GGUF.
  nlohmann::json goals = nlohmann::json::object();
  if (out.contains("ratio_prefill")) goals["prefill >= 1.3x transformers"] = out["ratio_prefill"].get<double>() >= 1.3;
  if (nf4 && out.contains("ratio_decode_llama_cpp"))
    goals["nf4 decode >= 1.0x llama.cpp"] = out["ratio_decode_llama_cpp"].get<double>() >= 1.0;
  out["goals"] = goals;
  std::printf("%s\n", out.dump(1).c_str());
}
