// ordo/text/token.hpp — token ids, and the tokens a tokenizer matches in the raw text before
// pre-tokenization (Hugging Face "added_tokens").
#pragma once

#include <cstdint>  // std::int32_t
#include <string>   // std::string

namespace ordo {

/// Token ids as models see them.
using TokenId = std::int32_t;

/// A token matched in the raw text before pre-tokenization (Hugging Face "added_tokens").
struct AddedToken {
  TokenId id = -1;
  std::string content;
  bool special = false;      ///< skipped by decode(..., skip_special_tokens = true)
  bool lstrip = false;       ///< also swallows the whitespace on its left
  bool rstrip = false;       ///< also swallows the whitespace on its right
  bool single_word = false;  ///< matches only where it is not inside a word
  bool normalized = false;   ///< matched in the normalized text (after the other added tokens)
};

}  // namespace ordo
