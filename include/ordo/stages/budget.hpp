// ordo/stages/budget.hpp — ordo::Budget, the sizes of the work each stage does, and the trainer's
// options a training stage derives from it.
#pragma once

#include <cmath>      // std::isfinite
#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <ordo/train/trainer.hpp>  // train::TrainOptions

namespace ordo {

/// The loss of the training that follows pruning (Budget::prune_recovery_loss).
enum class recovery_loss {
  cross_entropy,  ///< the paper: next-token cross-entropy on the training examples
  distillation    ///< Minitron: KL from the unpruned model's next-token distribution (temperature 1)
};

/// Sizes of the work each stage does. Defaults are the `quick` preset's scale.
struct Budget {
  std::int64_t calibration_samples = 32;  // pruning importance (the paper: 500)
  std::int64_t train_samples = 64;        // per training stage (the paper: 1500 / 10k)
  std::int64_t sequence_length = 128;     // (the paper: 512)
  std::int64_t epochs = 1;                // (the paper: 2)
  std::int64_t batch_size = 4;
  std::int64_t grad_accumulation = 1;
  double prune_learning_rate = 5e-5;    // recovery fine-tune after pruning (the paper)
  double distill_learning_rate = 2e-5;  // (the paper)
  double weight_decay = 0.0;
  double warmup_fraction = 0.1;
  double max_grad_norm = 1.0;
  bool prune_recovery = true;  // fine-tune after pruning
  recovery_loss prune_recovery_loss = recovery_loss::cross_entropy;
  /// Share of the weight term in the pruning importance (the activation term gets the rest).
  /// The paper: 0.5; beyond it, 0 ranks neurons far better on SmolLM2-135M (docs/pruning.md).
  double prune_weight_share = 0.5;
};

/// The trainer's options from a stage's Budget (epochs, batch_size, grad_accumulation,
/// weight_decay, warmup_fraction, max_grad_norm) and its learning rate; checks those fields and
/// train_samples and sequence_length, each error naming the Budget field and `who`. The caller
/// sets seed, checkpoint_dir and label.
inline train::TrainOptions options_from_budget(const Budget& b, double learning_rate, const std::string& who) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
  if (b.train_samples < 1)
    fail("Budget::train_samples must be at least 1 (got " + std::to_string(b.train_samples) + ")");
  if (b.sequence_length < 2)
    fail("Budget::sequence_length must be at least 2 (got " + std::to_string(b.sequence_length) + ")");
  if (b.epochs < 1) fail("Budget::epochs must be at least 1 (got " + std::to_string(b.epochs) + ")");
  if (b.batch_size < 1) fail("Budget::batch_size must be at least 1 (got " + std::to_string(b.batch_size) + ")");
  if (b.grad_accumulation < 1)
    fail("Budget::grad_accumulation must be at least 1 (got " + std::to_string(b.grad_accumulation) + ")");
  if (!(learning_rate > 0) || !std::isfinite(learning_rate)) fail("the learning rate must be positive and finite");
  if (!(b.warmup_fraction >= 0 && b.warmup_fraction < 1)) fail("Budget::warmup_fraction must lie within [0, 1)");
  if (!(b.max_grad_norm >= 0) || !std::isfinite(b.max_grad_norm))
    fail("Budget::max_grad_norm must be >= 0 (0: no clipping)");
  if (!(b.weight_decay >= 0)) fail("Budget::weight_decay must be >= 0");
  train::TrainOptions o;
  o.epochs = b.epochs;
  o.batch_size = b.batch_size;
  o.grad_accumulation = b.grad_accumulation;
  o.learning_rate = learning_rate;
  o.weight_decay = b.weight_decay;
  o.warmup_fraction = b.warmup_fraction;
  o.max_grad_norm = b.max_grad_norm;
  o.label = who;
  return o;
}

}  // namespace ordo
