// ordo/stages/distill.hpp — the KD stage at run time.
//
//   apply(Distill<T, A>, const DenseModel& student, Context&) -> DenseModel
//
// Trains a copy of the student on context.train against context.teacher (a frozen DenseModel
// with the same tokenizer; the study sets the uncompressed base model) with, per scored token,
//
//   loss = (1 - alpha) * CE(student, label) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
//
// averaged over the scored tokens of each optimizer step (train/trainer.hpp). Both terms use the
// same positions: padding and unscored labels (-100) count in neither, unlike the paper's
// script, which sums KL over padding too and divides by the batch size. When teacher and
// student have different numbers of logits (Qwen2.5-3B: 151936, 7B: 152064) the KL term uses
// the shared first rows; the CE term uses all of the student's. No gradient flows into the
// teacher; it runs in its own dtype (a bf16 teacher saves memory) and gives fp32 logits.
// Budget fields used: train_samples, sequence_length, epochs, batch_size, grad_accumulation,
// distill_learning_rate, weight_decay, warmup_fraction, max_grad_norm; Context::seed seeds the
// order, Context::work_dir (when set) holds a resumable checkpoint.
#pragma once

#include <cstdint>    // std::int64_t
#include <optional>   // std::nullopt
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string
#include <vector>     // std::vector

#include <torch/torch.h>

#include <ordo/data/examples.hpp>          // truncated, check_example
#include <ordo/model/transform.hpp>        // clone
#include <ordo/pipeline/stages.hpp>        // Distill
#include <ordo/stages/context.hpp>         // Context, Budget
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/train/trainer.hpp>          // train, TrainOptions, token_cross_entropy_sum
#include <ordo/train/vocab_loss.hpp>       // chunked_kd_loss

namespace ordo {

namespace distill {

/// Sums over the scored targets of a batch, and their count.
struct Terms {
  torch::Tensor loss;  ///< (1 - alpha) * ce + alpha * T^2 * kl
  torch::Tensor ce;    ///< summed next-token cross-entropy of the student
  torch::Tensor kl;    ///< summed KL(teacher_T || student_T) over the shared vocabulary
  std::int64_t tokens = 0;
};

/// Logits [B, S, V*] (student with gradients, teacher without); labels [B, S] with -100 where
/// not scored (padding included). The logits at t are scored against labels at t + 1.
inline Terms loss_terms(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                        const torch::Tensor& labels, double temperature, double alpha) {
  TORCH_CHECK(
      student_logits.dim() == 3 && teacher_logits.dim() == 3 && student_logits.size(0) == teacher_logits.size(0) &&
          student_logits.size(1) == teacher_logits.size(1),
      "ordo::distill::loss_terms: student and teacher logits must be [batch, tokens, vocab] of equal batch and tokens");
  TORCH_CHECK(temperature > 0, "ordo::distill::loss_terms: the temperature must be positive");
  Terms t;
  const auto V = std::min(student_logits.size(-1), teacher_logits.size(-1));
  const auto scored = labels.slice(1, 1) != data::ignore_index;  // [B, S-1]
  t.tokens = scored.sum().item<std::int64_t>();
  // One slice of the student's logits for both terms, and none over a vocabulary the teacher
  // shares whole: the backward pass then pads one gradient with zeros where it padded three (a
  // slice's gradient is a zero tensor with the slice copied in), with the same values.
  const auto shifted = student_logits.slice(1, 0, student_logits.size(1) - 1);
  t.ce = train::shifted_cross_entropy_sum(shifted, labels);
  // fp32 at least, whatever the logits' dtype (bf16 teachers, mixed precision): softmax over a
  // vocabulary needs the range and the precision.
  auto s = train::upcast((V == shifted.size(-1) ? shifted : shifted.slice(2, 0, V)).index({scored}));
  // the teacher may run on another device (--teacher-device): its logits come to the student's
  auto q = teacher_logits.slice(1, 0, teacher_logits.size(1) - 1)
               .slice(2, 0, V)
               .index({scored.to(teacher_logits.device())})
               .to(s.device(), s.scalar_type());
  auto log_ps = torch::log_softmax(s / temperature, -1);
  auto log_pt = torch::log_softmax(q / temperature, -1).detach();
  t.kl = (log_pt.exp() * (log_pt - log_ps)).sum();
  t.loss = (1.0 - alpha) * t.ce + alpha * temperature * temperature * t.kl;
  return t;
}

/// Throws when the two models do not share a tokenizer (compared token by token).
inline void check_same_tokenizer(const DenseModel& student, const DenseModel& teacher, const std::string& who) {
  const auto a = student.shared_tokenizer(), b = teacher.shared_tokenizer();
  if (a == b) return;
  if (!a || !b)
    throw std::invalid_argument(who +
                                ": only one of student and teacher has a tokenizer; cannot check that they match");
  if (a->vocab_size() != b->vocab_size())
    throw std::invalid_argument(who + ": the teacher's tokenizer (" + std::to_string(b->vocab_size()) +
                                " tokens) is not the student's (" + std::to_string(a->vocab_size()) + " tokens)");
  for (std::size_t i = 0; i < a->vocab_size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    if (a->token_bytes(id) != b->token_bytes(id))
      throw std::invalid_argument(who + ": the teacher's tokenizer is not the student's (token " + std::to_string(i) +
                                  " differs)");
  }
}

}  // namespace distill

template <class Temperature, class Alpha>
DenseModel apply(const Distill<Temperature, Alpha>& stage, const DenseModel& model, Context& context) {
  using S = Distill<Temperature, Alpha>;
  const std::string who = "ordo::" + S::describe();
  if (!context.teacher)
    throw std::invalid_argument(who +
                                ": Context::teacher is not set; give it a frozen DenseModel with the student's "
                                "tokenizer (the study uses the uncompressed base model)");
  const auto& teacher = *context.teacher;
  distill::check_same_tokenizer(model, teacher, who);
  auto options = options_from_budget(context.budget, context.budget.distill_learning_rate, who);
  options.seed = context.seed;
  options.label = "distill";
  options.compute_dtype = context.train_dtype;
  options.checkpoint_dir = context.work_dir;  // "" : no checkpoints
  options.checkpoint_seconds = context.checkpoint_seconds;
  options.checkpoint_at_end = context.checkpoint_at_end;
  options.group = context.group;
  options.fused_adamw = context.fused_adamw;
  if (context.train.empty()) throw std::invalid_argument(who + ": Context::train holds no examples to distill on");

  const auto n = std::min<std::int64_t>(context.budget.train_samples, static_cast<std::int64_t>(context.train.size()));
  std::vector<Example> examples;
  const auto teacher_vocab = teacher.config().vocab_size;
  for (std::int64_t i = 0; i < n; ++i) {
    examples.push_back(data::truncated(context.train[static_cast<std::size_t>(i)], context.budget.sequence_length));
    data::check_example(examples.back(), teacher_vocab, "distill: train example " + std::to_string(i) + " (teacher)");
  }

  context.report(stage.describe(), 0.0, "");
  auto student = model::clone(model.lm());
  for (auto& p : student->parameters()) p.set_requires_grad(true);
  auto teacher_lm = const_cast<DenseModel&>(teacher).lm();  // a handle: the teacher itself, frozen
  teacher_lm->eval();
  // A CPU teacher under bf16 autocast multiplies with copies of its weights cast once for the
  // stage (CausalLM::keep_autocast_copies: the same values), not on every batch; they are
  // dropped when the stage ends, however it ends.
  struct teacher_copies {
    model::CausalLM lm;
    bool kept;
    ~teacher_copies() {
      if (kept) lm->keep_autocast_copies(std::nullopt);
    }
  } copies{teacher_lm, context.train_dtype != torch::kFloat32 && teacher_lm->device().is_cpu()};
  if (copies.kept) teacher_lm->keep_autocast_copies(context.train_dtype);
  const double T = S::temperature, alpha = S::alpha;
  const auto chunk = context.vocab_loss_chunk;
  if (chunk < 0) throw std::invalid_argument(who + ": Context::vocab_loss_chunk must be >= 0");
  if (chunk > 0 && (!student->head_weight().defined() || student->head_weight().scalar_type() != torch::kFloat32))
    throw std::invalid_argument(who + ": the fused vocabulary loss (Context::vocab_loss_chunk) needs a float32 dense head");
  auto loss = [&](model::CausalLM& lm, const data::Batch& b) {
    torch::Tensor target;
    if (context.teacher_logits) {
      target = context.teacher_logits->forward(teacher_lm, b.ids, b.attention_mask);
    } else {
      torch::NoGradGuard no_grad;
      target = teacher_lm->forward(b.ids, b.attention_mask);
    }
    if (chunk == 0) return distill::loss_terms(lm->forward(b.ids, b.attention_mask), target, b.labels, T, alpha).loss;
    const auto h = lm->hidden(b.ids, b.attention_mask);
    const auto scored = b.labels.slice(1, 1) != data::ignore_index;  // [B, S-1]
    const auto rows = h.slice(1, 0, h.size(1) - 1).index({scored.to(h.device())});
    const auto q = target.slice(1, 0, target.size(1) - 1).index({scored.to(target.device())}).to(h.device());
    const auto y = b.labels.slice(1, 1).index({scored}).to(h.device());
    return train::chunked_kd_loss(rows, lm->head_weight(), q, y, T, alpha, chunk, context.train_dtype).loss;
  };
  train::train(student, examples, loss, options, context.progress);
  student->eval();
  DenseModel out(student, model.shared_tokenizer(), model.chat_template(), model.source());
  context.report(stage.describe(), 1.0, "");
  return out;
}

}  // namespace ordo
