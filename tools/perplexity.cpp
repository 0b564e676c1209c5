// ordo-perplexity: perplexity of a model on a text file (the embedded default unless --model).
//
//   ordo-perplexity --text FILE|- [--model PATH] [--context N] [--stride S] [--protocol sliding|halves]
//                   [--decode] [--nf4-head|--q8-head|--dense-head] [--nf4-gemv exact|int16]
//                   [--max-tokens N] [--scored-logits-only]
//
// The last line of output is a JSON object: {"tokens", "nll", "ppl", ...}. See
// ordo/eval/perplexity.hpp for the protocols.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/data/corpora.hpp>
#include <ordo/eval/perplexity.hpp>
#include <ordo/io/progress.hpp>
#include <ordo/model/language_model.hpp>

#include <ordo/model/load_for_inference.hpp>

#include "checks.hpp"
#include "text_input.hpp"  // --text FILE or -
#include "device_options.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ordo-perplexity: perplexity of a causal LM on a text file"};
  std::string text_path, model_path, protocol = "sliding", tokenizer_path;
  ordo::eval::perplexity_options options;
  int threads = 0;
  app.add_option("--text", text_path, "a UTF-8 text file (-: standard input)")->required()->check(ordo::tools::text_file_or_stdin);
  app.add_option("--model", model_path, "a .gguf file, a Hugging Face directory or an NF4 directory")->check(ordo::tools::non_empty);
  app.add_option("--tokenizer", tokenizer_path, "take the tokenizer from this model (for directories without one)")->check(ordo::tools::non_empty);
  app.add_option("--context", options.context, "tokens per window")
      ->check(ordo::tools::within(2, 1 << 20))
      ->capture_default_str();
  auto* stride = app.add_option("--stride", options.stride, "window step (sliding; default: half the context)")
                     ->check(ordo::tools::positive);
  app.add_option("--protocol", protocol, "sliding or halves (llama.cpp's)")
      ->check(CLI::IsMember({"sliding", "halves"}))
      ->capture_default_str();
  app.add_option("--max-tokens", options.max_tokens, "score at most N tokens (0: all)")
      ->check(ordo::tools::non_negative)
      ->capture_default_str();
  auto* decode = app.add_flag("--decode", options.decode,
                               "score token by token through the KV cache, as batch-1 generation runs (where "
                               "--nf4-gemv acts)");
  app.add_flag("--scored-logits-only", options.scored_logits_only,
               "the LM head only on the positions that predict a scored token: faster, figures differ from the "
               "default in the last digits (ordo/eval/perplexity.hpp)")
      ->excludes(decode);
  ordo::tools::add_threads(app, threads);
  ordo::tools::device_flags device;
  device.add_to(app);
  device.add_head_to(app);
  device.add_gemv_to(app);
  ordo::tools::one_line_errors(app, "ordo-perplexity");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  options.protocol =
      protocol == "halves" ? ordo::eval::perplexity_protocol::halves : ordo::eval::perplexity_protocol::sliding;
  try {
    if (stride->count() == 0) options.stride = std::max<std::int64_t>(1, options.context / 2);
    if (options.stride > options.context)
      throw std::invalid_argument("--stride " + std::to_string(options.stride) + " is larger than --context " +
                                  std::to_string(options.context) + " (the windows would skip tokens)");
    const auto where = device.resolve();  // before any work
    const std::string text = ordo::tools::read_text_argument(text_path);  // UTF-8 of bounded size
    at::set_num_threads(ordo::tools::resolve_threads(threads));
    ordo::tools::warn_if_slow_blas("ordo-perplexity");
    ordo::io::retain_freed_memory();  // large tensors reuse freed pages (ordo/io/cpu.hpp)
    const auto model = ordo::model::load_for_inference(model_path, tokenizer_path, where);
    device.apply_head(model.lm);
    const auto ids32 = model.tokenizer.encode(text);
    if (ids32.size() < 2)
      throw std::invalid_argument(ordo::tools::text_name(text_path) + ": " + std::to_string(ids32.size()) +
                                  " token(s); perplexity needs at least 2");
    const std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
    auto lm = model.lm;
    ordo::io::ProgressLine line(stderr, 5.0, "");  // a line every 5 s when stderr is not a terminal
    const auto start = std::chrono::steady_clock::now();
    const auto r = ordo::eval::perplexity(lm, ids, options, [&](std::int64_t done, std::int64_t total) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char detail[128];
      std::snprintf(detail, sizeof detail, "%lld/%lld tokens scored, %.0f tokens/s, ETA %.0f s",
                    static_cast<long long>(done), static_cast<long long>(total), done / s, (total - done) / (done / s));
      line.update("perplexity", static_cast<double>(done) / static_cast<double>(total), detail);
    });
    line.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json out = {
        {"model", model.source.string()},
        {"text", text_path},
        {"text_tokens", ids.size()},
        {"protocol", protocol},
        {"decode", options.decode},
        {"scored_logits_only", options.scored_logits_only},
        {"head", device.head_name()},
        {"nf4_gemv", device.nf4_gemv},
        {"context", options.context},
        {"stride", options.protocol == ordo::eval::perplexity_protocol::sliding ? options.stride : options.context / 2},
        {"tokens", r.tokens},
        {"nll", r.nll},
        {"ppl", r.ppl},
        {"device", ordo::model::device_name(where.device)},
        {"dtype", ordo::model::torch_dtype_name(where.dtype)},
        {"seconds", seconds}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-perplexity: %s\n", e.what());
    return 1;
  }
}
