// ordo::ChatTemplate against transformers' apply_chat_template on committed fixtures
// (tests/text/make_tokenizer_fixtures.py), and the errors for templates ordo does not know.
#include <ordo/text/chat_template.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

const nlohmann::json& chat_cases() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::filesystem::path(ORDO_TEXT_FIXTURES) / "chat_cases.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

ordo::ChatTemplate template_named(const std::string& name) {
  const auto& j = chat_cases();
  const auto bos =
      name.starts_with("llama3") ? j["llama3_bos_token"].get<std::string>() : j["bos_token"].get<std::string>();
  return ordo::ChatTemplate::from_jinja(j["templates"][name].get<std::string>(), bos,
                                        j["zephyr_eos_token"].get<std::string>());
}

std::string error_of(std::string_view jinja) {
  try {
    (void)ordo::ChatTemplate::from_jinja(jinja);
  } catch (const ordo::ChatTemplateError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("chat templates render exactly as transformers' apply_chat_template") {
  int n = 0;
  for (const auto& c : chat_cases()["cases"]) {
    const auto name = c["template"].get<std::string>();
    std::vector<ordo::ChatMessage> messages;
    for (const auto& m : c["messages"])
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    CAPTURE(name);
    CAPTURE(c["messages"].dump());
    auto chat = template_named(name);
    if (c.contains("date_string")) chat = chat.with_date(c["date_string"].get<std::string>());
    CHECK(chat.render(messages, c["add_generation_prompt"].get<bool>()) == c["text"].get<std::string>());
    ++n;
  }
  CHECK(n >= 40);
}

TEST_CASE("chat templates: the family and the default system prompt are recognised") {
  CHECK(template_named("smollm2").family() == ordo::ChatTemplate::Family::chatml);
  CHECK(template_named("smollm2").default_system() ==
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  CHECK(template_named("qwen2.5").default_system() ==
        "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  CHECK(template_named("qwen2").default_system() == "You are a helpful assistant");
  CHECK(template_named("chatml").default_system().empty());
  CHECK(template_named("llama3").family() == ordo::ChatTemplate::Family::llama3);
  CHECK(template_named("llama3").end_of_turn() == "<|eot_id|>");
  CHECK(template_named("qwen2.5").end_of_turn() == "<|im_end|>");
  CHECK(template_named("zephyr").family() == ordo::ChatTemplate::Family::zephyr);
  CHECK(template_named("zephyr").end_of_turn() == "</s>");
}

TEST_CASE("chat templates: unknown ones are a clear error") {
  const std::string gemma =
      "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + "
      "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}";
  CHECK(error_of(gemma).find("unsupported chat template (no ChatML, Llama 3 or Zephyr markers)") == 0);
  // Zephyr's template without the newline after each turn writes something else: refused.
  std::string compact = chat_cases()["templates"]["zephyr"].get<std::string>();
  for (auto at = compact.find("}}\n"); at != std::string::npos; at = compact.find("}}\n", at)) compact.erase(at + 2, 1);
  CHECK(error_of(compact).find("Zephyr markers in an unknown arrangement") != std::string::npos);
  CHECK(error_of(gemma).find("It begins: \"{{ bos_token }}") != std::string::npos);
  CHECK(error_of("").find("empty") != std::string::npos);
  // A Qwen3-style ChatML template with reasoning turns renders more than ChatML: refused.
  CHECK(error_of(chat_cases()["templates"]["chatml"].get<std::string>() +
                 "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' "
                 "}}{% endif %}")
            .find("reasoning") != std::string::npos);
  CHECK_FALSE(ordo::ChatTemplate::try_from_jinja(gemma).has_value());
  CHECK(ordo::ChatTemplate::try_from_jinja(chat_cases()["templates"]["chatml"].get<std::string>()).has_value());
  CHECK(error_of("{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023' }}"
                 "{{ '<|eot_id|>' }}")
            .find("Llama 3 markers in an unknown arrangement") != std::string::npos);
  // A Llama 3.2 variant that writes the system turn only when there is a system message.
  std::string variant = chat_cases()["templates"]["llama3.2"].get<std::string>();
  const std::string system_header = "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}";
  REQUIRE(variant.find(system_header) != std::string::npos);
  variant.replace(variant.find(system_header), system_header.size(), "{%- if system_message %}" + system_header);
  variant.replace(variant.find("{{- \"<|eot_id|>\" }}"), 0, "{%- endif %}");
  CHECK(error_of(variant).find("dated template in an unknown arrangement") != std::string::npos);
  CHECK(error_of("<|im_start|>{{ message.role }}: {{ message.content }}<|im_end|>").find("ChatML markers") !=
        std::string::npos);
}

TEST_CASE("chat templates: Llama 3.2 dates the system turn today, Llama 3.1 with its default") {
  const auto llama32 = template_named("llama3.2");
  const std::string today = llama32.date();  // e.g. "24 Nov 2026"
  CAPTURE(today);
  REQUIRE(today.size() == 11);
  CHECK((today[2] == ' ' && today[6] == ' '));
  CHECK(llama32.render({{"user", "x"}}, false).find("Today Date: " + today + "\n\n") != std::string::npos);
  // Llama 3.1's template has a fixed default date instead of strftime_now.
  std::string llama31 = chat_cases()["templates"]["llama3.2"].get<std::string>();
  const auto begin = llama31.find("{%- if strftime_now is defined %}");
  const auto end = llama31.find("{%- endif %}", llama31.find("{%- else %}", begin)) + 12;
  llama31.replace(begin, end - begin, "{%- set date_string = \"26 Jul 2024\" %}");
  CHECK(ordo::ChatTemplate::from_jinja(llama31).date() == "26 Jul 2024");
  CHECK_THROWS_AS(llama32.render({{"user", "x"}, {"ipython", "42"}}, false), ordo::ChatTemplateError);
  CHECK_THROWS_AS(template_named("chatml").with_date("1 Jan 2025"), ordo::ChatTemplateError);
}

TEST_CASE("chat templates: Qwen2.5 writes tool messages differently, which ordo refuses") {
  const auto qwen = template_named("qwen2.5");
  CHECK_THROWS_AS(qwen.render({{"tool", "42"}}, false), ordo::ChatTemplateError);
  CHECK_NOTHROW(template_named("smollm2").render({{"tool", "42"}}, false));
}

TEST_CASE("chat templates: layout does not matter, only the template's structure") {
  const auto compact = ordo::detail::canonical_jinja("{{- '<|im_start|>' + message.role + '\\n' }}");
  const auto spaced = ordo::detail::canonical_jinja("{{ \"<|im_start|>\"+message[\"role\"]\n + \"\\n\" -}}");
  CHECK(compact == spaced);
  CHECK(ordo::detail::python_strip("\u3000 \t x y \n\u00a0") == "x y");
}
