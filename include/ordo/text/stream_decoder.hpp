// ordo/text/stream_decoder.hpp — StreamDecoder: generated token ids to text as they come, an
// incomplete UTF-8 tail held back until the character is complete.
#pragma once

#include <algorithm>    // std::min
#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

#include <ordo/text/token.hpp>      // TokenId
#include <ordo/text/tokenizer.hpp>  // Tokenizer (which includes this header at its end)
#include <ordo/text/utf8.hpp>       // utf8::sequence_length, utf8::to_valid_lossy

namespace ordo {

/// Turns generated token ids into text as they come: bytes of a UTF-8 character split across
/// tokens are held back until the character is complete; ill-formed bytes become U+FFFD (one per
/// maximal ill-formed subpart; SentencePiece-style decoding writes one per byte token instead).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(&tokenizer),
        skip_special_(skip_special_tokens),
        strip_leading_space_(tokenizer.decode_strips_leading_space()) {}

  /// Text that is complete after `id` (often empty while a character is still incomplete).
  std::string push(TokenId id) {
    if (skip_special_ && tokenizer_->is_special(id)) return {};
    pending_ += tokenizer_->token_bytes(id);
    // Hold back a tail that is a proper prefix of a well-formed sequence.
    std::size_t cut = pending_.size();
    const std::size_t lookback = std::min<std::size_t>(3, pending_.size());
    for (std::size_t k = 1; k <= lookback; ++k) {
      const std::size_t i = pending_.size() - k;
      const auto b = static_cast<unsigned char>(pending_[i]);
      if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
      std::size_t prefix = 0;
      if (detail::utf8::sequence_length(pending_, i, &prefix) == 0 && b >= 0xC2 && b <= 0xF4 &&
          i + prefix == pending_.size()) {
        cut = i;  // incomplete but could still become well-formed
      }
      break;
    }
    std::string ready = detail::utf8::to_valid_lossy(std::string_view(pending_).substr(0, cut));
    pending_.erase(0, cut);
    return started(std::move(ready));
  }

  /// What is left at the end of generation (an incomplete tail becomes U+FFFD).
  std::string finish() {
    std::string rest = detail::utf8::to_valid_lossy(pending_);
    pending_.clear();
    return started(std::move(rest));
  }

 private:
  // SentencePiece-style decoders drop the space that starts the text.
  std::string started(std::string text) {
    if (!text.empty() && !started_) {
      started_ = true;
      if (strip_leading_space_ && text[0] == ' ') text.erase(0, 1);
    }
    return text;
  }

  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool strip_leading_space_;
  bool started_ = false;
  std::string pending_;
};

}  // namespace ordo
