// The decoder against transformers on tiny random Llama 3, SmolLM2-style and Qwen2 models
// (fixtures made by make_decoder_fixtures.py), its KV cache against a full forward, and
// generation (greedy, seeded sampling, top-p, stop ids).
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros

#include <filesystem>
#include <optional>
#include <fstream>
#include <set>
#include <string>

#include <ordo/model/decoder.hpp>
#include <ordo/model/load_hf.hpp>  // load_hf, read_tensor
#include <ordo/model/generate.hpp>
#include <ordo/model/static_decode.hpp>  // static_decoder
#include <ordo/model/transform.hpp>  // quantize_linears, clone
#include <ordo/train/trainer.hpp>    // AutocastGuard

#include "../tiny_decoder.hpp"  // tiny_decoder

namespace fs = std::filesystem;
using ordo::model::CausalLM;

namespace {

const fs::path fixtures = ORDO_MODEL_FIXTURES;

struct expected {
  torch::Tensor ids, mask, logits;
};

expected read_expected(const fs::path& dir) {
  ordo::io::safetensors::Checkpoint ck(dir / "expected.safetensors");
  return {ordo::model::read_tensor(ck, "input_ids"), ordo::model::read_tensor(ck, "attention_mask"),
          ordo::model::read_tensor(ck, "logits")};
}

// Largest |difference| over the real (unpadded) positions.
double max_error_on_real_tokens(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& mask) {
  auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(want);
  return (got - want).abs().masked_select(real).max().item<double>();
}


// The largest |a - b| over the pairs given to add(a, b) against the largest |b|: paths that
// agree to fp32 rounding differ by a few ulps of the logits' scale.
struct logit_gap {
  double worst = 0.0, scale = 0.0;
  void add(const torch::Tensor& a, const torch::Tensor& b) {
    REQUIRE(a.sizes() == b.sizes());
    worst = std::max(worst, (a - b).abs().max().item<double>());
    scale = std::max(scale, b.abs().max().item<double>());
  }
  void check(const std::string& label, double relative) const {
    MESSAGE(label << ": max |logit difference| " << worst << " of logits up to " << scale);
    CHECK(scale > 0.1);
    CHECK(worst <= relative * std::max(1.0, scale));
  }
};

// The general path's logits (or hidden states) for one call: the fused one-token step
// switched off for it.
torch::Tensor general_forward(ordo::model::CausalLM& lm, const torch::Tensor& ids, const torch::Tensor& mask,
                              ordo::model::kv_cache& cache, bool hidden_only = false) {
  lm->set_fused_decoding(false);
  auto y = hidden_only ? lm->hidden(ids, mask, &cache) : lm->forward(ids, mask, &cache);
  lm->set_fused_decoding(true);
  return y;
}

// From a 4-token prefill, one-token steps (the fused batch-1 path: GEMVs for the linears and
// the head) give the general path's logits within fp32 rounding.
void check_one_token_steps(ordo::model::CausalLM& lm, const torch::Tensor& ids) {
  ordo::model::kv_cache fast, general;
  lm->forward(ids.slice(1, 0, 4), {}, &fast);
  lm->forward(ids.slice(1, 0, 4), {}, &general);
  for (int64_t t = 4; t < ids.size(1); ++t) {
    auto token = ids.slice(1, t, t + 1);
    auto a = lm->forward(token, {}, &fast);
    auto b = general_forward(lm, token, {}, general);
    CHECK((a - b).abs().max().item<double>() <= 2e-6 * std::max(1.0, b.abs().max().item<double>()));
  }
}

// Calls f(label, lm, ids) for each fixture architecture (Llama 3's RoPE scaling, a tied head,
// Qwen2's GQA with q/k/v biases), dense and with NF4 linears; ids: the first row of its inputs.
template <class F>
void for_each_fixture_model(F&& f) {
  for (const char* name : {"llama3", "llama_tied", "qwen2"}) {
    for (const bool nf4 : {false, true}) {
      CAPTURE(name);
      CAPTURE(nf4);
      auto lm = ordo::model::load_hf(fixtures / name);
      if (nf4) REQUIRE(ordo::model::quantize_linears(lm, 64, true) > 0);
      f(std::string(name) + (nf4 ? " nf4" : " dense"), lm, read_expected(fixtures / name).ids.slice(0, 0, 1));
    }
  }
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

TEST_CASE("one-token decoding steps (the batch-1 CPU path) equal the general forward, dense and NF4") {
  // The one-token path (fp32, CPU, no gradients) against the general path (the fused step
  // switched off). Both start from the same prefill and decode the same tokens.
  for_each_fixture_model([](const std::string& label, ordo::model::CausalLM& lm, const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    ordo::model::kv_cache fast, general;
    auto prompt = ids.slice(1, 0, 4);
    lm->forward(prompt, {}, &fast);
    lm->forward(prompt, {}, &general);
    logit_gap gap;
    for (int64_t t = 4; t < ids.size(1); ++t) {
      auto token = ids.slice(1, t, t + 1);
      gap.add(lm->forward(token, {}, &fast), general_forward(lm, token, {}, general));
    }
    gap.check(label, 2e-6);
    CHECK(fast.length() == ids.size(1));
    CHECK((fast.keys[1] - general.keys[1]).abs().max().item<double>() < 1e-5);
    CHECK((fast.values[0] - general.values[0]).abs().max().item<double>() < 1e-5);
  });
}

TEST_CASE("the int16 NF4 GEMV (set_nf4_gemv) decodes within 1e-3 of the exact one; several rows are unaffected") {
  for (const char* name : {"llama3", "llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    REQUIRE(ordo::model::quantize_linears(lm, 64, true) > 0);
    ordo::model::quantize_head(lm, ordo::model::head_format::nf4);
    auto ids = read_expected(fixtures / name).ids.slice(0, 0, 1);
    torch::NoGradGuard no_grad;
    auto fast = ordo::model::clone(lm);
    ordo::model::set_nf4_gemv(fast, ordo::quant::nf4::Gemv::int16);
    CHECK(fast->nf4_head->gemv_arithmetic == ordo::quant::nf4::Gemv::int16);
    CHECK(ordo::model::clone(fast)->nf4_head->gemv_arithmetic == ordo::quant::nf4::Gemv::int16);
    CHECK(torch::equal(fast->forward(ids), lm->forward(ids)));  // several rows: the same arithmetic
    ordo::model::kv_cache a_cache, b_cache;
    fast->forward(ids.slice(1, 0, 4), {}, &a_cache);
    lm->forward(ids.slice(1, 0, 4), {}, &b_cache);
    double worst = 0.0, scale = 0.0;
    for (int64_t t = 4; t < ids.size(1); ++t) {
      auto token = ids.slice(1, t, t + 1);
      auto a = fast->forward(token, {}, &a_cache);
      auto b = lm->forward(token, {}, &b_cache);
      worst = std::max(worst, (a - b).abs().max().item<double>());
      scale = std::max(scale, b.abs().max().item<double>());
    }
    MESSAGE(std::string(name) << ": int16 GEMV moves one-token logits by up to " << worst << " of " << scale);
    CHECK(worst > 0.0);  // it ran
    CHECK(worst <= 1e-3 * std::max(1.0, scale));
  }
  CHECK_THROWS_WITH_AS(ordo::model::parse_nf4_gemv("int8"), "NF4 GEMV arithmetic \"int8\": expected exact or int16",
                       std::invalid_argument);
}

TEST_CASE("batched one-token steps (up to 8 rows, left-padded) equal the general path; a dense row gets its floats alone") {
  // Three prompts left-padded to one length, a prefill with the mask, then one-token steps for
  // all rows at once: the fused batched step against the general path, dense and NF4.
  for_each_fixture_model([](const std::string& label, ordo::model::CausalLM& lm, const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    const int64_t B = 3, P = 6;
    auto prompt = torch::full({B, P}, 0, torch::kLong);
    auto mask = torch::zeros({B, P}, torch::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = P - 2 * b;  // 6, 4 and 2 real tokens
      prompt[b].slice(0, P - n) = ids[0].slice(0, b, b + n);
      mask[b].slice(0, P - n) = 1;
    }
    ordo::model::kv_cache fast, general;
    lm->forward(prompt, mask, &fast);
    lm->forward(prompt, mask, &general);
    logit_gap gap;
    for (int64_t t = 0; t < 5; ++t) {
      const auto tokens = ids[0].slice(0, 2 * t, 2 * t + B).unsqueeze(1);  // [B, 1]
      mask = torch::cat({mask, torch::ones({B, 1}, torch::kLong)}, 1);
      gap.add(lm->forward(tokens, mask, &fast), general_forward(lm, tokens, mask, general));
    }
    gap.check(label + " batched steps", 2e-6);
    CHECK(fast.length() == P + 5);
    CHECK((fast.keys[1] - general.keys[1]).abs().max().item<double>() < 1e-5);
    // Without padding, each dense row of a batch gets the floats it gets decoded alone (the
    // batched GEMV sums each row as the GEMV does); NF4 rows agree to rounding (one row is the
    // NF4 GEMV, several the tiled product).
    const auto rows = torch::cat({ids.slice(1, 0, 5), ids.slice(1, 3, 8)}, 0);  // [2, 5]
    ordo::model::kv_cache both;
    lm->forward(rows.slice(1, 0, 4), {}, &both);
    std::vector<ordo::model::kv_cache> alone(2);
    for (int64_t b = 0; b < 2; ++b) lm->forward(rows.slice(0, b, b + 1).slice(1, 0, 4), {}, &alone[b]);
    // The general prefill of two rows and of one differ in their last digits (the BLAS's sums
    // depend on the row count): start the rows alone from the batch's cache instead.
    for (int64_t b = 0; b < 2; ++b)
      for (std::size_t l = 0; l < both.keys.size(); ++l) {
        alone[b].keys[l] = both.keys[l].slice(0, b, b + 1).clone();
        alone[b].values[l] = both.values[l].slice(0, b, b + 1).clone();
      }
    const auto together = lm->forward(rows.slice(1, 4, 5), {}, &both);
    for (int64_t b = 0; b < 2; ++b) {
      const auto one = lm->forward(rows.slice(0, b, b + 1).slice(1, 4, 5), {}, &alone[b]);
      if (label.find("nf4") == std::string::npos)
        CHECK(torch::equal(together[b], one[0]));
      else
        CHECK((together[b] - one[0]).abs().max().item<double>() <= 1e-4 * std::max(1.0, gap.scale));
    }
  });
  // A mask of the wrong shape is an error, as in the general path.
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  torch::NoGradGuard no_grad;
  ordo::model::kv_cache cache;
  lm->forward(torch::tensor({{1, 2, 3}, {4, 5, 6}}, torch::kLong), {}, &cache);
  CHECK_THROWS(lm->forward(torch::tensor({{1}, {2}}, torch::kLong), torch::ones({2, 3}, torch::kLong), &cache));
}

TEST_CASE("an NF4 head (quantize_head) multiplies the final hidden states by the head's NF4 values") {
  for (const char* name : {"llama3", "llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    auto ids = read_expected(fixtures / name).ids.slice(0, 0, 1);
    torch::NoGradGuard no_grad;
    const auto dense_logits = lm->forward(ids);
    const auto dense_weight = lm->head_weight().clone();
    ordo::model::quantize_head(lm, ordo::model::head_format::nf4, 64);
    REQUIRE(lm->nf4_head);
    CHECK_FALSE(lm->nf4_head->nf4->q.nested);
    // The head's values: the dense weight rounded to NF4, nothing else changes (embeddings kept).
    const auto values = lm->nf4_head->nf4->dequantize();
    const auto expected_values = torch::from_blob(
        ordo::quant::nf4::dequantize<float>(ordo::quant::nf4::quantize(
            std::span<const float>(dense_weight.data_ptr<float>(), static_cast<std::size_t>(dense_weight.numel())),
            {}, false)).data(), dense_weight.sizes(), torch::kFloat32).clone();
    CHECK(torch::equal(values, expected_values));
    CHECK(torch::equal(lm->head_weight(), dense_weight));
    // Logits: the final hidden states times the NF4 values, for a prompt and for one-token steps.
    const auto h = lm->hidden(ids);
    const auto logits = lm->forward(ids);
    CHECK((logits - torch::matmul(h, values.t())).abs().max().item<double>() < 1e-4);
    const double moved = (logits - dense_logits).abs().max().item<double>();
    MESSAGE(std::string(name) << ": NF4 head moves the logits by up to " << moved);
    CHECK(moved > 0);
    check_one_token_steps(lm, ids);  // the one-token path: the NF4 GEMV for the head
    // A clone keeps it (the NF4 data is shared).
    auto copy = ordo::model::clone(lm);
    REQUIRE(copy->nf4_head);
    CHECK(torch::equal(copy->forward(ids), logits));
  }
}

TEST_CASE("an 8-bit head (quantize_head q8_0) multiplies by the head's Q8_0 values, and gives a Q8_0 head back as it is") {
  for (const char* name : {"llama3", "llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    auto ids = read_expected(fixtures / name).ids.slice(0, 0, 1);
    torch::NoGradGuard no_grad;
    const auto dense_weight = lm->head_weight().clone();
    ordo::model::quantize_head(lm, ordo::model::head_format::nf4);
    ordo::model::quantize_head(lm, ordo::model::head_format::q8_0);  // replaces the NF4 copy
    CHECK(lm->nf4_head.is_empty());
    REQUIRE(lm->q8_head);
    // The values: GGUF's Q8_0 rule stated here, per block of 32 along a row.
    const auto rows = dense_weight.size(0), cols = dense_weight.size(1);
    auto expected = torch::empty_like(dense_weight);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / 32; ++b) {
        auto block = dense_weight[r].slice(0, 32 * b, 32 * b + 32);
        const float d = block.abs().max().item<float>() / 127.0f;
        const float d16 = ordo::quant::to_float(ordo::quant::to_f16(d));
        for (int64_t i = 0; i < 32; ++i) {
          const float q = std::round(block[i].item<float>() * (d != 0.0f ? 1.0f / d : 0.0f));
          CHECK(std::abs(q) <= 127.0f);
          expected[r][32 * b + i] = q * d16;
        }
      }
    const auto values = lm->q8_head->dequantize();
    CHECK(torch::equal(values, expected));
    CHECK(torch::equal(lm->head_weight(), dense_weight));  // the embeddings keep the dense weight
    // Logits: the final hidden states times those values; the one-token path (ordo's Q8_0 GEMV)
    // gives the general path's logits.
    const auto h = lm->hidden(ids);
    const auto logits = lm->forward(ids);
    CHECK((logits - torch::matmul(h, values.t())).abs().max().item<double>() < 1e-5);
    check_one_token_steps(lm, ids);  // the one-token path: the Q8_0 GEMV for the head
    auto copy = ordo::model::clone(lm);
    REQUIRE(copy->q8_head);
    CHECK(torch::equal(copy->forward(ids), logits));

    // A head whose values are Q8_0 values already (as a GGUF's Q8_0 token_embd is once loaded)
    // comes back with the very same values: the 8-bit head changes nothing but the arithmetic.
    auto again = ordo::model::load_hf(fixtures / name);
    again->head_weight().copy_(values);
    ordo::model::quantize_head(again, ordo::model::head_format::q8_0);
    CHECK(torch::equal(again->q8_head->dequantize(), values));
    CHECK(torch::equal(again->q8_head->codes, lm->q8_head->codes));
    CHECK(torch::equal(again->q8_head->scales, lm->q8_head->scales));
  }
  CHECK_THROWS_WITH_AS(ordo::model::parse_head_format("q4"), "head format \"q4\": expected nf4 or q8_0",
                       std::invalid_argument);
}

TEST_CASE("use_q8_head_if_same_values: a head of Q8_0 values decodes from its 8-bit copy; other heads stay dense") {
  for (const char* name : {"llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto ids = read_expected(fixtures / name).ids.slice(0, 0, 1);
    torch::NoGradGuard no_grad;
    auto plain = ordo::model::load_hf(fixtures / name);
    CHECK_FALSE(ordo::model::use_q8_head_if_same_values(plain));  // random fp32 values: not Q8_0's
    CHECK_FALSE(plain->q8_head);
    // A head holding Q8_0 values, as a GGUF's Q8_0 token_embd read into fp32
    ordo::model::quantize_head(plain, ordo::model::head_format::q8_0);
    CHECK_FALSE(plain->q8_head->same_values);  // an 8-bit copy of other values
    const auto values = plain->q8_head->dequantize();
    auto dense = ordo::model::load_hf(fixtures / name);
    dense->head_weight().copy_(values);
    auto lm = ordo::model::clone(dense);
    REQUIRE(ordo::model::use_q8_head_if_same_values(lm));
    REQUIRE(lm->q8_head);
    CHECK(lm->q8_head->same_values);
    CHECK(torch::equal(lm->q8_head->dequantize(), values));
    CHECK_FALSE(ordo::model::use_q8_head_if_same_values(lm));  // has its copy already
    // Several rows: the dense product, bit for bit; one row: the Q8_0 GEMV, within fp32 rounding.
    CHECK(torch::equal(lm->forward(ids), dense->forward(ids)));
    const auto h = dense->hidden(ids).select(1, -1);  // [1, hidden]: one row
    const auto one = lm->head(h), want = dense->head(h);
    CHECK(one.sizes() == want.sizes());
    CHECK((one - want).abs().max().item<double>() <= 1e-5 * want.abs().max().item<double>());
    check_one_token_steps(lm, ids);
    // quantize_head's Q8_0 copy of such a head is the same-values copy too (--q8-head)
    auto asked = ordo::model::clone(dense);
    ordo::model::quantize_head(asked, ordo::model::head_format::q8_0);
    CHECK(asked->q8_head->same_values);
    CHECK(torch::equal(asked->forward(ids), dense->forward(ids)));
  }
}

TEST_CASE("one-token steps over a long cache on two threads: attention split over heads and keys, head_dim 40") {
  // head_dim 40: 32 values summed in registers and a tail of 8; 3 query heads per KV head; past
  // ~140 cached positions both halves of the attention run on both threads.
  auto c = tiny_config(50, 64);
  c.hidden_size = 64;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 40;
  auto lm = tiny_decoder(c, 11, 0.1);
  torch::NoGradGuard no_grad;
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  torch::manual_seed(3);
  check_one_token_steps(lm, torch::randint(0, 50, {1, 260}, torch::kLong));
  at::set_num_threads(threads);
}

TEST_CASE("one-token attention's value sums: each value summed over the rows in order, bit for bit, on 1 and 2 threads") {
  // (heads, KV heads, head_dim, cached rows): three query heads per KV head (one pass over V for
  // all three), seven (passes of 3, 3, 1), one, two; head_dims with and without a tail past
  // the last 16 values; more rows than one thread's share.
  const std::int64_t shapes[][4] = {{9, 3, 64, 300}, {6, 2, 40, 260}, {14, 2, 64, 100}, {4, 4, 16, 5},
                                    {8, 4, 20, 17},  {7, 1, 48, 33},  {2, 1, 8, 1000}};
  const int threads = at::get_num_threads();
  for (const auto& shape : shapes) {
    const std::int64_t heads = shape[0], kv_heads = shape[1], D = shape[2], S = shape[3], capacity = S + 7;
    CAPTURE(heads);
    CAPTURE(D);
    CAPTURE(S);
    torch::manual_seed(heads * 1000 + S);
    const auto probs = torch::softmax(torch::randn({heads, S}), -1);
    const auto values = torch::randn({kv_heads, capacity, D});
    const float* pp = probs.data_ptr<float>();
    const float* vp = values.data_ptr<float>();
    auto want = torch::empty({heads, D});
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t d = 0; d < D; ++d) {
        const float* v = vp + (h / (heads / kv_heads)) * capacity * D + d;
        float acc = 0.0f;
        for (std::int64_t s = 0; s < S; ++s) {
          const float product = pp[h * S + s] * v[s * D];
          acc = acc + product;
        }
        want[h][d] = acc;
      }
    for (int t : {1, 2}) {
      at::set_num_threads(t);
      auto out = torch::zeros({heads, D});
      ordo::model::detail::attention_value_sums(pp, vp, capacity, S, heads, kv_heads, D, out.data_ptr<float>());
      CHECK(torch::equal(out, want));
    }
  }
  at::set_num_threads(threads);
}

TEST_CASE("q8_weight: rows that are not whole Q8_0 blocks hold no Q8_0 values, and of() refuses them") {
  const auto w = torch::randn({4, 48});
  CHECK_FALSE(ordo::model::q8_weight::of_if_same_values(w));
  CHECK_THROWS_WITH_AS(ordo::model::q8_weight::of(w),
                       "ordo: Q8_0 needs rows of a multiple of 32 values; this weight's rows have 48",
                       std::invalid_argument);
  const auto ok = ordo::model::q8_weight::of(torch::randn({4, 64}));
  CHECK(ok->scales.sizes() == torch::IntArrayRef{4, 2});
  CHECK_FALSE(ok->same_values);
}

TEST_CASE("a copied KV cache decodes on its own: the in-place appends never write into the other copy") {
  auto lm = ordo::model::load_hf(fixtures / "llama3");
  auto ids = read_expected(fixtures / "llama3").ids.slice(0, 0, 1);
  torch::NoGradGuard no_grad;
  ordo::model::kv_cache cache;
  lm->forward(ids.slice(1, 0, 3), {}, &cache);
  lm->forward(ids.slice(1, 3, 4), {}, &cache);  // the cache now grows in place
  auto branch = cache;                           // two continuations of one prefix
  auto x = lm->forward(ids.slice(1, 4, 5), {}, &cache);
  auto y = lm->forward(ids.slice(1, 5, 6), {}, &branch);  // another token at the same position
  auto x_again = lm->forward(ids.slice(1, 4, 5), {}, &branch);  // branch: ..., 5, 4
  ordo::model::kv_cache fresh;
  auto want_y = lm->forward(torch::cat({ids.slice(1, 0, 4), ids.slice(1, 5, 6)}, 1), {}, &fresh).select(1, -1);
  CHECK((y.select(1, -1) - want_y).abs().max().item<double>() < 1e-4);
  auto want_x = lm->forward(ids.slice(1, 0, 5)).select(1, -1);
  CHECK((x.select(1, -1) - want_x).abs().max().item<double>() < 1e-4);
  // a multi-token forward after one-token steps, then one-token steps again
  auto more = lm->forward(ids.slice(1, 5, 8), {}, &cache);
  auto next = lm->forward(ids.slice(1, 8, 9), {}, &cache);
  auto full = lm->forward(ids.slice(1, 0, 9));
  CHECK((more - full.slice(1, 5, 8)).abs().max().item<double>() < 1e-4);
  CHECK((next.select(1, -1) - full.select(1, -1)).abs().max().item<double>() < 1e-4);
  CHECK(x_again.size(1) == 1);
}

TEST_CASE("the general path appends to the KV stores in place: the floats of concatenation, stores made once for `reserve`") {
  // Nine rows (more than the fused step takes) through the general path, fp32 and bf16: with
  // gradients on, each forward concatenates the cache (autograd records it); without, it writes
  // into the stores. Both give the same logits bit for bit.
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    CAPTURE(c10::toString(dtype));
    auto lm = ordo::model::load_hf(fixtures / "qwen2");  // GQA, q/k/v biases
    lm->to(dtype);
    const int64_t B = 9, P = 5, steps = 6, reserve = P + 4;  // the last two steps outgrow `reserve`
    const auto pool = (torch::arange(B * (P + steps), torch::kLong) * 7919 + 13).remainder(lm->config().vocab_size);
    const auto prompt = pool.slice(0, 0, B * P).view({B, P});
    const auto token_at = [&](int64_t t) { return pool.slice(0, B * (P + t), B * (P + t + 1)).view({B, 1}); };
    ordo::model::kv_cache concatenated, stored;
    stored.reserve = reserve;
    std::vector<torch::Tensor> want;
    want.push_back(lm->forward(prompt, {}, &concatenated).detach());
    for (int64_t t = 0; t < steps; ++t) want.push_back(lm->forward(token_at(t), {}, &concatenated).detach());
    CHECK(concatenated.key_store[0].defined() == false);
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(lm->forward(prompt, {}, &stored), want[0]));
    REQUIRE(stored.key_store.size() == lm->model->layers->size());
    const auto* first_store = stored.key_store[1].data_ptr();
    CHECK(stored.key_store[1].size(2) == reserve);
    CHECK(c10::toString(stored.key_store[1].scalar_type()) == std::string(c10::toString(dtype)));
    for (int64_t t = 0; t < steps; ++t) {
      CAPTURE(t);
      CHECK(torch::equal(lm->forward(token_at(t), {}, &stored), want[static_cast<std::size_t>(t) + 1]));
      CHECK(stored.keys[1].data_ptr() == stored.key_store[1].data_ptr());  // a view of the store
      CHECK(stored.values[1].data_ptr() == stored.value_store[1].data_ptr());
      if (P + t + 1 <= reserve) CHECK(stored.key_store[1].data_ptr() == first_store);  // never copied
    }
    CHECK(stored.length() == P + steps);
    CHECK(stored.key_store[1].data_ptr() != first_store);  // outgrown: copied once into a larger store
    CHECK(stored.key_store[1].size(2) == std::max<int64_t>(2 * (reserve + 1), 64));
    CHECK(torch::equal(stored.keys[1], concatenated.keys[1].detach()));
    CHECK(torch::equal(stored.values[1], concatenated.values[1].detach()));
    // Without `reserve`: a prompt's stores hold the prompt alone; the first step grows them.
    ordo::model::kv_cache plain;
    CHECK(torch::equal(lm->forward(prompt, {}, &plain), want[0]));
    CHECK(plain.key_store[1].size(2) == P);
    CHECK(torch::equal(lm->forward(token_at(0), {}, &plain), want[1]));
    CHECK(plain.key_store[1].size(2) == 64);
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

TEST_CASE("keep_autocast_copies: bf16 autocast's logits bit for bit; a changed weight recast; gradients untouched") {
  for (const bool tied : {true, false}) {
    auto c = tiny_config(40, 24);
    c.tie_word_embeddings = tied;
    c.attention_bias = true;
    auto lm = tiny_decoder(c, 3, 0.3);
    const auto ids = torch::randint(0, 40, {2, 12}, torch::kLong);  // 24 rows: the GEMM path
    auto run = [&](bool grad = false) {
      std::optional<torch::NoGradGuard> no_grad;
      if (!grad) no_grad.emplace();
      ordo::train::AutocastGuard mixed(torch::kBFloat16);
      return lm->forward(ids);
    };
    std::vector<ordo::model::LinearImpl*> linears;
    for (const auto& m : lm->modules(false))
      if (auto* l = m->as<ordo::model::LinearImpl>()) linears.push_back(l);
    REQUIRE(linears.size() == (tied ? 14u : 15u));
    auto copies = [&] {
      std::size_t n = 0;
      for (auto* l : linears) n += l->autocast_copy().defined() ? 1 : 0;
      return n;
    };
    const auto plain = run();
    lm->keep_autocast_copies(torch::kBFloat16);
    CHECK(copies() == 0);  // made at the first forward under autocast, not before
    {
      torch::NoGradGuard no_grad;
      lm->forward(ids);  // without autocast: the fp32 weights, no copies
    }
    CHECK(copies() == 0);
    const auto kept = run();
    CHECK(copies() == linears.size());
    CHECK((linears.front()->autocast_copy().scalar_type() == torch::kBFloat16));
    CHECK(torch::equal(kept, plain));
    // a weight changed in place after its copy was made: recast at the next forward
    {
      torch::NoGradGuard no_grad;
      linears.front()->weight.add_(0.25);
    }
    const auto after = run();
    CHECK_FALSE(torch::equal(after, kept));
    lm->keep_autocast_copies(std::nullopt);
    CHECK(copies() == 0);
    CHECK(torch::equal(after, run()));
    // weights that record gradients are never replaced: the backward reaches every one
    lm->keep_autocast_copies(torch::kBFloat16);
    for (auto& p : lm->parameters()) p.set_requires_grad(true);
    run(/*grad=*/true).sum().backward();
    for (const auto& p : lm->named_parameters()) {
      INFO(p.key());
      CHECK(p.value().grad().defined());
    }
    CHECK(copies() == 0);
  }
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
  CHECK_THROWS_WITH_AS((void)ordo::model::load_hf(dir), doctest::Contains("but the config implies"),
                       std::invalid_argument);
  // A config that is not a decoder.
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "vocab_size": 10})";
  CHECK_THROWS_WITH_AS((void)ordo::model::load_hf(dir), doctest::Contains("missing integer 'hidden_size'"),
                       std::invalid_argument);
  fs::remove_all(dir);
}

// ---- generation -------------------------------------------------------------------------------

TEST_CASE("a static KV cache (the step a CUDA graph captures, run eagerly here) gives the general path's logits") {
  // From a 4-token prefill, steps over a cache of fixed capacity (attention over every position,
  // the later ones masked) against the general forward with a mask, dense and NF4, for GQA with
  // q/k/v biases (qwen2), a tied head and Llama 3's RoPE scaling.
  for_each_fixture_model([](const std::string& label, ordo::model::CausalLM& lm, const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    const auto T = ids.size(1);
    ordo::model::static_decoder fixed(lm, T + 3);  // three positions never filled
    CHECK_FALSE(fixed.captures());                  // not on the CPU
    ordo::model::kv_cache general;
    auto a = fixed.prefill(ids.slice(1, 0, 4));
    auto b = lm->head(lm->hidden(ids.slice(1, 0, 4), {}, &general).select(1, -1));
    CHECK(torch::equal(a, b));  // the prefill is the general forward, the head on its last position
    CHECK(fixed.length() == 4);
    logit_gap gap;
    for (int64_t t = 4; t < T; ++t) {
      auto token = ids.slice(1, t, t + 1);
      gap.add(fixed.step(token), general_forward(lm, token, {}, general).select(1, -1));
    }
    gap.check(label, 2e-6);
    CHECK(fixed.length() == T);
  });
}

TEST_CASE("a static KV cache: greedy generation gives the default path's tokens; its limits are errors") {
  for (const char* name : {"llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    const std::vector<int64_t> prompt{5, 17, 42, 8, 3};
    ordo::model::generation_options o;
    o.greedy = true;
    o.max_new_tokens = 12;
    const auto plain = ordo::model::generate(lm, prompt, o);
    o.static_cache = true;
    const auto fixed = ordo::model::generate(lm, prompt, o);
    CHECK(fixed.tokens == plain.tokens);
    CHECK(fixed.tokens.size() == 12);
    o.greedy = false;  // sampling: the same seed, the same tokens
    o.seed = 3;
    o.static_cache = false;
    const auto sampled = ordo::model::generate(lm, prompt, o);
    o.static_cache = true;
    CHECK(ordo::model::generate(lm, prompt, o).tokens == sampled.tokens);
    o.max_new_tokens = 1;  // the prompt's logits only: no step
    CHECK(ordo::model::generate(lm, prompt, o).tokens.size() == 1);
  }
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  torch::NoGradGuard no_grad;
  CHECK_THROWS_AS(ordo::model::static_decoder(lm, 0), std::invalid_argument);
  ordo::model::static_decoder fixed(lm, 6);
  const auto token = torch::tensor({{7}}, torch::kLong);
  CHECK_THROWS_AS(fixed.step(token), std::logic_error);  // before prefill
  CHECK_THROWS_AS(fixed.prefill(torch::tensor({{1, 2, 3, 4, 5, 6}}, torch::kLong)), std::invalid_argument);
  fixed.prefill(torch::tensor({{1, 2, 3, 4}}, torch::kLong));
  fixed.step(token);
  fixed.step(token);
  CHECK(fixed.length() == 6);
  CHECK_THROWS_WITH_AS(fixed.step(token), doctest::Contains("is full"), std::invalid_argument);
  // prefill starts over: the same prompt gives the same logits and steps again
  auto a = fixed.prefill(torch::tensor({{1, 2, 3, 4}}, torch::kLong));
  auto b = fixed.step(token);
  ordo::model::static_decoder fresh(lm, 6);
  CHECK(torch::equal(a, fresh.prefill(torch::tensor({{1, 2, 3, 4}}, torch::kLong))));
  CHECK(torch::equal(b, fresh.step(token)));
}

TEST_CASE("bf16 weights: a static KV cache decodes the general path's logits within bf16 rounding") {
  auto lm = ordo::model::load_hf(fixtures / "qwen2");
  lm->to(torch::kBFloat16);
  auto ids = read_expected(fixtures / "qwen2").ids.slice(0, 0, 1);
  torch::NoGradGuard no_grad;
  ordo::model::static_decoder fixed(lm, ids.size(1));
  ordo::model::kv_cache general;
  fixed.prefill(ids.slice(1, 0, 4));
  lm->forward(ids.slice(1, 0, 4), {}, &general);
  logit_gap gap;
  for (int64_t t = 4; t < ids.size(1); ++t) {
    auto token = ids.slice(1, t, t + 1);
    gap.add(fixed.step(token), lm->forward(token, torch::ones({1, t + 1}, torch::kLong), &general).select(1, -1));
  }
  gap.check("bf16", 2e-2);
}

TEST_CASE("greedy generation with the KV cache follows the argmax of full forwards") {
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  const std::vector<int64_t> prompt{5, 17, 42, 8};
  ordo::model::generation_options o;
  o.greedy = true;
  o.max_new_tokens = 12;
  const auto r = ordo::model::generate(lm, prompt, o);
  REQUIRE(r.tokens.size() == 12);
  CHECK_FALSE(r.stopped);
  CHECK(r.prompt_tokens == 4);
  std::vector<int64_t> seq = prompt;
  torch::NoGradGuard no_grad;
  for (auto id : r.tokens) {
    auto logits = lm->forward(torch::tensor(seq, torch::kLong).unsqueeze(0));
    CHECK(logits[0][-1].argmax().item<int64_t>() == id);
    seq.push_back(id);
  }
}

TEST_CASE("linears and the head on a few rows (batched decoding): each row gets the floats it gets alone, close to the GEMM") {
  using ordo::model::detail::few_rows_limit;
  for_each_fixture_model([](const std::string& label, CausalLM& lm, const torch::Tensor&) {
    CAPTURE(label);
    torch::NoGradGuard no_grad;
    auto& gate = *lm->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->mlp->gate_proj;
    const auto dense = gate.quantized() ? gate.nf4->dequantize() : gate.weight;
    torch::manual_seed(3);
    for (const int64_t rows : {int64_t{2}, int64_t{5}, few_rows_limit, few_rows_limit + 1}) {
      CAPTURE(rows);
      const auto x = torch::randn({rows, 1, gate.in_features});
      const auto y = gate.forward(x);
      REQUIRE(y.sizes() == torch::IntArrayRef{rows, 1, gate.out_features});
      const auto gemm = torch::matmul(x, dense.t());
      CHECK((y - gemm).abs().max().item<double>() <= 1e-5 * std::max(1.0, gemm.abs().max().item<double>()));
      if (!gate.quantized() && rows <= few_rows_limit)
        for (int64_t j = 0; j < rows; ++j) CHECK(torch::equal(y[j], gate.forward(x[j])));  // one row: the GEMV
      if (gate.quantized() && rows <= few_rows_limit) {
        // NF4: the batched GEMV on the dense values, bit for bit, whether the rows are whole
        // blocks (gate: 64 columns, nf4::gemv_batch from the packed bytes) or not (down: 96
        // columns, a dequantized tile at a time).
        REQUIRE(gate.nf4_gemv_applies());
        CHECK(torch::equal(y, ordo::model::detail::few_rows_product(x, dense)));
        auto& down = *lm->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->mlp->down_proj;
        REQUIRE(!down.nf4_gemv_applies());
        const auto xd = torch::randn({rows, down.in_features});
        CHECK(torch::equal(down.forward(xd), ordo::model::detail::few_rows_product(xd, down.nf4->dequantize())));
      }
      const auto h = torch::randn({rows, lm->config().hidden_size});
      const auto logits = lm->head(h);
      for (int64_t j = 0; j < rows && rows <= few_rows_limit; ++j)
        CHECK(torch::equal(logits[j], lm->head(h[j])));  // the head stays dense in an NF4 model
    }
  });
  // With a gradient to record, a few rows go through LibTorch's linear (autograd).
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  auto& gate = *lm->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->mlp->gate_proj;
  const auto x = torch::randn({3, gate.in_features}, torch::requires_grad());
  gate.forward(x).sum().backward();
  REQUIRE(x.grad().defined());
  CHECK((x.grad() - gate.weight.sum(0).expand_as(x)).abs().max().item<double>() < 1e-5);
}

TEST_CASE("batched generation: left-padded rows equal each prompt generated alone; rows stop on their own") {
  for (const char* name : {"llama_tied", "qwen2"}) {
    CAPTURE(name);
    auto lm = ordo::model::load_hf(fixtures / name);
    const std::vector<std::vector<int64_t>> prompts{{5, 17, 42, 8}, {3}, {9, 9, 1, 30, 2, 11, 4}};
    ordo::model::generation_options o;
    o.greedy = true;
    o.max_new_tokens = 10;
    const auto batch = ordo::model::generate_batch(lm, prompts, o);
    REQUIRE(batch.size() == 3);
    for (std::size_t b = 0; b < prompts.size(); ++b) {
      const auto alone = ordo::model::generate(lm, prompts[b], o);
      CHECK(batch[b].tokens == alone.tokens);
      CHECK(batch[b].prompt_tokens == static_cast<int64_t>(prompts[b].size()));
    }
    // A stop id that row 0 produces early ends row 0 only.
    o.stop_ids = {batch[0].tokens[2]};
    const auto stopped = ordo::model::generate_batch(lm, prompts, o);
    CHECK(stopped[0].stopped);
    CHECK(stopped[0].tokens.size() <= 3);
    for (std::size_t b = 1; b < prompts.size(); ++b) {
      const auto alone = ordo::model::generate(lm, prompts[b], o);
      CHECK(stopped[b].tokens == alone.tokens);
      CHECK(stopped[b].stopped == alone.stopped);
    }
    // Sampling: row b's stream is seeded by seed + b, whatever the other rows.
    o = {};
    o.max_new_tokens = 6;
    o.seed = 7;
    const auto sampled = ordo::model::generate_batch(lm, prompts, o);
    auto solo = o;
    solo.seed = 8;
    CHECK(ordo::model::generate_batch(lm, {prompts[1]}, solo)[0].tokens == sampled[1].tokens);
  }
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  CHECK(ordo::model::generate_batch(lm, {}, {}).empty());
  CHECK_THROWS_AS(ordo::model::generate_batch(lm, {{1, 2}, {}}, {}), std::invalid_argument);
}

TEST_CASE("sampling: a seed fixes the output, top-p near 0 is greedy, stop ids end it") {
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  const std::vector<int64_t> prompt{3, 1, 4, 1, 5};
  ordo::model::generation_options o;
  o.temperature = 1.0;
  o.top_p = 1.0;
  o.max_new_tokens = 16;
  o.seed = 7;
  const auto a = ordo::model::generate(lm, prompt, o);
  const auto b = ordo::model::generate(lm, prompt, o);
  CHECK(a.tokens == b.tokens);
  std::set<std::vector<int64_t>> outcomes;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    o.seed = seed;
    outcomes.insert(ordo::model::generate(lm, prompt, o).tokens);
  }
  CHECK(outcomes.size() > 1);  // the seed matters

  o.top_p = 1e-6;  // only the most likely token survives the nucleus
  ordo::model::generation_options g = o;
  g.greedy = true;
  CHECK(ordo::model::generate(lm, prompt, o).tokens == ordo::model::generate(lm, prompt, g).tokens);

  // Stop at the first stop id: take the 3rd greedy token as the stop id.
  g.max_new_tokens = 16;
  const auto free_run = ordo::model::generate(lm, prompt, g).tokens;
  g.stop_ids = {free_run[2]};
  const auto stopped = ordo::model::generate(lm, prompt, g);
  CHECK(stopped.stopped);
  const auto first = std::find(free_run.begin(), free_run.end(), free_run[2]) - free_run.begin();
  CHECK(static_cast<std::ptrdiff_t>(stopped.tokens.size()) == first + 1);
  CHECK(stopped.tokens.back() == free_run[2]);
}

TEST_CASE("top-p keeps the smallest set of likely tokens reaching p") {
  auto gen = at::detail::createCPUGenerator(1);
  ordo::model::generation_options o;
  o.temperature = 1.0;
  o.top_p = 0.75;
  // Probabilities 0.5, 0.3, 0.2: the nucleus at 0.75 is {0, 1}; token 2 must never be drawn.
  auto logits = torch::tensor({0.5, 0.3, 0.2}).log();
  std::set<int64_t> drawn;
  for (int i = 0; i < 200; ++i) drawn.insert(ordo::model::choose_token(logits, o, gen));
  CHECK(drawn == std::set<int64_t>{0, 1});
}

TEST_CASE("generation rejects invalid options") {
  auto lm = ordo::model::load_hf(fixtures / "llama_tied");
  ordo::model::generation_options o;
  CHECK_THROWS_AS(ordo::model::generate(lm, {}, o), std::invalid_argument);
  o.temperature = 0;
  CHECK_THROWS_AS(ordo::model::generate(lm, {1, 2}, o), std::invalid_argument);
  o.temperature = 1;
  o.top_p = 1.5;
  CHECK_THROWS_AS(ordo::model::generate(lm, {1, 2}, o), std::invalid_argument);
}
