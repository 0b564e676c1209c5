// ordo-bench-decoder: prefill tokens/s and batch-1 decode tokens/s of ordo's decoder on the
// embedded default model (fp32 after dequantizing the GGUF), and of transformers on the same
// file in the same run when a Python with transformers is given, and of llama.cpp on the same
// file as it is (quantized) when that Python also has llama_cpp (PyPI llama-cpp-python).
// Prints JSON with the ratios (ordo / the other; above 1: ordo is faster).
//
//   ordo-bench-decoder [--model PATH] [--prompt-tokens 256] [--decode-tokens 64] [--threads 2]
//                      [--python /path/to/venv/bin/python]   (or $ORDO_BENCH_PYTHON)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/io/cpu.hpp>  // retain_freed_memory
#include <ordo/model/language_model.hpp>

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

nlohmann::json run_python(const std::string& python, const std::string& model, int prompt, int decode, int threads) {
  const std::string cmd = python + " " + std::string(ORDO_SOURCE_DIR) + "/benchmarks/decoder_speed.py " + model + " " +
                          std::to_string(prompt) + " " + std::to_string(decode) + " " + std::to_string(threads) +
                          " 2>/dev/null";
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
  CLI::App app{"ordo-bench-decoder: prefill and decode speed against transformers"};
  std::string model_path, python = std::getenv("ORDO_BENCH_PYTHON") ? std::getenv("ORDO_BENCH_PYTHON") : "";
  int prompt = 256, decode = 64, threads = 2;
  app.add_option("--model", model_path, "a .gguf file or HF directory (default: the embedded model)");
  app.add_option("--prompt-tokens", prompt)->capture_default_str();
  app.add_option("--decode-tokens", decode)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--python", python, "a Python with torch and transformers, for the comparison");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  auto m = ordo::model::load_language_model(model_path);
  auto lm = m.lm;
  torch::NoGradGuard no_grad;
  auto ids = (torch::arange(prompt, torch::kLong) * 7919).remainder(40000) + 100;
  ids = ids.unsqueeze(0);
  lm->forward(ids.slice(1, 0, 16));  // warm-up
  ordo::model::kv_cache cache;
  auto t0 = std::chrono::steady_clock::now();
  auto logits = lm->forward(ids, {}, &cache);
  const double prefill = seconds_since(t0);
  auto token = logits.select(1, -1).argmax(-1, true);
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < decode; ++i) {
    logits = lm->forward(token, {}, &cache);
    token = logits.select(1, -1).argmax(-1, true);
  }
  const double decoding = seconds_since(t0);
  nlohmann::json out = {
      {"benchmark", "decoder_speed"},
      {"model", m.source.string()},
      {"prompt_tokens", prompt},
      {"decode_tokens", decode},
      {"threads", threads},
      {"malloc_retains_freed", retains},
      {"ordo", {{"prefill_tokens_per_s", prompt / prefill}, {"decode_tokens_per_s", decode / decoding}}}};
  if (!python.empty()) {
    auto py = run_python(python, m.source.string(), prompt, decode, threads);
    if (py.is_object() && py.contains("llama_cpp")) {
      const auto cpp = py["llama_cpp"];
      py.erase("llama_cpp");
      out["llama_cpp"] = cpp;
      out["ratio_prefill_llama_cpp"] = (prompt / prefill) / cpp["prefill_tokens_per_s"].get<double>();
      out["ratio_decode_llama_cpp"] = (decode / decoding) / cpp["decode_tokens_per_s"].get<double>();
    }
    out["transformers"] = py;
    if (py.is_object()) {
      out["ratio_prefill"] = (prompt / prefill) / py["prefill_tokens_per_s"].get<double>();
      out["ratio_decode"] = (decode / decoding) / py["decode_tokens_per_s"].get<double>();
      out["goal"] = "ordo >= transformers (ratios >= 1)";
    }
  }
  std::printf("%s\n", out.dump(1).c_str());
}
