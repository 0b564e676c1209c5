// The decoder against transformers on tiny random Llama 3, SmolLM2-style and Qwen2 models
// (fixtures made by make_decoder_fixtures.py), and its KV cache against a full forward.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros

#include <filesystem>
#include <fstream>
#include <string>

#include <ordo/model/decoder.hpp>

namespace fs = std::filesystem;
using ordo::model::CausalLM;

namespace {

const fs::path fixtures = ORDO_DECODER_FIXTURES;

struct expected {
  torch::Tensor ids, mask, logits;
};

expected read_expected(const fs::path& dir) {
  ordo::io::safetensors::Checkpoint ck(dir / "expected.safetensors");
  return {ordo::model::read_tensor(ck, "input_ids"), ordo::model::read_tensor(ck, "attention_mask"),
          ordo::model::read_tensor(ck, "logits")};
}

// Largest |difference| over the real (unpadded) positions.
double max_error_on_real_tokens(const torch::Tensor& got, const torch::Tensor& want,
                                const torch::Tensor& mask) {
  auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(want);
  return (got - want).abs().masked_select(real).max().item<double>();
}

}  // namespace

TEST_CASE("logits equal transformers' within 1e-4 in fp32") {
  for (const char* name : {"llama3", "llama_tied", "qwen2"}) {
    const std::string model(name);
    CAPTURE(model);
    auto lm = ordo::model::load_hf(fixtures / name);
    auto e = read_expected(fixtures / name);
    torch::NoGradGuard no_grad;
    auto logits = lm->forward(e.ids, e.mask);
    REQUIRE(logits.sizes() == e.logits.sizes());
    const double err = max_error_on_real_tokens(logits, e.logits, e.mask);
    MESSAGE(name << ": max |logit error| = " << err);
    CHECK(err < 1e-4);
    CHECK(e.logits.abs().max().item<double>() > 1.0);  // the comparison is not of near-zeros
  }
}

TEST_CASE("the config's features are those of the fixtures") {
  CHECK(ordo::model::load_hf(fixtures / "qwen2")->config().attention_bias);
  CHECK(ordo::model::load_hf(fixtures / "qwen2")->config().tie_word_embeddings);
  const auto llama3 = ordo::model::load_hf(fixtures / "llama3")->config();
  CHECK(llama3.rope.type == "llama3");
  CHECK(llama3.rope.factor == 8.0);
  CHECK_FALSE(llama3.tie_word_embeddings);
}

TEST_CASE("a KV cache gives the logits of the full forward") {
  for (const char* name : {"llama3", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    auto e = read_expected(fixtures / name);
    auto ids = e.ids.slice(0, 0, 1);  // the unpadded row
    torch::NoGradGuard no_grad;
    auto full = lm->forward(ids);
    ordo::model::kv_cache cache;
    std::vector<torch::Tensor> parts{lm->forward(ids.slice(1, 0, 6), {}, &cache)};
    for (int64_t t = 6; t < ids.size(1); ++t) parts.push_back(lm->forward(ids.slice(1, t, t + 1), {}, &cache));
    CHECK(cache.length() == ids.size(1));
    CHECK((torch::cat(parts, 1) - full).abs().max().item<double>() < 1e-4);
  }
}

TEST_CASE("bf16 weights give logits close to fp32") {
  auto lm32 = ordo::model::load_hf(fixtures / "llama_tied");
  auto lm16 = ordo::model::load_hf(fixtures / "llama_tied", torch::kBFloat16);
  auto e = read_expected(fixtures / "llama_tied");
  torch::NoGradGuard no_grad;
  auto a = lm32->forward(e.ids, e.mask), b = lm16->forward(e.ids, e.mask);
  CHECK((b.scalar_type() == torch::kFloat32));
  const double rel = max_error_on_real_tokens(a, b, e.mask) / a.abs().max().item<double>();
  CHECK(rel < 0.1);
}

TEST_CASE("a checkpoint that does not fit the config is an error naming the file and tensor") {
  const fs::path dir = fs::temp_directory_path() / "ordo-test-decoder-bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fixtures / "qwen2" / "model.safetensors", dir / "model.safetensors");
  // A llama config has no q/k/v biases: the checkpoint's biases are then unexpected.
  auto config = ordo::model::decoder_config::load(fixtures / "qwen2");
  auto j = config.to_json();
  j["model_type"] = "llama";
  j["attention_bias"] = false;
  std::ofstream(dir / "config.json") << j.dump();
  try {
    (void)ordo::model::load_hf(dir);
    FAIL("no error");
  } catch (const std::invalid_argument& err) {
    const std::string what = err.what();
    CHECK(what.find(dir.string()) != std::string::npos);
    CHECK(what.find("_proj.bias' of the checkpoint is not a parameter") != std::string::npos);
  }
  // A wider FFN than the checkpoint holds: a shape mismatch.
  j = config.to_json();
  j["intermediate_size"] = 128;
  std::ofstream(dir / "config.json") << j.dump();
  CHECK_THROWS_WITH_AS((void)ordo::model::load_hf(dir),
                       doctest::Contains("but the config implies"), std::invalid_argument);
  // A config that is not a decoder.
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "vocab_size": 10})";
  CHECK_THROWS_WITH_AS((void)ordo::model::load_hf(dir), doctest::Contains("missing integer 'hidden_size'"),
                       std::invalid_argument);
  fs::remove_all(dir);
}
