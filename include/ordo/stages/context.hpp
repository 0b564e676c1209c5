// ordo/stages/context.hpp — what a stage needs at run time besides the model.
#pragma once

#include <cstdint>     // std::uint64_t
#include <filesystem>  // std::filesystem::path
#include <memory>      // std::shared_ptr
#include <string>      // std::string
#include <utility>     // std::move
#include <vector>      // std::vector

#include <torch/torch.h>

#include <ordo/data/example.hpp>        // Example
#include <ordo/data/split.hpp>          // Splits
#include <ordo/model/dense_model.hpp>   // DenseModel
#include <ordo/model/logits_cache.hpp>  // logits_cache
#include <ordo/stages/budget.hpp>       // Budget
#include <ordo/train/progress.hpp>      // progress_fn

namespace ordo {

struct Context {
  std::vector<Example> calibration;  // pruning importance
  std::vector<Example> train;        // recovery fine-tune and distillation
  std::vector<Example> evaluation;   // never used for training
  /// The distillation teacher; default: a frozen copy of the uncompressed base model.
  std::shared_ptr<const DenseModel> teacher;
  /// Where distillation keeps the teacher's logits of the batches it has run, to give them again
  /// when a later stage distills on the same batches (model/logits_cache.hpp: exact, within its
  /// capacity). nullptr: the teacher runs on every batch of every stage.
  std::shared_ptr<model::logits_cache> teacher_logits;
  Budget budget;
  std::uint64_t seed = 0;
  torch::ScalarType train_dtype = torch::kFloat32;  // bf16 pays on CPUs with AVX-512 BF16
  /// > 0: distillation computes its loss over the vocabulary fused, this many rows at a time
  /// (train/vocab_loss.hpp; a dense fp32 head, fp32 or bf16 training; the last digits differ
  /// from the default, unfused loss). 0: the unfused loss.
  std::int64_t vocab_loss_chunk = 0;
  /// The training stages' AdamW step as one pass per parameter on the CPU, LibTorch's bits
  /// (train/fused_adamw.hpp). false: LibTorch's operators (a benchmark's comparison).
  bool fused_adamw = true;
  std::filesystem::path work_dir;                   // checkpoints of long stages ("" : none)
  /// With work_dir: a training checkpoint at most every so many seconds (0: at the end only),
  /// and whether the end of a training run writes one (a caller that keeps the stage's result
  /// itself, as the study does, needs none).
  double checkpoint_seconds = 0;
  bool checkpoint_at_end = true;
  progress_fn progress;
  /// Data parallelism (train/distributed.hpp): with a group, the training stages take each rank's
  /// share of every batch and pruning's calibration reduces its statistics over the ranks, so
  /// every rank computes the model one process computes. nullptr: one process.
  std::shared_ptr<dist::group> group;

  void report(const std::string& what, double fraction, const std::string& detail = {}) const {
    if (progress) progress(what, fraction, detail);
  }
};

/// Puts the splits into a Context.
inline void assign(Context& context, data::Splits s) {
  context.calibration = std::move(s.calibration);
  context.train = std::move(s.train);
  context.evaluation = std::move(s.evaluation);
}

}  // namespace ordo
