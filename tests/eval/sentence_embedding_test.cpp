// ordo::eval::SentenceEncoder: parity with sentence-transformers on a tiny random BERT
// (fixtures/tiny_bert, made by fixtures/make_minilm_fixture.py), padding invariance and errors
// on a random BERT built here and written with ordo's safetensors writer, and — in the test
// suite "minilm" — parity with sentence-transformers' all-MiniLM-L6-v2 when the package is
// installed (skipped otherwise).
#include "../torch_doctest.hpp"

#include <ordo/eval/sentence_embedding.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ordo/io/safetensors.hpp>

#include "../test_support.hpp"  // error_of, skip_unless_installed

namespace {

namespace fs = std::filesystem;
namespace st = ordo::io::safetensors;
using ordo::eval::BertConfig;
using ordo::eval::BertEncoder;
using ordo::eval::SentenceEncoder;

const fs::path fixtures = ORDO_EVAL_FIXTURES;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << p);
  return nlohmann::json::parse(in);
}

torch::Tensor rows_of(const nlohmann::json& j) {
  std::vector<torch::Tensor> rows;
  for (const auto& r : j) rows.push_back(torch::tensor(r.get<std::vector<float>>()));
  return torch::stack(rows);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

BertConfig tiny_config() {
  BertConfig c;
  c.vocab_size = 98;  // fixtures/tiny_vocab.txt
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.intermediate_size = 40;
  c.max_position_embeddings = 32;
  return c;
}

/// Writes a sentence-transformers directory holding a random BERT of `config` (plus, in the
/// checkpoint, BertModel's pooler and position_ids, which the encoder must ignore). `edit` may
/// change the tensors before they are written.
template <class Edit>
void write_random_model(const fs::path& dir, const BertConfig& config, Edit edit, bool normalize = true) {
  fs::create_directories(dir / "1_Pooling");
  torch::manual_seed(11);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, shape] : BertEncoder::parameter_shapes(config)) tensors[name] = torch::randn(shape) * 0.5;
  tensors["pooler.dense.weight"] = torch::randn({config.hidden_size, config.hidden_size});
  tensors["pooler.dense.bias"] = torch::randn({config.hidden_size});
  tensors["embeddings.position_ids"] = torch::arange(config.max_position_embeddings, torch::kInt64).unsqueeze(0);
  edit(tensors);
  std::vector<st::TensorEntry> entries;
  for (auto& [name, t] : tensors) {
    t = t.contiguous();
    const auto bytes = std::span(static_cast<const std::byte*>(t.data_ptr()), t.nbytes());
    entries.push_back({name, t.scalar_type() == torch::kInt64 ? st::Dtype::I64 : st::Dtype::F32,
                       std::vector<std::uint64_t>(t.sizes().begin(), t.sizes().end()), bytes});
  }
  st::write(dir / "model.safetensors", entries, {{"format", "pt"}});
  std::ofstream(dir / "config.json") << config.to_json().dump(2);
  fs::copy_file(fixtures / "tiny_bert" / "vocab.txt", dir / "vocab.txt", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "sentence_bert_config.json") << R"({"max_seq_length": 24, "do_lower_case": false})";
  std::ofstream(dir / "1_Pooling/config.json")
      << R"({"word_embedding_dimension": )" << config.hidden_size
      << R"(, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true})";
  nlohmann::json modules = {
      {{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
      {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}}};
  if (normalize)
    modules.push_back(
        {{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
  std::ofstream(dir / "modules.json") << modules.dump(2);
}

void write_random_model(const fs::path& dir, const BertConfig& config = tiny_config()) {
  write_random_model(dir, config, [](auto&) {});
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("ordo_eval_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("tiny random BERT: token ids and embeddings equal sentence-transformers'") {
  const auto j = read_json(fixtures / "tiny_bert_embeddings.json");
  const auto enc = SentenceEncoder::load(fixtures / "tiny_bert");
  CHECK(enc.normalizes());
  CHECK(enc.dimension() == 16);
  CHECK(enc.tokenizer().max_length() == 20);  // tokenizer_config.json's model_max_length
  const auto sentences = j["sentences"].get<std::vector<std::string>>();
  for (std::size_t i = 0; i < sentences.size(); ++i)
    CHECK(enc.tokenizer().encode(sentences[i]) == j["ids"][i].get<std::vector<std::int32_t>>());
  const auto want = rows_of(j["embeddings"]);
  const auto got = enc.embed(sentences);
  REQUIRE(got.sizes() == want.sizes());
  CHECK(max_abs(got, want) < 1e-5);
  // one at a time, and batches of two, give the same
  CHECK(max_abs(SentenceEncoder::load(fixtures / "tiny_bert", {.batch_size = 2}).embed(sentences), want) < 1e-5);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const auto one = enc.embed_one(sentences[i]);
    CHECK(max_abs(torch::tensor(one), want[static_cast<std::int64_t>(i)]) < 1e-5);
  }
}

TEST_CASE("padding does not change embeddings or the states of real tokens") {
  TempDir dir("encoder_padding");
  write_random_model(dir.path);
  const auto enc = SentenceEncoder::load(dir.path);
  const std::string short_text = "hello world";
  const std::string long_text = "the cafe is running, hello world! un aff able 2024 token izer";
  const auto alone = enc.embed(std::vector<std::string>{short_text});
  const auto batched = enc.embed(std::vector<std::string>{short_text, long_text, "", "hello"});
  CHECK(enc.tokenizer().encode(long_text).size() > enc.tokenizer().encode(short_text).size() + 8);
  CHECK(max_abs(alone[0], batched[0]) < 1e-6);
  CHECK(max_abs(torch::norm(batched, 2, 1), torch::ones({4})) < 1e-6);
  CHECK(max_abs(batched[1], enc.embed(std::vector<std::string>{long_text})[0]) < 1e-6);

  // States of the real tokens do not depend on what fills the padding.
  const auto ids = enc.tokenizer().encode(short_text);
  const auto n = static_cast<std::int64_t>(ids.size());
  const auto real = torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  const auto unpadded = enc.encoder().forward(real, torch::ones_like(real));
  for (std::int64_t pad : {0, 57}) {
    auto padded = torch::full({1, n + 7}, pad, torch::kInt64);
    padded.slice(1, 0, n).copy_(real);
    auto mask = torch::zeros_like(padded);
    mask.slice(1, 0, n).fill_(1);
    const auto states = enc.encoder().forward(padded, mask);
    CHECK(max_abs(states.slice(1, 0, n), unpadded) < 1e-5);
  }
  // ... but the mask matters: without it the padding is attended to.
  auto padded = torch::zeros({1, n + 7}, torch::kInt64);
  padded.slice(1, 0, n).copy_(real);
  CHECK(max_abs(enc.encoder().forward(padded, torch::ones_like(padded)).slice(1, 0, n), unpadded) > 1e-3);
}

TEST_CASE("coherence is the cosine of the embeddings") {
  TempDir dir("encoder_coherence");
  write_random_model(
      dir.path, tiny_config(), [](auto&) {}, /*normalize=*/false);
  const auto enc = SentenceEncoder::load(dir.path);
  CHECK_FALSE(enc.normalizes());
  const std::string a = "hello world, the cafe", b = "token izer is running";
  const auto e = enc.embed(std::vector<std::string>{a, b});
  CHECK(std::abs(torch::norm(e[0]).item<double>() - 1.0) > 1e-3);  // not normalized
  const double cos = torch::cosine_similarity(e[0].unsqueeze(0), e[1].unsqueeze(0)).item<double>();
  CHECK(enc.coherence(a, b) == doctest::Approx(cos).epsilon(1e-6));
  CHECK(enc.coherence(b, a) == doctest::Approx(enc.coherence(a, b)).epsilon(1e-12));
  CHECK(enc.coherence(a, a) == doctest::Approx(1.0).epsilon(1e-9));
  const auto many = enc.coherence_batch(std::vector<std::string>{a, b, a}, std::vector<std::string>{b, a, a});
  REQUIRE(many.size() == 3);
  CHECK(many[0] == doctest::Approx(cos).epsilon(1e-6));
  CHECK(many[1] == doctest::Approx(cos).epsilon(1e-6));
  CHECK(many[2] == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(error_of([&] { enc.coherence_batch(std::vector<std::string>{a}, std::vector<std::string>{}); }) ==
        "SentenceEncoder::coherence_batch: 1 prompts but 0 answers");
}

TEST_CASE("SentenceEncoder::load: errors name the directory or file") {
  TempDir dir("encoder_errors");
  const auto nowhere = dir.path / "nowhere";
  CHECK(error_of([&] { SentenceEncoder::load(nowhere); }) == nowhere.string() + ": no such directory");
  {
    const char* old = std::getenv("ORDO_MINILM_DIR");
    const std::string saved = old ? old : "";
    setenv("ORDO_MINILM_DIR", nowhere.c_str(), 1);
    CHECK(ordo::eval::default_minilm_path() == nowhere);
    CHECK(error_of([] { SentenceEncoder::load(); }) ==
          nowhere.string() +
              ": no such directory; install the sentence encoder with `./ordo minilm` in ordo's "
              "source tree, or set ORDO_MINILM_DIR");
    if (old)
      setenv("ORDO_MINILM_DIR", saved.c_str(), 1);
    else
      unsetenv("ORDO_MINILM_DIR");
  }
  const auto empty = dir.path / "empty";
  fs::create_directories(empty);
  CHECK(error_of([&] { SentenceEncoder::load(empty); }) ==
        empty.string() + ": not a sentence-transformers model directory (no config.json)");
  std::ofstream(empty / "config.json") << "{}";
  std::ofstream(empty / "pytorch_model.bin") << "pickle";
  CHECK(error_of([&] { SentenceEncoder::load(empty); }) == empty.string() +
                                                               ": no model.safetensors (pytorch_model.bin is a pickle, "
                                                               "which ordo does not read; convert it to safetensors)");

  auto model = [&](const std::string& name, auto edit) {
    const auto d = dir.path / name;
    write_random_model(d, tiny_config(), edit);
    return d;
  };
  const auto missing = model("missing", [](auto& t) { t.erase("encoder.layer.1.output.dense.bias"); });
  CHECK(error_of([&] { SentenceEncoder::load(missing); }) ==
        (missing / "model.safetensors").string() + ": tensor 'encoder.layer.1.output.dense.bias' is missing");
  const auto shape = model("shape", [](auto& t) { t["embeddings.LayerNorm.weight"] = torch::ones({7}); });
  CHECK(error_of([&] { SentenceEncoder::load(shape); }) ==
        (shape / "model.safetensors").string() +
            ": tensor 'embeddings.LayerNorm.weight' has shape [7] but the config implies [24]");
  const auto extra = model("extra", [](auto& t) { t["encoder.layer.2.output.dense.bias"] = torch::ones({24}); });
  CHECK(error_of([&] { SentenceEncoder::load(extra); }) ==
        (extra / "model.safetensors").string() +
            ": tensor 'encoder.layer.2.output.dense.bias' is not part of a BERT encoder with 2 layers");

  const auto roberta = model("roberta", [](auto&) {});
  auto config = tiny_config().to_json();
  config["model_type"] = "roberta";
  std::ofstream(roberta / "config.json") << config.dump();
  CHECK(error_of([&] { SentenceEncoder::load(roberta); }) ==
        (roberta / "config.json").string() + ": model_type \"roberta\" is not a BERT encoder");
  config = tiny_config().to_json();
  config["num_attention_heads"] = 5;
  std::ofstream(roberta / "config.json") << config.dump();
  CHECK(error_of([&] { SentenceEncoder::load(roberta); }) ==
        (roberta / "config.json").string() + ": hidden_size (24) is not a multiple of num_attention_heads (5)");

  const auto cls = model("cls", [](auto&) {});
  std::ofstream(cls / "1_Pooling/config.json")
      << R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})";
  CHECK(error_of([&] { SentenceEncoder::load(cls); }) ==
        (cls / "1_Pooling/config.json").string() + ": pooling_mode_cls_token is true; ordo supports mean pooling only");
  std::ofstream(cls / "1_Pooling/config.json") << R"({"embedding_dimension": 24, "pooling_mode": "max"})";
  CHECK(error_of([&] { SentenceEncoder::load(cls); }) ==
        (cls / "1_Pooling/config.json").string() + ": pooling_mode \"max\"; ordo supports mean pooling only");
  std::ofstream(cls / "1_Pooling/config.json") << R"({"embedding_dimension": 16, "pooling_mode": "mean"})";
  CHECK(error_of([&] { SentenceEncoder::load(cls); }) ==
        (cls / "1_Pooling/config.json").string() +
            ": embedding_dimension 16 differs from the encoder's hidden_size 24");
  std::ofstream(cls / "modules.json") << R"([{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}])";
  CHECK(error_of([&] { SentenceEncoder::load(cls); }) ==
        (cls / "modules.json").string() +
            ": module type \"sentence_transformers.models.Dense\" is not supported (Transformer, Pooling with mean "
            "tokens, Normalize)");
  CHECK(error_of([&] { SentenceEncoder::load(cls, {.batch_size = 0}); }) ==
        "SentenceEncoder: batch_size must be positive");
}

TEST_SUITE("minilm") {
  TEST_CASE("all-MiniLM-L6-v2: embeddings and cosines equal sentence-transformers'") {
    const fs::path dir = ordo::eval::default_minilm_path();
    skip_unless_installed(dir / "model.safetensors", "all-MiniLM-L6-v2", "./ordo minilm");
    const auto j = read_json(fixtures / "minilm_embeddings.json");
    const auto enc = SentenceEncoder::load();
    CHECK(enc.dimension() == 384);
    CHECK(enc.normalizes());
    CHECK(enc.tokenizer().max_length() == 256);
    CHECK(enc.encoder().config().num_hidden_layers == 6);
    // the package root works too
    CHECK(SentenceEncoder::load(dir.parent_path().parent_path()).source() == dir);

    const auto sentences = j["sentences"].get<std::vector<std::string>>();
    const auto want = rows_of(j["embeddings"]);
    const auto got = enc.embed(sentences);
    const double diff = max_abs(got, want);
    MESSAGE("max |ordo - sentence-transformers| = " << diff);
    CHECK(diff < 1e-5);
    for (const auto& p : j["pairs"]) {
      const auto a = p["a"].get<std::size_t>(), b = p["b"].get<std::size_t>();
      INFO("pair " << a << ", " << b);
      CHECK(enc.coherence(sentences[a], sentences[b]) == doctest::Approx(p["cosine"].get<double>()).epsilon(1e-5));
    }
    CHECK(enc.coherence("What is the capital of France?", "The capital of France is Paris.") >
          enc.coherence("What is the capital of France?", "I had pasta with tomato sauce for dinner.") + 0.5);

    // Speed: 20 short answers, batched (the metric's use in the study).
    std::vector<std::string> answers;
    for (int i = 0; i < 20; ++i)
      answers.push_back("Answer " + std::to_string(i) + ": the capital of France is Paris, a city on the Seine.");
    const auto start = std::chrono::steady_clock::now();
    const auto e = enc.embed(answers);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("embedding 20 short answers took " << seconds << " s on " << torch::get_num_threads() << " threads");
    CHECK(e.size(0) == 20);
  }
}
