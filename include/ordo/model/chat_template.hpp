// ordo/model/chat_template.hpp — the chat formats of the supported families, rendered in C++.
//
// Hugging Face and GGUF files carry a Jinja template (tokenizer_config.json "chat_template",
// GGUF "tokenizer.chat_template"). ordo does not interpret Jinja: it recognises which family's
// template a file carries and renders that format itself, with the template's default system
// prompt. Recognised:
//   ChatML     <|im_start|>role\ncontent<|im_end|>\n        SmolLM2-Instruct, Qwen2/2.5-Instruct
//   Llama 3    <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>, BOS first
// Anything else is a ChatTemplateError that says so. The output equals transformers'
// apply_chat_template(messages, tokenize=False, add_generation_prompt=...) (tests/model/).
//
//   auto chat = ordo::ChatTemplate::from_jinja(template_text, "<|begin_of_text|>");
//   std::string prompt = chat.render({{"user", "Hi!"}}, /*add_generation_prompt=*/true);
#pragma once

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t
#include <filesystem>   // std::filesystem::path
#include <fstream>      // std::ifstream
#include <initializer_list>  // std::initializer_list
#include <iterator>     // std::istreambuf_iterator
#include <optional>     // std::optional
#include <span>         // std::span
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair, std::move

#include <nlohmann/json.hpp>  // nlohmann::json (tokenizer_config.json)

#include <ordo/model/detail/utf8.hpp>  // detail::utf8::next

namespace ordo {

/// A chat template ordo cannot render, or a conversation it cannot render with it.
class ChatTemplateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// One turn of a conversation.
struct ChatMessage {
  std::string role;     ///< "system", "user", "assistant"
  std::string content;
};

namespace detail {

/// The template with whitespace outside string literals removed, string literals in one
/// spelling ('...', newline as \n), raw text kept (newline as \n), Jinja comments and
/// whitespace-control dashes dropped, and message.role / message["role"] spelled message['role'].
/// Two templates that differ only in layout have the same canonical form.
inline std::string canonical_jinja(std::string_view t) {
  std::string out;
  const auto put_escaped = [&out](char c) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c == '\'') out += "\\'";
    else out += c;
  };
  bool in_tag = false;
  for (std::size_t i = 0; i < t.size();) {
    if (!in_tag) {
      if (t.substr(i, 2) == "{#") {
        const auto end = t.find("#}", i + 2);
        i = end == std::string_view::npos ? t.size() : end + 2;
      } else if (t.substr(i, 2) == "{{" || t.substr(i, 2) == "{%") {
        out += t.substr(i, 2);
        i += 2;
        if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
        in_tag = true;
      } else {
        put_escaped(t[i]);
        ++i;
      }
      continue;
    }
    const char c = t[i];
    if ((c == '-' || c == '+') && (t.substr(i + 1, 2) == "}}" || t.substr(i + 1, 2) == "%}")) {
      ++i;
    } else if (t.substr(i, 2) == "}}" || t.substr(i, 2) == "%}") {
      out += t.substr(i, 2);
      i += 2;
      in_tag = false;
    } else if (c == '\'' || c == '"') {
      out += '\'';
      ++i;
      while (i < t.size() && t[i] != c) {
        if (t[i] == '\\' && i + 1 < t.size()) {
          const char e = t[i + 1];
          put_escaped(e == 'n' ? '\n' : e == 't' ? '\t' : e);
          i += 2;
        } else {
          put_escaped(t[i]);
          ++i;
        }
      }
      out += '\'';
      ++i;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  for (const auto& [from, to] : {std::pair<std::string_view, std::string_view>{"message.role", "message['role']"},
                                 {"message.content", "message['content']"}}) {
    for (auto at = out.find(from); at != std::string::npos; at = out.find(from, at + to.size()))
      out.replace(at, from.size(), to);
  }
  return out;
}

/// Python's str.strip() (Jinja's trim filter): Unicode whitespace off both ends.
inline std::string_view python_strip(std::string_view s) {
  const auto is_space = [](std::uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
  };
  std::size_t begin = 0;
  while (begin < s.size()) {
    std::size_t next = begin;
    if (!is_space(utf8::next(s, next))) break;
    begin = next;
  }
  std::size_t end = s.size();
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    std::size_t probe = start;
    if (!is_space(utf8::next(s, probe))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

/// Undoes put_escaped of canonical_jinja for a literal's content.
inline std::string unescape_canonical(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char e = s[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace detail

/// A recognised chat format.
class ChatTemplate {
 public:
  enum class Family { chatml, llama3 };

  /// ChatML; `default_system` is inserted when the conversation does not start with a system
  /// message (SmolLM2 and Qwen2.5 have one; plain ChatML has none: "").
  static ChatTemplate chatml(std::string default_system = "") {
    ChatTemplate t;
    t.family_ = Family::chatml;
    t.default_system_ = std::move(default_system);
    return t;
  }

  /// Llama 3 (3.0 Instruct format): BOS, then header-delimited turns with trimmed content.
  static ChatTemplate llama3(std::string bos_token = "<|begin_of_text|>") {
    ChatTemplate t;
    t.family_ = Family::llama3;
    t.bos_token_ = std::move(bos_token);
    return t;
  }

  /// Recognises the family of a Jinja chat template. `bos_token` is the text of the BOS token
  /// (Llama 3 templates start with it). Throws ChatTemplateError for templates ordo does not know.
  static ChatTemplate from_jinja(std::string_view jinja, std::string bos_token = "<|begin_of_text|>") {
    const std::string c = detail::canonical_jinja(jinja);
    const auto has = [&c](std::string_view s) { return c.find(s) != std::string::npos; };
    const auto unknown = [&jinja](const std::string& why) -> ChatTemplateError {
      std::string head(jinja.substr(0, 120));
      for (auto& ch : head)
        if (ch == '\n') ch = ' ';
      return ChatTemplateError("unsupported chat template (" + why +
                               "); ordo renders ChatML (SmolLM2, Qwen2.5) and Llama 3 templates. It begins: \"" +
                               head + (jinja.size() > 120 ? "...\"" : "\""));
    };
    if (jinja.empty()) throw ChatTemplateError("the chat template is empty");

    if (has("<|im_start|>") && has("<|im_end|>")) {
      const bool turn = has("'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>'+'\\n'") ||
                        has("'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>\\n'");
      if (!turn) throw unknown("ChatML markers, but turns are not written as <|im_start|>role\\ncontent<|im_end|>\\n");
      if (!has("'<|im_start|>assistant\\n'")) throw unknown("ChatML without the '<|im_start|>assistant\\n' prompt");
      if (has("bos_token") || has("|trim")) throw unknown("a ChatML variant with BOS or trimming");
      ChatTemplate t = chatml(default_system_of(c));
      t.tool_role_ = !has("tool_response");
      return t;
    }
    if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>")) {
      if (has("Cutting Knowledge Date")) throw unknown("Llama 3.1+ template with a dated system preamble");
      const bool turn =
          has("'<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+'<|eot_id|>'");
      if (!turn || !has("bos_token+content") || !has("'<|start_header_id|>assistant<|end_header_id|>\\n\\n'")) {
        throw unknown("Llama 3 markers in an unknown arrangement");
      }
      return llama3(std::move(bos_token));
    }
    throw unknown("no ChatML or Llama 3 markers");
  }

  /// The prompt text for `messages`; with `add_generation_prompt`, ends with the header of the
  /// assistant's next turn.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
    std::string out;
    if (family_ == Family::chatml) {
      if (!messages.empty() && messages.front().role != "system" && !default_system_.empty())
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      for (const auto& m : messages) {
        if (m.role == "tool" && !tool_role_) {
          throw ChatTemplateError("this template writes 'tool' messages as tool responses, which ordo does not render");
        }
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
    } else {
      for (std::size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += bos_token_;
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n";
        out += detail::python_strip(messages[i].content);
        out += "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    }
    return out;
  }
  std::string render(std::initializer_list<ChatMessage> messages, bool add_generation_prompt) const {
    return render(std::span<const ChatMessage>(messages.begin(), messages.size()), add_generation_prompt);
  }

  Family family() const { return family_; }
  std::string_view name() const { return family_ == Family::chatml ? "chatml" : "llama3"; }
  /// The system prompt inserted when a conversation has none ("" for none).
  const std::string& default_system() const { return default_system_; }
  /// The text that ends a turn: generation stops at the token with this text.
  std::string_view end_of_turn() const { return family_ == Family::chatml ? "<|im_end|>" : "<|eot_id|>"; }

 private:
  ChatTemplate() = default;

  // The default system prompt of a ChatML template: the literal that writes a whole system turn.
  static std::string default_system_of(const std::string& c) {
    static constexpr std::string_view open = "'<|im_start|>system\\n";
    static constexpr std::string_view close = "<|im_end|>\\n'";
    for (auto at = c.find(open); at != std::string::npos; at = c.find(open, at + 1)) {
      const auto begin = at + open.size();
      const auto end = c.find(close, begin);
      if (end == std::string::npos) break;
      const std::string_view body(c.data() + begin, end - begin);
      // A literal ends at an unescaped quote; the system text must lie in one literal.
      bool crosses = false;
      for (std::size_t k = 0; k < body.size(); ++k) {
        if (body[k] == '\\') ++k;
        else if (body[k] == '\'') crosses = true;
      }
      if (!crosses) return detail::unescape_canonical(body);
    }
    return {};
  }

  Family family_ = Family::chatml;
  std::string default_system_;
  std::string bos_token_;
  bool tool_role_ = true;
};

/// The chat template of a Hugging Face checkpoint directory: chat_template.jinja, else
/// tokenizer_config.json "chat_template" (a string, or a list of {"name", "template"}: the one
/// named "default"); nullopt when it has none. Throws ChatTemplateError for unreadable files.
inline std::optional<std::string> read_chat_template(const std::filesystem::path& dir) {
  if (std::ifstream jinja(dir / "chat_template.jinja", std::ios::binary); jinja) {
    return std::string((std::istreambuf_iterator<char>(jinja)), std::istreambuf_iterator<char>());
  }
  const auto config_path = dir / "tokenizer_config.json";
  std::ifstream in(config_path, std::ios::binary);
  if (!in) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ChatTemplateError(config_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  const auto it = config.is_object() ? config.find("chat_template") : config.end();
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& named : *it) {
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string()) {
        return named["template"].get<std::string>();
      }
    }
    throw ChatTemplateError(config_path.string() + ": chat_template is a list without a template named \"default\"");
  }
  throw ChatTemplateError(config_path.string() + ": chat_template must be a string or a list of named templates");
}

}  // namespace ordo
