// ordo/model/static_decode.hpp — batch-1 decoding with a KV cache of fixed capacity and a step
// of fixed shapes: what a CUDA graph can capture once and replay for every token.
//
// A decoding step of the general forward launches some 40 LibTorch operators per layer; on a
// GPU each costs host time (dispatch, launch) far above its arithmetic for one token, so a
// 30-layer model decodes at the launch rate, not at the GPU's. static_decoder lays the step out
// so that nothing in it changes shape or address from one token to the next: keys and values
// are written into buffers of `capacity` positions (index_copy_ at the position, a device
// tensor), attention runs over all of them with an additive mask that the step itself opens
// one position further (0 up to the position, -1e30 after it: those keys weigh exactly 0), and
// RoPE's cos/sin are rows of tables made once. The step reads the token from a device tensor and
// advances the position itself, so no host value enters it.
//
// On a CUDA device (when ordo is built with its CUDA kernels against a CUDA LibTorch) the first
// two steps run eagerly on a side stream (they warm up cuBLAS and copy NF4 weights to the
// device), the third is captured into a CUDA graph, and every step from then on is one graph
// replay: one launch instead of ~1,200 for a 30-layer model. Elsewhere the same step runs
// eagerly (the CPU has its own fused one-token step, which is faster: CausalLM::hidden).
//
// A captured graph reads the model's tensors at the addresses they had when it was captured:
// changing the model's weights in place is seen by later replays, but replacing its tensors
// (quantize_head, dequantize_linears, set_data, ->to()) after the first steps is not; make a
// new static_decoder after such a change. A capture that fails is ended and dropped, and the
// decoder runs its steps eagerly from then on.
//
// Values: the general path's operators on the same values, except that attention also sums
// over the masked positions (zeros) and its products have the capacity's shape, so logits agree
// with the general forward to fp32 rounding, not bit for bit (model.decoder, model.device).
#pragma once

#include <cstdint>    // std::int64_t
#include <optional>   // std::optional
#include <stdexcept>  // std::invalid_argument, std::logic_error
#include <string>     // std::to_string
#include <tuple>      // std::tie
#include <utility>    // std::move
#include <vector>     // std::vector

#include <torch/torch.h>

#if defined(ORDO_TORCH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <ordo/model/decoder.hpp>  // CausalLM, kv_cache, detail::rotary, detail::grouped_attention

namespace ordo::model {

class static_decoder {
 public:
  /// Whether this build can capture a step into a CUDA graph (ordo built with its CUDA kernels
  /// against a CUDA LibTorch).
#if defined(ORDO_TORCH_CUDA)
  static constexpr bool can_capture = true;
#else
  static constexpr bool can_capture = false;
#endif

  /// A decoder for `lm` (shared, not copied) with room for `capacity` positions (prompt and
  /// generated tokens). `capture`: replay a CUDA graph of the step when the model is on a CUDA
  /// device (ignored elsewhere).
  static_decoder(CausalLM lm, std::int64_t capacity, bool capture = true) : lm_(std::move(lm)), capacity_(capacity) {
    if (capacity < 1) throw std::invalid_argument("ordo::model::static_decoder: capacity must be at least 1");
    const auto& c = lm_->config();
    const auto device = lm_->device();
    const auto dtype = lm_->dtype();
    capture_ = capture && can_capture && device.is_cuda();
    torch::NoGradGuard no_grad;
    const auto on = torch::TensorOptions().device(device);
    for (std::int64_t l = 0; l < c.num_layers; ++l) {
      keys_.push_back(torch::zeros({1, c.num_kv_heads, capacity, c.head_dim}, on.dtype(dtype)));
      values_.push_back(torch::zeros({1, c.num_kv_heads, capacity, c.head_dim}, on.dtype(dtype)));
    }
    std::tie(cos_, sin_) = lm_->rotary_tables(0, capacity, device, dtype);
    bias_ = torch::full({1, 1, 1, capacity}, detail::masked_score, on.dtype(torch::kFloat32));
    token_ = torch::zeros({1, 1}, on.dtype(torch::kLong));
    position_ = torch::zeros({1}, on.dtype(torch::kLong));
  }
  static_decoder(const static_decoder&) = delete;
  static_decoder& operator=(const static_decoder&) = delete;

  std::int64_t capacity() const { return capacity_; }
  /// Positions filled so far (the prompt's and the steps').
  std::int64_t length() const { return length_; }
  /// Whether steps replay a CUDA graph (from the third on).
  bool captures() const { return capture_; }

  /// Runs the prompt ids [1, P] (any device) through the general forward, keeps its keys and
  /// values, and returns the last position's logits [1, vocab] (fp32). Starts over each time.
  torch::Tensor prefill(const torch::Tensor& ids) {
    TORCH_CHECK(ids.dim() == 2 && ids.size(0) == 1, "ordo::model::static_decoder: the prompt must be [1, tokens]");
    const auto P = ids.size(1);
    if (P < 1 || P >= capacity_)
      throw std::invalid_argument("ordo::model::static_decoder: a prompt of " + std::to_string(P) +
                                  " tokens leaves no room in a capacity of " + std::to_string(capacity_));
    torch::NoGradGuard no_grad;
    kv_cache cache;
    cache.reserve = P;
    auto logits = lm_->head(lm_->hidden(ids, {}, &cache).select(1, -1));
    for (std::size_t l = 0; l < keys_.size(); ++l) {
      keys_[l].narrow(2, 0, P).copy_(cache.keys[l]);
      values_[l].narrow(2, 0, P).copy_(cache.values[l]);
    }
    bias_.fill_(detail::masked_score);
    bias_.narrow(3, 0, P).fill_(0.0);
    position_.fill_(P);
    length_ = P;
    return logits;
  }

  /// One token (a [1, 1] or [1] int64 tensor, on the model's device or the host) at the next
  /// position: its logits [1, vocab] (fp32, on the model's device). With a CUDA graph the same
  /// tensor is returned each time and rewritten by the next step: read it before.
  torch::Tensor step(const torch::Tensor& token) {
    if (length_ == 0) throw std::logic_error("ordo::model::static_decoder: step before prefill");
    if (length_ >= capacity_)
      throw std::invalid_argument("ordo::model::static_decoder: the cache of " + std::to_string(capacity_) +
                                  " positions is full");
    TORCH_CHECK(token.numel() == 1, "ordo::model::static_decoder: step takes one token");
    torch::NoGradGuard no_grad;
    token_.copy_(token.reshape({1, 1}));
    ++length_;
#if defined(ORDO_TORCH_CUDA)
    if (capture_) return captured_step();
#endif
    return compute_step();
  }

 private:
  /// The step: reads token_ and position_, writes the position's keys and values, opens the
  /// mask there and advances position_. The same operators and shapes every time.
  torch::Tensor compute_step() {
    const auto& c = lm_->config();
    auto& body = *lm_->model;
    bias_.index_fill_(3, position_, 0.0);
    auto x = body.embed_tokens(token_);  // [1, 1, H]
    const auto cos = cos_.index_select(0, position_), sin = sin_.index_select(0, position_);  // [1, D]
    for (std::size_t l = 0; l < keys_.size(); ++l) {
      auto& layer = *body.layers->ptr<DecoderLayerImpl>(l);
      auto& attention = *layer.self_attn;
      const auto h = layer.input_layernorm(x);
      auto q = attention.q_proj(h).view({1, 1, c.num_heads, c.head_dim}).transpose(1, 2);
      auto k = attention.k_proj(h).view({1, 1, c.num_kv_heads, c.head_dim}).transpose(1, 2);
      auto v = attention.v_proj(h).view({1, 1, c.num_kv_heads, c.head_dim}).transpose(1, 2);
      q = detail::rotary(q, cos, sin);
      keys_[l].index_copy_(2, position_, detail::rotary(k, cos, sin));
      values_[l].index_copy_(2, position_, v);
      x = x + attention.o_proj(detail::grouped_attention(q, keys_[l], values_[l], bias_));
      x = x + layer.mlp(layer.post_attention_layernorm(x));
    }
    auto logits = lm_->head(body.norm(x).select(1, -1));  // [1, vocab]
    position_.add_(1);
    return logits;
  }

#if defined(ORDO_TORCH_CUDA)
  torch::Tensor captured_step() {
    if (graph_) {
      graph_->replay();  // on the current stream, after the token's copy
      return logits_;
    }
    // Warm-up and capture on a side stream (a graph cannot be captured on the default stream;
    // cuBLAS keeps a workspace per stream, which the warm-up steps make before the capture).
    const auto device = lm_->device();
    if (!side_) side_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
    c10::cuda::CUDAGuard device_guard(device);
    torch::cuda::synchronize(device.index());
    {
      c10::cuda::CUDAStreamGuard stream_guard(*side_);
      if (warm_up_steps_ < 2) {
        ++warm_up_steps_;
        logits_ = compute_step();
      } else {
        auto& graph = graph_.emplace();
        graph.capture_begin();
        try {
          logits_ = compute_step();  // recorded, not run
          graph.capture_end();
        } catch (...) {
          // A failed capture leaves the stream capturing: end it and drop the graph. The step was
          // recorded, not run (nothing advanced): the position is given back and later steps
          // run eagerly, so a caller that catches this can go on.
          try {
            graph.capture_end();
          } catch (...) {  // the capture is invalid already; the first error is the one to report
          }
          graph_.reset();
          capture_ = false;
          --length_;
          throw;
        }
        graph.replay();
      }
    }
    torch::cuda::synchronize(device.index());
    return logits_;
  }

  std::optional<c10::cuda::CUDAStream> side_;
  std::optional<at::cuda::CUDAGraph> graph_;
  int warm_up_steps_ = 0;
#endif

  CausalLM lm_;
  std::int64_t capacity_ = 0, length_ = 0;
  bool capture_ = false;
  std::vector<torch::Tensor> keys_, values_;
  torch::Tensor cos_, sin_, bias_, token_, position_, logits_;
};

}  // namespace ordo::model
