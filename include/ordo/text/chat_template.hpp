// ordo/text/chat_template.hpp — the chat formats of the supported families, rendered in C++.
//
// Hugging Face and GGUF files carry a Jinja template (tokenizer_config.json "chat_template",
// GGUF "tokenizer.chat_template"). ordo does not interpret Jinja: it recognises which family's
// template a file carries and renders that format itself, with the template's default system
// prompt. Recognised:
//   ChatML     <|im_start|>role\ncontent<|im_end|>\n        SmolLM2-Instruct, Qwen2/2.5-Instruct
//   Llama 3    <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>, BOS first
//              (3.0; and 3.1 / 3.2 with their dated system turn, without tools)
//   Zephyr     <|role|>\ncontent</s>\n                         TinyLlama-Chat
// Anything else is a ChatTemplateError that says so. The output equals transformers'
// apply_chat_template(messages, tokenize=False, add_generation_prompt=...) (tests/model/).
//
//   auto chat = ordo::ChatTemplate::from_jinja(template_text, "<|begin_of_text|>");
//   std::string prompt = chat.render({{"user", "Hi!"}}, /*add_generation_prompt=*/true);
#pragma once

#include <cstddef>           // std::size_t
#include <cstdint>           // std::uint32_t
#include <ctime>             // std::time, std::strftime, localtime_r
#include <filesystem>        // std::filesystem::path
#include <fstream>           // std::ifstream
#include <initializer_list>  // std::initializer_list
#include <iterator>          // std::istreambuf_iterator
#include <optional>          // std::optional
#include <span>              // std::span
#include <stdexcept>         // std::invalid_argument
#include <string>            // std::string
#include <string_view>       // std::string_view
#include <utility>           // std::pair, std::move

#include <nlohmann/json.hpp>  // nlohmann::json (tokenizer_config.json)

#include <ordo/text/utf8.hpp>  // detail::utf8::next

namespace ordo {

/// A chat template ordo cannot render, or a conversation it cannot render with it.
class ChatTemplateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// One turn of a conversation.
struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant"
  std::string content;
};

namespace detail {

/// The template with whitespace outside string literals removed, string literals in one
/// spelling ('...', newline as \n), raw text as Jinja emits it (newline as \n) under the
/// whitespace rules transformers uses (trim_blocks, lstrip_blocks, and "-" whitespace control),
/// comments dropped, and message.role / message["role"] spelled message['role']. Templates
/// that differ only in layout have the same canonical form.
inline std::string canonical_jinja(std::string_view t) {
  std::string out, raw;  // raw: text outside tags not yet written (unescaped)
  const auto put_escaped = [&out](char c) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\'')
      out += "\\'";
    else
      out += c;
  };
  const auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  bool at_line_start = true;  // only spaces/tabs in `raw` since the last newline or the start
  bool strip_next = false;    // after "-%}" / "-}}": drop the whitespace that follows
  bool trim_newline = false;  // after "%}" / "#}": drop one newline (trim_blocks)
  for (std::size_t i = 0; i < t.size();) {
    const std::string_view two = t.substr(i, 2);
    if (two == "{{" || two == "{%" || two == "{#") {
      const char kind = two[1];
      strip_next = false;
      trim_newline = false;
      const bool dash = i + 2 < t.size() && t[i + 2] == '-';
      const bool plus = i + 2 < t.size() && t[i + 2] == '+';
      if (dash) {
        while (!raw.empty() && is_ws(raw.back())) raw.pop_back();
      } else if (kind != '{' && !plus && at_line_start) {  // lstrip_blocks
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.pop_back();
      }
      for (const char c : raw) put_escaped(c);
      raw.clear();
      std::size_t j = i + 2 + ((dash || plus) ? 1 : 0);
      const std::string_view close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
      if (kind == '#') {
        const auto end = t.find(close, j);
        const std::size_t stop = end == std::string_view::npos ? t.size() : end;
        strip_next = stop > j && t[stop - 1] == '-';
        trim_newline = !strip_next;
        i = end == std::string_view::npos ? t.size() : end + 2;
        at_line_start = false;
        continue;
      }
      out += two;
      // Inside the tag: drop whitespace, normalize string literals.
      while (j < t.size()) {
        const char c = t[j];
        if ((c == '-' || c == '+') && t.substr(j + 1, 2) == close) {
          strip_next = c == '-';
          ++j;
          continue;
        }
        if (t.substr(j, 2) == close) {
          out += close;
          j += 2;
          break;
        }
        if (c == '\'' || c == '"') {
          out += '\'';
          ++j;
          while (j < t.size() && t[j] != c) {
            if (t[j] == '\\' && j + 1 < t.size()) {
              const char e = t[j + 1];
              put_escaped(e == 'n' ? '\n' : e == 't' ? '\t' : e);
              j += 2;
            } else {
              put_escaped(t[j]);
              ++j;
            }
          }
          out += '\'';
          ++j;
          continue;
        }
        if (!is_ws(c)) out += c;
        ++j;
      }
      trim_newline = !strip_next && kind == '%';
      at_line_start = false;
      i = j;
      continue;
    }
    const char c = t[i++];
    if (strip_next) {
      if (is_ws(c)) continue;
      strip_next = false;
    }
    if (trim_newline) {
      trim_newline = false;
      if (c == '\n') {
        at_line_start = true;
        continue;
      }
    }
    raw += c;
    if (c == '\n')
      at_line_start = true;
    else if (c != ' ' && c != '\t')
      at_line_start = false;
  }
  for (const char c : raw) put_escaped(c);
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
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
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
  enum class Family { chatml, llama3, zephyr };

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

  /// Zephyr's format, as TinyLlama-Chat uses it: <|role|>\ncontent</s>\n per turn.
  static ChatTemplate zephyr(std::string eos_token = "</s>") {
    ChatTemplate t;
    t.family_ = Family::zephyr;
    t.eos_token_ = std::move(eos_token);
    return t;
  }

  /// Recognises the family of a Jinja chat template. `bos_token` and `eos_token` are the texts of
  /// the BOS and EOS tokens (Llama 3 templates start with BOS; Zephyr's end turns with EOS).
  /// Throws ChatTemplateError for templates ordo does not know.
  static ChatTemplate from_jinja(std::string_view jinja, std::string bos_token = "<|begin_of_text|>",
                                 std::string eos_token = "</s>") {
    const std::string c = detail::canonical_jinja(jinja);
    const auto has = [&c](std::string_view s) { return c.find(s) != std::string::npos; };
    const auto unknown = [&jinja](const std::string& why) -> ChatTemplateError {
      std::string head(jinja.substr(0, 120));
      for (auto& ch : head)
        if (ch == '\n') ch = ' ';
      return ChatTemplateError(
          "unsupported chat template (" + why +
          "); ordo renders ChatML (SmolLM2, Qwen2.5), Llama 3 and Zephyr (TinyLlama) templates. It begins: \"" + head +
          (jinja.size() > 120 ? "...\"" : "\""));
    };
    if (jinja.empty()) throw ChatTemplateError("the chat template is empty");

    if (has("<|im_start|>") && has("<|im_end|>")) {
      const bool turn = has("'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>'+'\\n'") ||
                        has("'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>\\n'");
      if (!turn) throw unknown("ChatML markers, but turns are not written as <|im_start|>role\\ncontent<|im_end|>\\n");
      if (!has("'<|im_start|>assistant\\n'")) throw unknown("ChatML without the '<|im_start|>assistant\\n' prompt");
      if (has("bos_token") || has("|trim")) throw unknown("a ChatML variant with BOS or trimming");
      if (has("<think>") || has("reasoning_content") || has("enable_thinking"))
        throw unknown("a ChatML variant with reasoning turns (<think>)");
      ChatTemplate t = chatml(default_system_of(c));
      t.tool_role_ = !has("tool_response");
      return t;
    }
    if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>")) {
      const bool turn =
          has("'<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+'<|eot_id|>'");
      if (!turn || !has("'<|start_header_id|>assistant<|end_header_id|>\\n\\n'")) {
        throw unknown("Llama 3 markers in an unknown arrangement");
      }
      if (!has("Cutting Knowledge Date")) {
        if (!has("bos_token+content")) throw unknown("Llama 3 markers without BOS on the first turn");
        return llama3(std::move(bos_token));
      }
      // Llama 3.1 / 3.2: a system turn with dates always comes first.
      const bool shape = c.rfind("{{bos_token}}", 0) == 0 &&
                         has("{%ifmessages[0]['role']=='system'%}{%setsystem_message=messages[0]['content']|trim%}"
                             "{%setmessages=messages[1:]%}{%else%}{%setsystem_message=''%}{%endif%}") &&
                         has("{{'<|start_header_id|>system<|end_header_id|>\\n\\n'}}") &&
                         has("{{'Cutting Knowledge Date: December 2023\\n'}}{{'Today Date: '+date_string+'\\n\\n'}}") &&
                         has("{{system_message}}{{'<|eot_id|>'}}") && !has("{%ifsystem_message%}");
      if (!shape) throw unknown("a Llama 3.1-style dated template in an unknown arrangement");
      ChatTemplate t = llama3(std::move(bos_token));
      t.dated_system_ = true;
      if (has("strftime_now")) {
        t.date_ = today();  // transformers passes strftime_now: the template dates prompts today
      } else if (const auto at = c.find("{%setdate_string='"); at != std::string::npos) {
        const auto begin = at + 18;
        t.date_ = detail::unescape_canonical(std::string_view(c).substr(begin, c.find('\'', begin) - begin));
      } else {
        throw unknown("a dated Llama 3 template without a default date");
      }
      return t;
    }
    if (has("<|user|>") && has("<|assistant|>")) {
      // TinyLlama-Chat's (Zephyr's) template, which writes a newline after each turn.
      static constexpr std::string_view zephyr_turns =
          "{%formessageinmessages%}{%ifmessage['role']=='user'%}{{'<|user|>\\n'+message['content']+eos_token}}\\n"
          "{%elifmessage['role']=='system'%}{{'<|system|>\\n'+message['content']+eos_token}}\\n"
          "{%elifmessage['role']=='assistant'%}{{'<|assistant|>\\n'+message['content']+eos_token}}\\n{%endif%}"
          "{%ifloop.lastandadd_generation_prompt%}{{'<|assistant|>'}}\\n{%endif%}{%endfor%}";
      if (c != zephyr_turns) throw unknown("Zephyr markers in an unknown arrangement");
      return zephyr(std::move(eos_token));
    }
    throw unknown("no ChatML, Llama 3 or Zephyr markers");
  }

  /// from_jinja, or nullopt for a template ordo does not know (for loaders that fall back to
  /// raw prompts).
  static std::optional<ChatTemplate> try_from_jinja(std::string_view jinja, std::string bos_token = "<|begin_of_text|>",
                                                    std::string eos_token = "</s>") {
    try {
      return from_jinja(jinja, std::move(bos_token), std::move(eos_token));
    } catch (const ChatTemplateError&) {
      return std::nullopt;
    }
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
    } else if (family_ == Family::zephyr) {
      for (const auto& m : messages) {
        if (m.role == "user" || m.role == "system" || m.role == "assistant")
          out += "<|" + m.role + "|>\n" + m.content + eos_token_ + "\n";
        // Other roles write nothing, as the template does.
      }
      if (add_generation_prompt && !messages.empty()) out += "<|assistant|>\n";
    } else if (dated_system_) {
      out += bos_token_;
      std::size_t first = 0;
      std::string_view system;
      if (!messages.empty() && messages.front().role == "system") {
        system = detail::python_strip(messages.front().content);
        first = 1;
      }
      out += "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ";
      out += date_;
      out += "\n\n";
      out += system;
      out += "<|eot_id|>";
      for (std::size_t i = first; i < messages.size(); ++i) {
        if (messages[i].role == "tool" || messages[i].role == "ipython") {
          throw ChatTemplateError("this template writes '" + messages[i].role +
                                  "' messages as tool output, which ordo does not render");
        }
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n";
        out += detail::python_strip(messages[i].content);
        out += "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
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
  std::string_view name() const {
    return family_ == Family::chatml ? "chatml" : family_ == Family::llama3 ? "llama3" : "zephyr";
  }
  /// The system prompt inserted when a conversation has none ("" for none).
  const std::string& default_system() const { return default_system_; }
  /// Llama 3.1 / 3.2 templates write "Today Date: <date>" into the system turn: the template's
  /// default ("26 Jul 2024"), or today's date ("%d %b %Y", local time) where the template asks
  /// for it, as transformers renders it. "" for other templates.
  const std::string& date() const { return date_; }
  /// The same template with another date (transformers: apply_chat_template(..., date_string=)).
  ChatTemplate with_date(std::string date) const {
    if (!dated_system_) throw ChatTemplateError("this chat template has no date to set");
    ChatTemplate t = *this;
    t.date_ = std::move(date);
    return t;
  }

  /// The text that ends a turn: generation stops at the token with this text.
  std::string_view end_of_turn() const {
    return family_ == Family::chatml   ? "<|im_end|>"
           : family_ == Family::llama3 ? "<|eot_id|>"
                                       : std::string_view(eos_token_);
  }

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
        if (body[k] == '\\')
          ++k;
        else if (body[k] == '\'')
          crosses = true;
      }
      if (!crosses) return detail::unescape_canonical(body);
    }
    return {};
  }

  static std::string today() {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[32];
    const std::size_t n = std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
    return std::string(buffer, n);
  }

  Family family_ = Family::chatml;
  bool dated_system_ = false;
  std::string date_;
  std::string default_system_;
  std::string bos_token_;
  std::string eos_token_;
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
