// ordo/model/logits_cache.hpp — remembered logits of a frozen model, for inputs it sees again.
//
// Distillation runs the teacher on every training batch, and a study distills several students
// from the same teacher on the same batches (the quick study: five KD stages, each the same
// batches in the same seeded order). The teacher's logits are then the same tensors each time:
// logits_cache computes them once and gives the kept tensor afterwards. A hit is exact (the
// inputs are compared in full, not only by hash) and changes no result: the logits are those the
// forward pass gives, and a forward pass on the same inputs, model and settings gives the same
// values to the last bit. What is kept: the logits as the model returns them (on its device, in
// fp32), at most `capacity_bytes` in all; when the next logits would not fit, they are computed
// and not kept (first come, kept for good: a stage that repeats the batches in the same order
// finds the first ones, where evicting old ones would leave it none).
//
// The model must not change while its logits are kept: the cache holds a handle to it (so that
// its address names it for good) and is meant for frozen teachers. Not thread-safe.
#pragma once

#include <cstddef>        // std::size_t
#include <cstdint>        // std::int64_t, std::uint64_t, std::uintptr_t
#include <stdexcept>      // std::invalid_argument
#include <unordered_map>  // std::unordered_multimap

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>       // CausalLM
#include <ordo/model/torch_compat.hpp>  // compat::autocast_enabled

namespace ordo::model {

class logits_cache {
 public:
  explicit logits_cache(std::int64_t capacity_bytes) : capacity_(capacity_bytes) {
    if (capacity_bytes < 0) throw std::invalid_argument("ordo::model::logits_cache: the capacity must not be negative");
  }

  /// lm->forward(input_ids, attention_mask) (no gradient), remembered when it fits. The returned
  /// tensor is shared with the cache: do not modify it in place.
  torch::Tensor forward(CausalLM& lm, const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {}) {
    torch::NoGradGuard no_grad;
    const auto ids = input_ids.to(torch::kCPU).contiguous();
    const auto mask = attention_mask.defined() ? attention_mask.to(torch::kCPU).contiguous() : torch::Tensor();
    const bool autocast = compat::autocast_enabled(lm->device().type());
    const auto key = hash_of(lm.get(), autocast, ids, mask);
    const auto [first, last] = kept_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      const auto& e = it->second;
      if (e.model.get() == lm.get() && e.autocast == autocast && same(e.ids, ids) && same(e.mask, mask)) {
        ++hits_;
        return e.logits;
      }
    }
    ++misses_;
    auto logits = lm->forward(input_ids, attention_mask);
    const auto size = static_cast<std::int64_t>(logits.numel() * logits.element_size());
    if (bytes_ + size <= capacity_) {
      // copies of the inputs: the caller may reuse its tensors for other batches
      kept_.emplace(key, entry{lm, autocast, ids.clone(), mask.defined() ? mask.clone() : mask, logits});
      bytes_ += size;
    }
    return logits;
  }

  std::int64_t capacity_bytes() const { return capacity_; }
  std::int64_t bytes() const { return bytes_; }  ///< logits kept
  std::int64_t hits() const { return hits_; }
  std::int64_t misses() const { return misses_; }

 private:
  struct entry {
    CausalLM model;  // held, so that no other model takes its address while its logits are kept
    bool autocast = false;
    torch::Tensor ids, mask, logits;
  };

  static bool same(const torch::Tensor& a, const torch::Tensor& b) {
    if (a.defined() != b.defined()) return false;
    return !a.defined() || (a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && torch::equal(a, b));
  }

  // FNV-1a over the model's address, the autocast state, and each tensor's dtype, shape and bytes.
  static std::uint64_t hash_of(const void* model, bool autocast, const torch::Tensor& ids, const torch::Tensor& mask) {
    std::uint64_t h = 14695981039346656037ull;
    const auto mix = [&h](const void* data, std::size_t n) {
      const auto* p = static_cast<const unsigned char*>(data);
      for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    const auto mix_value = [&mix](auto v) { mix(&v, sizeof v); };
    mix_value(reinterpret_cast<std::uintptr_t>(model));
    mix_value(autocast);
    for (const auto* t : {&ids, &mask}) {
      mix_value(t->defined());
      if (!t->defined()) continue;
      mix_value(static_cast<int>(t->scalar_type()));
      for (const auto d : t->sizes()) mix_value(d);
      mix(t->data_ptr(), static_cast<std::size_t>(t->numel()) * t->element_size());
    }
    return h;
  }

  std::int64_t capacity_ = 0, bytes_ = 0, hits_ = 0, misses_ = 0;
  std::unordered_multimap<std::uint64_t, entry> kept_;
};

}  // namespace ordo::model
