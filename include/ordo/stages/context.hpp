// ordo/stages/context.hpp — what a stage needs at run time besides the model.
#pragma once

#include <cstdint>     // std::int64_t, std::uint64_t
#include <filesystem>  // std::filesystem::path
#include <functional>  // std::function
#include <memory>      // std::shared_ptr
#include <string>      // std::string
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/stages/models.hpp>  // DenseModel

namespace ordo {

/// One training or evaluation sequence: token ids, and the targets to score (-100: not scored,
/// e.g. padding, or the user's turns when training on assistant turns only).
struct Example {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> labels;  // same length as ids; labels[t] is the target at t
};

/// Sizes of the work each stage does. Defaults are the `quick` preset's scale.
struct Budget {
  std::int64_t calibration_samples = 32;  // pruning importance (the paper: 500)
  std::int64_t train_samples = 64;        // per training stage (the paper: 1500 / 10k)
  std::int64_t sequence_length = 128;     // (the paper: 512)
  std::int64_t epochs = 1;                // (the paper: 2)
  std::int64_t batch_size = 4;
  std::int64_t grad_accumulation = 1;
  double prune_learning_rate = 5e-5;      // recovery fine-tune after pruning (the paper)
  double distill_learning_rate = 2e-5;    // (the paper)
  double weight_decay = 0.0;
  double warmup_fraction = 0.1;
  double max_grad_norm = 1.0;
  bool prune_recovery = true;             // fine-tune after pruning
  /// Share of the weight term in the pruning importance (the activation term gets the rest).
  /// The paper: 0.5; beyond it, 0 ranks neurons far better on SmolLM2-135M (docs/pruning.md).
  double prune_weight_share = 0.5;
};

/// Progress of long work, one line at a time (the caller decides whether a terminal shows it).
using progress_fn = std::function<void(const std::string& what, double fraction, const std::string& detail)>;

struct Context {
  std::vector<Example> calibration;  // pruning importance
  std::vector<Example> train;        // recovery fine-tune and distillation
  std::vector<Example> evaluation;   // never used for training
  /// The distillation teacher; default: a frozen copy of the uncompressed base model.
  std::shared_ptr<const DenseModel> teacher;
  Budget budget;
  std::uint64_t seed = 0;
  torch::ScalarType train_dtype = torch::kFloat32;  // bf16 pays on CPUs with AVX-512 BF16
  std::filesystem::path work_dir;                    // checkpoints of long stages ("" : none)
  progress_fn progress;

  void report(const std::string& what, double fraction, const std::string& detail = {}) const {
    if (progress) progress(what, fraction, detail);
  }
};

}  // namespace ordo
