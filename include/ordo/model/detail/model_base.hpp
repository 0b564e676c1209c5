// ordo/model/detail/model_base.hpp — what DenseModel and QuantizedModel both hold: the network,
// and what never changes along a pipeline (tokenizer, chat template, source path).
//
// Value semantics: a copy is a deep copy (NF4 weights, immutable, are shared), which is what lets
// the study executor reuse an intermediate model for several pipelines.
#pragma once

#include <cstddef>     // std::size_t
#include <filesystem>  // std::filesystem::path
#include <memory>      // std::shared_ptr
#include <optional>    // std::optional

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>       // CausalLM
#include <ordo/model/transform.hpp>     // clone, model_bytes
#include <ordo/text/chat_template.hpp>  // ChatTemplate
#include <ordo/text/tokenizer.hpp>      // Tokenizer

namespace ordo {

namespace detail {

// What both model types hold: the network, and what never changes along a pipeline.
template <class State>
class model_base {
 public:
  using state = State;

  model_base(model::CausalLM lm, std::shared_ptr<const Tokenizer> tokenizer, std::optional<ChatTemplate> chat,
             std::filesystem::path source)
      : lm_(std::move(lm)), tokenizer_(std::move(tokenizer)), chat_(std::move(chat)), source_(std::move(source)) {}
  model_base(const model_base& other)
      : lm_(model::clone(other.lm_)), tokenizer_(other.tokenizer_), chat_(other.chat_), source_(other.source_) {}
  model_base& operator=(const model_base& other) {
    if (this != &other) *this = model_base(other);
    return *this;
  }
  model_base(model_base&&) noexcept = default;
  model_base& operator=(model_base&&) noexcept = default;

  model::CausalLM& lm() { return lm_; }
  const model::CausalLM& lm() const { return lm_; }
  const model::decoder_config& config() const { return lm_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<const Tokenizer> shared_tokenizer() const { return tokenizer_; }
  const std::optional<ChatTemplate>& chat_template() const { return chat_; }
  const std::filesystem::path& source() const { return source_; }

  /// Logits [B, T, vocab] (fp32), without gradients.
  torch::Tensor logits(const torch::Tensor& ids, const torch::Tensor& mask = {}) const {
    torch::NoGradGuard no_grad;
    return const_cast<model::CausalLM&>(lm_)->forward(ids, mask);
  }
  /// Bytes of the model's tensors in memory (NF4 data + dense parts).
  std::size_t memory_bytes() const { return model::model_bytes(const_cast<model::CausalLM&>(lm_)); }

 protected:
  model::CausalLM lm_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_;
  std::filesystem::path source_;
};

}  // namespace detail

}  // namespace ordo
