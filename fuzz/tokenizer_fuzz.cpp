// libFuzzer target: ordo's tokenizer.json loader, encoder and decoder, and the chat-template
// recogniser, on arbitrary bytes. Torch-free. Build and run (apart from fuzz/build.sh):
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
//       -fno-omit-frame-pointer -Iinclude fuzz/tokenizer_fuzz.cpp -lpcre2-8 -o build-fuzz/tokenizer_fuzz
//   mkdir -p build-fuzz/corpus/tokenizer
//   build-fuzz/tokenizer_fuzz -max_len=65536 -max_total_time=300 build-fuzz/corpus/tokenizer tests/text/fixtures
//
// What an input is (so that the committed tokenizer.json fixtures are seeds as they are):
//   starts with '{'       a tokenizer.json: loading must succeed or throw ordo::TokenizerError;
//                         an accepted file then encodes and decodes a fixed text;
//   starts with '#'       a GGUF-style vocabulary: one token per line (a line with a space is a
//                         merge instead), SentencePiece-style ("llama", merges derived from
//                         scores) when the second byte is odd, else byte-level ("gpt2"); an
//                         accepted vocabulary then encodes and decodes a fixed text;
//   else, first byte odd  the rest is text for a built-in tokenizer (added tokens with every
//                         flag, Digits + Llama 3 pattern): encode must not fail on UTF-8,
//                         decode(encode(s)) == s where no flag strips text, and StreamDecoder
//                         must agree with decode (bytes that are not UTF-8 are taken as ids);
//   else                  the rest is a Jinja chat template: recognised, or ChatTemplateError.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ordo/text/chat_template.hpp>
#include <ordo/text/tokenizer.hpp>

namespace {

// A byte-level vocabulary with a few merges and added tokens; `flags` adds lstrip/rstrip/
// single_word tokens (which may drop whitespace, so no round trip is expected then).
std::string builtin_json(bool flags) {
  nlohmann::json vocab = nlohmann::json::object();
  for (unsigned b = 0; b < 256; ++b) vocab[ordo::detail::byte_level::alphabet()[b]] = b;
  const char* merges[][2] = {{"a", "b"}, {"ab", "c"}, {"\xC4\xA0", "a"}, {"\xC4\xA0", "\xC4\xA0"}, {"1", "2"}};
  nlohmann::json m = nlohmann::json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    m.push_back(std::string(l) + " " + r);
    vocab[std::string(l) + r] = next++;
  }
  nlohmann::json added = nlohmann::json::array();
  added.push_back({{"id", next++}, {"content", "<|x|>"}, {"special", true}, {"normalized", false}});
  added.push_back({{"id", next++}, {"content", "<|x|>y"}, {"special", true}, {"normalized", false}});
  added.push_back({{"id", next++}, {"content", "dog"}, {"special", false}, {"normalized", true}});
  if (flags) {
    added.push_back({{"id", next++}, {"content", "<m>"}, {"special", true}, {"lstrip", true}, {"normalized", false}});
    added.push_back({{"id", next++}, {"content", "[s]"}, {"special", true}, {"rstrip", true}, {"normalized", false}});
    added.push_back({{"id", next++}, {"content", "cat"}, {"single_word", true}, {"normalized", true}});
  }
  nlohmann::json j = {
      {"added_tokens", added},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", flags}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", false}},
          {{"type", "Split"},
           {"pattern", {{"Regex", std::string(ordo::detail::llama3_pattern)}}},
           {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", flags}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
  };
  return j.dump();
}

const ordo::Tokenizer& builtin(bool flags) {
  static const ordo::Tokenizer plain = ordo::Tokenizer::from_json(builtin_json(false), "builtin");
  static const ordo::Tokenizer flagged = ordo::Tokenizer::from_json(builtin_json(true), "builtin-flags");
  return flags ? flagged : plain;
}

void check_stream(const ordo::Tokenizer& tok, const std::vector<ordo::TokenId>& ids) {
  ordo::StreamDecoder stream(tok);
  std::string streamed;
  for (const auto id : ids) streamed += stream.push(id);
  streamed += stream.finish();
  if (streamed != tok.decode(ids)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::string_view rest = all.substr(1);
  if (data[0] == '#' && size >= 2) {
    ordo::BpeVocabulary v;
    v.model = data[1] % 2 ? "llama" : "gpt2";
    v.pre = "llama-bpe";
    std::size_t start = 2;
    for (std::size_t i = 2; i <= size && v.tokens.size() < 512; ++i) {
      if (i == size || data[i] == '\n') {
        const std::string line(all.substr(start, i - start));
        if (line.find(' ') != std::string::npos && v.model == "gpt2")
          v.merges.push_back(line);
        else
          v.tokens.push_back(line);
        start = i + 1;
      }
    }
    for (std::size_t i = 0; i < v.tokens.size(); ++i) {
      v.scores.push_back(static_cast<float>(static_cast<int>(v.tokens[i].size() * 7 % 13) - 6));
      v.token_types.push_back(v.tokens[i].size() > 1 && v.tokens[i][0] == '<' ? 3 : 1);
    }
    if (!v.tokens.empty()) v.unk_id = 0;
    std::optional<ordo::Tokenizer> tok;
    try {
      tok.emplace(ordo::Tokenizer::from_vocabulary(v, "fuzz.gguf"));
    } catch (const ordo::TokenizerError&) {
      return 0;
    }
    const auto ids = tok->encode("Hello world 123 <s>  \n x\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80 ab");
    (void)tok->decode(ids);
    (void)tok->decode(ids, true);
    return 0;
  }
  switch (data[0] == '{' ? 0 : 1 + (data[0] % 2 == 0)) {
    case 0: {
      std::optional<ordo::Tokenizer> tok;
      try {
        tok.emplace(ordo::Tokenizer::from_json(all, "fuzz.json"));
      } catch (const ordo::TokenizerError&) {
        return 0;
      }
      const auto ids = tok->encode("Hello world 123 <|im_start|>  \n\n x\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
      // SentencePiece-style decoder chains may rewrite text in ways streaming does not follow.
      if (tok->byte_level()) check_stream(*tok, ids);
      (void)tok->decode(ids, true);
      ordo::StreamDecoder stream(*tok);
      for (const auto id : ids) (void)stream.push(id);
      (void)stream.finish();
      break;
    }
    case 1: {
      if (ordo::detail::utf8::first_invalid(rest)) {
        // Not text: take the bytes as ids instead.
        std::vector<ordo::TokenId> ids;
        for (std::size_t i = 0; i + 1 < rest.size(); i += 2)
          ids.push_back(static_cast<ordo::TokenId>(static_cast<std::uint8_t>(rest[i]) |
                                                   (static_cast<std::uint8_t>(rest[i + 1]) << 8)) %
                        300);
        check_stream(builtin(false), ids);
        return 0;
      }
      const auto ids = builtin(false).encode(rest);
      if (builtin(false).decode(ids) != rest) __builtin_trap();
      check_stream(builtin(false), ids);
      const auto flagged = builtin(true).encode(rest, {.add_special_tokens = true, .parse_special = (size & 1) != 0});
      check_stream(builtin(true), flagged);
      break;
    }
    default: {
      try {
        const auto chat = ordo::ChatTemplate::from_jinja(rest);
        (void)chat.render({{"system", "s"}, {"user", " u\xC2\xA0"}, {"assistant", "a"}}, true);
      } catch (const ordo::ChatTemplateError&) {
      }
      break;
    }
  }
  return 0;
}
