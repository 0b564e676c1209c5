// ordo/text/detail/tokenizer_encode.hpp — Tokenizer's encoding steps: cutting added tokens out of
// the text, normalizing, pre-tokenizing, and BPE over each piece (byte-level, or over characters
// with byte fallback for SentencePiece-style vocabularies).
#pragma once

#include <algorithm>    // std::all_of
#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move
#include <vector>       // std::vector

#include <ordo/text/detail/pre_tokenize.hpp>  // Piece, PreTokenizeStep, NormalizeStep, split_piece, AddedTokenMatcher
#include <ordo/text/detail/replace_all.hpp>   // replace_all
#include <ordo/text/token.hpp>                // TokenId, AddedToken
#include <ordo/text/tokenizer.hpp>            // Tokenizer (which includes this header at its end)
#include <ordo/text/utf8.hpp>                 // utf8::lead_length, byte_level::encode

namespace ordo {

// The last / first character of `s` (s non-empty, well-formed).
inline std::string_view Tokenizer::last_char(std::string_view s) {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return s.substr(i);
}

inline std::string_view Tokenizer::first_char(std::string_view s) {
  return s.substr(0, detail::utf8::lead_length(static_cast<unsigned char>(s[0])));
}

// Cuts the added tokens out of the pieces not yet matched (Hugging Face AddedVocabulary).
inline std::vector<detail::Piece> Tokenizer::split_added(std::vector<detail::Piece>& pieces,
                                                         const detail::AddedTokenMatcher& m, bool parse_special) const {
  if (m.empty()) return std::move(pieces);
  std::vector<detail::Piece> out;
  for (auto& piece : pieces) {
    if (piece.added >= 0 || piece.text.empty()) {
      out.push_back(std::move(piece));
      continue;
    }
    const std::string_view s = piece.text;
    std::size_t start_offset = 0;  // end of the previous match
    for (std::size_t at = 0; at < s.size();) {
      const auto [index, len] = m.longest_at(s, at);
      if (index < 0) {
        at += detail::utf8::lead_length(static_cast<unsigned char>(s[at]));
        continue;
      }
      const AddedToken& a = added_[static_cast<std::size_t>(index)];
      std::size_t start = at, stop = at + len;
      if ((a.special && !parse_special) ||
          (a.single_word && ((start > 0 && is_word_char(last_char(s.substr(0, start)))) ||
                             (stop < s.size() && is_word_char(first_char(s.substr(stop))))))) {
        at = stop;  // a discarded match stays ordinary text; the search goes on after it
        continue;
      }
      if (a.lstrip) {
        while (start > start_offset && is_space_char(last_char(s.substr(0, start))))
          start -= last_char(s.substr(0, start)).size();
      }
      if (a.rstrip) {
        while (stop < s.size() && is_space_char(first_char(s.substr(stop)))) stop += first_char(s.substr(stop)).size();
      }
      if (start_offset < start)
        out.push_back(
            {std::string(s.substr(start_offset, start - start_offset)), -1, piece.at_start && start_offset == 0});
      out.push_back({std::string(s.substr(start, stop - start)), a.id});
      start_offset = stop;
      at = stop;
    }
    if (start_offset < s.size())
      out.push_back({std::string(s.substr(start_offset)), -1, piece.at_start && start_offset == 0});
  }
  return out;
}

inline std::vector<detail::Piece> Tokenizer::apply_step(const detail::PreTokenizeStep& step,
                                                        std::vector<detail::Piece>& pieces) const {
  using Step = detail::PreTokenizeStep;
  std::vector<detail::Piece> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    if (piece.added >= 0) {
      out.push_back(std::move(piece));
      continue;
    }
    if (step.kind == Step::Kind::byte_level) {
      if (step.add_prefix_space && (piece.text.empty() || piece.text[0] != ' ')) piece.text.insert(0, 1, ' ');
      if (!step.regex) {
        if (!piece.text.empty()) out.push_back(std::move(piece));
        continue;
      }
      detail::split_piece(piece.text, step.regex, Step::Behavior::isolated, false, out, piece.at_start);
    } else if (step.kind == Step::Kind::metaspace) {
      detail::replace_all(piece.text, " ", step.replacement);
      const bool starts = piece.text.compare(0, step.replacement.size(), step.replacement) == 0;
      if (!starts &&
          (step.prepend == Step::Prepend::always || (step.prepend == Step::Prepend::first && piece.at_start)))
        piece.text.insert(0, step.replacement);
      if (!step.regex) {
        if (!piece.text.empty()) out.push_back(std::move(piece));
        continue;
      }
      detail::split_piece(piece.text, step.regex, Step::Behavior::merged_with_next, false, out, piece.at_start);
    } else {
      detail::split_piece(piece.text, step.regex, step.behavior, step.invert, out, piece.at_start);
    }
  }
  return out;
}

// BPE over one piece of raw bytes (Hugging Face BPE::merge_word + Word::merge_all).
inline void Tokenizer::bpe(const std::string& piece, std::vector<TokenId>& ids) const {
  if (ignore_merges_) {
    const auto it = model_vocab_.find(byte_level_ ? detail::byte_level::encode(piece) : piece);
    if (it != model_vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  if (!byte_level_) return bpe_chars(piece, ids);
  std::vector<TokenId> symbols;  // one per byte, before merging
  symbols.reserve(piece.size());
  TokenId pending_unk = -1;  // an unknown-token run not yet pushed
  for (const char c : piece) {
    const TokenId id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      if (pending_unk >= 0) symbols.push_back(pending_unk), pending_unk = -1;
      symbols.push_back(id);
    } else if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) symbols.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unknown token, Hugging Face drops the byte; so does ordo.
  }
  if (pending_unk >= 0) symbols.push_back(pending_unk);
  merges_.apply(symbols, ids);
}

// its <0xXX> byte tokens (byte_fallback) or the unknown token (Hugging Face BPE::merge_word).
inline void Tokenizer::bpe_chars(const std::string& piece, std::vector<TokenId>& ids) const {
  std::vector<TokenId> symbols;
  TokenId pending_unk = -1;
  for (std::size_t i = 0; i < piece.size();) {
    const std::size_t n = detail::utf8::lead_length(static_cast<unsigned char>(piece[i]));
    const std::string ch = piece.substr(i, n);
    i += n;
    if (const auto it = model_vocab_.find(ch); it != model_vocab_.end()) {
      if (pending_unk >= 0) symbols.push_back(pending_unk), pending_unk = -1;
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_ &&
        std::all_of(ch.begin(), ch.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
      for (const char b : ch) symbols.push_back(byte_ids_[static_cast<unsigned char>(b)]);
      continue;  // as Hugging Face: a pending unknown token stays pending
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) symbols.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) symbols.push_back(pending_unk);
  merges_.apply(symbols, ids);
}

inline void Tokenizer::normalize(std::string& text) const {
  for (const auto& n : normalizers_) {
    if (n.kind == detail::NormalizeStep::Kind::prepend) {
      if (!text.empty()) text.insert(0, n.text);
    } else {
      detail::replace_all(text, n.text, n.replacement);
    }
  }
}

}  // namespace ordo
