// ordo/model/dense_model.hpp — ordo::DenseModel: trainable floating-point weights, the run-time
// model type of the typestate ordo::dense (what Prune and Distill take and give).
//
// Stage overloads take `const DenseModel&` and return a new model; a copy is a deep copy.
#pragma once

#include <filesystem>  // std::filesystem::path
#include <memory>      // std::make_shared
#include <utility>     // std::move

#include <torch/torch.h>

#include <ordo/model/detail/model_base.hpp>  // model_base
#include <ordo/model/language_model.hpp>     // load_language_model
#include <ordo/pipeline/state.hpp>           // dense

namespace ordo {

class DenseModel : public detail::model_base<dense> {
 public:
  using model_base::model_base;

  /// A .gguf file or a Hugging Face directory; the embedded default when `path` is empty. The
  /// parameters are made on `where.device` in `where.dtype` (float32 on the CPU by default).
  static DenseModel load(const std::filesystem::path& path = {}, const model::placement& where = {}) {
    auto m = model::load_language_model(path, where);
    return DenseModel(m.lm, std::make_shared<const Tokenizer>(std::move(m.tokenizer)), std::move(m.chat), m.source);
  }
};

}  // namespace ordo
