// ordo-generate: chat with a model (the embedded default SmolLM2-135M-Instruct unless --model).
//
//   ordo-generate --prompt "What is the capital of France?" [--model PATH] [--max-new-tokens N]
//                 [--greedy] [--temperature T] [--top-p P] [--seed S] [--system TEXT] [--raw]
//
// The prompt goes through the model's chat template (--raw: as plain text); the reply is
// streamed to stdout as it is generated; a summary goes to stderr.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <ordo/model/generate.hpp>
#include <ordo/model/language_model.hpp>

#include <ordo/model/load_for_inference.hpp>

#include "checks.hpp"
#include "device_options.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ordo-generate: generate a reply with a causal LM (default: the embedded SmolLM2)"};
  std::string prompt, model_path, system, tokenizer_path;
  ordo::model::generation_options options;
  bool raw = false;
  int threads = 2;
  app.add_option("--prompt", prompt, "the user message")->required();
  app.add_option("--model", model_path, "a .gguf file, a Hugging Face directory or an NF4 directory");
  app.add_option("--tokenizer", tokenizer_path, "take the tokenizer from this model (for directories without one)");
  app.add_option("--max-new-tokens", options.max_new_tokens, "most tokens to generate")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--greedy", options.greedy, "always take the most likely token");
  app.add_option("--temperature", options.temperature, "sampling temperature")
      ->check(ordo::tools::positive)
      ->capture_default_str();
  app.add_option("--top-p", options.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--seed", options.seed, "sampling seed")->capture_default_str();
  app.add_option("--system", system, "a system message (default: the template's own)");
  app.add_flag("--raw", raw, "use the prompt as plain text, without the chat template");
  app.add_option("--threads", threads, "CPU threads")->check(ordo::tools::positive)->capture_default_str();
  ordo::tools::device_flags device;
  device.add_to(app);
  ordo::tools::one_line_errors(app, "ordo-generate");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto where = device.resolve();  // before any work
    at::set_num_threads(threads);
    const auto model = ordo::model::load_for_inference(model_path, tokenizer_path, where);
    std::string text = prompt;
    if (!raw) {
      if (!model.chat) throw std::runtime_error(model.source.string() + " has no chat template ordo knows; use --raw");
      std::vector<ordo::ChatMessage> messages;
      if (!system.empty()) messages.push_back({"system", system});
      messages.push_back({"user", prompt});
      text = model.chat->render(messages, /*add_generation_prompt=*/true);
    }
    // A rendered chat prompt already holds its special tokens (as apply_chat_template does).
    const auto ids32 = model.tokenizer.encode(text, {.add_special_tokens = raw, .parse_special = true});
    const std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
    for (auto id : model.stop_ids()) options.stop_ids.push_back(id);

    ordo::StreamDecoder stream(model.tokenizer, /*skip_special_tokens=*/true);
    auto lm = model.lm;
    const auto start = std::chrono::steady_clock::now();
    const auto result = ordo::model::generate(lm, ids, options, [&](std::int64_t id) {
      std::cout << stream.push(static_cast<ordo::TokenId>(id)) << std::flush;
    });
    std::cout << stream.finish() << std::endl;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "[%lld prompt tokens, %zu generated in %.2f s (%.1f tokens/s), %s]\n",
                 static_cast<long long>(result.prompt_tokens), result.tokens.size(), seconds,
                 result.tokens.size() / seconds, result.stopped ? "stopped" : "length limit");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-generate: %s\n", e.what());
    return 1;
  }
}
