// ordo/data/conversation.hpp — chat conversations from JSON Lines files. Torch-free.
//
// One conversation per line, in the layout of Hugging Face chat datasets (UltraChat's
// train_sft, TRL's "messages" column):
//   {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
// Other members of a line are ignored; blank lines are skipped. Roles: system, user, assistant.
// Anything else is a DataError naming the file and the line.
#pragma once

#include <cstdint>      // std::int64_t
#include <filesystem>   // std::filesystem::path
#include <fstream>      // std::ifstream
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/data/error.hpp>          // DataError, where
#include <ordo/text/chat_template.hpp>  // ChatMessage

namespace ordo::data {

/// A conversation and where it came from ("file:line", or "file:<id>" for corpora).
struct Conversation {
  std::vector<ChatMessage> messages;
  std::string source;
};

namespace detail {

inline bool blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

inline Conversation conversation_from_json(const nlohmann::json& j, const std::string& at) {
  auto fail = [&](const std::string& what) { throw DataError(at + ": " + what); };
  if (!j.is_object()) fail("expected a JSON object with a \"messages\" array, found " + std::string(j.type_name()));
  const auto it = j.find("messages");
  if (it == j.end()) fail("no \"messages\" member");
  if (!it->is_array()) fail("\"messages\" must be an array, found " + std::string(it->type_name()));
  if (it->empty()) fail("\"messages\" is empty");
  Conversation c;
  c.source = at;
  std::size_t index = 0;
  for (const auto& m : *it) {
    const std::string which = "message " + std::to_string(index++);
    if (!m.is_object()) fail(which + " must be an object with \"role\" and \"content\"");
    const auto role = m.find("role");
    const auto content = m.find("content");
    if (role == m.end() || !role->is_string()) fail(which + ": \"role\" must be a string");
    if (content == m.end() || !content->is_string()) fail(which + ": \"content\" must be a string");
    auto r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant")
      fail(which + ": role '" + r + "' is not one of system, user, assistant");
    c.messages.push_back({std::move(r), content->get<std::string>()});
  }
  return c;
}

}  // namespace detail

/// Conversations from JSON Lines text; `source` names it in errors ("file:line: ...").
inline std::vector<Conversation> parse_chat_jsonl(std::string_view text, const std::string& source) {
  std::vector<Conversation> out;
  std::int64_t line_no = 0;
  std::size_t begin = 0;
  while (begin < text.size()) {
    auto end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const auto line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (detail::blank(line)) continue;
    const auto at = where(source, line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw DataError(at + ": not valid JSON (" + e.what() + ")");
    }
    out.push_back(detail::conversation_from_json(j, at));
  }
  return out;
}

/// Conversations of a JSON Lines file.
inline std::vector<Conversation> read_chat_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open the chat file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto out = parse_chat_jsonl(text, path.string());
  if (out.empty()) throw DataError(path.string() + ": no conversations in the file");
  return out;
}

}  // namespace ordo::data
