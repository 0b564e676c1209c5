// ordo/data/examples.hpp — token sequences (ordo::Example) from conversations and plain text.
//
// Labels follow transformers' convention: labels[t] is ids[t] where token t is scored and -100
// where it is not; the loss predicts labels[t] from the logits at t - 1 (the shift is the
// loss's business, ordo::train::token_cross_entropy_sum).
//
//   auto convs = ordo::data::read_chat_jsonl("chat.jsonl");
//   auto train = ordo::data::chat_examples(convs, model.tokenizer(), *model.chat_template(),
//                                          {.max_length = 512, .scoring = ordo::data::Scoring::assistant});
//   auto text = ordo::data::text_examples(ordo::data::read_sotu(dir), model.tokenizer(), {.length = 512});
#pragma once

#include <algorithm>  // std::min
#include <cstdint>    // std::int64_t
#include <string>     // std::string
#include <vector>     // std::vector

#include <ordo/data/conversation.hpp>   // Conversation
#include <ordo/data/corpora.hpp>        // Document
#include <ordo/data/error.hpp>          // DataError
#include <ordo/text/chat_template.hpp>  // ChatTemplate
#include <ordo/text/tokenizer.hpp>      // Tokenizer
#include <ordo/data/example.hpp>        // Example

namespace ordo::data {

inline constexpr std::int64_t ignore_index = -100;

/// Which tokens of a conversation the loss scores.
enum class Scoring {
  all,        ///< every token but the first (nothing predicts it)
  assistant,  ///< the assistant's replies and their end-of-turn marker only
};

struct ChatOptions {
  std::int64_t max_length = 512;  ///< longer conversations are cut to this many tokens
  Scoring scoring = Scoring::assistant;
  /// Drop conversations that score no token after the cut (an assistant reply beyond
  /// max_length); when false they are kept (they then add nothing to a loss).
  bool drop_unscored = true;
};

/// One conversation as the model's chat template writes it, tokenized. The text is split into
/// the template's turn headers and turn bodies, each tokenized without added special tokens
/// (as transformers' apply_chat_template(tokenize=True) does); bodies of assistant turns are
/// the scored spans. The first message (with the template's default system turn) is one span,
/// never scored as an assistant reply.
inline Example encode_chat(const Conversation& c, const Tokenizer& tokenizer, const ChatTemplate& chat,
                           const ChatOptions& o = {}) {
  if (o.max_length < 2) throw std::invalid_argument("ordo::data::encode_chat: max_length must be at least 2");
  if (c.messages.empty()) throw DataError(c.source + ": a conversation without messages");
  Example e;
  const EncodeOptions plain{.add_special_tokens = false, .parse_special = true};
  auto append = [&](std::string_view text, bool scored) {
    std::vector<TokenId> ids;
    try {
      ids = tokenizer.encode(text, plain);
    } catch (const std::exception& x) {
      throw DataError(c.source + ": " + x.what());
    }
    for (auto id : ids) {
      e.ids.push_back(id);
      e.labels.push_back(scored ? id : ignore_index);
    }
  };
  std::span<const ChatMessage> all(c.messages);
  std::string done;
  try {
    done = chat.render(all.first(1), false);
  } catch (const std::exception& x) {
    throw DataError(c.source + ": " + x.what());
  }
  append(done, o.scoring == Scoring::all);
  for (std::size_t k = 1; k < all.size(); ++k) {
    std::string with_header, with_turn;
    try {
      with_header = all[k].role == "assistant" ? chat.render(all.first(k), true) : done;
      with_turn = chat.render(all.first(k + 1), false);
    } catch (const std::exception& x) {
      throw DataError(c.source + ": " + x.what());
    }
    if (with_header.compare(0, done.size(), done) != 0 || with_turn.compare(0, with_header.size(), with_header) != 0)
      throw DataError(c.source + ": the " + std::string(chat.name()) + " template does not write message " +
                      std::to_string(k) + " after the earlier ones; cannot find its tokens");
    append(std::string_view(with_header).substr(done.size()), o.scoring == Scoring::all);
    append(std::string_view(with_turn).substr(with_header.size()),
           o.scoring == Scoring::all || all[k].role == "assistant");
    done = std::move(with_turn);
  }
  if (static_cast<std::int64_t>(e.ids.size()) > o.max_length) {
    e.ids.resize(static_cast<std::size_t>(o.max_length));
    e.labels.resize(static_cast<std::size_t>(o.max_length));
  }
  if (!e.labels.empty()) e.labels[0] = ignore_index;  // nothing predicts the first token
  return e;
}

/// Number of tokens an example scores (labels other than -100, the first position excluded).
inline std::int64_t scored_tokens(const Example& e) {
  std::int64_t n = 0;
  for (std::size_t t = 1; t < e.labels.size(); ++t) n += e.labels[t] != ignore_index;
  return n;
}

/// Every conversation through encode_chat.
inline std::vector<Example> chat_examples(const std::vector<Conversation>& conversations, const Tokenizer& tokenizer,
                                          const ChatTemplate& chat, const ChatOptions& o = {}) {
  std::vector<Example> out;
  out.reserve(conversations.size());
  for (const auto& c : conversations) {
    auto e = encode_chat(c, tokenizer, chat, o);
    if (o.drop_unscored && scored_tokens(e) == 0) continue;
    out.push_back(std::move(e));
  }
  return out;
}

struct TextOptions {
  std::int64_t length = 512;      ///< tokens per example
  bool separate_with_eos = true;  ///< the tokenizer's EOS between documents (when it has one)
  bool keep_partial = false;      ///< keep the last, shorter chunk (if it has 2+ tokens)
  std::int64_t max_examples = 0;  ///< stop after this many (0: all)
};

/// Documents tokenized, joined (EOS between them) and cut into consecutive chunks of
/// `length` tokens; every token of a chunk but its first is scored.
inline std::vector<Example> text_examples(const std::vector<Document>& documents, const Tokenizer& tokenizer,
                                          const TextOptions& o = {}) {
  if (o.length < 2) throw std::invalid_argument("ordo::data::text_examples: length must be at least 2");
  std::vector<Example> out;
  std::vector<std::int64_t> pending;
  auto flush = [&](bool last) {
    std::size_t at = 0;
    const auto L = static_cast<std::size_t>(o.length);
    while (pending.size() - at >= L || (last && o.keep_partial && pending.size() - at >= 2)) {
      if (o.max_examples > 0 && static_cast<std::int64_t>(out.size()) >= o.max_examples) break;
      const auto n = std::min(L, pending.size() - at);
      Example e;
      e.ids.assign(pending.begin() + static_cast<std::ptrdiff_t>(at),
                   pending.begin() + static_cast<std::ptrdiff_t>(at + n));
      e.labels = e.ids;
      e.labels[0] = ignore_index;
      out.push_back(std::move(e));
      at += n;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(at));
  };
  const EncodeOptions plain{.add_special_tokens = true, .parse_special = false};
  for (const auto& d : documents) {
    std::vector<TokenId> ids;
    try {
      ids = tokenizer.encode(d.text, plain);
    } catch (const std::exception& x) {
      throw DataError(d.name + ": " + x.what());
    }
    pending.insert(pending.end(), ids.begin(), ids.end());
    if (o.separate_with_eos && tokenizer.eos_id()) pending.push_back(*tokenizer.eos_id());
    flush(false);
    if (o.max_examples > 0 && static_cast<std::int64_t>(out.size()) >= o.max_examples) return out;
  }
  flush(true);
  return out;
}

/// The example cut to at most `length` tokens (its first token stays unscored).
inline Example truncated(Example e, std::int64_t length) {
  if (static_cast<std::int64_t>(e.ids.size()) > length) {
    e.ids.resize(static_cast<std::size_t>(length));
    e.labels.resize(static_cast<std::size_t>(length));
  }
  return e;
}

/// Checks an example: ids and labels of the same non-zero length, ids within [0, vocab),
/// labels -100 or equal to the id. Throws DataError naming `what` (e.g. "train example 12").
inline void check_example(const Example& e, std::int64_t vocab_size, const std::string& what) {
  if (e.ids.empty()) throw DataError(what + ": no tokens");
  if (e.ids.size() != e.labels.size())
    throw DataError(what + ": " + std::to_string(e.ids.size()) + " ids but " + std::to_string(e.labels.size()) +
                    " labels");
  for (std::size_t t = 0; t < e.ids.size(); ++t) {
    if (e.ids[t] < 0 || e.ids[t] >= vocab_size)
      throw DataError(what + ": token " + std::to_string(t) + " has id " + std::to_string(e.ids[t]) +
                      ", outside the model's vocabulary of " + std::to_string(vocab_size));
    if (e.labels[t] != ignore_index && e.labels[t] != e.ids[t])
      throw DataError(what + ": label " + std::to_string(t) + " is " + std::to_string(e.labels[t]) +
                      "; labels are the token's id or -100");
  }
}

}  // namespace ordo::data
