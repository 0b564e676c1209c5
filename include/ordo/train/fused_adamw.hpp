// ordo/train/fused_adamw.hpp — torch::optim::AdamW's step in one pass per parameter on the CPU
// (train/adamw_cpu.hpp), with the gradient clipping's scale folded in, giving LibTorch's bits.
//
//   const auto rounding = ordo::train::probe_adamw_rounding(options);  // once per run: how LibTorch rounds
//   ordo::train::adamw_step(optimizer, clip_scale, rounding);        // each step
//
// The step keeps its state in the optimizer itself (exp_avg, exp_avg_sq and the step count of
// each parameter, created as LibTorch creates them), so checkpoints save and load as before and
// a run may switch between this step and LibTorch's at any step. Where LibTorch's build rounds
// differently from every variant adamw_cpu knows (probe_adamw_rounding returns nullopt), on
// parameters that are not contiguous fp32 on the CPU, and with amsgrad, the step is LibTorch's.
//
// On a device (CUDA) with LibTorch 2.x the step can instead be LibTorch's multi-tensor fused
// AdamW (adamw_step's fuse_on_devices; the trainer asks for it with TrainOptions::fused_adamw):
// one kernel for all parameters instead of nine operators each, equal to LibTorch's step up to
// float rounding.
#pragma once

#include <cmath>     // std::pow, std::sqrt
#include <cstdint>   // std::int64_t
#include <cstring>   // std::memcmp
#include <map>       // std::map
#include <memory>    // std::make_unique
#include <optional>  // std::optional
#include <vector>    // std::vector

#include <ATen/Parallel.h>  // at::parallel_for
#include <torch/torch.h>

#include <ordo/model/torch_compat.hpp>  // compat::optimizer_state_key
#include <ordo/train/adamw_cpu.hpp>     // adamw_cpu::update, Coefficients, Rounding

namespace ordo::train {

/// How to repeat this LibTorch's AdamW: the roundings of its operators, and whether its sqrt
/// is IEEE's. Where it is not (a LibTorch built with MKL takes square roots from MKL's vector
/// math), the fused pass calls LibTorch's sqrt on blocks of the second moment.
struct AdamWRounding {
  adamw_cpu::Rounding formula;
  bool libtorch_sqrt = false;
};

namespace detail {

/// LibTorch's own square roots of n values in place (on the calling thread: inside a parallel
/// region LibTorch does not start more).
inline void libtorch_sqrt(float* values, std::size_t n) {
  torch::from_blob(values, {static_cast<std::int64_t>(n)}, torch::kFloat32).sqrt_();
}

inline bool contiguous_cpu_f32(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() &&
         !t.is_sparse();
}

/// Whether the fused pass can take every parameter of the optimizer that has a gradient.
inline bool fusable(torch::optim::AdamW& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    if (static_cast<torch::optim::AdamWOptions&>(group.options()).amsgrad()) return false;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!contiguous_cpu_f32(p) || !contiguous_cpu_f32(p.grad())) return false;
      const auto it = optimizer.state().find(compat::optimizer_state_key(p));
      if (it == optimizer.state().end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      if (!contiguous_cpu_f32(s.exp_avg()) || !contiguous_cpu_f32(s.exp_avg_sq()) ||
          s.exp_avg().numel() != p.numel() || s.exp_avg_sq().numel() != p.numel())
        return false;
    }
  }
  return true;
}

/// LibTorch's step: the gradients multiplied by grad_scale in place first (as the clipping does).
inline void libtorch_step(torch::optim::AdamW& optimizer, double grad_scale) {
  if (grad_scale != 1.0) {
    torch::NoGradGuard no_grad;
    for (auto& group : optimizer.param_groups())
      for (auto& p : group.params())
        if (p.grad().defined()) p.grad().mul_(grad_scale);
  }
  optimizer.step();
}

/// p's state in the optimizer, created as LibTorch's first step creates it when it has none.
inline torch::optim::AdamWParamState& state_of(torch::optim::AdamW& optimizer, const torch::Tensor& p) {
  auto& slot = optimizer.state()[compat::optimizer_state_key(p)];
  if (!slot) {
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    slot = std::move(s);
  }
  return static_cast<torch::optim::AdamWParamState&>(*slot);
}

inline void fused_step(torch::optim::AdamW& optimizer, double grad_scale, const AdamWRounding& rounding) {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& s = state_of(optimizer, p);
      s.step(s.step() + 1);
      const double bias1 = 1 - std::pow(beta1, static_cast<double>(s.step()));
      const double bias2 = 1 - std::pow(beta2, static_cast<double>(s.step()));
      adamw_cpu::Coefficients c;
      c.grad_scale = static_cast<float>(grad_scale);
      c.decay = o.weight_decay() != 0 ? static_cast<float>(1 - o.lr() * o.weight_decay()) : 1.0f;
      c.beta1 = static_cast<float>(beta1);
      c.one_minus_beta1 = static_cast<float>(1 - beta1);
      c.beta2 = static_cast<float>(beta2);
      c.one_minus_beta2 = static_cast<float>(1 - beta2);
      c.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
      c.eps = static_cast<float>(o.eps());
      c.neg_step = static_cast<float>(-(o.lr() / bias1));
      float* pp = p.data_ptr<float>();
      const float* g = p.grad().data_ptr<float>();
      float* m = s.exp_avg().data_ptr<float>();
      float* v = s.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 32768, [&](std::int64_t begin, std::int64_t end) {
        adamw_cpu::update(pp + begin, g + begin, m + begin, v + begin, static_cast<std::size_t>(end - begin), c,
                          rounding.formula, adamw_cpu::Isa::automatic,
                          rounding.libtorch_sqrt ? &libtorch_sqrt : nullptr);
      });
    }
  }
}

/// Whether LibTorch's multi-tensor fused AdamW (compat::fused_adamw) can take every parameter of
/// the optimizer that has a gradient: LibTorch 2.x, no amsgrad, parameters on one device other
/// than the CPU (where the fused pass above gives LibTorch's bits) in a floating dtype, with
/// gradients and moments of their own device, dtype and shape.
inline bool device_fusable(torch::optim::AdamW& optimizer) {
  if constexpr (!compat::has_fused_adamw) return false;
  std::optional<torch::Device> device;
  for (auto& group : optimizer.param_groups()) {
    if (static_cast<torch::optim::AdamWOptions&>(group.options()).amsgrad()) return false;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (p.device().is_cpu() || (device && p.device() != *device) || !p.is_floating_point() ||
          p.grad().device() != p.device() || p.grad().scalar_type() != p.scalar_type() ||
          p.grad().sizes() != p.sizes() || p.is_sparse() || p.grad().is_sparse())
        return false;
      device = p.device();
      const auto it = optimizer.state().find(compat::optimizer_state_key(p));
      if (it == optimizer.state().end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      for (const auto& m : {s.exp_avg(), s.exp_avg_sq()})
        if (m.device() != p.device() || m.scalar_type() != p.scalar_type() || m.sizes() != p.sizes()) return false;
    }
  }
  return device.has_value();
}

/// One AdamW step of every parameter with a gradient through LibTorch's multi-tensor fused AdamW
/// (what torch.optim.AdamW(fused=True) runs): one kernel over all of a group's tensors, each
/// element read and written once, instead of LibTorch C++'s nine operators per parameter. The
/// clipping's factor goes in as the kernel's grad_scale (it divides the gradients by
/// 1 / grad_scale). The state stays in the optimizer as LibTorch's step keeps it (exp_avg,
/// exp_avg_sq, the step count), so checkpoints and LibTorch's step go on from it. Values: those of
/// LibTorch's step up to float rounding (other operation order), not bit for bit.
inline void multi_tensor_step(torch::optim::AdamW& optimizer, double grad_scale) {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, avgs, sqs, steps;
    std::map<std::int64_t, torch::Tensor> step_values;  // one fp32 scalar per step count
    std::optional<torch::Tensor> scale;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& s = state_of(optimizer, p);
      s.step(s.step() + 1);
      auto& step = step_values[s.step()];
      if (!step.defined())
        step = torch::full({}, static_cast<double>(s.step()), p.options().dtype(torch::kFloat32));
      if (grad_scale != 1.0 && !scale) scale = torch::full({}, 1.0 / grad_scale, p.options().dtype(torch::kFloat32));
      params.push_back(p);
      grads.push_back(p.grad());
      avgs.push_back(s.exp_avg());
      sqs.push_back(s.exp_avg_sq());
      steps.push_back(step);
    }
    if (params.empty()) continue;
    compat::fused_adamw(params, grads, avgs, sqs, steps, o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()),
                        o.weight_decay(), o.eps(), scale);
  }
}

inline bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.numel() == b.numel() &&
         std::memcmp(a.data_ptr<float>(), b.data_ptr<float>(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

}  // namespace detail

/// One AdamW step of `optimizer`, the gradients taken times grad_scale (the clipping's factor;
/// 1: as they are). With a rounding (probe_adamw_rounding) and parameters, gradients and moments
/// that are contiguous fp32 on the CPU, one fused pass per parameter (the gradients are read, not
/// scaled in place); otherwise LibTorch's operators (which scale the gradients in place first).
/// The parameters and the optimizer's state come out the same either way, bit for bit.
/// `fuse_on_devices`: parameters on a device (CUDA) take LibTorch 2.x's multi-tensor fused AdamW
/// when it can take them all (detail::multi_tensor_step: LibTorch's values up to float rounding).
inline void adamw_step(torch::optim::AdamW& optimizer, double grad_scale,
                       const std::optional<AdamWRounding>& rounding, bool fuse_on_devices = false) {
  if (rounding && detail::fusable(optimizer))
    detail::fused_step(optimizer, grad_scale, *rounding);
  else if (fuse_on_devices && detail::device_fusable(optimizer))
    detail::multi_tensor_step(optimizer, grad_scale);
  else
    detail::libtorch_step(optimizer, grad_scale);
}

/// How this LibTorch's AdamW rounds, for these options: whether its sqrt is IEEE's (on values of
/// many magnitudes), then its step (three steps, gradients clipped by a factor, a parameter short
/// enough for its scalar loop and one long enough for its vector loop) beside adamw_cpu's
/// variants on the same values; returns the first variant that gives the same parameters and
/// moments bit for bit, nullopt when none does. Takes a few milliseconds and leaves LibTorch's
/// random state alone.
inline std::optional<AdamWRounding> probe_adamw_rounding(const torch::optim::AdamWOptions& options) {
  if (options.amsgrad()) return std::nullopt;
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(0x0adadu);
  // Magnitudes over many octaves, as trained weights and gradients have.
  auto values = [&](std::int64_t n) {
    return torch::randn({n}, generator) * torch::exp(torch::randn({n}, generator) * 3.0);
  };
  bool ieee_sqrt = true;
  {
    const auto x = values(4096 + 13).abs();
    const auto y = x.sqrt();
    for (std::int64_t i = 0; i < x.numel() && ieee_sqrt; ++i)
      ieee_sqrt = y.data_ptr<float>()[i] == std::sqrt(x.data_ptr<float>()[i]);
  }
  const std::vector<std::int64_t> sizes = {7, 4096 + 13};
  constexpr int steps = 3;
  constexpr double scale = 0.37;  // a clipping factor (1 on the last step: no clipping)
  std::vector<torch::Tensor> start;
  std::vector<std::vector<torch::Tensor>> grads(steps);
  for (const auto n : sizes) {
    start.push_back(values(n));
    for (auto& g : grads) g.push_back(values(n) * 1e-3);
  }
  auto run = [&](const std::optional<AdamWRounding>& r) {
    std::vector<torch::Tensor> params;
    for (const auto& s : start) params.push_back(s.clone().set_requires_grad(true));
    torch::optim::AdamW opt(params, options);
    for (int k = 0; k < steps; ++k) {
      for (std::size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[k][i].clone();
      const double f = k + 1 < steps ? scale : 1.0;
      if (r)
        detail::fused_step(opt, f, *r);
      else
        detail::libtorch_step(opt, f);
    }
    std::vector<torch::Tensor> out;
    for (auto& p : params) {
      const auto& s =
          static_cast<const torch::optim::AdamWParamState&>(*opt.state().at(compat::optimizer_state_key(p)));
      out.push_back(p.detach());
      out.push_back(s.exp_avg());
      out.push_back(s.exp_avg_sq());
    }
    return out;
  };
  const auto reference = run(std::nullopt);
  for (const auto& formula : adamw_cpu::roundings) {
    const AdamWRounding r{formula, !ieee_sqrt};
    const auto got = run(r);
    bool same = true;
    for (std::size_t i = 0; i < got.size() && same; ++i) same = detail::same_bits(got[i], reference[i]);
    if (same) return r;
  }
  return std::nullopt;
}

}  // namespace ordo::train
