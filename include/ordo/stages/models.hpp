// ordo/stages/models.hpp — the two run-time model types that carry the typestate.
//
//   ordo::DenseModel      trainable floating-point weights   (state ordo::dense)
//   ordo::QuantizedModel  NF4 decoder linears, inference only (state ordo::nf4): forward,
//                         generate, save; no parameters for an optimizer
//
// Both have value semantics: a copy is a deep copy (NF4 weights, immutable, are shared), which
// is what lets the study executor reuse an intermediate model for several pipelines. Stage
// overloads take `const Model&` and return a new model.
#pragma once

#include <filesystem>  // std::filesystem::path
#include <memory>      // std::shared_ptr
#include <optional>    // std::optional
#include <string>      // std::string

#include <torch/torch.h>

#include <ordo/model/chat_template.hpp>   // ChatTemplate
#include <ordo/model/decoder.hpp>         // CausalLM
#include <ordo/model/language_model.hpp>  // load_language_model
#include <ordo/model/tokenizer.hpp>       // Tokenizer
#include <ordo/model/transform.hpp>       // clone, quantize_linears, model_bytes
#include <ordo/pipeline/state.hpp>        // dense, nf4

namespace ordo {

namespace detail {

// What both model types hold: the network, and what never changes along a pipeline.
template <class State>
class model_base {
 public:
  using state = State;

  model_base(model::CausalLM lm, std::shared_ptr<const Tokenizer> tokenizer,
             std::optional<ChatTemplate> chat, std::filesystem::path source)
      : lm_(std::move(lm)), tokenizer_(std::move(tokenizer)), chat_(std::move(chat)),
        source_(std::move(source)) {}
  model_base(const model_base& other)
      : lm_(model::clone(other.lm_)), tokenizer_(other.tokenizer_), chat_(other.chat_),
        source_(other.source_) {}
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

class DenseModel : public detail::model_base<dense> {
 public:
  using model_base::model_base;

  /// A .gguf file or a Hugging Face directory; the embedded default when `path` is empty.
  static DenseModel load(const std::filesystem::path& path = {}, torch::ScalarType dtype = torch::kFloat32) {
    auto m = model::load_language_model(path, dtype);
    return DenseModel(m.lm, std::make_shared<const Tokenizer>(std::move(m.tokenizer)), std::move(m.chat),
                      m.source);
  }
};

class QuantizedModel : public detail::model_base<nf4> {
 public:
  using model_base::model_base;
  std::size_t blocksize = 64;
  bool double_quantization = true;
};

}  // namespace ordo
