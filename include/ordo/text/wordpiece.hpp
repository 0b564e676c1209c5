// ordo/text/wordpiece.hpp — BERT's WordPiece tokenizer, torch-free.
//
// Encodes as Hugging Face `tokenizers` does for BERT-family models (BertNormalizer,
// BertPreTokenizer, WordPiece, a [CLS] ... [SEP] template):
//   1. special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], or a tokenizer.json's added tokens)
//      are cut out of the raw text first, leftmost-longest, so "[SEP]" in a text is one token;
//   2. normalization, one character at a time: clean_text drops NUL, U+FFFD and control,
//      format and private-use characters and turns whitespace into ' '; every CJK ideograph
//      becomes a word of its own; uncased models decompose (NFD), drop nonspacing marks (the
//      accents) and lowercase. This covers every script, not only Latin: the tables in
//      detail/bert_unicode.hpp are read off `tokenizers` for all of Unicode (see there);
//   3. pre-tokenization: split on whitespace, and around each punctuation character (ASCII
//      punctuation and Unicode's P* categories);
//   4. WordPiece: greedy longest match from the start of each word, continuations spelled with
//      the "##" prefix; a word with a part no vocabulary entry matches, or longer than
//      `max_input_chars_per_word` (100) characters, becomes one [UNK];
//   5. truncation to `max_length` tokens, special tokens included, then [CLS] ... [SEP].
// Loads a `vocab.txt` (one token per line, the line number is the id), a `tokenizer.json`
// (model "WordPiece"), or a model directory. Every error names the file.
// Limits: normalizers other than BertNormalizer are refused, as are lowercasing without accent
// stripping (or the reverse), added tokens that are normalized or strip spaces, and pairs of
// sequences. NFD's canonical reordering is not applied across characters; it matters only for
// the few spacing marks with a combining class that survive accent stripping.
//
//   auto tok = ordo::WordPieceTokenizer::from_directory("models/.../model");
//   std::vector<std::int32_t> ids = tok.encode("Héllo, wörld!");   // [CLS] hello , world ! [SEP]
//
// Tests: tests/eval/wordpiece_test.cpp (reference ids from tests/eval/fixtures/make_minilm_fixture.py).
#pragma once

#include <algorithm>      // std::upper_bound, std::min
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int32_t, std::uint32_t
#include <filesystem>     // std::filesystem::path
#include <fstream>        // std::ifstream
#include <iterator>       // std::istreambuf_iterator
#include <limits>         // std::numeric_limits
#include <optional>       // std::optional
#include <span>           // std::span
#include <stdexcept>      // std::runtime_error, std::invalid_argument
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move
#include <vector>         // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json (tokenizer.json, tokenizer_config.json)

#include <ordo/text/detail/bert_unicode.hpp>  // detail::bert_unicode tables
#include <ordo/text/utf8.hpp>                 // detail::utf8::append, first_invalid, next

namespace ordo {

/// A vocabulary or tokenizer file ordo cannot load as WordPiece; what() names the file.
class WordPieceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How the basic tokenization normalizes text (a tokenizer.json's BertNormalizer).
struct BertNormalization {
  bool clean_text = true;            ///< drop control characters, whitespace becomes ' '
  bool handle_chinese_chars = true;  ///< each CJK ideograph is a word of its own
  bool lowercase = true;             ///< uncased: NFD, drop nonspacing marks, lowercase
};

struct WordPieceEncodeOptions {
  bool add_special_tokens = true;  ///< [CLS] ... [SEP] (the post-processor's template)
  /// Keep at most this many tokens, special tokens included; 0: the tokenizer's max_length()
  /// (which may itself be 0: no truncation).
  std::size_t max_length = 0;
};

namespace detail::wordpiece {

namespace uni = ordo::detail::bert_unicode;

inline bool in_ranges(std::span<const uni::CodeRange> table, std::uint32_t cp) {
  auto it = std::upper_bound(table.begin(), table.end(), cp,
                             [](std::uint32_t c, const uni::CodeRange& r) { return c < r.first; });
  return it != table.begin() && cp <= std::prev(it)->last;
}

/// The uncased form of `cp` (NFD, nonspacing marks dropped, lowercased), appended to `out`.
inline void append_uncased(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp));
    return;
  }
  if (cp >= uni::hangul_first && cp <= uni::hangul_last) {  // Unicode's algorithmic NFD
    const std::uint32_t s = cp - uni::hangul_first;
    utf8::append(out, 0x1100 + s / 588);
    utf8::append(out, 0x1161 + (s % 588) / 28);
    if (s % 28) utf8::append(out, 0x11A7 + s % 28);
    return;
  }
  if (in_ranges(uni::marks, cp)) return;
  const std::span<const uni::Mapping> map(uni::uncased);
  auto it =
      std::lower_bound(map.begin(), map.end(), cp, [](const uni::Mapping& m, std::uint32_t c) { return m.code < c; });
  if (it != map.end() && it->code == cp)
    out += it->utf8;
  else
    utf8::append(out, cp);
}

inline std::string read_text_file(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WordPieceError(path.string() + ": cannot open the " + what);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw WordPieceError(path.string() + ": read error");
  return text;
}

inline nlohmann::json read_json_file(const std::filesystem::path& path, const char* what) {
  const std::string text = read_text_file(path, what);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw WordPieceError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw WordPieceError(path.string() + ": the top level must be a JSON object");
  return j;
}

}  // namespace detail::wordpiece

class WordPieceTokenizer {
 public:
  using TokenId = std::int32_t;

  /// A `vocab.txt`: one token per line, the line number (from 0) is its id. The special tokens
  /// are BERT's: [UNK] (required), [CLS] and [SEP] (the template, when both are there), [PAD],
  /// [MASK].
  static WordPieceTokenizer from_vocab_file(const std::filesystem::path& path, BertNormalization normalization = {}) {
    const std::string file = path.string();
    const std::string text = detail::wordpiece::read_text_file(path, "vocabulary file");
    WordPieceTokenizer t;
    t.source_ = file;
    t.normalization_ = normalization;
    std::size_t line = 0;
    for (std::size_t pos = 0; pos < text.size(); ++line) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string token = text.substr(pos, end - pos);
      while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
      pos = end + 1;
      if (token.empty())
        throw WordPieceError(file + ": line " + std::to_string(line + 1) + " is empty (each line must hold one token)");
      t.add_vocab_entry(token, static_cast<TokenId>(line), file);
    }
    if (t.vocab_.empty()) throw WordPieceError(file + ": the vocabulary is empty");
    t.unk_token_ = "[UNK]";
    t.unk_id_ = t.require_token("[UNK]", "the unknown token");
    for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
      if (auto id = t.token_id(s)) t.specials_.push_back({s, *id});
    const auto cls = t.token_id("[CLS]"), sep = t.token_id("[SEP]");
    if (cls && sep) {
      t.prefix_ = {*cls};
      t.suffix_ = {*sep};
    }
    return t;
  }

  /// A Hugging Face `tokenizer.json` with a WordPiece model, a BertNormalizer (or none) and a
  /// BertPreTokenizer. Its truncation length, when it has one, becomes max_length().
  static WordPieceTokenizer from_tokenizer_json(const std::filesystem::path& path) {
    using json = nlohmann::json;
    const std::string file = path.string();
    const json root = detail::wordpiece::read_json_file(path, "tokenizer file");
    auto fail = [&](const std::string& what) -> WordPieceError { return WordPieceError(file + ": " + what); };
    WordPieceTokenizer t;
    t.source_ = file;

    const json* model = root.contains("model") ? &root["model"] : nullptr;
    if (!model || !model->is_object()) throw fail("no \"model\" object");
    if (model->contains("type") && (*model)["type"] != "WordPiece")
      throw fail("model type " + (*model)["type"].dump() + " is not WordPiece");
    if (!model->contains("vocab") || !(*model)["vocab"].is_object())
      throw fail("model.vocab must be an object of token -> id");
    for (const auto& [token, id] : (*model)["vocab"].items()) {
      if (!id.is_number_integer() || id.get<long long>() < 0 ||
          id.get<long long>() > std::numeric_limits<TokenId>::max())
        throw fail("model.vocab: the id of \"" + token + "\" is " + id.dump() + ", not a token id");
      t.add_vocab_entry(token, static_cast<TokenId>(id.get<long long>()), file);
    }
    if (t.vocab_.empty()) throw fail("model.vocab is empty");
    auto string_field = [&](const json& obj, const char* key, const char* fallback) {
      if (!obj.contains(key) || obj[key].is_null()) return std::string(fallback);
      if (!obj[key].is_string()) throw fail(std::string("model.") + key + " must be a string");
      return obj[key].get<std::string>();
    };
    t.unk_token_ = string_field(*model, "unk_token", "[UNK]");
    t.prefix_marker_ = string_field(*model, "continuing_subword_prefix", "##");
    if (model->contains("max_input_chars_per_word")) {
      const json& m = (*model)["max_input_chars_per_word"];
      if (!m.is_number_unsigned()) throw fail("model.max_input_chars_per_word must be a non-negative integer");
      t.max_input_chars_per_word_ = m.get<std::size_t>();
    }
    t.unk_id_ = t.require_token(t.unk_token_, "model.unk_token");

    // normalizer
    const json& norm = root.contains("normalizer") ? root["normalizer"] : json();
    if (norm.is_null()) {
      t.normalization_ = {false, false, false};
    } else {
      if (!norm.is_object() || norm.value("type", "") != "BertNormalizer")
        throw fail("normalizer " + (norm.is_object() ? norm.value("type", std::string("(no type)")) : norm.dump()) +
                   " is not supported (ordo's WordPiece supports BertNormalizer or none)");
      auto flag = [&](const char* key, bool fallback) {
        if (!norm.contains(key) || norm[key].is_null()) return fallback;
        if (!norm[key].is_boolean()) throw fail(std::string("normalizer.") + key + " must be true, false or null");
        return norm[key].get<bool>();
      };
      t.normalization_.clean_text = flag("clean_text", true);
      t.normalization_.handle_chinese_chars = flag("handle_chinese_chars", true);
      t.normalization_.lowercase = flag("lowercase", true);
      if (flag("strip_accents", t.normalization_.lowercase) != t.normalization_.lowercase)
        throw fail(
            "normalizer: strip_accents differs from lowercase; ordo supports uncased (both) and cased (neither) BERT");
    }

    // pre-tokenizer
    const json& pre = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
    if (!pre.is_object() || pre.value("type", "") != "BertPreTokenizer")
      throw fail("pre_tokenizer " + (pre.is_object() ? pre.value("type", std::string("(no type)")) : pre.dump()) +
                 " is not supported (ordo's WordPiece needs BertPreTokenizer)");

    // added tokens: cut out of the raw text
    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
      const json& added = root["added_tokens"];
      if (!added.is_array()) throw fail("added_tokens must be an array");
      for (const json& a : added) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") ||
            !a["id"].is_number_integer() || a["id"].get<long long>() < 0 ||
            a["id"].get<long long>() > std::numeric_limits<TokenId>::max())
          throw fail("added_tokens: each entry needs a string \"content\" and a token id \"id\"");
        const std::string content = a["content"].get<std::string>();
        const auto id = static_cast<TokenId>(a["id"].get<long long>());
        for (const char* key : {"lstrip", "rstrip", "single_word", "normalized"})
          if (a.value(key, false))
            throw fail("added token \"" + content + "\" sets " + key + ", which ordo's WordPiece does not support");
        if (content.empty()) throw fail("added_tokens: an empty token");
        if (auto known = t.token_id(content); known && *known != id)
          throw fail("added token \"" + content + "\" has id " + std::to_string(id) + " but the vocabulary gives it " +
                     std::to_string(*known));
        if (!t.token_id(content)) t.add_vocab_entry(content, id, file);
        t.specials_.push_back({content, id});
      }
    }

    // post-processor: the special tokens around a single sequence
    const json& post = root.contains("post_processor") ? root["post_processor"] : json();
    if (!post.is_null()) {
      const std::string type = post.is_object() ? post.value("type", std::string("(no type)")) : post.dump();
      if (type == "BertProcessing") {
        auto special = [&](const char* key) {
          const json& p = post.contains(key) ? post[key] : json();
          if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_number_integer())
            throw fail(std::string("post_processor.") + key + " must be [token, id]");
          return static_cast<TokenId>(p[1].get<long long>());
        };
        t.prefix_ = {special("cls")};
        t.suffix_ = {special("sep")};
      } else if (type == "TemplateProcessing") {
        const json& single = post.contains("single") ? post["single"] : json();
        const json& specials = post.contains("special_tokens") ? post["special_tokens"] : json();
        if (!single.is_array() || !specials.is_object())
          throw fail("post_processor: TemplateProcessing needs \"single\" and \"special_tokens\"");
        bool seen_sequence = false;
        for (const json& piece : single) {
          if (piece.contains("Sequence")) {
            if (seen_sequence) throw fail("post_processor.single holds the sequence twice");
            seen_sequence = true;
            continue;
          }
          if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id"))
            throw fail("post_processor.single: each piece must be a Sequence or a SpecialToken");
          const std::string name = piece["SpecialToken"]["id"].get<std::string>();
          if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
            throw fail("post_processor: special token \"" + name + "\" has no ids in special_tokens");
          for (const json& id : specials[name]["ids"])
            (seen_sequence ? t.suffix_ : t.prefix_).push_back(id.get<TokenId>());
        }
        if (!seen_sequence) throw fail("post_processor.single has no Sequence");
      } else {
        throw fail("post_processor " + type + " is not supported (TemplateProcessing, BertProcessing or none)");
      }
      for (TokenId id : t.prefix_) t.require_id(id, "post_processor");
      for (TokenId id : t.suffix_) t.require_id(id, "post_processor");
    }

    if (root.contains("truncation") && root["truncation"].is_object()) {
      const json& m = root["truncation"].contains("max_length") ? root["truncation"]["max_length"] : json();
      if (!m.is_number_unsigned()) throw fail("truncation.max_length must be a non-negative integer");
      t.set_max_length(m.get<std::size_t>());
    }
    return t;
  }

  /// `tokenizer.json` (by its extension) or a `vocab.txt`.
  static WordPieceTokenizer from_file(const std::filesystem::path& path) {
    return path.extension() == ".json" ? from_tokenizer_json(path) : from_vocab_file(path);
  }

  /// A model directory: `tokenizer.json`, else `vocab.txt` with the flags of
  /// `tokenizer_config.json` (do_lower_case, strip_accents, tokenize_chinese_chars). The
  /// maximum length is sentence-transformers' `max_seq_length` (`sentence_bert_config.json`)
  /// when there is one, else `model_max_length` of `tokenizer_config.json`, else the
  /// truncation of `tokenizer.json`.
  static WordPieceTokenizer from_directory(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    using json = nlohmann::json;
    if (!fs::is_directory(dir)) throw WordPieceError(dir.string() + ": not a directory");
    const fs::path config_path = dir / "tokenizer_config.json";
    json config = json::object();
    if (fs::exists(config_path)) config = detail::wordpiece::read_json_file(config_path, "tokenizer config");
    WordPieceTokenizer t;
    if (fs::exists(dir / "tokenizer.json")) {
      t = from_tokenizer_json(dir / "tokenizer.json");
    } else if (fs::exists(dir / "vocab.txt")) {
      auto flag = [&](const char* key, bool fallback) {
        if (!config.contains(key) || config[key].is_null()) return fallback;
        if (!config[key].is_boolean())
          throw WordPieceError(config_path.string() + ": " + key + " must be true, false or null");
        return config[key].get<bool>();
      };
      BertNormalization n;
      n.lowercase = flag("do_lower_case", true);
      n.handle_chinese_chars = flag("tokenize_chinese_chars", true);
      if (flag("strip_accents", n.lowercase) != n.lowercase)
        throw WordPieceError(
            config_path.string() +
            ": strip_accents differs from do_lower_case; ordo supports uncased (both) and cased (neither) BERT");
      t = from_vocab_file(dir / "vocab.txt", n);
    } else {
      throw WordPieceError(dir.string() + ": no tokenizer.json or vocab.txt");
    }
    const fs::path st_path = dir / "sentence_bert_config.json";
    if (fs::exists(st_path)) {
      const json st = detail::wordpiece::read_json_file(st_path, "sentence-transformers config");
      if (st.contains("max_seq_length") && !st["max_seq_length"].is_null()) {
        if (!st["max_seq_length"].is_number_unsigned() || st["max_seq_length"].get<std::size_t>() == 0)
          throw WordPieceError(st_path.string() + ": max_seq_length must be a positive integer");
        t.set_max_length(st["max_seq_length"].get<std::size_t>());
        return t;
      }
    }
    if (config.contains("model_max_length") && config["model_max_length"].is_number_unsigned()) {
      // transformers writes a huge sentinel (1e30) when there is no limit.
      const auto n = config["model_max_length"].get<std::size_t>();
      if (n > 0 && n < 1'000'000) t.set_max_length(n);
    }
    return t;
  }

  /// Token ids of `text` (valid UTF-8; anything else is std::invalid_argument naming the byte
  /// offset): special tokens cut out, normalized, split, WordPiece, truncated, [CLS]/[SEP].
  std::vector<TokenId> encode(std::string_view text, const WordPieceEncodeOptions& options = {}) const {
    std::vector<TokenId> body;
    for_each_segment(text, [&](std::string_view plain, std::optional<TokenId> special) {
      if (special) {
        body.push_back(*special);
        return;
      }
      for (const std::string& word : pre_tokenize(normalize(plain))) word_piece(word, body);
    });
    const std::size_t limit = options.max_length ? options.max_length : max_length_;
    const std::size_t extra = options.add_special_tokens ? prefix_.size() + suffix_.size() : 0;
    if (limit) {
      if (limit < extra)
        throw std::invalid_argument("WordPieceTokenizer::encode: max_length " + std::to_string(limit) +
                                    " leaves no room for the " + std::to_string(extra) + " special tokens");
      if (body.size() > limit - extra) body.resize(limit - extra);
    }
    if (!options.add_special_tokens) return body;
    std::vector<TokenId> ids(prefix_);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  /// The word pieces of `text` as strings (no special tokens added, no truncation).
  std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::string> out;
    for (TokenId id :
         encode(text, {.add_special_tokens = false, .max_length = std::numeric_limits<std::size_t>::max()}))
      out.push_back(token_text(id));
    return out;
  }

  /// The normalized text (steps 2 of the header comment). `text` must be valid UTF-8.
  std::string normalize(std::string_view text) const {
    namespace uni = detail::bert_unicode;
    check_utf8(text);
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t i = 0; i < text.size();) {
      const std::uint32_t cp = detail::utf8::next(text, i);
      if (normalization_.clean_text) {
        if (detail::wordpiece::in_ranges(uni::removed, cp)) continue;
        if (detail::wordpiece::in_ranges(uni::to_space, cp)) {
          out.push_back(' ');
          continue;
        }
      }
      const bool chinese =
          normalization_.handle_chinese_chars && cp >= 0x3400 && detail::wordpiece::in_ranges(uni::chinese, cp);
      if (chinese) out.push_back(' ');
      if (normalization_.lowercase)
        detail::wordpiece::append_uncased(out, cp);
      else
        detail::utf8::append(out, cp);
      if (chinese) out.push_back(' ');
    }
    return out;
  }

  /// Words of normalized text: split on whitespace (dropped) and around punctuation (kept).
  std::vector<std::string> pre_tokenize(std::string_view normalized) const {
    namespace uni = detail::bert_unicode;
    std::vector<std::string> words;
    std::string word;
    auto flush = [&] {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    };
    for (std::size_t i = 0; i < normalized.size();) {
      const std::size_t start = i;
      const std::uint32_t cp = detail::utf8::next(normalized, i);
      if (detail::wordpiece::in_ranges(uni::whitespace, cp)) {
        flush();
      } else if (detail::wordpiece::in_ranges(uni::punctuation, cp)) {
        flush();
        words.emplace_back(normalized.substr(start, i - start));
      } else {
        word.append(normalized.substr(start, i - start));
      }
    }
    flush();
    return words;
  }

  /// Appends the WordPiece ids of one word (greedy longest match; [UNK] for the whole word when
  /// a part matches nothing or the word is longer than max_input_chars_per_word characters).
  void word_piece(std::string_view word, std::vector<TokenId>& out) const {
    std::size_t chars = 0;
    for (unsigned char c : word) chars += (c & 0xC0) != 0x80;
    if (chars > max_input_chars_per_word_) {
      out.push_back(unk_id_);
      return;
    }
    const std::size_t first = out.size();
    std::string candidate;
    for (std::size_t start = 0; start < word.size();) {
      std::size_t end = word.size();
      std::optional<TokenId> found;
      while (end > start) {
        candidate.assign(start > 0 ? prefix_marker_ : std::string());
        candidate.append(word.substr(start, end - start));
        if (auto it = vocab_.find(candidate); it != vocab_.end()) {
          found = it->second;
          break;
        }
        do --end;  // back by one UTF-8 character
        while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
      }
      if (!found) {
        out.resize(first);
        out.push_back(unk_id_);
        return;
      }
      out.push_back(*found);
      start = end;
    }
  }

  std::optional<TokenId> token_id(std::string_view token) const {
    auto it = vocab_.find(std::string(token));
    return it == vocab_.end() ? std::nullopt : std::optional<TokenId>(it->second);
  }
  /// The token with id `id`; std::out_of_range when there is none.
  const std::string& token_text(TokenId id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !has_token_[static_cast<std::size_t>(id)])
      throw std::out_of_range("WordPieceTokenizer: no token with id " + std::to_string(id) + " in " + source_);
    return tokens_[static_cast<std::size_t>(id)];
  }

  /// One more than the largest id (ids may have gaps in a tokenizer.json).
  std::size_t vocab_size() const noexcept { return tokens_.size(); }
  TokenId unk_id() const noexcept { return unk_id_; }
  /// The padding id: [PAD] when the vocabulary has it, else 0.
  TokenId pad_id() const { return token_id("[PAD]").value_or(0); }
  const std::vector<TokenId>& prefix_ids() const noexcept { return prefix_; }  ///< [CLS]
  const std::vector<TokenId>& suffix_ids() const noexcept { return suffix_; }  ///< [SEP]
  const BertNormalization& normalization() const noexcept { return normalization_; }
  std::size_t max_input_chars_per_word() const noexcept { return max_input_chars_per_word_; }
  /// Default truncation length, special tokens included (0: none).
  std::size_t max_length() const noexcept { return max_length_; }
  void set_max_length(std::size_t n) noexcept { max_length_ = n; }
  /// The file the vocabulary came from.
  const std::string& source() const noexcept { return source_; }

 private:
  struct Special {
    std::string text;
    TokenId id;
  };

  WordPieceTokenizer() = default;

  void add_vocab_entry(const std::string& token, TokenId id, const std::string& file) {
    if (detail::utf8::first_invalid(token))
      throw WordPieceError(file + ": token " + std::to_string(id) + " is not valid UTF-8");
    if (!vocab_.emplace(token, id).second)
      throw WordPieceError(file + ": token \"" + token + "\" appears twice (ids " + std::to_string(vocab_.at(token)) +
                           " and " + std::to_string(id) + ")");
    const auto i = static_cast<std::size_t>(id);
    if (i >= tokens_.size()) {
      tokens_.resize(i + 1);
      has_token_.resize(i + 1, false);
    }
    if (has_token_[i])
      throw WordPieceError(file + ": id " + std::to_string(id) + " is given to both \"" + tokens_[i] + "\" and \"" +
                           token + "\"");
    tokens_[i] = token;
    has_token_[i] = true;
  }

  TokenId require_token(const std::string& token, const char* what) const {
    if (auto id = token_id(token)) return *id;
    throw WordPieceError(source_ + ": " + what + " \"" + token + "\" is not in the vocabulary");
  }
  void require_id(TokenId id, const char* what) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !has_token_[static_cast<std::size_t>(id)])
      throw WordPieceError(source_ + ": " + what + " uses id " + std::to_string(id) + ", which no token has");
  }

  void check_utf8(std::string_view text) const {
    if (auto bad = detail::utf8::first_invalid(text))
      throw std::invalid_argument("WordPieceTokenizer: the text is not valid UTF-8 at byte " + std::to_string(*bad));
  }

  /// Calls f(plain_text, nullopt) and f({}, id) for the pieces of `text` around special tokens
  /// (leftmost match, longest at a position).
  template <class F>
  void for_each_segment(std::string_view text, F&& f) const {
    check_utf8(text);
    std::size_t plain = 0;
    for (std::size_t i = 0; i < text.size();) {
      const Special* best = nullptr;
      for (const Special& s : specials_)
        if (text.substr(i).starts_with(s.text) && (!best || s.text.size() > best->text.size())) best = &s;
      if (!best) {
        ++i;
        continue;
      }
      if (i > plain) f(text.substr(plain, i - plain), std::nullopt);
      f(std::string_view(), best->id);
      i += best->text.size();
      plain = i;
    }
    if (plain < text.size()) f(text.substr(plain), std::nullopt);
  }

  std::unordered_map<std::string, TokenId> vocab_;
  std::vector<std::string> tokens_;
  std::vector<bool> has_token_;
  std::vector<Special> specials_;
  std::vector<TokenId> prefix_, suffix_;
  std::string unk_token_ = "[UNK]";
  std::string prefix_marker_ = "##";
  TokenId unk_id_ = 0;
  std::size_t max_input_chars_per_word_ = 100;
  std::size_t max_length_ = 0;
  BertNormalization normalization_;
  std::string source_;
};

}  // namespace ordo
