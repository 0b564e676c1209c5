// ordo-generate: chat with a model (the embedded default SmolLM2-135M-Instruct unless --model).
//
//   ordo-generate --prompt "What is the capital of France?" [--model PATH] [--max-new-tokens N]
//                 [--greedy] [--temperature T] [--top-p P] [--seed S] [--system TEXT] [--raw]
//                 [--allow-beyond-context] [--static-cache]
//
// The prompt goes through the model's chat template (--raw: as plain text); the reply is
// streamed to stdout as it is generated; a summary goes to stderr, with the prefill (the
// prompt's forward pass) and the generation timed apart. A prompt longer than the model's
// context is refused unless --allow-beyond-context. --static-cache decodes through a KV cache of
// fixed capacity, each token one CUDA graph replay on a GPU (ordo/model/static_decode.hpp).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <ordo/model/generate.hpp>
#include <ordo/model/language_model.hpp>

#include <ordo/model/load_for_inference.hpp>
#include <ordo/text/utf8.hpp>  // utf8::first_invalid

#include "checks.hpp"
#include "device_options.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ordo-generate: generate a reply with a causal LM (default: the embedded SmolLM2)"};
  std::string prompt, model_path, system, tokenizer_path;
  ordo::model::generation_options options;
  bool raw = false, beyond_context = false;
  int threads = 0;
  app.add_option("--prompt", prompt, "the user message")->required();
  app.add_option("--model", model_path, "a .gguf file, a Hugging Face directory or an NF4 directory")->check(ordo::tools::non_empty);
  app.add_option("--tokenizer", tokenizer_path, "take the tokenizer from this model (for directories without one)")->check(ordo::tools::non_empty);
  app.add_option("--max-new-tokens", options.max_new_tokens, "most tokens to generate")
      ->check(ordo::tools::non_negative)
      ->capture_default_str();
  app.add_flag("--greedy", options.greedy, "always take the most likely token");
  app.add_option("--temperature", options.temperature, "sampling temperature")
      ->check(ordo::tools::positive)
      ->capture_default_str();
  app.add_option("--top-p", options.top_p, "nucleus sampling mass")->check(ordo::tools::within(0.0, 1.0))->capture_default_str();
  app.add_option("--seed", options.seed, "sampling seed")->check(ordo::tools::non_negative)->capture_default_str();
  app.add_option("--system", system, "a system message (default: the template's own)");
  app.add_flag("--raw", raw, "use the prompt as plain text, without the chat template");
  app.add_flag("--allow-beyond-context", beyond_context,
               "run a prompt longer than the model's context (positions it was not trained on)");
  app.add_flag("--static-cache", options.static_cache,
               "decode through a KV cache of fixed capacity; on a CUDA device each token is one CUDA graph replay");
  ordo::tools::add_threads(app, threads);
  ordo::tools::device_flags device;
  device.add_to(app);
  device.add_head_to(app);
  device.add_gemv_to(app);
  ordo::tools::one_line_errors(app, "ordo-generate");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;

  try {
    const auto where = device.resolve();  // before any work
    for (const auto& [flag, value] : {std::pair{"--prompt", &prompt}, std::pair{"--system", &system}})
      if (const auto bad = ordo::detail::utf8::first_invalid(*value))
        throw std::invalid_argument(std::string(flag) + " is not valid UTF-8 (byte " + std::to_string(*bad) + ")");
    at::set_num_threads(ordo::tools::resolve_threads(threads));
    ordo::tools::warn_if_slow_blas("ordo-generate");
    ordo::io::retain_freed_memory();  // large tensors reuse freed pages (ordo/io/cpu.hpp)
    const auto model = ordo::model::load_for_inference(model_path, tokenizer_path, where);
    device.apply_head(model.lm);
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
    const auto context = model.lm->config().max_position_embeddings;
    if (static_cast<std::int64_t>(ids.size()) > context && !beyond_context)
      throw std::invalid_argument("the prompt has " + std::to_string(ids.size()) +
                                  " tokens, more than the model's context of " + std::to_string(context) +
                                  " (--allow-beyond-context runs it anyway)");
    if (ids.size() >= 512)  // a prefill long enough to be noticed: say what is happening
      std::fprintf(stderr, "ordo-generate: prefill of %zu prompt tokens\n", ids.size());

    ordo::StreamDecoder stream(model.tokenizer, /*skip_special_tokens=*/true);
    auto lm = model.lm;
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto first = start;  // when the first token came: the end of the prefill
    bool got_first = false;
    const auto result = ordo::model::generate(lm, ids, options, [&](std::int64_t id) {
      if (!got_first) {
        first = clock::now();
        got_first = true;
      }
      std::cout << stream.push(static_cast<ordo::TokenId>(id)) << std::flush;
    });
    std::cout << stream.finish() << std::endl;
    const auto end = clock::now();
    const double prefill = std::chrono::duration<double>((got_first ? first : end) - start).count();
    const double decode = std::chrono::duration<double>(end - first).count();
    // The first token comes out of the prefill; the rate counts the tokens decoded after it.
    const auto decoded = result.tokens.empty() ? 0 : result.tokens.size() - 1;
    if (result.tokens.empty()) {  // --max-new-tokens 0: the model never ran, so there is no rate to give
      std::fprintf(stderr, "[%lld prompt tokens, not run: --max-new-tokens 0]\n",
                   static_cast<long long>(result.prompt_tokens));
      return 0;
    }
    std::fprintf(stderr, "[%lld prompt tokens in %.2f s (%.1f tokens/s), %zu generated, %.1f tokens/s after the first, %s]\n",
                 static_cast<long long>(result.prompt_tokens), prefill,
                 prefill > 0 ? static_cast<double>(result.prompt_tokens) / prefill : 0.0, result.tokens.size(),
                 decoded > 0 && decode > 0 ? static_cast<double>(decoded) / decode : 0.0,
                 result.stopped ? "stopped" : "length limit");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-generate: %s\n", e.what());
    return 1;
  }
}
