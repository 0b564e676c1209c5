// The decoder's attention paths agree: causal attention without padding (query chunks over the
// keys up to each chunk) against the general masked path
// (taken when an attention mask is given), with grouped-query heads, several chunks and a
// partial one, a KV cache in front of a multi-token step, one and two threads, inference mode
// and gradients, bf16 (masked inside the general path); and single-row linears (matrix-vector
// products) against batched ones.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../tiny_decoder.hpp"   // tiny_decoder

#include <cstdint>
#include <string>
#include <vector>

#include <ordo/model/decoder.hpp>

using ordo::model::CausalLM;

namespace {

// A small GQA llama (3 query heads per KV head) with random weights.
CausalLM tiny_lm() {
  // Member by member: a braced list that leaves fields out draws -Wmissing-field-initializers.
  ordo::model::decoder_config c;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_sizes = {64, 40};
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 512;
  return tiny_decoder(c, 11, 0.3);  // redrawn weights: sharper attention than the default init
}

torch::Tensor random_ids(std::int64_t B, std::int64_t T) {
  torch::manual_seed(5);
  return torch::randint(0, 97, {B, T}, torch::kLong);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

struct threads_guard {
  int before = at::get_num_threads();
  explicit threads_guard(int n) { at::set_num_threads(n); }
  ~threads_guard() { at::set_num_threads(before); }
};

}  // namespace

TEST_CASE("causal attention without a mask equals the masked path") {
  auto lm = tiny_lm();
  torch::NoGradGuard no_grad;
  for (std::int64_t T : {2, 64, 65, 150}) {  // one chunk, exactly one, one and a bit, three with a partial one
    CAPTURE(T);
    auto ids = random_ids(2, T);
    auto plain = lm->forward(ids);
    auto masked = lm->forward(ids, torch::ones({2, T}, torch::kLong));
    CHECK(max_diff(plain, masked) < 1e-5);
    CHECK(plain.abs().max().item<double>() > 1.0);
  }
}

TEST_CASE("bf16 without a mask attends causally (the general path with its own causal mask)") {
  auto lm = tiny_lm();
  auto ids = random_ids(2, 70);
  torch::NoGradGuard no_grad;
  auto fp32 = lm->forward(ids);
  lm->to(torch::kBFloat16);
  auto plain = lm->forward(ids), masked = lm->forward(ids, torch::ones({2, 70}, torch::kLong));
  CHECK(max_diff(plain, masked) == 0.0);
  CHECK(max_diff(plain, fp32) < 0.05 * fp32.abs().max().item<double>());
}

TEST_CASE("a multi-token step after a KV cache equals the full forward") {
  auto lm = tiny_lm();
  torch::NoGradGuard no_grad;
  auto ids = random_ids(1, 200);
  auto full = lm->forward(ids);
  ordo::model::kv_cache cache;
  auto first = lm->forward(ids.slice(1, 0, 70), {}, &cache);
  auto second = lm->forward(ids.slice(1, 70, 200), {}, &cache);  // 130 queries after 70 cached keys
  CHECK(cache.length() == 200);
  CHECK(max_diff(torch::cat({first, second}, 1), full) < 1e-5);
}

TEST_CASE("the logits do not depend on gradient mode or inference mode, nor beyond fp32 rounding on threads") {
  auto lm = tiny_lm();
  auto ids = random_ids(2, 150);
  torch::Tensor one, two, with_grad, inference;
  {
    threads_guard t(1);
    torch::NoGradGuard no_grad;
    one = lm->forward(ids);
  }
  {
    threads_guard t(2);
    torch::NoGradGuard no_grad;
    two = lm->forward(ids);
  }
  {
    threads_guard t(2);
    with_grad = lm->forward(ids);  // parameters require gradients
    CHECK(with_grad.requires_grad());
  }
  {
    threads_guard t(2);
    c10::InferenceMode inference_mode;
    inference = lm->forward(ids);
  }
  CHECK(torch::equal(two, with_grad.detach()));
  CHECK(torch::equal(two, inference));
  // Across thread counts the matrix products' sums may be ordered differently: OpenBLAS's
  // SkylakeX kernels give the same bits with 1 and 2 threads, its Haswell and Zen kernels on an
  // AMD EPYC (Zen 3) do not (seen 2026-12-04). Rounding, not a different computation:
  const double apart = max_diff(one, two), scale = two.abs().max().item<double>();
  MESSAGE("1 thread against 2: max |logit difference| " << apart << " of logits up to " << scale);
  CHECK(apart <= 1e-5 * std::max(1.0, scale));
}

TEST_CASE("gradients through causal attention equal those through the masked path") {
  auto lm = tiny_lm();
  auto ids = random_ids(2, 130);
  auto grads = [&](bool masked) {
    lm->zero_grad();
    auto logits = masked ? lm->forward(ids, torch::ones({2, 130}, torch::kLong)) : lm->forward(ids);
    torch::log_softmax(logits, -1).select(-1, 3).sum().backward();
    std::vector<torch::Tensor> out;
    for (auto& p : lm->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  auto plain = grads(false), masked = grads(true);
  REQUIRE(plain.size() == masked.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    worst = std::max(worst, max_diff(plain[i], masked[i]));
    scale = std::max(scale, masked[i].abs().max().item<double>());
  }
  MESSAGE("max |gradient difference| " << worst << " (largest gradient " << scale << ")");
  CHECK(scale > 1e-2);
  CHECK(worst < 1e-5 * scale);
}

TEST_CASE("a single-row linear (matrix-vector product) equals the batched one") {
  auto lm = tiny_lm();
  torch::NoGradGuard no_grad;
  auto& attn = *lm->model->layers->ptr<ordo::model::DecoderLayerImpl>(0)->self_attn;
  torch::manual_seed(2);
  auto x = torch::randn({4, 48});
  auto batched = attn.q_proj(x);
  for (std::int64_t r = 0; r < 4; ++r) {
    auto row = attn.q_proj(x.slice(0, r, r + 1).view({1, 1, 48}));
    CHECK(row.sizes() == torch::IntArrayRef({1, 1, 48}));
    CHECK(max_diff(row.view({48}), batched[r]) < 1e-5);
  }
  // the tied head: one token's logits equal that row of a longer forward
  auto ids = random_ids(1, 9);
  ordo::model::kv_cache cache;
  lm->forward(ids.slice(1, 0, 8), {}, &cache);
  auto last = lm->forward(ids.slice(1, 8, 9), {}, &cache);
  CHECK(max_diff(last[0][0], lm->forward(ids)[0][8]) < 1e-5);
}
