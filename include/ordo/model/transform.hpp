// ordo/model/transform.hpp — whole-model operations on a CausalLM: deep copies, and switching
// the decoder's linear layers between dense and NF4 storage.
#pragma once

#include <functional>  // std::function
#include <memory>      // std::make_shared
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <utility>     // std::move

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>  // CausalLM, Linear, nf4_weight
#include <ordo/quant/nf4_cpu.hpp>  // quant::nf4::quantize

namespace ordo::model {

/// The seven linear layers of every decoder layer, by transformers' names.
inline constexpr const char* attention_linears[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
inline constexpr const char* mlp_linears[] = {"gate_proj", "up_proj", "down_proj"};

/// Calls f(qualified name, the layer's holder) for each decoder linear, in layer order.
/// f may replace the holder's module; the parent's registration is updated to match.
inline void for_each_decoder_linear(CausalLM& lm, const std::function<void(const std::string&, Linear&)>& f) {
  for (std::size_t i = 0; i < lm->model->layers->size(); ++i) {
    auto layer = lm->model->layers->ptr<DecoderLayerImpl>(i);
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    auto visit = [&](torch::nn::Module& parent, const std::string& parent_name, const char* name, Linear& holder) {
      auto before = holder.ptr();
      f(prefix + parent_name + "." + name, holder);
      if (holder.ptr() != before) parent.replace_module(name, holder);
    };
    auto& attn = *layer->self_attn;
    visit(attn, "self_attn", "q_proj", attn.q_proj);
    visit(attn, "self_attn", "k_proj", attn.k_proj);
    visit(attn, "self_attn", "v_proj", attn.v_proj);
    visit(attn, "self_attn", "o_proj", attn.o_proj);
    auto& mlp = *layer->mlp;
    visit(mlp, "mlp", "gate_proj", mlp.gate_proj);
    visit(mlp, "mlp", "up_proj", mlp.up_proj);
    visit(mlp, "mlp", "down_proj", mlp.down_proj);
  }
}

/// A deep copy on the source's device: dense parameters are cloned; NF4 weights (immutable)
/// are shared.
inline CausalLM clone(const CausalLM& source) {
  torch::NoGradGuard no_grad;
  CausalLM copy(source->config(), build_options(placement(source->device(), source->dtype()), /*draw=*/false));
  auto& src = const_cast<CausalLM&>(source);
  // First give the copy the same storage kinds, then copy every dense tensor by name.
  std::map<std::string, Linear> linears;
  for_each_decoder_linear(src, [&](const std::string& name, Linear& l) { linears.emplace(name, l); });
  for_each_decoder_linear(copy, [&](const std::string& name, Linear& l) {
    const Linear& from = linears.at(name);
    if (from->quantized()) l = Linear(from->nf4, l->bias.defined() ? l->bias : torch::Tensor());
    l->gemv_arithmetic = from->gemv_arithmetic;
  });
  auto from = src->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().set_data(from[p.key()].detach().clone());
  for (auto& p : copy->named_parameters()) p.value().set_requires_grad(from[p.key()].requires_grad());
  copy->train(src->is_training());
  if (src->nf4_head) {
    copy->nf4_head = Linear(src->nf4_head->nf4, torch::Tensor());  // immutable: shared
    copy->nf4_head->gemv_arithmetic = src->nf4_head->gemv_arithmetic;
  }
  copy->q8_head = src->q8_head;                                                        // immutable: shared
  return copy;
}

namespace detail {

/// The NF4 form of a dense weight [out, in]: quantized by ordo's CUDA kernels where it lies on a
/// CUDA device (the host path's bytes), else on the host; block scales rebuilt once.
inline std::shared_ptr<const nf4_weight> nf4_weight_of(const torch::Tensor& dense, std::size_t blocksize,
                                                       bool double_quant) {
  auto w = std::make_shared<nf4_weight>();
  if (auto on_device = nf4_cuda_quantize(dense, blocksize, double_quant)) {
    w->q = std::move(*on_device);
  } else {
    const auto host = dense.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    w->q = quant::nf4::quantize(std::span<const float>(host.data_ptr<float>(), static_cast<std::size_t>(host.numel())),
                                nf4_options(blocksize), double_quant);
  }
  w->scales = quant::nf4::block_scales(w->q);
  w->out_features = dense.size(0);
  w->in_features = dense.size(1);
  w->compute_dtype = dense.scalar_type();
  return w;
}

}  // namespace detail

/// Replaces every decoder linear by its NF4 form (bitsandbytes' rule; lm_head and embeddings
/// stay dense as transformers does). Returns the bytes of the packed weights and statistics.
inline std::size_t quantize_linears(CausalLM& lm, std::size_t blocksize, bool double_quant) {
  torch::NoGradGuard no_grad;
  std::size_t bytes = 0;
  for_each_decoder_linear(lm, [&](const std::string&, Linear& l) {
    if (l->quantized()) return;
    auto w = detail::nf4_weight_of(l->weight, blocksize, double_quant);
    bytes += w->q.storage_bytes();
    l = Linear(std::move(w), l->bias);
  });
  for (auto& p : lm->parameters()) p.set_requires_grad(false);
  return bytes;
}

/// What quantize_head stores the head's copy in.
enum class head_format {
  nf4,   ///< NF4, blocks of `blocksize`, no double quantization: ~0.56 bytes per weight
  q8_0,  ///< GGUF's Q8_0 (blocks of 32, an fp16 scale each): ~1.06 bytes per weight
};

/// The head format named `name` ("nf4" or "q8_0"); throws std::invalid_argument otherwise.
inline head_format parse_head_format(const std::string& name) {
  if (name == "nf4") return head_format::nf4;
  if (name == "q8_0") return head_format::q8_0;
  throw std::invalid_argument("head format \"" + name + "\": expected nf4 or q8_0");
}

/// Opt-in, for decoding: the LM head (the embeddings when tied) multiplies with a compact copy of
/// its weight, kept beside the dense weight, which the embeddings still use. Batch-1 decoding then
/// reads ~0.56 (NF4) or ~1.06 (Q8_0) bytes per head weight instead of 4 (on SmolLM2-135M the tied
/// head is 113 MB of fp32, a quarter of a decoding step on a 2-core CPU). Logits change by the
/// rounding of the head: NF4 costs ~10 % perplexity on SmolLM2-135M; Q8_0 gives back the very
/// values of a head that was Q8_0 already (the default GGUF's token_embd is; that copy is marked
/// same_values, and products of several rows keep the dense weight) and rounds others to 8 bits
/// (docs/nf4.md gives the figures). Not saved with the model. The head must be dense; a second
/// call replaces the first copy.
inline void quantize_head(CausalLM& lm, head_format format = head_format::nf4, std::size_t blocksize = 64) {
  torch::NoGradGuard no_grad;
  const auto dense = lm->head_weight();
  if (!dense.defined()) throw std::invalid_argument("quantize_head: the model's head is NF4 already");
  lm->nf4_head = Linear(nullptr);
  lm->q8_head = nullptr;
  if (format == head_format::q8_0) {
    // A head of Q8_0 values keeps its dense weight for products of several rows (same values).
    lm->q8_head = q8_weight::of(dense);
  } else {
    lm->nf4_head = Linear(detail::nf4_weight_of(dense, blocksize, /*double_quant=*/false), torch::Tensor());
  }
}

/// For decoding, without changing a value: when the LM head (the embeddings when tied) is dense
/// fp32 on the CPU and holds Q8_0 values already (q8_weight::of_if_same_values, one pass that checks
/// and quantizes; so it does when it was read from a GGUF that stores it in Q8_0, as the default
/// model's token_embd, and in the models ordo makes from such a file that keep fp32 embeddings),
/// it gets the 8-bit copy of quantize_head(lm, head_format::q8_0): a batch-1 decoding step reads
/// a quarter of the head's bytes and multiplies the same values (the one-row sums in another
/// order: logits within fp32 rounding, about 1e-9 relative); products of several rows use the
/// dense weight as before.
/// Returns whether it did; any other head is left as it is. Not saved with the model, and, like
/// quantize_head's copy, not updated when the weight changes afterwards: call it on a model that
/// is only decoded from then on.
inline bool use_q8_head_if_same_values(CausalLM& lm) {
  torch::NoGradGuard no_grad;
  if (lm->q8_head || lm->nf4_head) return false;
  const auto dense = lm->head_weight();
  if (!dense.defined() || dense.dim() != 2 || dense.scalar_type() != torch::kFloat32 || !dense.device().is_cpu())
    return false;
  auto copy = q8_weight::of_if_same_values(dense);
  if (!copy) return false;
  lm->q8_head = std::move(copy);
  return true;
}

/// The arithmetic of the CPU NF4 GEMV that multiplies one row (batch-1 decoding) in every NF4
/// linear of `lm`, its NF4 head included: quant::nf4::Gemv::exact (fp32, the default) or, opt-in,
/// Gemv::int16 (int16 weights and activations, exact integer sums per 32 weights; about 1e-4
/// relative error for fewer shuffles per weight: docs/nf4.md). Several rows (prefill, perplexity,
/// batches) are unaffected: they dequantize and multiply in fp32. A later quantize_head keeps the
/// default; call this after it.
inline void set_nf4_gemv(CausalLM& lm, quant::nf4::Gemv arithmetic) {
  for_each_decoder_linear(lm, [&](const std::string&, Linear& l) { l->gemv_arithmetic = arithmetic; });
  if (lm->nf4_head) lm->nf4_head->gemv_arithmetic = arithmetic;
}

/// The GEMV arithmetic named `name` ("exact" or "int16"); throws std::invalid_argument otherwise.
inline quant::nf4::Gemv parse_nf4_gemv(const std::string& name) {
  if (name == "exact") return quant::nf4::Gemv::exact;
  if (name == "int16") return quant::nf4::Gemv::int16;
  throw std::invalid_argument("NF4 GEMV arithmetic \"" + name + "\": expected exact or int16");
}

/// Replaces every NF4 decoder linear by a dense one holding exactly the values the NF4 weights
/// stand for (fp32, or `dtype`), trainable again, on the model's device.
inline void dequantize_linears(CausalLM& lm, torch::ScalarType dtype = torch::kFloat32) {
  torch::NoGradGuard no_grad;
  const auto device = lm->device();
  for_each_decoder_linear(lm, [&](const std::string&, Linear& l) {
    if (!l->quantized()) return;
    Linear dense(l->in_features, l->out_features, l->bias.defined(), build_options(placement(device, dtype), false));
    dense->weight.set_data(device.is_cpu() ? l->nf4->dequantize().to(dtype)
                                           : l->nf4->dequantize_rows_on(device, 0, l->out_features, dtype));
    if (l->bias.defined()) dense->bias.set_data(l->bias.detach().clone().to(device, dtype));
    l = dense;
  });
  for (auto& p : lm->parameters()) p.set_requires_grad(true);
}

/// Bytes of the model's tensors in memory: NF4 packed weights and statistics, plus every dense
/// parameter (embeddings, norms, lm_head, biases; all weights of a dense model).
inline std::size_t model_bytes(CausalLM& lm) {
  std::size_t bytes = 0;
  for (const auto& p : lm->parameters()) bytes += static_cast<std::size_t>(p.numel() * p.element_size());
  for_each_decoder_linear(lm, [&](const std::string&, Linear& l) {
    if (l->quantized()) bytes += l->nf4->q.storage_bytes();
  });
  return bytes;
}

}  // namespace ordo::model
