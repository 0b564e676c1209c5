// ordo/model/torch_compat.hpp — the few LibTorch calls whose spelling differs between the
// LibTorch versions ordo builds against (Debian's 1.13 and the 2.x inside PyPI's torch wheel).
//
// Everything version-dependent lives here, behind one spelling that takes the device type, so
// that the rest of ordo has no `#if TORCH_VERSION...`. What differs:
//   - autocast state: 1.13 has per-device functions (`is_cpu_enabled`, `set_autocast_cpu_dtype`,
//     `is_enabled` / `get_autocast_gpu_dtype` for CUDA); 2.x takes the device type as an argument
//     (`is_autocast_enabled(at::kCPU)`) and has dropped the old names.
//   - an optimizer's per-parameter state: keyed by the text of the TensorImpl's address in 1.13,
//     by the address itself in 2.x.
//   - the multi-tensor fused AdamW (`at::_fused_adamw_`, what torch.optim.AdamW(fused=True)
//     runs): 2.x only.
#pragma once

#include <optional>   // std::optional
#include <stdexcept>  // std::logic_error
#include <string>     // std::to_string

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR

// The 2.x spellings below (autocast calls that take the device type, the fused AdamW's optional
// arguments) came with LibTorch 2.4; 2.0 to 2.3 have neither these nor all of 1.13's.
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 4
#error "ordo builds against LibTorch 1.13 or 2.4 and later; this LibTorch is 2.0-2.3 (use PyPI torch>=2.4, e.g. ./ordo torch2)"
#endif

namespace ordo::compat {

inline constexpr int torch_major = TORCH_VERSION_MAJOR;
inline constexpr int torch_minor = TORCH_VERSION_MINOR;

/// Whether autocast is on for tensors of this device type (CPU or CUDA).
inline bool autocast_enabled(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType type, bool on) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(type, on);
#else
  if (type == c10::DeviceType::CUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
#endif
}

/// The dtype autocast casts to on this device type.
inline c10::ScalarType autocast_dtype(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

/// The key of parameter p in torch::optim::Optimizer::state().
inline auto optimizer_state_key(const torch::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<void*>(p.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(p.unsafeGetTensorImpl());
#endif
}

/// Whether this LibTorch has the multi-tensor fused AdamW step (fused_adamw below).
inline constexpr bool has_fused_adamw = TORCH_VERSION_MAJOR >= 2;

/// AdamW (decoupled weight decay, no amsgrad) on every tensor of `params` at once, with their
/// gradients, moments and step counts (fp32 scalar tensors on the parameters' device, read, not
/// advanced); the gradients are divided by `grad_scale` when given. LibTorch 2.x only
/// (has_fused_adamw); 1.13 throws std::logic_error.
inline void fused_adamw(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                        at::TensorList exp_avg_sqs, at::TensorList steps, double lr, double beta1, double beta2,
                        double weight_decay, double eps, const std::optional<at::Tensor>& grad_scale) {
#if TORCH_VERSION_MAJOR >= 2
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, grad_scale, /*found_inf=*/std::nullopt);
#else
  (void)params, (void)grads, (void)exp_avgs, (void)exp_avg_sqs, (void)steps, (void)lr, (void)beta1, (void)beta2,
      (void)weight_decay, (void)eps, (void)grad_scale;
  throw std::logic_error("ordo::compat::fused_adamw: LibTorch " + std::to_string(torch_major) + "." +
                         std::to_string(torch_minor) + " has no fused AdamW (2.x has)");
#endif
}

}  // namespace ordo::compat
