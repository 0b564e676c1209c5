// ordo/text/bpe_vocabulary.hpp — BpeVocabulary: a BPE vocabulary as GGUF files store it
// (`tokenizer.ggml.*` metadata), the input of Tokenizer::from_vocabulary.
#pragma once

#include <cstdint>   // std::int32_t
#include <optional>  // std::optional
#include <string>    // std::string
#include <vector>    // std::vector

#include <ordo/text/token.hpp>  // TokenId

namespace ordo {

/// A vocabulary as GGUF files store it (`tokenizer.ggml.*` metadata), for Tokenizer::from_vocabulary.
struct BpeVocabulary {
  std::string model = "gpt2";             ///< tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama"
                                          ///< (SentencePiece-style BPE with byte fallback)
  std::vector<std::string> tokens;        ///< tokenizer.ggml.tokens: byte-level spelling, id = index
  std::vector<std::string> merges;        ///< tokenizer.ggml.merges: "left right", highest priority first
  std::vector<float> scores;              ///< tokenizer.ggml.scores: "llama" vocabularies without merges
  std::vector<std::int32_t> token_types;  ///< tokenizer.ggml.token_type (empty: all normal); 2 unknown
                                          ///< and 3 control = special added token, 4 user-defined = added token
  std::string pre;                        ///< tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2", "gpt2", ...
                                          ///< (byte-level only)
  std::optional<TokenId> bos_id, eos_id, unk_id, pad_id;
  std::optional<bool> add_bos;           ///< tokenizer.ggml.add_bos_token (default: per `pre`)
  std::optional<bool> add_eos;           ///< tokenizer.ggml.add_eos_token (default: false)
  std::optional<bool> add_space_prefix;  ///< tokenizer.ggml.add_space_prefix ("llama"; default: true)
};

}  // namespace ordo
