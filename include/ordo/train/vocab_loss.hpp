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
// order): an opt-in path (Context::vocab_loss_chunk), float32 only.
#pragma once

#include <algorithm>  // std::min
#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument

#include <torch/torch.h>

namespace ordo::train {

/// Sums over the rows, as distill::Terms has them.
struct kd_sums {
  torch::Tensor loss;  ///< (1 - alpha) * ce + alpha * T^2 * kl, differentiable
  torch::Tensor ce;    ///< summed cross-entropy (no gradient)
  torch::Tensor kl;    ///< summed KL(teacher_T || student_T) over the shared vocabulary (no gradient)
};

namespace detail {

class chunked_kd : public torch::autograd::Function<chunked_kd> {
 public:
  // h [N, d] and w [V, d] float32; q [N, Vq] teacher logits (any float dtype, no gradient);
  // y [N] int64 labels in [0, V).
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h,
                                                const torch::Tensor& w, const torch::Tensor& q,
                                                const torch::Tensor& y, double temperature, double alpha,
                                                std::int64_t chunk) {
    const auto N = h.size(0), V = w.size(0), Vk = std::min(V, q.size(1));
    const auto f32 = h.options().dtype(torch::kFloat32);
    auto grad_h = torch::empty_like(h);
    auto grad_w = torch::zeros_like(w);
    auto ce = torch::zeros({}, f32), kl = torch::zeros({}, f32);
    for (std::int64_t a = 0; a < N; a += chunk) {
      const auto b = std::min(N, a + chunk);
      const auto hc = h.slice(0, a, b);
      const auto yc = y.slice(0, a, b).unsqueeze(1);
      auto s = torch::mm(hc, w.t());  // [n, V]
      // cross-entropy: logsumexp(s) - s[y]
      const auto log_p = torch::log_softmax(s, 1);
      ce -= log_p.gather(1, yc).sum();
      // KL at temperature T over the first Vk entries
      const auto log_ps = torch::log_softmax(s.slice(1, 0, Vk) / temperature, 1);
      const auto log_pt = torch::log_softmax(q.slice(0, a, b).slice(1, 0, Vk).to(torch::kFloat32) / temperature, 1);
      auto pt = log_pt.exp();
      kl += (pt * (log_pt - log_ps)).sum();
      // d loss / d s, in place of s
      auto g = s.copy_(log_p).exp_().mul_(1.0 - alpha);
      g.scatter_add_(1, yc, torch::full({b - a, 1}, -(1.0 - alpha), f32));
      g.slice(1, 0, Vk).add_(log_ps.exp().sub_(pt).mul_(alpha * temperature));
      grad_h.slice(0, a, b).copy_(torch::mm(g, w));
      grad_w.addmm_(g.t(), hc);
    }
    ctx->save_for_backward({grad_h, grad_w});
    auto loss = ce * (1.0 - alpha) + kl * (alpha * temperature * temperature);
    ctx->mark_non_differentiable({ce, kl});
    return {loss, ce, kl};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& go = grad_outputs[0];
    return {saved[0] * go, saved[1] * go, {}, {}, {}, {}, {}};
  }
};

}  // namespace detail

/// The KD loss (distill::loss_terms' formula) of the rows of `hidden` [N, d] through the head
/// weight `w` [V, d] (both float32; gradients flow into both), against the teacher's logits
/// `teacher_logits` [N, Vq] (KL over the first min(V, Vq) entries) and the targets `labels` [N]
/// in [0, V), `chunk_rows` rows at a time.
inline kd_sums chunked_kd_loss(const torch::Tensor& hidden, const torch::Tensor& w, const torch::Tensor& teacher_logits,
                               const torch::Tensor& labels, double temperature, double alpha,
                               std::int64_t chunk_rows) {
  if (chunk_rows < 1) throw std::invalid_argument("ordo::train::chunked_kd_loss: chunk_rows must be >= 1");
  if (!(temperature > 0)) throw std::invalid_argument("ordo::train::chunked_kd_loss: the temperature must be positive");
  if (hidden.dim() != 2 || w.dim() != 2 || hidden.size(1) != w.size(1))
    throw std::invalid_argument("ordo::train::chunked_kd_loss: hidden must be [rows, d] and the head weight [vocab, d]");
  if (hidden.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32)
    throw std::invalid_argument("ordo::train::chunked_kd_loss: hidden states and head weight must be float32");
  if (teacher_logits.dim() != 2 || teacher_logits.size(0) != hidden.size(0) || labels.dim() != 1 ||
      labels.size(0) != hidden.size(0))
    throw std::invalid_argument(
        "ordo::train::chunked_kd_loss: teacher logits [rows, vocab] and labels [rows] must have hidden's rows");
  auto out = detail::chunked_kd::apply(hidden, w, teacher_logits.detach(), labels, temperature, alpha, chunk_rows);
  return {out[0], out[1], out[2]};
}

}  // namespace ordo::train
