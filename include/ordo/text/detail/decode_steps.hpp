// ordo/text/detail/decode_steps.hpp — the decoder chain of SentencePiece-style BPE (Hugging Face's
// Replace, ByteFallback, Fuse, Strip and Metaspace decoders), applied to token strings.
#pragma once

#include <cstddef>      // std::size_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move
#include <vector>       // std::vector

#include <ordo/text/detail/replace_all.hpp>  // replace_all
#include <ordo/text/utf8.hpp>                // utf8::first_invalid

namespace ordo::detail {

/// One step of the decoder chain.
struct DecodeStep {
  enum class Kind { replace, byte_fallback, fuse, strip, metaspace };
  Kind kind;
  std::string from, to;             // replace: from -> to; strip: the character; metaspace: the replacement
  std::size_t start = 0, stop = 0;  // strip: counts; metaspace: 1 when the first token's is dropped
};

/// The byte a byte-fallback token ("<0x41>") stands for; nothing for other tokens.
inline std::optional<unsigned char> fallback_byte(std::string_view token) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  const int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

// Hugging Face's decoders, applied in order to the list of token strings.
inline std::string run_decoders(const std::vector<DecodeStep>& decoders, std::vector<std::string> tokens) {
  using D = DecodeStep;
  for (const auto& step : decoders) {
    switch (step.kind) {
      case D::Kind::replace:
        for (auto& t : tokens) replace_all(t, step.from, step.to);
        break;
      case D::Kind::byte_fallback: {
        std::vector<std::string> out;
        std::string bytes;
        const auto flush = [&] {
          if (bytes.empty()) return;
          if (!detail::utf8::first_invalid(bytes))
            out.push_back(bytes);
          else
            for (std::size_t k = 0; k < bytes.size(); ++k) out.push_back("\xEF\xBF\xBD");
          bytes.clear();
        };
        for (auto& t : tokens) {
          if (const auto b = fallback_byte(t)) {
            bytes.push_back(static_cast<char>(*b));
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case D::Kind::fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case D::Kind::strip:
        for (auto& t : tokens) {
          std::size_t begin = 0, end = t.size();
          for (std::size_t k = 0; k < step.start && t.compare(begin, step.from.size(), step.from) == 0; ++k)
            begin += step.from.size();
          for (std::size_t k = 0; k < step.stop && end >= begin + step.from.size() &&
                                  t.compare(end - step.from.size(), step.from.size(), step.from) == 0;
               ++k)
            end -= step.from.size();
          t = t.substr(begin, end - begin);
        }
        break;
      case D::Kind::metaspace:
        for (std::size_t k = 0; k < tokens.size(); ++k)
          replace_all(tokens[k], step.from, k == 0 && step.start ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

// The bytes one SentencePiece-style token stands for, as StreamDecoder needs them: its byte,
// or its text with the decoders' replacements.
inline std::string piece_bytes(const std::vector<DecodeStep>& decoders, bool byte_fallback, const std::string& token) {
  if (byte_fallback)
    if (const auto b = fallback_byte(token)) return std::string(1, static_cast<char>(*b));
  std::string t = token;
  for (const auto& step : decoders) {
    if (step.kind == DecodeStep::Kind::replace) replace_all(t, step.from, step.to);
    if (step.kind == DecodeStep::Kind::metaspace) replace_all(t, step.from, " ");
  }
  return t;
}

}  // namespace ordo::detail
