// Checkpoints: save_hf / load_hf round trips, and NF4 directories in bitsandbytes' serialization
// against a fixture saved by transformers + bitsandbytes (make_nf4_checkpoint_fixtures.py).
//
// Environment (by hand, not in CI):
//   ORDO_CHECKPOINT_REGENERATE=1  rewrite fixtures/ordo_nf4 and fixtures/ordo_nf4_logits.safetensors
//                                 (ordo's save of the quantized fixture model and ordo's logits),
//                                 which the fixture script then loads with transformers.
//   ORDO_CHECKPOINT_OUT=DIR       also save the dense decoder fixtures to DIR/<name>, and NF4
//                                 models (nested or not, blocksizes 32/64/128, q/k/v bias) to
//                                 DIR/nf4_<name>_b<blocksize>[_dq] with ordo's logits beside
//                                 them, for `make_nf4_checkpoint_fixtures.py --check DIR/...`.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // skip_unless_installed

#include <cstdlib>
#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>

#include <ordo/model/checkpoint.hpp>

namespace fs = std::filesystem;
using ordo::io::safetensors::Dtype;

namespace {

const fs::path fixtures = ORDO_MODEL_FIXTURES;  // the decoder fixtures and the NF4 checkpoints
const fs::path bnb_dir = fixtures / "bnb_nf4";

/// A fresh, empty directory under the system's temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "ordo-ckpt-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ordo::DenseModel dense(const std::string& name, torch::ScalarType dtype = torch::kFloat32) {
  return ordo::DenseModel(ordo::model::load_hf(fixtures / name, dtype), nullptr, std::nullopt, fixtures / name);
}

ordo::QuantizedModel quantized(const ordo::DenseModel& m, std::size_t blocksize = 64, bool nested = true) {
  auto lm = ordo::model::clone(m.lm());
  ordo::model::quantize_linears(lm, blocksize, nested);
  lm->eval();
  ordo::QuantizedModel q(lm, nullptr, std::nullopt, m.source());
  q.blocksize = blocksize;
  q.double_quantization = nested;
  return q;
}

struct Inputs {
  torch::Tensor ids, mask, logits;
};
Inputs expected(const fs::path& file) {
  ordo::io::safetensors::Checkpoint ck(file);
  return {ordo::model::read_tensor(ck, "input_ids"), ordo::model::read_tensor(ck, "attention_mask"),
          ordo::model::read_tensor(ck, "logits")};
}

/// Largest |a - b| over the real (unpadded) positions: a padded query's logits are whatever
/// each implementation makes of a fully masked row, and are not compared.
double max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).abs().masked_select(real).max().item<double>();
}

/// Writes input_ids, attention_mask and ordo's logits for them (the fixture script's format).
void write_logits(const fs::path& file, const Inputs& in, const torch::Tensor& logits_in) {
  auto logits = logits_in.contiguous();
  auto shape = [](const torch::Tensor& t) { return std::vector<std::uint64_t>(t.sizes().begin(), t.sizes().end()); };
  std::vector<ordo::io::safetensors::TensorEntry> e = {
      {"input_ids", Dtype::I64, shape(in.ids),
       std::as_bytes(std::span(in.ids.data_ptr<std::int64_t>(), in.ids.numel()))},
      {"attention_mask", Dtype::I64, shape(in.mask),
       std::as_bytes(std::span(in.mask.data_ptr<std::int64_t>(), in.mask.numel()))},
      {"logits", Dtype::F32, shape(logits), std::as_bytes(std::span(logits.data_ptr<float>(), logits.numel()))}};
  ordo::io::safetensors::write(file, e, {{"format", "pt"}});
}

/// Every tensor of a safetensors file, as owned bytes, to rewrite it with changes.
struct Tensors {
  struct T {
    std::string name;
    Dtype dtype;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<T> all;
  explicit Tensors(const fs::path& file) {
    ordo::io::safetensors::File f(file);
    for (const auto& t : f.tensors()) {
      auto d = f.data(t);
      all.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(d.begin(), d.end())});
    }
  }
  T& at(const std::string& name) {
    for (auto& t : all)
      if (t.name == name) return t;
    FAIL("no tensor " << name);
    throw 0;
  }
  void erase(const std::string& name) {
    std::erase_if(all, [&](const T& t) { return t.name == name; });
  }
  void write(const fs::path& file) const {
    std::vector<ordo::io::safetensors::TensorEntry> e;
    for (const auto& t : all) e.push_back({t.name, t.dtype, t.shape, t.bytes});
    ordo::io::safetensors::write(file, e, {{"format", "pt"}});
  }
};

/// Copies the bitsandbytes fixture into `dir` and applies `change` to its tensors.
void corrupt_copy(const fs::path& dir, const std::function<void(Tensors&)>& change) {
  fs::copy_file(bnb_dir / "config.json", dir / "config.json");
  Tensors t(bnb_dir / "model.safetensors");
  change(t);
  t.write(dir / "model.safetensors");
}

std::string load_error(const fs::path& dir) {
  try {
    ordo::model::load_nf4(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

void set_quant_state(Tensors& t, const std::string& name, const std::string& json) {
  auto& s = t.at(name + ".weight.quant_state.bitsandbytes__nf4");
  s.bytes.assign(reinterpret_cast<const std::byte*>(json.data()),
                 reinterpret_cast<const std::byte*>(json.data()) + json.size());
  s.shape = {json.size()};
}

std::string quant_state_text(const fs::path& file, const std::string& name) {
  ordo::io::safetensors::File f(file);
  auto d = f.data(name + ".weight.quant_state.bitsandbytes__nf4");
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

TEST_CASE("Python's float repr, as json.dumps writes quant_state's nested_offset") {
  using ordo::io::python_float_repr;
  CHECK(python_float_repr(static_cast<double>(0.5240446925163269f)) == "0.5240446925163269");
  CHECK(python_float_repr(0.1) == "0.1");
  CHECK(python_float_repr(1.0) == "1.0");
  CHECK(python_float_repr(-2.5) == "-2.5");
  CHECK(python_float_repr(123456.0) == "123456.0");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(0.00001) == "1e-05");
  CHECK(python_float_repr(1.5e-7) == "1.5e-07");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(1234567890123456.0) == "1234567890123456.0");
  CHECK(python_float_repr(0.0) == "0.0");
  CHECK(python_float_repr(static_cast<double>(1e-38f)) == "9.999999350456404e-39");
}

TEST_CASE("save_hf then load_hf gives identical logits (tied, untied, q/k/v bias, bf16)") {
  for (const char* name : {"llama_tied", "llama3", "qwen2"}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      const std::string model_name = name;
      CAPTURE(model_name);
      CAPTURE(dtype);
      TempDir tmp;
      auto m = dense(name, dtype);
      const auto saved = ordo::model::save_hf(m, tmp.path / "out");
      auto back = ordo::DenseModel(ordo::model::load_hf(saved.dir, dtype), nullptr, std::nullopt, saved.dir);
      auto in = expected(fixtures / name / "expected.safetensors");
      CHECK(torch::equal(m.logits(in.ids, in.mask), back.logits(in.ids, in.mask)));
      // The same tensor names transformers saved (a tied lm_head is not stored).
      ordo::io::safetensors::Checkpoint ours(saved.dir), theirs(fixtures / name);
      CHECK(ours.names() == theirs.names());
      for (const auto& n : ours.names())
        CHECK(ours.at(n).info->dtype == (dtype == torch::kFloat32 ? Dtype::F32 : Dtype::BF16));
      auto config = nlohmann::json::parse(read_file(saved.dir / "config.json"));
      CHECK(config["dtype"] == (dtype == torch::kFloat32 ? "float32" : "bfloat16"));
      CHECK(config["torch_dtype"] == config["dtype"]);
      CHECK_FALSE(config.contains("quantization_config"));
      CHECK(config["tie_word_embeddings"] == (std::string(name) != "llama3"));
      // No tokenizer in the source directory: said so.
      REQUIRE(saved.not_written.size() == 1);
      CHECK(saved.not_written[0].find("tokenizer.json") == 0);
      // Exact size accounting.
      std::uint64_t on_disk = 0;
      for (const auto& e : fs::directory_iterator(saved.dir)) on_disk += e.file_size();
      CHECK(saved.size.file_bytes == on_disk);
      CHECK(saved.size.tensor_bytes == m.memory_bytes());
      CHECK(saved.memory_bytes == m.memory_bytes());
      if (const char* out = std::getenv("ORDO_CHECKPOINT_OUT"); out && dtype == torch::kFloat32)
        ordo::model::save_hf(m, fs::path(out) / name);
    }
  }
}

TEST_CASE("save_hf copies the source directory's tokenizer files and is atomic") {
  TempDir tmp;
  const fs::path src = tmp.path / "src";
  fs::create_directories(src);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixtures / "llama_tied" / f, src / f);
  const std::string tok = "{\"model\": {\"type\": \"BPE\"}}", tok_config = "{\"eos_token\": \"</s>\"}";
  std::ofstream(src / "tokenizer.json") << tok;
  std::ofstream(src / "tokenizer_config.json") << tok_config;
  std::ofstream(src / "chat_template.jinja") << "{{ messages }}";
  ordo::DenseModel m(ordo::model::load_hf(src), nullptr, std::nullopt, src);
  const fs::path out = tmp.path / "out";
  auto saved = ordo::model::save_hf(m, out);
  CHECK(saved.not_written.empty());
  CHECK(read_file(out / "tokenizer.json") == tok);
  CHECK(read_file(out / "tokenizer_config.json") == tok_config);
  CHECK(read_file(out / "chat_template.jinja") == "{{ messages }}");

  // Saving over a checkpoint directory replaces it whole (a stale file goes away).
  std::ofstream(out / "model.safetensors.index.json") << "{}";
  ordo::model::save_hf(dense("llama_tied"), out);
  CHECK_FALSE(fs::exists(out / "model.safetensors.index.json"));
  CHECK_FALSE(fs::exists(out / "tokenizer.json"));  // the second model's source has none
  // A directory holding anything else is refused and left as it was.
  std::ofstream(out / "notes.txt") << "mine";
  CHECK_THROWS_WITH_AS(ordo::model::save_hf(m, out), doctest::Contains("notes.txt"), std::invalid_argument);
  CHECK(read_file(out / "notes.txt") == "mine");
  CHECK(fs::exists(out / "model.safetensors"));
  // No temporary directories are left behind.
  for (const auto& e : fs::directory_iterator(tmp.path))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("a checkpoint saved by transformers + bitsandbytes loads and gives transformers' logits") {
  auto q = ordo::model::load_nf4(bnb_dir);
  CHECK(q.blocksize == 64);
  CHECK(q.double_quantization);
  int n = 0;
  ordo::model::for_each_decoder_linear(q.lm(), [&](const std::string&, ordo::model::Linear& l) {
    n += l->quantized();
    CHECK(l->nf4->q.nested);
  });
  CHECK(n == 14);
  auto in = expected(fixtures / "bnb_nf4_expected.safetensors");
  const double d = max_diff(q.logits(in.ids, in.mask), in.logits, in.mask);
  MESSAGE("max |ordo - transformers/bitsandbytes| logit: " << d);
  CHECK(d < 1e-4);  // fp32, the same dequantized weights; only summation order differs
  CHECK(in.logits.abs().max().item<double>() > 1.0);  // not a comparison of near-zeros
  // Dequantizing gives bitsandbytes' dequantize_4bit output bit for bit.
  ordo::io::safetensors::Checkpoint ck(fixtures / "bnb_nf4_expected.safetensors");
  auto theirs = ordo::model::read_tensor(ck, "dequantized_down_proj_1");
  auto ours = q.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(1)->mlp->down_proj->nf4->dequantize();
  REQUIRE(ours.sizes() == theirs.sizes());
  CHECK(std::memcmp(ours.data_ptr<float>(), theirs.data_ptr<float>(), static_cast<std::size_t>(ours.nbytes())) == 0);
}

TEST_CASE("ordo's save_nf4 of the same model has bitsandbytes' tensors and bytes") {
  // Quantizing the same fp32 weights, ordo writes the same tensors (names, dtypes, shapes) and
  // the same bytes, with two documented exceptions (docs/checkpoints.md):
  //  - nested_offset = mean(absmax): ordo sums in a fixed order (docs/nf4.md), torch's fp32
  //    mean in another, so they may differ in the last bits (<= 2 ulp). Where they do, the
  //    8-bit absmax codes and nested_absmax are those ordo's rule gives with ordo's offset;
  //    given bitsandbytes' offset ordo's rule gives bitsandbytes' bytes.
  //  - bitsandbytes' CPU quantize_blockwise (a 65536-step lookup table over [-1, 1]) may pick
  //    the neighbour of the nearest 8-bit code for a value within one table step of their
  //    midpoint; ordo picks the nearest (the CUDA kernel's rule).
  namespace nf4 = ordo::quant::nf4;
  TempDir tmp;
  auto base = dense("llama_tied");
  auto q = quantized(base);
  auto saved = ordo::model::save_nf4(q, tmp.path / "nf4");
  ordo::io::safetensors::File ours(saved.dir / "model.safetensors"), theirs(bnb_dir / "model.safetensors");
  REQUIRE(ours.tensors().size() == theirs.tensors().size());
  auto same_bytes = [&](const std::string& name) {
    const auto a = ours.data(name), b = theirs.data(name);
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
  };
  std::set<std::string> stats;  // tensors the two exceptions may touch
  int offsets_differ = 0, lut_codes = 0;
  auto params = base.lm()->named_parameters();
  ordo::model::for_each_decoder_linear(q.lm(), [&](const std::string& name, ordo::model::Linear& l) {
    CAPTURE(name);
    const std::string w = name + ".weight";
    for (const char* s : {".absmax", ".nested_absmax", ".quant_state.bitsandbytes__nf4"}) stats.insert(w + s);
    auto js_ours = nlohmann::json::parse(quant_state_text(saved.dir / "model.safetensors", name));
    auto js_theirs = nlohmann::json::parse(quant_state_text(bnb_dir / "model.safetensors", name));
    const float off_ours = js_ours["nested_offset"].get<double>(),
                off_theirs = js_theirs["nested_offset"].get<double>();
    js_ours.erase("nested_offset");
    js_theirs.erase("nested_offset");
    CHECK(js_ours == js_theirs);
    std::int32_t ia, ib;
    std::memcpy(&ia, &off_ours, 4);
    std::memcpy(&ib, &off_theirs, 4);
    CHECK(std::abs(ia - ib) <= 2);
    CHECK(l->nf4->q.offset == off_ours);
    offsets_differ += ia != ib;
    // ordo's rule with bitsandbytes' offset.
    auto dense_w = params[w].contiguous();
    const auto n = static_cast<std::size_t>(dense_w.numel());
    std::vector<std::uint8_t> packed(nf4::packed_bytes(n));
    std::vector<float> absmax(nf4::block_count(n, 64));
    nf4::quantize_blocks(dense_w.data_ptr<float>(), n, packed.data(), absmax.data(), nf4::Options{});
    std::vector<std::uint8_t> codes(absmax.size());
    std::vector<float> absmax2(nf4::absmax2_count(absmax.size()));
    nf4::quantize_absmax(absmax.data(), absmax.size(), off_theirs, codes.data(), absmax2.data());
    const auto their_codes = theirs.data(w + ".absmax");
    const auto their_a2 = theirs.data(w + ".nested_absmax");
    REQUIRE(their_codes.size() == codes.size());
    REQUIRE(their_a2.size() == absmax2.size() * 4);
    CHECK(std::memcmp(their_a2.data(), absmax2.data(), their_a2.size()) == 0);
    for (std::size_t i = 0; i < codes.size(); ++i) {
      const auto theirs_code = static_cast<std::uint8_t>(their_codes[i]);
      if (theirs_code == codes[i]) continue;
      CAPTURE(i);
      ++lut_codes;
      // A neighbour, and the value lies within one lookup-table step of the two codes' midpoint.
      CHECK(std::abs(int(theirs_code) - int(codes[i])) == 1);
      const float x = (absmax[i] - off_theirs) * (1.0f / absmax2[i / 256]);
      const float mid = 0.5f * (nf4::dynamic_map[codes[i]] + nf4::dynamic_map[theirs_code]);
      CHECK(std::abs(x - mid) <= 2.0f / 65536);
      CHECK(std::abs(x - nf4::dynamic_map[codes[i]]) <= std::abs(x - nf4::dynamic_map[theirs_code]));
    }
    // With the same offset, ordo's saved statistics are these.
    if (ia == ib) {
      CHECK(std::memcmp(ours.data(w + ".nested_absmax").data(), absmax2.data(), their_a2.size()) == 0);
      CHECK(std::memcmp(ours.data(w + ".absmax").data(), codes.data(), codes.size()) == 0);
    }
  });
  MESSAGE(offsets_differ << " of 14 offsets differ from torch's fp32 mean (by <= 2 ulp); " << lut_codes
                         << " absmax codes where bitsandbytes' CPU lookup table picks the neighbour");
  int differing = 0;
  for (const auto& t : theirs.tensors()) {
    CAPTURE(t.name);
    const auto* o = ours.find(t.name);
    REQUIRE(o != nullptr);
    CHECK(o->dtype == t.dtype);
    if (!t.name.ends_with("quant_state.bitsandbytes__nf4")) CHECK(o->shape == t.shape);
    const bool same = same_bytes(t.name);
    differing += !same;
    if (!stats.contains(t.name)) CHECK(same);  // packed weights, maps, dense tensors
  }
  MESSAGE(differing << " of " << theirs.tensors().size() << " tensors differ from bitsandbytes' file");
  // config.json: transformers' quantization_config, and otherwise the source's keys.
  auto ours_cfg = nlohmann::json::parse(read_file(saved.dir / "config.json"));
  auto theirs_cfg = nlohmann::json::parse(read_file(bnb_dir / "config.json"));
  CHECK(ours_cfg["quantization_config"] == theirs_cfg["quantization_config"]);
  CHECK(ours_cfg["torch_dtype"] == "float32");  // for transformers 4.x; 5 writes "dtype" only
  ours_cfg.erase("torch_dtype");
  CHECK(ours_cfg == theirs_cfg);
  // Size accounting: the data section is what nf4_tensor_bytes predicts and, but for the
  // length of the offsets' decimal text, as large as bitsandbytes'; memory holds the same less
  // the maps and JSON, plus the fp32 offsets.
  CHECK(saved.size.tensor_bytes == ordo::model::nf4_tensor_bytes(q));
  std::uint64_t json_ours = 0, json_theirs = 0, maps_and_json = 0;
  ordo::model::for_each_decoder_linear(q.lm(), [&](const std::string& name, ordo::model::Linear&) {
    json_ours += quant_state_text(saved.dir / "model.safetensors", name).size();
    json_theirs += quant_state_text(bnb_dir / "model.safetensors", name).size();
    maps_and_json += 16 * 4 + 256 * 4 + quant_state_text(saved.dir / "model.safetensors", name).size() - 4;
  });
  CHECK(saved.size.tensor_bytes - json_ours == ordo::io::checkpoint_size(bnb_dir).tensor_bytes - json_theirs);
  CHECK(saved.memory_bytes == saved.size.tensor_bytes - maps_and_json);
  CHECK(saved.size.file_bytes ==
        fs::file_size(saved.dir / "model.safetensors") + fs::file_size(saved.dir / "config.json"));
  MESSAGE("NF4 checkpoint: " << saved.size.file_bytes << " bytes on disk (tensors " << saved.size.tensor_bytes << "), "
                             << saved.memory_bytes << " in memory; dense: " << base.memory_bytes());
}

TEST_CASE("save_nf4 / load_nf4 round trip is exact (nested and not, blocksizes, bias, untied)") {
  struct Case {
    const char* name;
    std::size_t blocksize;
    bool nested;
  };
  for (const Case c : {Case{"llama_tied", 64, true}, Case{"llama3", 32, false}, Case{"qwen2", 128, true}}) {
    const std::string model_name = c.name;
    CAPTURE(model_name);
    TempDir tmp;
    auto q = quantized(dense(c.name), c.blocksize, c.nested);
    auto saved = ordo::model::save_nf4(q, tmp.path / "nf4");
    auto back = ordo::model::load_nf4(saved.dir);
    CHECK(back.blocksize == c.blocksize);
    CHECK(back.double_quantization == c.nested);
    std::vector<const ordo::model::nf4_weight*> a, b;
    ordo::model::for_each_decoder_linear(
        q.lm(), [&](const std::string&, ordo::model::Linear& l) { a.push_back(l->nf4.get()); });
    ordo::model::for_each_decoder_linear(
        back.lm(), [&](const std::string&, ordo::model::Linear& l) { b.push_back(l->nf4.get()); });
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      REQUIRE(b[i] != nullptr);
      CHECK(a[i]->q.packed == b[i]->q.packed);
      CHECK(a[i]->q.absmax == b[i]->q.absmax);
      CHECK(a[i]->q.absmax_codes == b[i]->q.absmax_codes);
      CHECK(a[i]->q.absmax2 == b[i]->q.absmax2);
      CHECK(std::memcmp(&a[i]->q.offset, &b[i]->q.offset, 4) == 0);
      CHECK(a[i]->scales == b[i]->scales);
    }
    auto in = expected(fixtures / c.name / "expected.safetensors");
    CHECK(torch::equal(q.logits(in.ids, in.mask), back.logits(in.ids, in.mask)));
    CHECK(back.memory_bytes() == q.memory_bytes());
    if (const char* out = std::getenv("ORDO_CHECKPOINT_OUT")) {  // for the fixture script's --check
      const std::string stem = "nf4_" + model_name + "_b" + std::to_string(c.blocksize) + (c.nested ? "_dq" : "");
      ordo::model::save_nf4(q, fs::path(out) / stem);
      write_logits(fs::path(out) / (stem + "_logits.safetensors"), in, q.logits(in.ids, in.mask));
    }
    // Saving what was loaded gives the same file again.
    auto again = ordo::model::save_nf4(back, tmp.path / "again");
    CHECK(read_file(again.dir / "model.safetensors") == read_file(saved.dir / "model.safetensors"));
    CHECK(read_file(again.dir / "config.json") == read_file(saved.dir / "config.json"));
  }
  // And the bitsandbytes file, loaded and saved by ordo, gives back its tensors.
  TempDir tmp;
  auto again = ordo::model::save_nf4(ordo::model::load_nf4(bnb_dir), tmp.path / "nf4");
  ordo::io::safetensors::File ours(again.dir / "model.safetensors"), theirs(bnb_dir / "model.safetensors");
  for (const auto& t : theirs.tensors()) {
    CAPTURE(t.name);
    REQUIRE(ours.find(t.name));
    const auto x = ours.data(t.name), y = theirs.data(t);
    CHECK((x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size()) == 0));
  }
}

TEST_CASE("the committed checkpoint ordo saved is what save_nf4 writes today") {
  auto q = quantized(dense("llama_tied"));
  auto in = expected(fixtures / "bnb_nf4_expected.safetensors");
  const fs::path committed = fixtures / "ordo_nf4";
  if (std::getenv("ORDO_CHECKPOINT_REGENERATE")) {
    ordo::model::save_nf4(q, committed);
    write_logits(fixtures / "ordo_nf4_logits.safetensors", in, q.logits(in.ids, in.mask));
  }
  TempDir tmp;
  auto saved = ordo::model::save_nf4(q, tmp.path / "nf4");
  CHECK(read_file(saved.dir / "model.safetensors") == read_file(committed / "model.safetensors"));
  CHECK(read_file(saved.dir / "config.json") == read_file(committed / "config.json"));
  auto ours = expected(fixtures / "ordo_nf4_logits.safetensors");
  CHECK(max_diff(ordo::model::load_nf4(committed).logits(in.ids, in.mask), ours.logits, in.mask) < 1e-5);
}

TEST_CASE("a corrupt or mismatched NF4 checkpoint is an error naming the file and the tensor") {
  const std::string w = "model.layers.1.self_attn.k_proj";
  struct Case {
    const char* what;
    std::function<void(Tensors&)> change;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"missing absmax", [&](Tensors& t) { t.erase(w + ".weight.absmax"); }, {w + ".weight.absmax", "missing"}},
      {"absmax of another dtype",
       [&](Tensors& t) {
         auto& a = t.at(w + ".weight.absmax");
         a.dtype = Dtype::F32;
         a.shape = {a.bytes.size() / 4};
       },
       {w + ".weight.absmax", "[8] x F32", "U8"}},
      {"packed weights too short",
       [&](Tensors& t) {
         auto& p = t.at(w + ".weight");
         p.bytes.resize(p.bytes.size() - 32);
         p.shape = {p.bytes.size(), 1};
       },
       {w + ".weight'", "[992, 1] x U8", "[1024, 1]"}},
      {"another quant_map",
       [&](Tensors& t) { t.at(w + ".weight.quant_map").bytes[0] = std::byte{1}; },
       {w + ".weight.quant_map", "not the NF4 codebook"}},
      {"another nested map",
       [&](Tensors& t) { t.at(w + ".weight.nested_quant_map").bytes[5] ^= std::byte{1}; },
       {w + ".weight.nested_quant_map", "dynamic map"}},
      {"shape of another layer",
       [&](Tensors& t) {
         set_quant_state(
             t, w,
             R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5})");
       },
       {w + ".weight.quant_state.bitsandbytes__nf4", "[64,64]", "[32,64]"}},
      {"bad blocksize",
       [&](Tensors& t) {
         set_quant_state(t, w, R"({"quant_type": "nf4", "blocksize": 48, "dtype": "float32", "shape": [32, 64]})");
       },
       {w + ".weight.quant_state.bitsandbytes__nf4", "blocksize 48"}},
      {"fp4",
       [&](Tensors& t) {
         set_quant_state(t, w, R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [32, 64]})");
       },
       {w + ".weight.quant_state.bitsandbytes__nf4", "quant_type is \"fp4\""}},
      {"quant_state not JSON",
       [&](Tensors& t) { set_quant_state(t, w, "{\"quant_type\": "); },
       {w + ".weight.quant_state.bitsandbytes__nf4", "not valid JSON"}},
      {"a tensor no module has",
       [&](Tensors& t) {
         t.all.push_back({"model.layers.1.mlp.extra.weight", Dtype::F32, {1}, std::vector<std::byte>(4)});
       },
       {"model.layers.1.mlp.extra.weight", "not part of"}},
      {"a NaN in nested_absmax",
       [&](Tensors& t) {
         const float nan = std::numeric_limits<float>::quiet_NaN();
         std::memcpy(t.at(w + ".weight.nested_absmax").bytes.data(), &nan, 4);
       },
       {w + ".weight.nested_absmax", "non-finite value (NaN or Inf) at element 0", "corrupt"}},
      {"an Inf in a dense tensor",
       [&](Tensors& t) {
         const float inf = std::numeric_limits<float>::infinity();
         std::memcpy(t.at("model.norm.weight").bytes.data() + 4 * 3, &inf, 4);
       },
       {"model.norm.weight", "non-finite value (NaN or Inf) at element 3"}},
      {"a dense tensor missing", [&](Tensors& t) { t.erase("model.norm.weight"); }, {"model.norm.weight", "missing"}},
      {"a dense tensor of the wrong shape",
       [&](Tensors& t) {
         auto& n = t.at("model.norm.weight");
         n.bytes.resize(n.bytes.size() - 4);
         n.shape = {63};
       },
       {"model.norm.weight", "[63] x F32", "[64]"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    TempDir tmp;
    corrupt_copy(tmp.path, c.change);
    const std::string msg = load_error(tmp.path);
    CAPTURE(msg);
    CHECK(msg.find((tmp.path / "model.safetensors").string()) != std::string::npos);
    for (const auto& e : c.expect) CHECK(msg.find(e) != std::string::npos);
  }
  SUBCASE("a truncated file") {
    TempDir tmp;
    fs::copy_file(bnb_dir / "config.json", tmp.path / "config.json");
    const std::string bytes = read_file(bnb_dir / "model.safetensors");
    std::ofstream(tmp.path / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
    const std::string msg = load_error(tmp.path);
    CHECK(msg.find((tmp.path / "model.safetensors").string()) != std::string::npos);
    CHECK(msg.find("data section") != std::string::npos);
  }
  SUBCASE("config.json without quantization_config, or not nf4") {
    TempDir tmp;
    fs::copy_file(bnb_dir / "model.safetensors", tmp.path / "model.safetensors");
    auto cfg = nlohmann::json::parse(read_file(bnb_dir / "config.json"));
    cfg["quantization_config"]["bnb_4bit_quant_type"] = "fp4";
    std::ofstream(tmp.path / "config.json") << cfg.dump();
    std::string msg = load_error(tmp.path);
    CHECK(msg.find((tmp.path / "config.json").string()) != std::string::npos);
    CHECK(msg.find("bnb_4bit_quant_type is \"fp4\"") != std::string::npos);
    cfg["quantization_config"]["bnb_4bit_quant_type"] = 4;  // a value of another type
    std::ofstream(tmp.path / "config.json") << cfg.dump();
    CHECK(load_error(tmp.path).find("bnb_4bit_quant_type is 4;") != std::string::npos);
    cfg["quantization_config"]["bnb_4bit_quant_type"] = "nf4";
    cfg["quantization_config"]["bnb_4bit_quant_storage"] = "float16";
    std::ofstream(tmp.path / "config.json") << cfg.dump();
    CHECK(load_error(tmp.path).find("bnb_4bit_quant_storage is \"float16\"") != std::string::npos);
    cfg["quantization_config"] = "nf4";  // a string where an object belongs
    std::ofstream(tmp.path / "config.json") << cfg.dump();
    CHECK(load_error(tmp.path).find("key 'quantization_config': is \"nf4\", not an object") != std::string::npos);
    cfg.erase("quantization_config");
    std::ofstream(tmp.path / "config.json") << cfg.dump();
    msg = load_error(tmp.path);
    CHECK(msg.find("quantization_config") != std::string::npos);
    CHECK(msg.find("missing") != std::string::npos);
    // Read as a dense checkpoint, the NF4 tensors are named as the reason, not a shape mismatch.
    msg = error_of([&] { (void)ordo::model::load_hf(tmp.path); });
    CHECK(msg.find("the weights are NF4") != std::string::npos);
    CHECK(msg.find("config.json has no quantization_config") != std::string::npos);
  }
}

// The suite "model" (ctest model.checkpoint.model) needs the default model and skips without it.
TEST_CASE("a model from a GGUF file: its tokenizer is written as tokenizer.json, with its config and chat template" *
          doctest::test_suite("model")) {
  // The metadata of the embedded default model (SmolLM2 GGUF); saving the model itself is not
  // needed to test what save_hf writes beside the weights.
  const fs::path gguf = ordo::model::default_model_path();
  skip_unless_installed(gguf, "the default model", "./ordo model");
  ordo::io::gguf::File file(gguf);
  const auto meta = file.tokenizer();
  const auto tok = ordo::Tokenizer::from_gguf_metadata(meta, gguf.string());
  TempDir tmp;
  const auto missing = ordo::model::detail::save::write_tokenizer(gguf, &tok, 8192, tmp.path);
  CHECK(missing.empty());
  const std::string expected_template(meta.chat_template);
  REQUIRE_FALSE(expected_template.empty());
  CHECK(read_file(tmp.path / "chat_template.jinja") == expected_template);
  CHECK(ordo::read_chat_template(tmp.path) == expected_template);  // ordo reads it back
  // tokenizer.json and tokenizer_config.json give the GGUF's tokenizer back: the same ids for
  // text with special tokens, code, whitespace runs and non-Latin scripts (the fixture strings
  // are compared with Hugging Face in tests/text), the same special ids.
  const auto back = ordo::Tokenizer::from_directory(tmp.path);
  CHECK(back.bos_id() == tok.bos_id());
  CHECK(back.eos_id() == tok.eos_id());
  CHECK(back.pad_id() == tok.pad_id());
  CHECK(back.vocab_size() == tok.vocab_size());
  const std::string text = "<|im_start|>user\nWhat is 1234+5678?  Ça va? 你好!\n\tdef f(x): return x**2<|im_end|>\n";
  CHECK(back.encode(text) == tok.encode(text));
  CHECK(back.decode(tok.encode(text)) == text);
  const auto config = nlohmann::json::parse(read_file(tmp.path / "tokenizer_config.json"));
  CHECK(config["eos_token"] == tok.token_text(*tok.eos_id()));
  CHECK(config["model_max_length"] == 8192);
  // A model whose tokenizer came from neither: reported missing, by name.
  const auto none = ordo::model::detail::save::write_tokenizer(tmp.path / "nowhere", nullptr, 8192, tmp.path / "x");
  REQUIRE(none.size() == 1);
  CHECK(none[0].find("tokenizer.json") == 0);
}
