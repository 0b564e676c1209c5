// ordo/model/tokenizer.hpp — BPE tokenizer of the Llama/Qwen2 family, torch-free.
//
// Loads a Hugging Face `tokenizer.json` (model.type "BPE") or the vocabulary a GGUF file carries
// (`tokenizer.ggml.*`), and encodes and decodes as Hugging Face `tokenizers` does for the
// families ordo supports: byte-level BPE (SmolLM2, Llama 3, Qwen2/2.5, GPT-2) and
// SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama). For byte-level BPE:
//   1. added and special tokens are cut out of the text first (leftmost-longest, with their
//      lstrip / rstrip / single_word flags), so "<|im_start|>" in a prompt is one token;
//   2. the rest is pre-tokenized by the family's regexes (Split, Digits, ByteLevel steps);
//   3. each piece is spelled in the byte-level alphabet and merged by BPE ranks
//      (`ignore_merges`: a piece that is itself a vocabulary entry is taken whole, as Llama 3);
//   4. the post-processor adds BOS/EOS when asked (TemplateProcessing, as Llama 3's).
// Decoding maps tokens back to bytes and replaces ill-formed UTF-8 by U+FFFD, as Hugging Face
// does; StreamDecoder holds back an incomplete UTF-8 tail while generating. SentencePiece-style
// BPE normalizes instead (Prepend/Replace "\u2581", or Metaspace), merges characters, writes
// characters outside the vocabulary as <0xXX> byte tokens, and decodes through its chain.
//
// Needs PCRE2 (libpcre2-8) and nlohmann-json. Docs: docs/tokenizer.md; tests: tests/model/.
//
//   auto tok = ordo::Tokenizer::from_file("tokenizer.json");
//   std::vector<std::int32_t> ids = tok.encode("Hello <|im_start|>");
//   std::string text = tok.decode(ids);
#pragma once

#include <algorithm>      // std::max, std::sort
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int32_t, std::uint32_t, std::uint64_t
#include <filesystem>     // std::filesystem::path
#include <fstream>        // std::ifstream
#include <initializer_list>  // std::initializer_list
#include <iterator>       // std::istreambuf_iterator
#include <limits>         // std::numeric_limits
#include <optional>       // std::optional
#include <span>           // std::span
#include <stdexcept>      // std::runtime_error, std::invalid_argument
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <tuple>          // std::tuple
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move, std::pair
#include <vector>         // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/model/detail/bpe.hpp>          // detail::BpeMerges
#include <ordo/model/detail/pcre2_regex.hpp>  // detail::Pcre2Regex
#include <ordo/model/detail/pre_tokenize.hpp> // detail::PreTokenizeStep, split_piece, AddedTokenMatcher
#include <ordo/model/detail/utf8.hpp>         // detail::utf8, detail::byte_level

namespace ordo {

/// A tokenizer file or vocabulary that ordo cannot load; what() names the source and the problem.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

/// A vocabulary as GGUF files store it (`tokenizer.ggml.*` metadata), for Tokenizer::from_vocabulary.
struct BpeVocabulary {
  std::string model = "gpt2";            ///< tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama"
                                         ///< (SentencePiece-style BPE with byte fallback)
  std::vector<std::string> tokens;       ///< tokenizer.ggml.tokens: byte-level spelling, id = index
  std::vector<std::string> merges;       ///< tokenizer.ggml.merges: "left right", highest priority first
  std::vector<float> scores;             ///< tokenizer.ggml.scores: "llama" vocabularies without merges
  std::vector<std::int32_t> token_types; ///< tokenizer.ggml.token_type (empty: all normal); 2 unknown
                                         ///< and 3 control = special added token, 4 user-defined = added token
  std::string pre;                       ///< tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2", "gpt2", ...
                                         ///< (byte-level only)
  std::optional<TokenId> bos_id, eos_id, unk_id, pad_id;
  std::optional<bool> add_bos;           ///< tokenizer.ggml.add_bos_token (default: per `pre`)
  std::optional<bool> add_eos;           ///< tokenizer.ggml.add_eos_token (default: false)
  std::optional<bool> add_space_prefix;  ///< tokenizer.ggml.add_space_prefix ("llama"; default: true)
};

/// Options of Tokenizer::encode.
struct EncodeOptions {
  /// Apply the post-processor (BOS for Llama 3; nothing for SmolLM2 and Qwen2), as Hugging Face's
  /// encode(text) does by default.
  bool add_special_tokens = true;
  /// Match special tokens written in the text ("<|im_end|>" becomes one token). When false they
  /// are spelled out as ordinary text (Hugging Face: split_special_tokens=True).
  bool parse_special = true;
};

/// Byte-level BPE tokenizer. Immutable after construction; encode/decode may run concurrently.
class Tokenizer {
 public:
  /// Loads a Hugging Face tokenizer.json. Throws TokenizerError naming the file and the problem.
  static Tokenizer from_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw TokenizerError(path.string() + ": cannot open the tokenizer file");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw TokenizerError(path.string() + ": read error");
    return from_json(text, path.string());
  }

  /// Parses the text of a tokenizer.json; `source` names it in error messages.
  static Tokenizer from_json(std::string_view json_text, std::string source = "tokenizer.json") {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(json_text.begin(), json_text.end());
    } catch (const nlohmann::json::exception& e) {
      throw TokenizerError(source + ": not valid JSON (" + e.what() + ")");
    }
    Tokenizer t;
    t.source_ = std::move(source);
    t.load_json(j);
    return t;
  }

  /// Loads a Hugging Face checkpoint directory's tokenizer.json, and BOS/EOS/PAD from its
  /// tokenizer_config.json when there is one ("bos_token": "<s>" or {"content": "<s>", ...}).
  static Tokenizer from_directory(const std::filesystem::path& dir) {
    Tokenizer t = from_file(dir / "tokenizer.json");
    const auto config_path = dir / "tokenizer_config.json";
    std::ifstream in(config_path, std::ios::binary);
    if (!in) return t;
    nlohmann::json config;
    try {
      config = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw TokenizerError(config_path.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!config.is_object()) throw TokenizerError(config_path.string() + ": the top level must be a JSON object");
    const auto id_of = [&](const char* key) -> std::optional<TokenId> {
      const auto it = config.find(key);
      if (it == config.end() || it->is_null()) return std::nullopt;
      const nlohmann::json& v = it->is_object() && it->contains("content") ? (*it)["content"] : *it;
      if (!v.is_string()) throw TokenizerError(config_path.string() + ": " + key + " must be a string or {\"content\": ...}");
      const auto id = t.token_id(v.get<std::string>());
      if (!id) {
        throw TokenizerError(config_path.string() + ": " + key + " \"" + v.get<std::string>() +
                             "\" is not a token of " + t.source());
      }
      return id;
    };
    const auto bos = id_of("bos_token");
    const auto eos = id_of("eos_token");
    const auto pad = id_of("pad_token");
    t.set_special_ids(bos, eos, pad);
    return t;
  }

  /// Builds the tokenizer from a GGUF-style vocabulary; `source` names it in error messages.
  static Tokenizer from_vocabulary(const BpeVocabulary& v, std::string source = "GGUF tokenizer metadata") {
    Tokenizer t;
    t.source_ = std::move(source);
    t.load_vocabulary(v);
    return t;
  }

  /// Builds the tokenizer from a GGUF file's tokenizer metadata: ordo::io::gguf::TokenizerMetadata
  /// (file.tokenizer()) or any type with its fields (model, pre, tokens, token_types, merges,
  /// bos_id, eos_id, unknown_id, padding_id, add_bos, add_eos, scores, add_space_prefix).
  template <class Metadata>
  static Tokenizer from_gguf_metadata(const Metadata& m, std::string source = "GGUF tokenizer metadata") {
    BpeVocabulary v;
    v.model = std::string(m.model);
    v.scores.assign(m.scores.begin(), m.scores.end());
    v.add_space_prefix = m.add_space_prefix;
    v.tokens.assign(m.tokens.begin(), m.tokens.end());
    v.merges.assign(m.merges.begin(), m.merges.end());
    v.token_types.assign(m.token_types.begin(), m.token_types.end());
    v.pre = std::string(m.pre);
    const auto id = [](const auto& x) -> std::optional<TokenId> {
      if (!x) return std::nullopt;
      return static_cast<TokenId>(*x);
    };
    v.bos_id = id(m.bos_id);
    v.eos_id = id(m.eos_id);
    v.unk_id = id(m.unknown_id);
    v.pad_id = id(m.padding_id);
    v.add_bos = m.add_bos;
    v.add_eos = m.add_eos;
    return from_vocabulary(v, std::move(source));
  }

  /// Text to token ids. `text` must be well-formed UTF-8 (std::invalid_argument otherwise).
  std::vector<TokenId> encode(std::string_view text, EncodeOptions options = {}) const {
    if (const auto bad = detail::utf8::first_invalid(text)) {
      throw std::invalid_argument("ordo::Tokenizer::encode: the text is not valid UTF-8 (byte " +
                                  std::to_string(*bad) + ")");
    }
    std::vector<detail::Piece> pieces;
    if (!text.empty()) pieces.push_back({std::string(text), -1, true});
    pieces = split_added(pieces, raw_matcher_, options.parse_special);
    for (auto& p : pieces)
      if (p.added < 0) normalize(p.text);
    pieces = split_added(pieces, normalized_matcher_, options.parse_special);
    for (const auto& step : steps_) pieces = apply_step(step, pieces);

    std::vector<TokenId> ids;
    if (options.add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
    for (const auto& p : pieces) {
      if (p.added >= 0) {
        ids.push_back(p.added);
      } else if (!p.text.empty()) {
        bpe(p.text, ids);
      }
    }
    if (options.add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
    return ids;
  }

  /// Token ids to text: the tokens' bytes joined, ill-formed UTF-8 replaced by U+FFFD (as
  /// Hugging Face decodes). Ids outside the vocabulary are skipped, as Hugging Face does.
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const {
    if (decoders_.empty()) return detail::utf8::to_valid_lossy(decode_bytes(ids, skip_special_tokens));
    std::vector<std::string> tokens;
    for (const TokenId id : ids) {
      if (!contains(id)) continue;
      if (skip_special_tokens && special_[static_cast<std::size_t>(id)]) continue;
      tokens.push_back(tokens_[static_cast<std::size_t>(id)]);
    }
    return run_decoders(std::move(tokens));
  }
  std::string decode(std::initializer_list<TokenId> ids, bool skip_special_tokens = false) const {
    return decode(std::span<const TokenId>(ids.begin(), ids.size()), skip_special_tokens);
  }

  /// The raw bytes of the tokens, joined (may end inside a UTF-8 sequence).
  std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens = false) const {
    std::string out;
    for (const TokenId id : ids) {
      if (!contains(id)) continue;
      if (skip_special_tokens && special_[static_cast<std::size_t>(id)]) continue;
      out += bytes_[static_cast<std::size_t>(id)];
    }
    return out;
  }

  /// The bytes one token stands for ("" for ids outside the vocabulary).
  const std::string& token_bytes(TokenId id) const {
    static const std::string none;
    return contains(id) ? bytes_[static_cast<std::size_t>(id)] : none;
  }
  /// The token's vocabulary spelling (byte-level alphabet for ordinary tokens).
  const std::string& token_text(TokenId id) const {
    static const std::string none;
    return contains(id) ? tokens_[static_cast<std::size_t>(id)] : none;
  }
  /// The id of a vocabulary spelling or added token, if any.
  std::optional<TokenId> token_id(std::string_view spelling) const {
    const std::string key(spelling);
    if (const auto it = added_lookup_.find(key); it != added_lookup_.end()) return it->second;
    if (const auto it = model_vocab_.find(key); it != model_vocab_.end()) return it->second;
    return std::nullopt;
  }

  /// One more than the largest id (the size an embedding table needs at least).
  std::size_t vocab_size() const { return tokens_.size(); }
  bool contains(TokenId id) const {
    return id >= 0 && static_cast<std::size_t>(id) < tokens_.size() && present_[static_cast<std::size_t>(id)];
  }
  bool is_special(TokenId id) const { return contains(id) && special_[static_cast<std::size_t>(id)]; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }

  std::optional<TokenId> bos_id() const { return bos_id_; }
  std::optional<TokenId> eos_id() const { return eos_id_; }
  std::optional<TokenId> pad_id() const { return pad_id_; }
  /// Sets BOS/EOS/PAD (tokenizer.json does not carry them; tokenizer_config.json does).
  void set_special_ids(std::optional<TokenId> bos, std::optional<TokenId> eos,
                       std::optional<TokenId> pad = std::nullopt) {
    for (const auto& id : {bos, eos, pad}) {
      if (id && !contains(*id)) {
        throw TokenizerError(source_ + ": special token id " + std::to_string(*id) + " is not in the vocabulary");
      }
    }
    bos_id_ = bos;
    eos_id_ = eos;
    pad_id_ = pad;
  }

  /// Byte-level BPE (GPT-2 family), as opposed to SentencePiece-style BPE with byte fallback.
  bool byte_level() const { return byte_level_; }
  /// Whether a piece that is itself a vocabulary entry is taken whole (Llama 3).
  bool ignores_merges() const { return ignore_merges_; }
  /// The file or metadata this tokenizer came from.
  const std::string& source() const { return source_; }

 private:
  Tokenizer() = default;

  // ---- loading -------------------------------------------------------------------------------
  [[noreturn]] void fail(const std::string& what) const { throw TokenizerError(source_ + ": " + what); }

  static std::string type_name(const nlohmann::json& j) { return j.type_name(); }

  const nlohmann::json& member(const nlohmann::json& j, const char* key, const std::string& where) const {
    if (!j.is_object()) fail(where + " must be an object, found " + type_name(j));
    const auto it = j.find(key);
    if (it == j.end()) fail(where + " has no \"" + key + "\"");
    return *it;
  }
  std::string string_member(const nlohmann::json& j, const char* key, const std::string& where) const {
    const auto& v = member(j, key, where);
    if (!v.is_string()) fail(where + "." + key + " must be a string, found " + type_name(v));
    return v.get<std::string>();
  }
  bool bool_member(const nlohmann::json& j, const char* key, const std::string& where, bool fallback) const {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(where + "." + key + " must be true or false, found " + type_name(*it));
    return it->get<bool>();
  }
  TokenId id_value(const nlohmann::json& v, const std::string& where) const {
    if (!v.is_number_integer()) fail(where + " must be an integer id, found " + type_name(v));
    const auto id = v.get<std::int64_t>();
    if (id < 0 || id >= max_id) {
      fail(where + " = " + std::to_string(id) + " is outside [0, " + std::to_string(max_id) + ")");
    }
    return static_cast<TokenId>(id);
  }
  void check_utf8(std::string_view s, const std::string& where) const {
    if (detail::utf8::first_invalid(s)) fail(where + " is not valid UTF-8");
  }

  // Ids above this are refused: real vocabularies have at most a few hundred thousand entries,
  // and a corrupt id must not make ordo allocate gigabytes.
  static constexpr std::int64_t max_id = std::int64_t{1} << 24;

  void put_token(TokenId id, const std::string& spelling, const std::string& where) {
    const auto i = static_cast<std::size_t>(id);
    if (i >= tokens_.size()) {
      tokens_.resize(i + 1);
      present_.resize(i + 1, false);
      special_.resize(i + 1, false);
    }
    if (present_[i] && tokens_[i] != spelling) {
      fail(where + ": id " + std::to_string(id) + " is given to both \"" + tokens_[i] + "\" and \"" + spelling + "\"");
    }
    tokens_[i] = spelling;
    present_[i] = true;
  }

  void load_json(const nlohmann::json& j) {
    if (!j.is_object()) fail("the top level must be a JSON object, found " + type_name(j));
    const auto& model = member(j, "model", "the tokenizer");
    if (!model.is_object()) fail("\"model\" must be an object, found " + type_name(model));
    if (const auto it = model.find("type"); it != model.end() && !(it->is_string() && *it == "BPE")) {
      fail("model.type is " + it->dump() + "; ordo supports byte-level \"BPE\" tokenizers only");
    }
    if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
      fail("model.dropout is set; BPE dropout is for training and ordo does not support it");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (const auto it = model.find(key); it != model.end() && !it->is_null() && *it != "") {
        fail(std::string("model.") + key + " is set; byte-level BPE tokenizers do not use it");
      }
    }
    byte_fallback_ = bool_member(model, "byte_fallback", "model", false);
    ignore_merges_ = bool_member(model, "ignore_merges", "model", false);
    fuse_unk_ = bool_member(model, "fuse_unk", "model", false);

    // Vocabulary.
    const auto& vocab = member(model, "vocab", "model");
    if (!vocab.is_object()) fail("model.vocab must be an object of token -> id, found " + type_name(vocab));
    for (const auto& [token, id_json] : vocab.items()) {
      const std::string where = "model.vocab[\"" + token + "\"]";
      check_utf8(token, where);
      const TokenId id = id_value(id_json, where);
      put_token(id, token, "model.vocab");
      model_vocab_.emplace(token, id);
    }
    if (model_vocab_.empty()) fail("model.vocab is empty");

    // Merges: "left right" strings or [left, right] arrays.
    const auto& merges = member(model, "merges", "model");
    if (!merges.is_array()) fail("model.merges must be an array, found " + type_name(merges));
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const auto& m = merges[i];
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      if (m.is_string()) {
        const auto s = m.get<std::string>();
        const auto space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
            s.find(' ', space + 1) != std::string::npos) {
          fail(where + " = \"" + s + "\" is not of the form \"left right\"");
        }
        pairs.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail(where + " must be \"left right\" or [\"left\", \"right\"], found " + m.dump());
      }
    }
    build_merges(pairs);

    if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
      if (!it->is_string()) fail("model.unk_token must be a string or null");
      const auto u = model_vocab_.find(it->get<std::string>());
      if (u == model_vocab_.end()) fail("model.unk_token \"" + it->get<std::string>() + "\" is not in model.vocab");
      unk_id_ = u->second;
    }

    // Added tokens.
    if (const auto it = j.find("added_tokens"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) fail("added_tokens must be an array, found " + type_name(*it));
      for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& a = (*it)[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        AddedToken t;
        t.id = id_value(member(a, "id", where), where + ".id");
        t.content = string_member(a, "content", where);
        check_utf8(t.content, where + ".content");
        if (t.content.empty()) fail(where + ".content is empty");
        t.special = bool_member(a, "special", where, false);
        t.lstrip = bool_member(a, "lstrip", where, false);
        t.rstrip = bool_member(a, "rstrip", where, false);
        t.single_word = bool_member(a, "single_word", where, false);
        t.normalized = bool_member(a, "normalized", where, !t.special);
        put_token(t.id, t.content, "added_tokens");
        added_.push_back(std::move(t));
      }
    }

    // Normalizer: Qwen2's NFC leaves NFC text as it is (ordo does not compose decomposed text,
    // see docs/tokenizer.md); SentencePiece-style tokenizers prepend and replace.
    if (const auto it = j.find("normalizer"); it != j.end() && !it->is_null()) {
      load_normalizer(*it, "normalizer");
    }

    // Pre-tokenizer.
    bool byte_level = false;
    if (const auto it = j.find("pre_tokenizer"); it != j.end() && !it->is_null()) {
      load_pre_tokenizer(*it, "pre_tokenizer", byte_level);
    }
    byte_level_ = byte_level;
    if (!byte_level && !byte_fallback_) {
      fail("the pre_tokenizer has no ByteLevel step and model.byte_fallback is false; ordo supports "
           "byte-level BPE and SentencePiece-style BPE with byte fallback");
    }
    if (byte_level && byte_fallback_) fail("model.byte_fallback is true in a byte-level tokenizer");

    // Decoder: ByteLevel for byte-level BPE; a chain (Replace, ByteFallback, Fuse, Strip, Metaspace)
    // for SentencePiece-style BPE.
    if (const auto it = j.find("decoder"); it != j.end() && !it->is_null()) {
      load_decoder(*it, "decoder");
    } else {
      fail("there is no decoder");
    }
    if (byte_level != byte_level_decoder_ || (byte_level && !decoders_.empty())) {
      fail(byte_level ? "a byte-level tokenizer needs the ByteLevel decoder alone"
                      : "a ByteLevel decoder needs a ByteLevel pre_tokenizer");
    }

    if (const auto it = j.find("post_processor"); it != j.end() && !it->is_null()) {
      load_post_processor(*it, "post_processor");
    }
    finish();
  }

  void load_normalizer(const nlohmann::json& n, const std::string& where) {
    const auto type = string_member(n, "type", where);
    if (type == "Sequence") {
      const auto& list = member(n, "normalizers", where);
      if (!list.is_array()) fail(where + ".normalizers must be an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        load_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "NFC") {
      // Accepted: see above.
    } else if (type == "Prepend") {
      normalizers_.push_back({detail::NormalizeStep::Kind::prepend, string_member(n, "prepend", where), {}});
    } else if (type == "Replace") {
      normalizers_.push_back({detail::NormalizeStep::Kind::replace, literal_pattern(n, where), string_member(n, "content", where)});
    } else {
      fail(where + ".type \"" + type + "\" is not supported (ordo supports NFC, Prepend, Replace, Sequence)");
    }
  }

  void load_pre_tokenizer(const nlohmann::json& p, const std::string& where, bool& byte_level) {
    using Step = detail::PreTokenizeStep;
    const auto type = string_member(p, "type", where);
    if (type == "Sequence") {
      const auto& list = member(p, "pretokenizers", where);
      if (!list.is_array()) fail(where + ".pretokenizers must be an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        load_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", byte_level);
    } else if (type == "ByteLevel") {
      byte_level = true;
      Step s;
      s.kind = Step::Kind::byte_level;
      s.add_prefix_space = bool_member(p, "add_prefix_space", where, true);
      if (bool_member(p, "use_regex", where, true)) s.regex = compile(detail::gpt2_pattern, where);
      steps_.push_back(std::move(s));
    } else if (type == "Split") {
      Step s;
      const auto& pattern = member(p, "pattern", where);
      if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
        s.regex = compile(pattern["Regex"].get<std::string>(), where + ".pattern.Regex");
      } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
        const auto literal = pattern["String"].get<std::string>();
        if (literal.empty()) fail(where + ".pattern.String is empty");
        s.regex = compile(detail::escape_literal(literal), where + ".pattern.String");
      } else {
        fail(where + ".pattern must be {\"Regex\": \"...\"} or {\"String\": \"...\"}, found " + pattern.dump());
      }
      s.behavior = behavior(string_member(p, "behavior", where), where + ".behavior");
      s.invert = bool_member(p, "invert", where, false);
      steps_.push_back(std::move(s));
    } else if (type == "Metaspace") {
      Step s;
      s.kind = Step::Kind::metaspace;
      s.replacement = string_member(p, "replacement", where);
      if (detail::utf8::first_invalid(s.replacement) || s.replacement.empty()) fail(where + ".replacement is not one character");
      const auto scheme = p.contains("prepend_scheme") ? string_member(p, "prepend_scheme", where)
                          : bool_member(p, "add_prefix_space", where, true) ? "always" : "never";
      if (scheme == "always") s.prepend = Step::Prepend::always;
      else if (scheme == "first") s.prepend = Step::Prepend::first;
      else if (scheme == "never") s.prepend = Step::Prepend::never;
      else fail(where + ".prepend_scheme \"" + scheme + "\" is not always, first or never");
      if (bool_member(p, "split", where, true)) s.regex = compile(detail::escape_literal(s.replacement), where);
      steps_.push_back(std::move(s));
    } else if (type == "Digits") {
      Step s;
      // Digits uses char::is_numeric, the Unicode N categories; runs or single digits, isolated.
      s.regex = compile(bool_member(p, "individual_digits", where, false) ? R"(\p{N})" : R"(\p{N}+)", where);
      steps_.push_back(std::move(s));
    } else {
      fail(where + ".type \"" + type + "\" is not supported (ordo supports ByteLevel, Split, Digits, Metaspace, Sequence)");
    }
  }

  void load_decoder(const nlohmann::json& d, const std::string& where) {
    using D = DecodeStep;
    const auto type = string_member(d, "type", where);
    if (type == "Sequence") {
      const auto& list = member(d, "decoders", where);
      if (!list.is_array() || list.empty()) fail(where + ".decoders must be a non-empty array");
      for (std::size_t i = 0; i < list.size(); ++i) load_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      byte_level_decoder_ = true;
    } else if (type == "Replace") {
      decoders_.push_back({D::Kind::replace, literal_pattern(d, where), string_member(d, "content", where)});
    } else if (type == "ByteFallback") {
      decoders_.push_back({D::Kind::byte_fallback, {}, {}});
    } else if (type == "Fuse") {
      decoders_.push_back({D::Kind::fuse, {}, {}});
    } else if (type == "Strip") {
      D s{D::Kind::strip, string_member(d, "content", where), {}};
      if (detail::utf8::first_invalid(s.from) || s.from.empty() ||
          detail::utf8::sequence_length(s.from, 0) != s.from.size()) {
        fail(where + ".content must be one character");
      }
      const auto count = [&](const char* key) {
        const auto& v = member(d, key, where);
        if (!v.is_number_unsigned()) fail(where + "." + key + " must be a count");
        return static_cast<std::size_t>(std::min<std::uint64_t>(v.get<std::uint64_t>(), 1u << 20));
      };
      s.start = count("start");
      s.stop = count("stop");
      decoders_.push_back(std::move(s));
    } else if (type == "Metaspace") {
      D s{D::Kind::metaspace, string_member(d, "replacement", where), {}};
      const auto scheme = d.contains("prepend_scheme") ? string_member(d, "prepend_scheme", where)
                          : bool_member(d, "add_prefix_space", where, true) ? "always" : "never";
      s.start = scheme == "never" ? 0 : 1;
      decoders_.push_back(std::move(s));
    } else {
      fail(where + ".type \"" + type + "\" is not supported (ordo supports ByteLevel, Replace, ByteFallback, Fuse, "
           "Strip, Metaspace, Sequence)");
    }
  }

  // The literal of a Replace step ({"pattern": {"String": ...}}).
  std::string literal_pattern(const nlohmann::json& j, const std::string& where) const {
    const auto& pattern = member(j, "pattern", where);
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty()) {
      fail(where + ".pattern must be {\"String\": \"...\"} (regex replacements are not supported)");
    }
    return pattern["String"].get<std::string>();
  }

  void load_post_processor(const nlohmann::json& p, const std::string& where) {
    const auto type = string_member(p, "type", where);
    if (type == "Sequence") {
      const auto& list = member(p, "processors", where);
      if (!list.is_array()) fail(where + ".processors must be an array");
      for (std::size_t i = 0; i < list.size(); ++i) load_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      // Adjusts offsets only; ids are unchanged.
    } else if (type == "TemplateProcessing") {
      const auto& single = member(p, "single", where);
      if (!single.is_array()) fail(where + ".single must be an array");
      const auto& specials = member(p, "special_tokens", where);
      bool seen_sequence = false;
      std::vector<TokenId> prefix, suffix;
      for (std::size_t i = 0; i < single.size(); ++i) {
        const auto& piece = single[i];
        const std::string w = where + ".single[" + std::to_string(i) + "]";
        if (piece.is_object() && piece.contains("Sequence")) {
          if (seen_sequence) fail(w + ": a second $A in the single template");
          seen_sequence = true;
        } else if (piece.is_object() && piece.contains("SpecialToken")) {
          const auto name = string_member(piece["SpecialToken"], "id", w + ".SpecialToken");
          const auto& entry = member(specials, name.c_str(), where + ".special_tokens");
          const auto& ids = member(entry, "ids", where + ".special_tokens[\"" + name + "\"]");
          if (!ids.is_array()) fail(where + ".special_tokens[\"" + name + "\"].ids must be an array");
          for (const auto& id : ids) (seen_sequence ? suffix : prefix).push_back(id_value(id, w));
        } else {
          fail(w + " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}, found " + piece.dump());
        }
      }
      if (!seen_sequence) fail(where + ".single has no {\"Sequence\": {\"id\": \"A\"}}");
      add_template(prefix, suffix);
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      const auto& cls = member(p, "cls", where);
      const auto& sep = member(p, "sep", where);
      if (!cls.is_array() || cls.size() != 2 || !sep.is_array() || sep.size() != 2) {
        fail(where + ".cls and .sep must be [token, id]");
      }
      add_template({id_value(cls[1], where + ".cls")}, {id_value(sep[1], where + ".sep")});
    } else {
      fail(where + ".type \"" + type + "\" is not supported");
    }
  }

  void add_template(const std::vector<TokenId>& prefix, const std::vector<TokenId>& suffix) {
    if (has_template_) fail("post_processor has two templates; ordo supports one");
    has_template_ = true;
    prefix_ids_ = prefix;
    suffix_ids_ = suffix;
  }

  detail::PreTokenizeStep::Behavior behavior(const std::string& name, const std::string& where) const {
    using B = detail::PreTokenizeStep::Behavior;
    if (name == "Isolated") return B::isolated;
    if (name == "Removed") return B::removed;
    if (name == "MergedWithPrevious") return B::merged_with_previous;
    if (name == "MergedWithNext") return B::merged_with_next;
    if (name == "Contiguous") return B::contiguous;
    fail(where + " \"" + name + "\" is not a split behavior");
  }

  detail::Pcre2Regex compile(std::string_view pattern, const std::string& where) const {
    try {
      return detail::Pcre2Regex(pattern);
    } catch (const std::invalid_argument& e) {
      fail(where + ": " + e.what());
    }
  }

  void build_merges(const std::vector<std::pair<std::string, std::string>>& pairs) {
    merges_.reserve(pairs.size());
    for (std::size_t rank = 0; rank < pairs.size(); ++rank) {
      const auto& [a, b] = pairs[rank];
      const auto ia = model_vocab_.find(a);
      const auto ib = model_vocab_.find(b);
      const auto im = model_vocab_.find(a + b);
      const std::string where = "merge " + std::to_string(rank) + " (\"" + a + "\" + \"" + b + "\")";
      if (ia == model_vocab_.end()) fail(where + ": \"" + a + "\" is not in the vocabulary");
      if (ib == model_vocab_.end()) fail(where + ": \"" + b + "\" is not in the vocabulary");
      if (im == model_vocab_.end()) fail(where + ": the merged token \"" + a + b + "\" is not in the vocabulary");
      merges_.add(ia->second, ib->second, static_cast<std::int32_t>(rank), im->second);
    }
  }

  // GGUF pre-tokenizer names (llama.cpp's tokenizer.ggml.pre) and what they stand for.
  struct PreFamily {
    std::vector<std::string_view> patterns;
    bool ignore_merges = false;
    bool add_bos = false;
  };
  static std::optional<PreFamily> pre_family(std::string_view pre) {
    using namespace std::string_view_literals;
    for (const auto name : {"gpt2"sv, "gpt-2"sv, "phi-2"sv, "mpt"sv, "olmo"sv})
      if (pre == name) return PreFamily{{detail::gpt2_pattern}, false, false};
    for (const auto name : {"smollm"sv, "starcoder"sv, "refact"sv, "codeshell"sv})
      if (pre == name) return PreFamily{{R"(\p{N})", detail::gpt2_pattern}, false, false};
    for (const auto name : {"llama-bpe"sv, "llama3"sv, "llama-v3"sv, "falcon3"sv})
      if (pre == name) return PreFamily{{detail::llama3_pattern}, true, true};
    for (const auto name : {"qwen2"sv, "deepseek-r1-qwen"sv, "stablelm2"sv})
      if (pre == name) return PreFamily{{detail::qwen2_pattern}, false, false};
    return std::nullopt;
  }

 public:
  /// The tokenizer.ggml.pre names ordo knows, for messages and docs.
  static constexpr std::string_view known_pre_names =
      "gpt2, gpt-2, phi-2, mpt, olmo (GPT-2 pattern); smollm, starcoder, refact, codeshell (single digits, "
      "then GPT-2 pattern); llama-bpe, llama3, llama-v3, falcon3 (Llama 3 pattern, ignore_merges); "
      "qwen2, deepseek-r1-qwen, stablelm2 (Qwen2 pattern)";

 private:
  void load_vocabulary(const BpeVocabulary& v) {
    const bool spm = v.model == "llama";
    if (!spm && v.model != "gpt2") {
      fail("tokenizer.ggml.model is \"" + v.model + "\"; ordo supports \"gpt2\" (byte-level BPE) and \"llama\" "
           "(SentencePiece-style BPE)");
    }
    const auto family = spm ? std::optional<PreFamily>(PreFamily{{}, false, true}) : pre_family(v.pre);
    if (!family) {
      fail("tokenizer.ggml.pre \"" + v.pre + "\" is not a pre-tokenizer ordo knows; known: " +
           std::string(known_pre_names));
    }
    if (v.tokens.empty()) fail("tokenizer.ggml.tokens is empty");
    if (static_cast<std::int64_t>(v.tokens.size()) > max_id) fail("tokenizer.ggml.tokens has too many entries");
    if (!v.token_types.empty() && v.token_types.size() != v.tokens.size()) {
      fail("tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) + " entries for " +
           std::to_string(v.tokens.size()) + " tokens");
    }
    for (std::size_t i = 0; i < v.tokens.size(); ++i) {
      const std::string where = "tokenizer.ggml.tokens[" + std::to_string(i) + "]";
      check_utf8(v.tokens[i], where);
      const auto id = static_cast<TokenId>(i);
      put_token(id, v.tokens[i], "tokenizer.ggml.tokens");
      const int type = v.token_types.empty() ? 1 : v.token_types[i];
      if (type == 2 || type == 3 || type == 4) {  // unknown, control, user-defined: matched in the raw text
        if (v.tokens[i].empty()) fail(where + " is an empty control token");
        AddedToken a;
        a.id = id;
        a.content = v.tokens[i];
        a.special = type != 4;
        added_.push_back(std::move(a));
      }
      // As Hugging Face keeps one id per spelling, the first one wins for lookups.
      model_vocab_.emplace(v.tokens[i], id);
    }
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(v.merges.size());
    for (std::size_t i = 0; i < v.merges.size(); ++i) {
      const auto& s = v.merges[i];
      const auto space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
          s.find(' ', space + 1) != std::string::npos) {
        fail("tokenizer.ggml.merges[" + std::to_string(i) + "] = \"" + s + "\" is not of the form \"left right\"");
      }
      pairs.emplace_back(s.substr(0, space), s.substr(space + 1));
    }
    if (spm && pairs.empty()) pairs = merges_from_scores(v);
    build_merges(pairs);

    if (spm) {
      // Llama 2's tokenizer.json (and llama.cpp): "\u2581" before every piece of text, spaces as
      // "\u2581", characters outside the vocabulary as bytes; decoding undoes it.
      const std::string space = "\xE2\x96\x81";
      const bool prefix = v.add_space_prefix.value_or(true);
      if (prefix) normalizers_.push_back({detail::NormalizeStep::Kind::prepend, space, {}});
      normalizers_.push_back({detail::NormalizeStep::Kind::replace, " ", space});
      byte_level_ = false;
      byte_fallback_ = true;
      fuse_unk_ = true;
      decoders_.push_back({DecodeStep::Kind::replace, space, " "});
      decoders_.push_back({DecodeStep::Kind::byte_fallback, {}, {}});
      decoders_.push_back({DecodeStep::Kind::fuse, {}, {}});
      if (prefix) decoders_.push_back({DecodeStep::Kind::strip, " ", {}, 1, 0});
    } else {
      for (const auto pattern : family->patterns) {
        detail::PreTokenizeStep s;
        s.regex = compile(pattern, "tokenizer.ggml.pre");
        steps_.push_back(std::move(s));
      }
      detail::PreTokenizeStep byte_step;
      byte_step.kind = detail::PreTokenizeStep::Kind::byte_level;
      steps_.push_back(std::move(byte_step));
      ignore_merges_ = family->ignore_merges;
    }

    const auto check = [&](const std::optional<TokenId>& id, const char* what) {
      if (id && !contains(*id)) fail(std::string(what) + " = " + std::to_string(*id) + " is not a token id");
    };
    check(v.bos_id, "tokenizer.ggml.bos_token_id");
    check(v.eos_id, "tokenizer.ggml.eos_token_id");
    check(v.unk_id, "tokenizer.ggml.unknown_token_id");
    check(v.pad_id, "tokenizer.ggml.padding_token_id");
    bos_id_ = v.bos_id;
    eos_id_ = v.eos_id;
    pad_id_ = v.pad_id;
    unk_id_ = v.unk_id;
    std::vector<TokenId> prefix, suffix;
    if (v.add_bos.value_or(family->add_bos) && v.bos_id) prefix.push_back(*v.bos_id);
    if (v.add_eos.value_or(false) && v.eos_id) suffix.push_back(*v.eos_id);
    add_template(prefix, suffix);
    finish();
  }

  // Merges implied by a SentencePiece vocabulary's scores, as transformers derives them
  // (generate_merges): every split of a token into two tokens, ordered by the token's score
  // (highest first), then the longer left part, then the longer right part, then token order.
  std::vector<std::pair<std::string, std::string>> merges_from_scores(const BpeVocabulary& v) const {
    if (v.scores.size() != v.tokens.size()) {
      fail("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
           std::to_string(v.tokens.size()) + " tokens, and there are no merges");
    }
    std::unordered_map<std::string_view, std::size_t> index;  // the last id of each spelling
    std::unordered_map<std::string_view, float> score;
    for (std::size_t i = 0; i < v.tokens.size(); ++i) {
      index[v.tokens[i]] = i;
      const float x = v.scores[i];
      score[v.tokens[i]] = x == x ? x : -std::numeric_limits<float>::infinity();  // NaN sorts last
    }
    struct Merge {
      std::string_view left, right;
      float score;
      std::size_t left_chars, right_chars;
    };
    std::vector<Merge> merges;
    std::unordered_map<std::string_view, bool> seen;
    for (const auto& token : v.tokens) {
      if (!seen.emplace(token, true).second) continue;
      const std::string_view t = token;
      std::vector<Merge> local;
      std::size_t chars = 0, total = 0;
      for (std::size_t i = 0; i < t.size(); i += detail::utf8::lead_length(static_cast<unsigned char>(t[i]))) ++total;
      for (std::size_t at = 0; at < t.size();) {
        at += detail::utf8::lead_length(static_cast<unsigned char>(t[at]));
        ++chars;
        if (at >= t.size()) break;
        const auto l = t.substr(0, at), r = t.substr(at);
        if (index.count(l) && index.count(r)) local.push_back({l, r, score[t], chars, total - chars});
      }
      std::sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
        return std::pair(index[a.left], index[a.right]) < std::pair(index[b.left], index[b.right]);
      });
      merges.insert(merges.end(), local.begin(), local.end());
    }
    std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
      return std::tuple(a.score, a.left_chars, a.right_chars) > std::tuple(b.score, b.left_chars, b.right_chars);
    });
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(merges.size());
    for (const auto& m : merges) out.emplace_back(m.left, m.right);
    return out;
  }

  void finish() {
    bytes_.resize(tokens_.size());
    for (std::size_t i = 0; i < tokens_.size(); ++i)
      if (present_[i]) bytes_[i] = byte_level_ ? detail::byte_level::decode(tokens_[i]) : piece_bytes(tokens_[i]);
    static const char* hex = "0123456789ABCDEF";
    for (std::size_t i = 0; i < 256; ++i) {
      const std::string key = byte_level_ ? detail::byte_level::alphabet()[i]
                                          : std::string("<0x") + hex[i >> 4] + hex[i & 15] + ">";
      const auto it = model_vocab_.find(key);
      byte_ids_[i] = it == model_vocab_.end() ? -1 : it->second;
    }
    for (std::size_t k = 0; k < added_.size(); ++k) {
      const auto& a = added_[k];
      special_[static_cast<std::size_t>(a.id)] = a.special;
      (a.normalized ? normalized_matcher_ : raw_matcher_).add(a.content, k);
    }
    for (const auto id : prefix_ids_) if (!contains(id)) fail("post_processor adds id " + std::to_string(id) + ", which is not in the vocabulary");
    for (const auto id : suffix_ids_) if (!contains(id)) fail("post_processor adds id " + std::to_string(id) + ", which is not in the vocabulary");
    for (const auto& a : added_) added_lookup_[a.content] = a.id;
    word_ = detail::Pcre2Regex(R"(\w)");
    space_ = detail::Pcre2Regex(R"(\s)");
  }

  // ---- encoding ------------------------------------------------------------------------------
  bool is_space_char(std::string_view s) const { return space_.search(s); }
  bool is_word_char(std::string_view s) const { return word_.search(s); }

  // The last / first character of `s` (s non-empty, well-formed).
  static std::string_view last_char(std::string_view s) {
    std::size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return s.substr(i);
  }
  static std::string_view first_char(std::string_view s) {
    return s.substr(0, detail::utf8::lead_length(static_cast<unsigned char>(s[0])));
  }

  // Cuts the added tokens out of the pieces not yet matched (Hugging Face AddedVocabulary).
  std::vector<detail::Piece> split_added(std::vector<detail::Piece>& pieces, const detail::AddedTokenMatcher& m,
                                         bool parse_special) const {
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
          out.push_back({std::string(s.substr(start_offset, start - start_offset)), -1, piece.at_start && start_offset == 0});
        out.push_back({std::string(s.substr(start, stop - start)), a.id});
        start_offset = stop;
        at = stop;
      }
      if (start_offset < s.size()) out.push_back({std::string(s.substr(start_offset)), -1, piece.at_start && start_offset == 0});
    }
    return out;
  }

  std::vector<detail::Piece> apply_step(const detail::PreTokenizeStep& step, std::vector<detail::Piece>& pieces) const {
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
        replace_all(piece.text, " ", step.replacement);
        const bool starts = piece.text.compare(0, step.replacement.size(), step.replacement) == 0;
        if (!starts && (step.prepend == Step::Prepend::always || (step.prepend == Step::Prepend::first && piece.at_start)))
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
  void bpe(const std::string& piece, std::vector<TokenId>& ids) const {
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

  // SentencePiece-style BPE: symbols are characters; a character outside the vocabulary becomes
  // its <0xXX> byte tokens (byte_fallback) or the unknown token (Hugging Face BPE::merge_word).
  void bpe_chars(const std::string& piece, std::vector<TokenId>& ids) const {
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
      if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
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

  // ---- decoding (SentencePiece-style chain) --------------------------------------------------
  struct DecodeStep {
    enum class Kind { replace, byte_fallback, fuse, strip, metaspace };
    Kind kind;
    std::string from, to;  // replace: from -> to; strip: the character; metaspace: the replacement
    std::size_t start = 0, stop = 0;  // strip: counts; metaspace: 1 when the first token's is dropped
  };

  static void replace_all(std::string& s, std::string_view from, std::string_view to) {
    if (from.empty()) return;
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  }

  static std::optional<unsigned char> fallback_byte(std::string_view token) {
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
  std::string run_decoders(std::vector<std::string> tokens) const {
    using D = DecodeStep;
    for (const auto& step : decoders_) {
      switch (step.kind) {
        case D::Kind::replace:
          for (auto& t : tokens) replace_all(t, step.from, step.to);
          break;
        case D::Kind::byte_fallback: {
          std::vector<std::string> out;
          std::string bytes;
          const auto flush = [&] {
            if (bytes.empty()) return;
            if (!detail::utf8::first_invalid(bytes)) out.push_back(bytes);
            else for (std::size_t k = 0; k < bytes.size(); ++k) out.push_back("\xEF\xBF\xBD");
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
                                    t.compare(end - step.from.size(), step.from.size(), step.from) == 0; ++k)
              end -= step.from.size();
            t = t.substr(begin, end - begin);
          }
          break;
        case D::Kind::metaspace:
          for (std::size_t k = 0; k < tokens.size(); ++k) replace_all(tokens[k], step.from, k == 0 && step.start ? "" : " ");
          break;
      }
    }
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  // The bytes one SentencePiece-style token stands for, as StreamDecoder needs them: its byte,
  // or its text with the decoders' replacements.
  std::string piece_bytes(const std::string& token) const {
    if (byte_fallback_)
      if (const auto b = fallback_byte(token)) return std::string(1, static_cast<char>(*b));
    std::string t = token;
    for (const auto& step : decoders_) {
      if (step.kind == DecodeStep::Kind::replace) replace_all(t, step.from, step.to);
      if (step.kind == DecodeStep::Kind::metaspace) replace_all(t, step.from, " ");
    }
    return t;
  }

  void normalize(std::string& text) const {
    for (const auto& n : normalizers_) {
      if (n.kind == detail::NormalizeStep::Kind::prepend) {
        if (!text.empty()) text.insert(0, n.text);
      } else {
        replace_all(text, n.text, n.replacement);
      }
    }
  }

 public:
  /// Whether decoding drops the space that starts the text (SentencePiece-style decoders).
  bool decode_strips_leading_space() const {
    for (const auto& step : decoders_)
      if ((step.kind == DecodeStep::Kind::strip && step.start > 0 && step.from == " ") ||
          (step.kind == DecodeStep::Kind::metaspace && step.start > 0))
        return true;
    return false;
  }

 private:
  std::string source_;
  std::vector<std::string> tokens_;  // spelling by id
  std::vector<std::string> bytes_;   // bytes by id
  std::vector<bool> present_, special_;
  std::unordered_map<std::string, TokenId> model_vocab_, added_lookup_;
  detail::BpeMerges merges_;
  TokenId byte_ids_[256] = {};
  std::vector<AddedToken> added_;
  detail::AddedTokenMatcher raw_matcher_, normalized_matcher_;
  std::vector<detail::PreTokenizeStep> steps_;
  std::vector<TokenId> prefix_ids_, suffix_ids_;
  bool has_template_ = false;
  bool ignore_merges_ = false, fuse_unk_ = false, byte_fallback_ = false;
  bool byte_level_ = true, byte_level_decoder_ = false;
  std::vector<detail::NormalizeStep> normalizers_;
  std::vector<DecodeStep> decoders_;
  std::optional<TokenId> unk_id_, bos_id_, eos_id_, pad_id_;
  detail::Pcre2Regex word_, space_;
};

/// Turns generated token ids into text as they come: bytes of a UTF-8 character split across
/// tokens are held back until the character is complete; ill-formed bytes become U+FFFD (one per
/// maximal ill-formed subpart; SentencePiece-style decoding writes one per byte token instead).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(&tokenizer), skip_special_(skip_special_tokens),
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
