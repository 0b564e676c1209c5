// ordo-tokenize: the token ids of a text under a model's tokenizer, without loading the model's
// weights (torch-free).
//
//   ordo-tokenize [--model PATH] (--text FILE|- | --prompt TEXT) [--json] [--no-special-tokens]
//                 [--split-special]
//   ordo-tokenize [--model FILE.gguf] --save-tokenizer DIR
//
// PATH is a .gguf file or a directory with tokenizer.json (an ordo output, a Hugging Face
// checkpoint); by default the embedded model. Prints the ids one per line, or with --json one
// array of {"id", "piece" (the vocabulary spelling), "text" (the token decoded on its own)}.
// BOS/EOS are added as the tokenizer's post-processor says (--no-special-tokens: never); special
// tokens written in the text ("<|im_end|>") are matched unless --split-special.
// --save-tokenizer writes a GGUF's tokenizer as tokenizer.json, tokenizer_config.json and
// chat_template.jinja, which Hugging Face `tokenizers` / transformers load and which encode every
// text as ordo does from the GGUF (what ordo saves beside a model that came from GGUF).
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ordo/data/corpora.hpp>         // read_text_file
#include <ordo/io/gguf.hpp>              // gguf::File
#include <ordo/model/default_model.hpp>  // existing_model_path
#include <ordo/model/tokenizer_files.hpp>  // write_gguf_tokenizer_files
#include <ordo/text/tokenizer.hpp>       // Tokenizer

#include "checks.hpp"
#include "text_input.hpp"  // --text FILE or -

namespace {

ordo::Tokenizer load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    if (!fs::exists(path / "tokenizer.json"))
      throw std::runtime_error(path.string() + ": no tokenizer.json here (give a .gguf file or a model directory)");
    return ordo::Tokenizer::from_directory(path);
  }
  const ordo::io::gguf::File file(path);
  return ordo::Tokenizer::from_gguf_metadata(file.tokenizer(), path.string());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ordo-tokenize: the token ids of a text under a model's tokenizer"};
  std::string model_path, text_path, prompt, save_dir;
  bool json = false, no_special = false, split_special = false;
  app.add_option("--model", model_path, "a .gguf file or a directory with tokenizer.json (default: the embedded model)")->check(ordo::tools::non_empty);
  auto* text = app.add_option("--text", text_path, "a UTF-8 text file (-: standard input)")
                   ->check(ordo::tools::text_file_or_stdin);
  auto* inline_text = app.add_option("--prompt", prompt, "the text itself");
  text->excludes(inline_text);
  auto* save = app.add_option("--save-tokenizer", save_dir,
                               "write the GGUF's tokenizer here as tokenizer.json, tokenizer_config.json, "
                               "chat_template.jinja");
  save->excludes(text)->excludes(inline_text);
  app.add_flag("--json", json, "one JSON array of {\"id\", \"piece\", \"text\"}");
  app.add_flag("--no-special-tokens", no_special, "never add BOS/EOS");
  app.add_flag("--split-special", split_special, "spell special tokens written in the text as ordinary text");
  ordo::tools::one_line_errors(app, "ordo-tokenize");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  try {
    if (save->count()) {
      ordo::tools::check_output_dir(save_dir, "--save-tokenizer");
      const auto gguf = ordo::model::existing_model_path(model_path);
      if (std::filesystem::is_directory(gguf))
        throw std::invalid_argument(gguf.string() + ": --save-tokenizer reads a .gguf file; a directory has its files");
      (void)load_tokenizer(gguf);  // a tokenizer ordo can read, before anything is written
      std::filesystem::create_directories(save_dir);
      ordo::model::write_gguf_tokenizer_files(gguf, save_dir);
      std::printf("wrote %s/tokenizer.json, tokenizer_config.json%s\n", save_dir.c_str(),
                  std::filesystem::exists(std::filesystem::path(save_dir) / "chat_template.jinja") ? ", chat_template.jinja"
                                                                                                : "");
      return 0;
    }
    if (text->count() == 0 && inline_text->count() == 0) throw std::invalid_argument("give --text FILE or --prompt TEXT");
    const std::string input = text->count() ? ordo::tools::read_text_argument(text_path) : prompt;
    const auto tok = load_tokenizer(ordo::model::existing_model_path(model_path));
    const auto ids = tok.encode(input, {.add_special_tokens = !no_special, .parse_special = !split_special});
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto id : ids)
        out.push_back({{"id", id}, {"piece", tok.token_text(id)}, {"text", tok.decode({id})}});
      std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::string lines;
      for (const auto id : ids) lines += std::to_string(id) + "\n";
      std::fwrite(lines.data(), 1, lines.size(), stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-tokenize: %s\n", e.what());
    return 1;
  }
}
