// ordo/text/encode_options.hpp — EncodeOptions: the options of Tokenizer::encode.
#pragma once

namespace ordo {

/// Options of Tokenizer::encode.
struct EncodeOptions {
  /// Apply the post-processor (BOS for Llama 3; nothing for SmolLM2 and Qwen2), as Hugging Face's
  /// encode(text) does by default.
  bool add_special_tokens = true;
  /// Match special tokens written in the text ("<|im_end|>" becomes one token). When false they
  /// are spelled out as ordinary text (Hugging Face: split_special_tokens=True).
  bool parse_special = true;
};

}  // namespace ordo
