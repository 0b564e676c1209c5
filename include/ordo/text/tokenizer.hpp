// ordo/text/tokenizer.hpp — BPE tokenizer of the Llama/Qwen2 family, torch-free.
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
// Where each part lives: this header declares Tokenizer and defines its public API; its other
// members are defined by job in detail/tokenizer_load.hpp (what both sources share),
// detail/tokenizer_json.hpp (tokenizer.json), detail/tokenizer_gguf.hpp (GGUF vocabularies) and
// detail/tokenizer_encode.hpp (added tokens, pre-tokenization, BPE); the decoder chain is
// detail/decode_steps.hpp; StreamDecoder is stream_decoder.hpp. All are included here.
//
// Needs PCRE2 (libpcre2-8) and nlohmann-json. Docs: docs/tokenizer.md; tests: tests/model/.
//
//   auto tok = ordo::Tokenizer::from_file("tokenizer.json");
//   std::vector<std::int32_t> ids = tok.encode("Hello <|im_start|>");
//   std::string text = tok.decode(ids);
#pragma once

#include <cstddef>           // std::size_t
#include <cstdint>           // std::int64_t
#include <filesystem>        // std::filesystem::path
#include <fstream>           // std::ifstream
#include <initializer_list>  // std::initializer_list
#include <iterator>          // std::istreambuf_iterator
#include <optional>          // std::optional
#include <span>              // std::span
#include <stdexcept>         // std::invalid_argument
#include <string>            // std::string, std::to_string
#include <string_view>       // std::string_view
#include <unordered_map>     // std::unordered_map
#include <utility>           // std::move, std::pair
#include <vector>            // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/text/bpe_vocabulary.hpp>       // BpeVocabulary
#include <ordo/text/detail/bpe.hpp>           // detail::BpeMerges
#include <ordo/text/detail/decode_steps.hpp>  // detail::DecodeStep, run_decoders
#include <ordo/text/detail/pcre2_regex.hpp>   // detail::Pcre2Regex
#include <ordo/text/detail/pre_tokenize.hpp>  // detail::PreTokenizeStep, NormalizeStep, Piece, AddedTokenMatcher
#include <ordo/text/encode_options.hpp>       // EncodeOptions
#include <ordo/text/token.hpp>                // TokenId, AddedToken
#include <ordo/text/tokenizer_error.hpp>      // TokenizerError
#include <ordo/text/utf8.hpp>                 // detail::utf8, detail::byte_level

namespace ordo {

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
      if (!v.is_string())
        throw TokenizerError(config_path.string() + ": " + key + " must be a string or {\"content\": ...}");
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
    return from_vocabulary(vocabulary_of(m), std::move(source));
  }

  /// The vocabulary of a GGUF file's tokenizer metadata (the fields from_gguf_metadata reads).
  template <class Metadata>
  static BpeVocabulary vocabulary_of(const Metadata& m) {
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
    return v;
  }

  /// A Hugging Face tokenizer.json for a GGUF-style vocabulary (detail/tokenizer_gguf.hpp): the
  /// same tokenizer as from_vocabulary(v) (same ids for every text, same decoding), which
  /// Hugging Face `tokenizers` loads. Throws TokenizerError, naming `source`, as from_vocabulary.
  static nlohmann::json hf_tokenizer_json(const BpeVocabulary& v, const std::string& source = "GGUF tokenizer metadata");
  /// This tokenizer as a GGUF vocabulary (tokenizer.ggml.*), for writing GGUF files of models
  /// whose tokenizer came from tokenizer.json: tokens by id ("[PAD<id>]", unused, for an id
  /// without one), token types (added special tokens control, other added tokens user-defined), merges in rank order, the special ids, add_bos /
  /// add_eos from the post-processor, and tokenizer.ggml.pre: the first of llama.cpp's names ordo
  /// knows whose pre-tokenizer gives this tokenizer's ids on a set of probe texts (words,
  /// contractions, digits, whitespace runs, punctuation, code, non-Latin scripts, emoji, special
  /// tokens). Byte-level BPE only; otherwise, or when no name fits, TokenizerError says why.
  BpeVocabulary gguf_vocabulary() const;
  /// The tokenizer_config.json that goes with it (tokenizer class, BOS/EOS/PAD/UNK spellings,
  /// add_bos_token/add_eos_token, the added tokens, `model_max_length`, and the chat template
  /// when one is given).
  static nlohmann::json hf_tokenizer_config(const BpeVocabulary& v, std::string_view chat_template,
                                            std::int64_t model_max_length);

  /// Text to token ids. `text` must be well-formed UTF-8 (std::invalid_argument otherwise).
  std::vector<TokenId> encode(std::string_view text, EncodeOptions options = {}) const {
    if (const auto bad = detail::utf8::first_invalid(text)) {
      throw std::invalid_argument("ordo::Tokenizer::encode: the text is not valid UTF-8 (byte " + std::to_string(*bad) +
                                  ")");
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
    return detail::run_decoders(decoders_, std::move(tokens));
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

  /// The tokenizer.ggml.pre names ordo knows, for messages and docs.
  static constexpr std::string_view known_pre_names =
      "gpt2, gpt-2, phi-2, mpt, olmo (GPT-2 pattern); smollm, starcoder, refact, codeshell (single digits, "
      "then GPT-2 pattern); llama-bpe, llama3, llama-v3, falcon3 (Llama 3 pattern, ignore_merges); "
      "qwen2, deepseek-r1-qwen, stablelm2 (Qwen2 pattern)";

  /// Whether decoding drops the space that starts the text (SentencePiece-style decoders).
  bool decode_strips_leading_space() const {
    for (const auto& step : decoders_)
      if ((step.kind == detail::DecodeStep::Kind::strip && step.start > 0 && step.from == " ") ||
          (step.kind == detail::DecodeStep::Kind::metaspace && step.start > 0))
        return true;
    return false;
  }

 private:
  Tokenizer() = default;

  // ---- loading, shared by tokenizer.json and GGUF vocabularies (detail/tokenizer_load.hpp) -----
  [[noreturn]] void fail(const std::string& what) const { throw TokenizerError(source_ + ": " + what); }

  // Ids above this are refused: real vocabularies have at most a few hundred thousand entries,
  // and a corrupt id must not make ordo allocate gigabytes.
  static constexpr std::int64_t max_id = std::int64_t{1} << 24;

  void check_utf8(std::string_view s, const std::string& where) const;
  void put_token(TokenId id, const std::string& spelling, const std::string& where);
  void build_merges(const std::vector<std::pair<std::string, std::string>>& pairs);
  void add_template(const std::vector<TokenId>& prefix, const std::vector<TokenId>& suffix);
  detail::Pcre2Regex compile(std::string_view pattern, const std::string& where) const;
  void finish();  // the tables derived from the vocabulary, once it is complete

  // ---- tokenizer.json (detail/tokenizer_json.hpp) --------------------------------------------
  static std::string type_name(const nlohmann::json& j);
  const nlohmann::json& member(const nlohmann::json& j, const char* key, const std::string& where) const;
  std::string string_member(const nlohmann::json& j, const char* key, const std::string& where) const;
  bool bool_member(const nlohmann::json& j, const char* key, const std::string& where, bool fallback) const;
  TokenId id_value(const nlohmann::json& v, const std::string& where) const;
  void load_json(const nlohmann::json& j);
  void load_normalizer(const nlohmann::json& n, const std::string& where);
  void load_pre_tokenizer(const nlohmann::json& p, const std::string& where, bool& byte_level);
  void load_decoder(const nlohmann::json& d, const std::string& where);
  std::string literal_pattern(const nlohmann::json& j, const std::string& where) const;
  void load_post_processor(const nlohmann::json& p, const std::string& where);
  detail::PreTokenizeStep::Behavior behavior(const std::string& name, const std::string& where) const;

  // ---- GGUF vocabularies (detail/tokenizer_gguf.hpp) -----------------------------------------
  void load_vocabulary(const BpeVocabulary& v);
  std::vector<std::pair<std::string, std::string>> merges_from_scores(const BpeVocabulary& v) const;

  // ---- encoding (detail/tokenizer_encode.hpp) ------------------------------------------------
  bool is_space_char(std::string_view s) const { return space_.search(s); }
  bool is_word_char(std::string_view s) const { return word_.search(s); }
  static std::string_view last_char(std::string_view s);
  static std::string_view first_char(std::string_view s);
  std::vector<detail::Piece> split_added(std::vector<detail::Piece>& pieces, const detail::AddedTokenMatcher& m,
                                         bool parse_special) const;
  std::vector<detail::Piece> apply_step(const detail::PreTokenizeStep& step, std::vector<detail::Piece>& pieces) const;
  void bpe(const std::string& piece, std::vector<TokenId>& ids) const;
  void bpe_chars(const std::string& piece, std::vector<TokenId>& ids) const;
  void normalize(std::string& text) const;

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
  std::vector<detail::DecodeStep> decoders_;
  std::optional<TokenId> unk_id_, bos_id_, eos_id_, pad_id_;
  detail::Pcre2Regex word_, space_;
};

}  // namespace ordo

// The members declared above, defined by job, and the streaming decoder. Each of these headers
// includes this one first, so that any of them may be included on its own.
#include <ordo/text/detail/tokenizer_load.hpp>    // loading shared by both sources
#include <ordo/text/detail/tokenizer_json.hpp>    // tokenizer.json
#include <ordo/text/detail/tokenizer_gguf.hpp>    // GGUF vocabularies
#include <ordo/text/detail/tokenizer_encode.hpp>  // encoding
#include <ordo/text/stream_decoder.hpp>           // StreamDecoder
