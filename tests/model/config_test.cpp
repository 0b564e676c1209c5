// ordo::model::decoder_config (config.json) on real configs, on malformed ones (each refused with
// an std::invalid_argument naming the file and the field), and on the inputs of the config fuzz
// target (fuzz/config_fuzz.cpp): its crash inputs (fixtures/config_regressions/, kept with the
// fix) and its minimized corpus (fixtures/config_fuzz_corpus.bin, packed by fuzz/pack_corpus.py).
// Torch-free.
#include <ordo/model/config.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using ordo::model::decoder_config;

namespace {

const fs::path fixtures = ORDO_MODEL_FIXTURES;
const fs::path source_dir = ORDO_SOURCE_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// "accepted", or the message of the std::invalid_argument (anything else propagates).
std::string outcome(std::string_view text, const std::string& source) {
  try {
    (void)decoder_config::parse(text, source);
    return "accepted";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

/// What the fuzz target checks on one input, as test assertions.
void replay(std::string_view text) {
  const std::string source = "fuzz/config.json";
  std::string result;
  try {
    const auto c = decoder_config::parse(text, source);
    CHECK_NOTHROW(c.validate(source));
    const auto again = decoder_config::from_json(c.to_json(), "round trip");
    CHECK(again.intermediate_sizes == c.intermediate_sizes);
    CHECK(again.rope.type == c.rope.type);
    CHECK(again.rope_theta == c.rope_theta);
  } catch (const std::invalid_argument& e) {
    CHECK(std::string_view(e.what()).starts_with(source + ": "));
  }
}

}  // namespace

TEST_CASE("real configs: transformers 5 and 4 keys, Llama 3 RoPE, Qwen2, per-layer widths") {
  const auto llama3 = decoder_config::load(fixtures / "llama3");
  CHECK(llama3.rope.type == "llama3");
  CHECK(llama3.rope.factor == 8.0);
  CHECK(llama3.rope.original_max_position_embeddings == 32);
  CHECK(llama3.rope_theta == 500000.0);

  const auto qwen = decoder_config::load(fixtures / "qwen2/config.json");
  CHECK(qwen.model_type == "qwen2");
  CHECK(qwen.attention_bias);

  const fs::path seeds = source_dir / "fuzz/seeds/config";
  const auto smol = decoder_config::load(seeds / "smollm2_135m_from_gguf.json");
  CHECK(smol.num_layers == 30);
  CHECK(smol.num_kv_heads == 3);
  CHECK(smol.head_dim == 64);
  CHECK(smol.rope_theta == 100000.0);
  CHECK(smol.tie_word_embeddings);

  const auto llama32 = decoder_config::load(seeds / "llama32_1b_transformers4.json");  // rope_scaling + rope_theta
  CHECK(llama32.rope.type == "llama3");
  CHECK(llama32.rope.factor == 32.0);
  CHECK(llama32.rope.original_max_position_embeddings == 8192);
  CHECK(llama32.rope_theta == 500000.0);
  CHECK(llama32.vocab_size == 128256);

  const auto qwen25 = decoder_config::load(seeds / "qwen25_05b_transformers4.json");
  CHECK(qwen25.head_dim == 64);  // 896 / 14
  CHECK(qwen25.rope_theta == 1000000.0);

  const auto pruned = decoder_config::load(seeds / "pruned_per_layer.json");
  CHECK(pruned.intermediate_sizes == std::vector<std::int64_t>{1075, 1536, 960, 1201});
  CHECK(pruned.rope.type == "linear");
  CHECK_FALSE(pruned.uniform_intermediate());
  const auto again = decoder_config::from_json(pruned.to_json(), "round trip");
  CHECK(again.intermediate_sizes == pruned.intermediate_sizes);

  // MLP biases (FLAP's bias compensation) round-trip for Llama; a Qwen2 config cannot carry them.
  auto biased = decoder_config::from_json(nlohmann::json::parse(read_text(seeds / "llama32_1b_transformers4.json")), "b");
  CHECK_FALSE(biased.mlp_bias);
  biased.mlp_bias = true;
  CHECK(decoder_config::from_json(biased.to_json(), "again").mlp_bias);
  auto qwen_biased = decoder_config::from_json(biased.to_json(), "again");
  qwen_biased.model_type = "qwen2";
  CHECK_THROWS_WITH_AS(qwen_biased.to_json(), doctest::Contains("only Llama models carry mlp_bias"), std::invalid_argument);

  // Llama 3.1 lists several end ids: accepted, the single-id field left empty.
  auto j = nlohmann::json::parse(read_text(seeds / "llama32_1b_transformers4.json"));
  j["eos_token_id"] = {128001, 128008, 128009};
  CHECK_FALSE(decoder_config::from_json(j, "llama31.json").eos_token_id.has_value());
}

TEST_CASE("malformed configs are refused naming the file and the field") {
  const std::string base = R"("vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 96)";
  auto with = [&](const std::string& extra) { return "{" + base + (extra.empty() ? "" : ", " + extra) + "}"; };
  REQUIRE(outcome(with(""), "c.json") == "accepted");
  const struct {
    std::string text, expect;
  } cases[] = {
      {"", "c.json: not valid JSON"},
      {"[1, 2]", "c.json: invalid decoder config: the top level is not a JSON object"},
      {"{\"a\": 1e999}", "c.json: not valid JSON"},
      {with(R"("model_type": 2)"), "'model_type' is not a string"},
      {with(R"("model_type": "gpt2")"), "model_type 'gpt2' is not supported"},
      {R"({"vocab_size": 96})", "missing integer 'hidden_size'"},
      {with(R"("head_dim": 16.5)"), "'head_dim' is not an integer"},
      {with(R"("num_key_value_heads": "2")"), "'num_key_value_heads' is not an integer"},
      {with(R"("num_key_value_heads": 3)"), "must be a multiple of num_key_value_heads (3)"},
      {with(R"("max_position_embeddings": 18446744073709551615)"), "'max_position_embeddings' is out of range"},
      {with(R"("max_position_embeddings": 0)"), "max_position_embeddings must be positive"},
      {with(R"("head_dim": 15)"), "head_dim (15) must be even"},
      {with(R"("head_dim": 9223372036854775806)"), "head_dim (9223372036854775806) is beyond"},
      {with(R"("attention_bias": 1)"), "'attention_bias' is not true or false"},
      {with(R"("tie_word_embeddings": "yes")"), "'tie_word_embeddings' is not true or false"},
      {with(R"("mlp_bias": true, "model_type": "qwen2")"), "mlp_bias = true is supported for model_type llama only"},
      {with(R"("mlp_bias": "yes")"), "'mlp_bias' is not true or false"},
      {with(R"("rms_norm_eps": "1e-6")"), "'rms_norm_eps' is not a number"},
      {with(R"("rms_norm_eps": 0)"), "rms_norm_eps must be positive"},
      {with(R"("rope_scaling": "llama3")"), "'rope_scaling' is not an object"},
      {with(R"("rope_parameters": [1])"), "'rope_parameters' is not an object"},
      {with(R"("rope_scaling": {"rope_type": 3})"), "'rope_type' is not a string"},
      {with(R"("rope_scaling": {"type": "yarn", "factor": 4})"), "rope scaling type 'yarn' is not supported"},
      {with(R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 0})"),
       "0 < low_freq_factor < high_freq_factor"},
      {with(R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4})"),
       "0 < low_freq_factor < high_freq_factor"},
      {with(R"("rope_scaling": {"rope_type": "linear", "factor": -1})"), "rope scaling factor must be positive"},
      {with(R"("rope_scaling": {"rope_type": "llama3", "original_max_position_embeddings": 1e300})"),
       "'original_max_position_embeddings' is not a positive whole number"},
      {with(R"("rope_scaling": {"rope_type": "llama3", "original_max_position_embeddings": 8192.5})"),
       "'original_max_position_embeddings' is not a positive whole number"},
      {R"({"vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 9223372036854775807,
           "num_attention_heads": 4, "intermediate_size": 96})",
       "num_hidden_layers (9223372036854775807) must be within [1, 4096]"},
      {R"({"vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 3,
           "num_attention_heads": 4, "intermediate_size": [96, 96]})",
       "intermediate_size gives 2 layers, but num_hidden_layers is 3"},
      {R"({"vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": [96, "96"]})",
       "'intermediate_size[]' is not an integer"},
      {R"({"vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": {"a": 1}})",
       "'intermediate_size' is neither an integer nor a list of integers"},
      {R"({"vocab_size": 99999999, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 96})",
       "vocab_size (99999999) is beyond 16777216"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    const auto message = outcome(c.text, "c.json");
    CAPTURE(message);
    CHECK(message.starts_with("c.json: "));
    CHECK(message.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("a config.json file that is not valid is an error naming its path") {
  const fs::path dir = fs::temp_directory_path() / "ordo-test-config";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "vocab_size": 10)";
  const std::string expect = (dir / "config.json").string() + ": not valid JSON";
  CHECK_THROWS_WITH_AS((void)decoder_config::load(dir), doctest::Contains(expect.c_str()), std::invalid_argument);
  fs::remove_all(dir);
  CHECK_THROWS_WITH_AS((void)decoder_config::load(dir / "config.json"),
                       doctest::Contains("cannot open the model config"), std::runtime_error);
}

TEST_CASE("the config fuzz target's crash inputs and corpus replay") {
  std::size_t regressions = 0;
  for (const auto& e : fs::directory_iterator(fixtures / "config_regressions")) {
    CAPTURE(e.path().string());
    replay(read_text(e.path()));
    ++regressions;
  }
  CHECK(regressions >= 1);

  const auto packed = read_text(fixtures / "config_fuzz_corpus.bin");
  std::size_t pos = 0, inputs = 0, accepted = 0;
  while (pos + 4 <= packed.size()) {
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i)
      len |= static_cast<std::uint32_t>(static_cast<unsigned char>(packed[pos + i])) << (8 * i);
    pos += 4;
    REQUIRE(pos + len <= packed.size());
    const std::string_view input(packed.data() + pos, len);
    pos += len;
    ++inputs;
    replay(input);
    if (outcome(input, "x") == "accepted") ++accepted;
  }
  CHECK(pos == packed.size());
  MESSAGE(regressions << " regression inputs, " << inputs << " corpus inputs (" << accepted << " accepted)");
  CHECK(inputs >= 500);
  CHECK(accepted > 0);  // the corpus holds valid configs too
  CHECK(accepted < inputs);
}
