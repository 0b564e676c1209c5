// The Q and D stages on a tiny random Llama (the decoder fixture): NF4 storage, inference,
// and Dequantize giving back exactly the values the NF4 weights stand for.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros

#include <cstring>
#include <filesystem>

#include <ordo/model/load_hf.hpp>  // load_hf, read_tensor
#include <ordo/pipeline.hpp>
#include <ordo/stages/quantize.hpp>

namespace fs = std::filesystem;

namespace {
ordo::DenseModel tiny() {
  auto lm = ordo::model::load_hf(fs::path(ORDO_MODEL_FIXTURES) / "llama3");
  // A tokenizer is not needed here; the fixture's model has none, so share a minimal one.
  return ordo::DenseModel(lm, nullptr, std::nullopt, ORDO_MODEL_FIXTURES);
}
torch::Tensor some_ids() { return torch::arange(0, 22, torch::kLong).remainder(96).view({2, 11}); }
}  // namespace

TEST_CASE("QuantNF4 turns every decoder linear into NF4 and leaves the rest dense") {
  auto base = tiny();
  ordo::Context ctx;
  auto q = ordo::apply_stage(ordo::QuantNF4{}, base, ctx);
  static_assert(std::is_same_v<decltype(q), ordo::QuantizedModel>);
  int quantized = 0;
  ordo::model::for_each_decoder_linear(q.lm(), [&](const std::string&, ordo::model::Linear& l) {
    quantized += l->quantized();
    CHECK(l->nf4->q.nested);
    CHECK(l->nf4->q.blocksize == 64);
  });
  CHECK(quantized == 2 * 7);
  // The base model is untouched (value semantics).
  ordo::model::for_each_decoder_linear(
      base.lm(), [&](const std::string&, ordo::model::Linear& l) { CHECK_FALSE(l->quantized()); });
  // No trainable parameters in an NF4 model.
  for (const auto& p : q.lm()->parameters()) CHECK_FALSE(p.requires_grad());
  // Smaller in memory: 4-bit weights plus statistics.
  CHECK(q.memory_bytes() < base.memory_bytes());
  // Close to the dense model's logits: NF4's error, neither garbage nor a no-op. NF4 is bit-exact
  // (bitsandbytes' rule), so the change is a property of this fixture: measured 0.1546 (max
  // |logit change| / max |logit|, x86-64 with AVX-512, LibTorch 1.13); bounds about 1.5x around it.
  auto a = base.logits(some_ids()), b = q.logits(some_ids());
  const double rel = (a - b).abs().max().item<double>() / a.abs().max().item<double>();
  MESSAGE("max relative logit change from NF4: " << rel);
  CHECK(rel < 0.23);
  CHECK(rel > 0.10);
}

TEST_CASE("batch-1 GEMV and the tiled path give the same logits") {
  auto base = tiny();
  ordo::Context ctx;
  auto q = ordo::apply_stage(ordo::QuantNF4{}, base, ctx);
  ordo::model::kv_cache cache;
  auto ids = some_ids().slice(0, 0, 1);
  torch::NoGradGuard no_grad;
  auto full = q.lm()->forward(ids);  // tiled dequantize + matmul
  std::vector<torch::Tensor> steps;
  for (int64_t t = 0; t < ids.size(1); ++t)
    steps.push_back(q.lm()->forward(ids.slice(1, t, t + 1), {}, &cache));  // GEMV
  CHECK((torch::cat(steps, 1) - full).abs().max().item<double>() < 1e-4);
}

TEST_CASE("Dequantize(QuantNF4(m)) holds exactly the NF4 values, bit for bit") {
  auto base = tiny();
  ordo::Context ctx;
  auto dq = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize>::run(base, ctx);
  static_assert(std::is_same_v<decltype(dq), ordo::DenseModel>);
  auto w = base.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(1)->mlp->down_proj->weight.contiguous();
  ordo::quant::nf4::Options o;
  auto q = ordo::quant::nf4::quantize(std::span<const float>(w.data_ptr<float>(), w.numel()), o, true);
  auto expected = ordo::quant::nf4::dequantize<float>(q);
  auto got = dq.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(1)->mlp->down_proj->weight.contiguous();
  REQUIRE(got.numel() == static_cast<int64_t>(expected.size()));
  CHECK(std::memcmp(got.data_ptr<float>(), expected.data(), expected.size() * sizeof(float)) == 0);
  for (const auto& p : dq.lm()->parameters()) CHECK(p.requires_grad());
  // The dense copy computes what the NF4 model computes.
  auto qm = ordo::apply_stage(ordo::QuantNF4{}, base, ctx);
  CHECK((dq.logits(some_ids()) - qm.logits(some_ids())).abs().max().item<double>() < 1e-4);
  // Q-D-Q: re-quantizing the dequantized model gives the same NF4 bytes again.
  auto qdq = ordo::apply_stage(ordo::QuantNF4{}, dq, ctx);
  const auto& first = qm.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->self_attn->q_proj->nf4->q;
  const auto& again = qdq.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->self_attn->q_proj->nf4->q;
  CHECK(first.packed == again.packed);
}

TEST_CASE("Dequantize gives the linears the model's dtype: a bf16 model comes back all bf16") {
  auto lm = ordo::model::load_hf(fs::path(ORDO_MODEL_FIXTURES) / "llama3", {torch::kCPU, torch::kBFloat16});
  ordo::DenseModel base(lm, nullptr, std::nullopt, ORDO_MODEL_FIXTURES);
  ordo::Context ctx;
  auto dq = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize>::run(base, ctx);
  int linears = 0;
  ordo::model::for_each_decoder_linear(dq.lm(), [&](const std::string& name, ordo::model::Linear& l) {
    CAPTURE(name);
    CHECK_FALSE(l->quantized());
    CHECK((l->weight.scalar_type() == torch::kBFloat16));
    ++linears;
  });
  CHECK(linears == 2 * 7);
  for (const auto& p : dq.lm()->parameters()) CHECK((p.scalar_type() == torch::kBFloat16));
  // The values: the NF4 values (what the Q model stands for) rounded to bf16.
  auto q = ordo::apply_stage(ordo::QuantNF4{}, base, ctx);
  const auto& nf4 = *q.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(1)->mlp->down_proj->nf4;
  const auto& got = dq.lm()->model->layers->ptr<ordo::model::DecoderLayerImpl>(1)->mlp->down_proj->weight;
  CHECK(torch::equal(got, nf4.dequantize().to(torch::kBFloat16)));
}
