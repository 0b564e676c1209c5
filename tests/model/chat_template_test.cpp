// ordo::ChatTemplate against transformers' apply_chat_template on committed fixtures
// (tests/model/make_tokenizer_fixtures.py), and the errors for templates ordo does not know.
#include <ordo/model/chat_template.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

const nlohmann::json& chat_cases() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::filesystem::path(ORDO_MODEL_FIXTURES) / "chat_cases.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

ordo::ChatTemplate template_named(const std::string& name) {
  const auto& j = chat_cases();
  const auto bos = name == "llama3" ? j["llama3_bos_token"].get<std::string>() : j["bos_token"].get<std::string>();
  return ordo::ChatTemplate::from_jinja(j["templates"][name].get<std::string>(), bos);
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
    for (const auto& m : c["messages"]) messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    CAPTURE(name);
    CAPTURE(c["messages"].dump());
    CHECK(template_named(name).render(messages, c["add_generation_prompt"].get<bool>()) == c["text"].get<std::string>());
    ++n;
  }
  CHECK(n >= 40);
}

TEST_CASE("chat templates: the family and the default system prompt are recognised") {
  CHECK(template_named("smollm2").family() == ordo::ChatTemplate::Family::chatml);
  CHECK(template_named("smollm2").default_system() == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  CHECK(template_named("qwen2.5").default_system() == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  CHECK(template_named("qwen2").default_system() == "You are a helpful assistant");
  CHECK(template_named("chatml").default_system().empty());
  CHECK(template_named("llama3").family() == ordo::ChatTemplate::Family::llama3);
  CHECK(template_named("llama3").end_of_turn() == "<|eot_id|>");
  CHECK(template_named("qwen2.5").end_of_turn() == "<|im_end|>");
}

TEST_CASE("chat templates: unknown ones are a clear error") {
  const std::string gemma =
      "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + "
      "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}";
  CHECK(error_of(gemma).find("unsupported chat template (no ChatML or Llama 3 markers)") == 0);
  CHECK(error_of(gemma).find("It begins: \"{{ bos_token }}") != std::string::npos);
  CHECK(error_of("").find("empty") != std::string::npos);
  CHECK(error_of("{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023' }}"
                 "{{ '<|eot_id|>' }}")
            .find("Llama 3.1+") != std::string::npos);
  CHECK(error_of("<|im_start|>{{ message.role }}: {{ message.content }}<|im_end|>").find("ChatML markers") !=
        std::string::npos);
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
