// ordo/train/vocab_loss.hpp — the distillation loss over the vocabulary, fused and in row chunks.
//
//   auto t = ordo::train::chunked_kd_loss(h, w, teacher_logits, labels, T, alpha, 128);
//   t.loss.backward();  // gradients into h (and what made it) and into w
//
// The unfused loss (stages/distill.hpp, distill::loss_terms) materializes the student's logits
// [rows, vocab] and, for autograd, several tensors of that size more (log-softmaxes at 1 and at
// T, their exponentials, the KL product); with SmolLM2's 49152-entry vocabulary each is 100 MB
// for 512 rows. Here the head's product, both log-softmaxes, the cross-entropy and the KL run one
// chunk of rows at a time, and the gradient of the loss with respect to the chunk's logits is
// formed at once from their closed forms,
//
//   d/ds [(1 - alpha) CE(s, y) + alpha T^2 KL(p_t,T || p_s,T)]
//       = (1 - alpha) (softmax(s) - onehot(y)) + alpha T (softmax(s / T) - p_t,T),
//
// and multiplied into the gradients of the hidden states (g w) and of the head (g^T h); the
// backward pass only scales them by the loss's incoming gradient. The same matrix products as
// autograd's (forward, and the two of the backward), far fewer passes over [rows, vocab], and one
// chunk of it in memory. Sums differ from the unfused loss's in the last digits (other rounding
// order): an opt-in path (Context::vocab_loss_chunk).
//
// Precision: `products` = float32 multiplies in fp32. bfloat16 is mixed precision as autocast
// does it: the three products take bf16 copies of h, w and g and give bf16 results (the logits
// are bf16's, as the unfused loss under autocast sees them), everything over the vocabulary
// (softmaxes, sums, g) is fp32, and the gradients come back fp32. The head's gradient is one
// product over many rows: the chunks' g are kept in bf16 (2 bytes per logit instead of the
// unfused path's several fp32 tensors) and multiplied when they reach `bf16_grad_w_bytes`
// (256 MiB by default) or the last row, so that its bf16 result is rounded once per batch of
// rows, not once per chunk.
#pragma once

#include <algorithm>  // std::min
#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string
#include <vector>     // std::vector

#include <c10/core/impl/LocalDispatchKeySet.h>  // ExcludeDispatchKeyGuard (autocast off inside)
#include <torch/torch.h>

namespace ordo::train {

/// Sums over the rows, as distill::Terms has them.
struct kd_sums {
  torch::Tensor loss;  ///< (1 - alpha) * ce + alpha * T^2 * kl, differentiable
  torch::Tensor ce;    ///< summed cross-entropy (no gradient)
  torch::Tensor kl;    ///< summed KL(teacher_T || student_T) over the shared vocabulary (no gradient)
};

namespace detail {

/// The loss's terms and d loss / d s for the logits `s` [n, V] (any float dtype) of one chunk:
/// adds the chunk's summed cross-entropy and KL to `ce` and `kl`, and writes g [n, V] into `g`
/// (any float dtype; it may be `s` itself when s is fp32). Everything over the vocabulary in
/// fp32. by_rows (the CPU's way): a row at a time, each thread on its own rows, so that a row's
/// softmaxes and g (~200 KB each for 49152 entries) are formed in cache instead of in ~25 passes
/// over the whole chunk in memory; otherwise (CUDA's way) on the whole chunk at once. Same g
/// either way; by rows the sums are taken per row (in row order, whatever the threads), so they
/// differ from the chunk's in the last digits.
inline void logit_gradients(const torch::Tensor& s, const torch::Tensor& q, const torch::Tensor& y, std::int64_t Vk,
                            double temperature, double alpha, torch::Tensor& g, double& ce, double& kl,
                            bool by_rows) {
  const auto f32 = torch::kFloat32;
  const float minus_ce_weight = static_cast<float>(-(1.0 - alpha));
  if (!by_rows) {
    const auto yc = y.unsqueeze(1);
    auto sf = s.to(f32);
    const auto log_p = torch::log_softmax(sf, 1);
    const auto log_ps = torch::log_softmax(sf.slice(1, 0, Vk) / temperature, 1);
    const auto log_pt = torch::log_softmax(q.slice(1, 0, Vk).to(f32) / temperature, 1);
    auto pt = log_pt.exp();
    ce -= log_p.gather(1, yc).sum().item<double>();
    kl += (pt * (log_pt - log_ps)).sum().item<double>();
    // sf is read no more: g is formed in it, unless it is s itself (fp32) and g is elsewhere
    auto gf = (sf.is_same(s) && !g.is_same(s) ? torch::empty_like(sf) : sf).copy_(log_p).exp_().mul_(1.0 - alpha);
    gf.scatter_add_(1, yc, torch::full({s.size(0), 1}, minus_ce_weight, sf.options()));
    gf.slice(1, 0, Vk).add_(log_ps.exp().sub_(pt).mul_(alpha * temperature));
    if (gf.data_ptr() != g.data_ptr()) g.copy_(gf);
    return;
  }
  const auto n = s.size(0);
  const auto yc = y.contiguous();
  const auto* labels = yc.data_ptr<std::int64_t>();
  std::vector<double> ce_rows(static_cast<std::size_t>(n)), kl_rows(static_cast<std::size_t>(n));
  at::parallel_for(0, n, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {  // LibTorch's operators run on this thread alone here
      const auto sr = s[r].to(f32);
      const auto label = labels[r];
      auto log_p = torch::log_softmax(sr, 0);
      ce_rows[static_cast<std::size_t>(r)] = -static_cast<double>(log_p.data_ptr<float>()[label]);
      auto log_ps = torch::log_softmax(sr.slice(0, 0, Vk) / temperature, 0);
      const auto log_pt = torch::log_softmax(q[r].slice(0, 0, Vk).to(f32) / temperature, 0);
      const auto pt = log_pt.exp();
      kl_rows[static_cast<std::size_t>(r)] = (pt * (log_pt - log_ps)).sum().item<double>();
      auto gr = log_p.exp_().mul_(1.0 - alpha);
      gr.data_ptr<float>()[label] += minus_ce_weight;
      gr.slice(0, 0, Vk).add_(log_ps.exp_().sub_(pt).mul_(alpha * temperature));
      g[r].copy_(gr);
    }
  });
  for (std::int64_t r = 0; r < n; ++r) {
    ce += ce_rows[static_cast<std::size_t>(r)];
    kl += kl_rows[static_cast<std::size_t>(r)];
  }
}

class chunked_kd : public torch::autograd::Function<chunked_kd> {
 public:
  // h [N, d] and w [V, d] float32; q [N, Vq] teacher logits (any float dtype, no gradient);
  // y [N] int64 labels in [0, V); products float32 or bfloat16 (see the top of the file).
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h,
                                                const torch::Tensor& w, const torch::Tensor& q,
                                                const torch::Tensor& y, double temperature, double alpha,
                                                std::int64_t chunk, torch::ScalarType products,
                                                std::int64_t bf16_grad_w_bytes) {
    // The dtypes below are chosen here; an autocast around the call must not change them.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto N = h.size(0), V = w.size(0), Vk = std::min(V, q.size(1));
    const auto f32 = h.options().dtype(torch::kFloat32);
    const bool mixed = products != torch::kFloat32;
    const auto wp = mixed ? w.to(products) : w;  // the head in the products' dtype, cast once
    const bool by_rows = h.device().is_cpu();
    const auto hp = mixed ? h.to(products) : h;
    auto grad_h = torch::empty_like(h);
    auto grad_w = torch::zeros_like(w);
    double ce = 0, kl = 0;
    // mixed: the g of rows [flushed, a) wait in g_rows (bf16) for the head's gradient
    const std::int64_t keep_rows =
        mixed ? std::max<std::int64_t>(chunk, bf16_grad_w_bytes / std::max<std::int64_t>(1, V * 2)) : 0;
    torch::Tensor g_rows;
    std::int64_t flushed = 0;
    auto flush = [&](std::int64_t upto) {
      if (upto == flushed) return;
      grad_w.add_(torch::mm(g_rows.slice(0, 0, upto - flushed).t(), hp.slice(0, flushed, upto)));
      flushed = upto;
    };
    if (mixed) g_rows = torch::empty({std::min(N, keep_rows), V}, h.options().dtype(products));
    for (std::int64_t a = 0; a < N; a += chunk) {
      const auto b = std::min(N, a + chunk);
      const auto hc = hp.slice(0, a, b);
      auto s = torch::mm(hc, wp.t());  // [n, V] logits, in the products' dtype
      if (!mixed) {  // g in place of s
        logit_gradients(s, q.slice(0, a, b), y.slice(0, a, b), Vk, temperature, alpha, s, ce, kl, by_rows);
        grad_h.slice(0, a, b).copy_(torch::mm(s, w));
        grad_w.addmm_(s.t(), hc);
        continue;
      }
      if (b - flushed > g_rows.size(0)) flush(a);
      auto gp = g_rows.slice(0, a - flushed, b - flushed);
      logit_gradients(s, q.slice(0, a, b), y.slice(0, a, b), Vk, temperature, alpha, gp, ce, kl, by_rows);
      grad_h.slice(0, a, b).copy_(torch::mm(gp, wp));
    }
    if (mixed) flush(N);
    ctx->save_for_backward({grad_h, grad_w});
    const auto ce_t = torch::full({}, ce, f32), kl_t = torch::full({}, kl, f32);
    auto loss = ce_t * (1.0 - alpha) + kl_t * (alpha * temperature * temperature);
    ctx->mark_non_differentiable({ce_t, kl_t});
    return {loss, ce_t, kl_t};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& go = grad_outputs[0];
    return {saved[0] * go, saved[1] * go, {}, {}, {}, {}, {}, {}, {}};
  }
};

}  // namespace detail

/// The KD loss (distill::loss_terms' formula) of the rows of `hidden` [N, d] through the head
/// weight `w` [V, d] (both float32; gradients flow into both), against the teacher's logits
/// `teacher_logits` [N, Vq] (KL over the first min(V, Vq) entries) and the targets `labels` [N]
/// in [0, V), `chunk_rows` rows at a time; the products in `products` (float32, or bfloat16 as
/// mixed precision), the head's gradient gathered over `bf16_grad_w_bytes` of bf16 rows.
inline kd_sums chunked_kd_loss(const torch::Tensor& hidden, const torch::Tensor& w, const torch::Tensor& teacher_logits,
                               const torch::Tensor& labels, double temperature, double alpha,
                               std::int64_t chunk_rows, torch::ScalarType products = torch::kFloat32,
                               std::int64_t bf16_grad_w_bytes = std::int64_t{256} << 20) {
  if (chunk_rows < 1) throw std::invalid_argument("ordo::train::chunked_kd_loss: chunk_rows must be >= 1");
  if (!(temperature > 0)) throw std::invalid_argument("ordo::train::chunked_kd_loss: the temperature must be positive");
  if (products != torch::kFloat32 && products != torch::kBFloat16)
    throw std::invalid_argument(std::string("ordo::train::chunked_kd_loss: products must be float32 or bfloat16 (got ") +
                                c10::toString(products) + ")");
  if (bf16_grad_w_bytes < 1)
    throw std::invalid_argument("ordo::train::chunked_kd_loss: bf16_grad_w_bytes must be positive");
  if (hidden.dim() != 2 || w.dim() != 2 || hidden.size(1) != w.size(1))
    throw std::invalid_argument("ordo::train::chunked_kd_loss: hidden must be [rows, d] and the head weight [vocab, d]");
  if (hidden.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32)
    throw std::invalid_argument("ordo::train::chunked_kd_loss: hidden states and head weight must be float32");
  if (teacher_logits.dim() != 2 || teacher_logits.size(0) != hidden.size(0) || labels.dim() != 1 ||
      labels.size(0) != hidden.size(0))
    throw std::invalid_argument(
        "ordo::train::chunked_kd_loss: teacher logits [rows, vocab] and labels [rows] must have hidden's rows");
  auto out = detail::chunked_kd::apply(hidden, w, teacher_logits.detach(), labels, temperature, alpha, chunk_rows,
                                       products, bf16_grad_w_bytes);
  return {out[0], out[1], out[2]};
}

}  // namespace ordo::train
