// ordo/text/detail/pre_tokenize.hpp — pre-tokenization of byte-level BPE tokenizers: the
// families' split patterns, Hugging Face's split behaviors, and the added-token matcher.
#pragma once

#include <algorithm>    // std::reverse
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <cstdint>      // std::int32_t
#include <map>          // std::map
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <tuple>        // std::tuple
#include <utility>      // std::pair
#include <vector>       // std::vector

#include <ordo/text/detail/pcre2_regex.hpp>  // Pcre2Regex

namespace ordo::detail {

/// One step of the pre-tokenizer.
struct PreTokenizeStep {
  enum class Kind { split, byte_level, metaspace };
  enum class Behavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };
  enum class Prepend { always, first, never };
  Kind kind = Kind::split;
  Pcre2Regex regex;  // split; byte_level with use_regex; metaspace with split
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;      // byte_level
  std::string replacement;            // metaspace: stands for a space ("\u2581")
  Prepend prepend = Prepend::always;  // metaspace
};

/// One step of the normalizer (SentencePiece-style tokenizers: Prepend "\u2581", Replace " ").
struct NormalizeStep {
  enum class Kind { prepend, replace };
  Kind kind = Kind::prepend;
  std::string text;         // prepend: what; replace: the literal replaced
  std::string replacement;  // replace: by what
};

/// A piece of the text while it is cut up; `added` >= 0 marks an added token already found;
/// `at_start`: the piece begins the original text (Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  std::int32_t added = -1;
  bool at_start = false;
};

/// GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is true.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
/// Llama 3's Split pattern (tokenizer.json of Meta-Llama-3 and 3.x).
inline constexpr std::string_view llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
/// Qwen2's Split pattern (Qwen2, Qwen2.5): Llama 3's with single digits.
inline constexpr std::string_view qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// A regex that matches `literal` exactly (Split with a String pattern).
inline std::string escape_literal(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      if (c == '\r') {
        out += "\\r";
        continue;
      }
      if (c == '\t') {
        out += "\\t";
        continue;
      }
      if (u < 0x20 || u == 0x7F) {
        static const char* hex = "0123456789abcdef";
        out += "\\x{";
        out += hex[u >> 4];
        out += hex[u & 15];
        out += '}';
        continue;
      }
      out += '\\';
    }
    out += c;
  }
  return out;
}

/// Leftmost-longest matcher over the added tokens' contents (a byte trie).
class AddedTokenMatcher {
 public:
  void add(std::string_view content, std::size_t index) {
    if (content.empty()) return;
    std::size_t node = 0;
    for (const char c : content) {
      const auto key = static_cast<unsigned char>(c);
      auto it = nodes_[node].next.find(key);
      if (it == nodes_[node].next.end()) {
        nodes_.push_back({});
        it = nodes_[node].next.emplace(key, nodes_.size() - 1).first;
      }
      node = it->second;
    }
    nodes_[node].value = static_cast<std::ptrdiff_t>(index);
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }

  /// The longest entry starting at `text[at]`: {index, length}, or {-1, 0}.
  std::pair<std::ptrdiff_t, std::size_t> longest_at(std::string_view text, std::size_t at) const {
    std::pair<std::ptrdiff_t, std::size_t> best{-1, 0};
    if (!first_byte_[static_cast<unsigned char>(text[at])]) return best;
    std::size_t node = 0;
    for (std::size_t i = at; i < text.size(); ++i) {
      const auto it = nodes_[node].next.find(static_cast<unsigned char>(text[i]));
      if (it == nodes_[node].next.end()) break;
      node = it->second;
      if (nodes_[node].value >= 0) best = {nodes_[node].value, i + 1 - at};
    }
    return best;
  }

 private:
  struct Node {
    std::map<unsigned char, std::size_t> next;
    std::ptrdiff_t value = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_byte_[256] = {};
  bool empty_ = true;
};

/// Hugging Face NormalizedString::split: matches and gaps, flagged, then merged by behavior.
inline void split_piece(const std::string& text, const Pcre2Regex& re, PreTokenizeStep::Behavior behavior, bool invert,
                        std::vector<Piece>& out, bool at_start = false) {
  using B = PreTokenizeStep::Behavior;
  if (text.empty()) return;
  std::vector<std::tuple<std::size_t, std::size_t, bool>> parts;  // begin, end, is_match
  std::size_t prev = 0;
  for (const auto& [b, e] : re.find_all(text)) {
    if (prev != b) parts.emplace_back(prev, b, invert);
    parts.emplace_back(b, e, !invert);
    prev = e;
  }
  if (prev != text.size()) parts.emplace_back(prev, text.size(), invert);

  std::vector<std::pair<std::size_t, std::size_t>> keep;
  switch (behavior) {
    case B::isolated:
      for (const auto& [b, e, m] : parts) keep.emplace_back(b, e);
      break;
    case B::removed:
      for (const auto& [b, e, m] : parts)
        if (!m) keep.emplace_back(b, e);
      break;
    case B::contiguous: {
      bool previous = false;
      for (const auto& [b, e, m] : parts) {
        if (m == previous && !keep.empty())
          keep.back().second = e;
        else
          keep.emplace_back(b, e);
        previous = m;
      }
      break;
    }
    case B::merged_with_previous: {
      bool previous = false;
      for (const auto& [b, e, m] : parts) {
        if (m && !previous && !keep.empty())
          keep.back().second = e;
        else
          keep.emplace_back(b, e);
        previous = m;
      }
      break;
    }
    case B::merged_with_next: {
      bool previous = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        const auto& [b, e, m] = *it;
        if (m && !previous && !keep.empty())
          keep.back().first = b;
        else
          keep.emplace_back(b, e);
        previous = m;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
  }
  for (const auto& [b, e] : keep)
    if (b != e) out.push_back({text.substr(b, e - b), -1, at_start && b == 0});
}

}  // namespace ordo::detail
